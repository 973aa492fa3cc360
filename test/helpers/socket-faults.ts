// Socket fault injection: makes one kind of node:dgram / node:net operation fail the way Node reports real failures.
//
// The patches sit on the prototypes (dgram.Socket, net.Socket, net.Server), so they reach every socket the code
// under test opens, whichever module created it and whether or not it goes through a Transport. Only sockets
// that bound, connected, listened or were accepted after `install()` are touched (never stdio pipes), and
// sockets passed to `exempt()` (the test's own stubs) are left alone.
import dgram from 'node:dgram';
import net from 'node:net';

/** The operations that can be made to fail. */
export const SOCKET_FAULTS = ['udp-bind', 'udp-connect', 'udp-send', 'udp-error', 'tcp-listen', 'tcp-connect', 'tcp-write', 'tcp-error', 'tcp-server-error'] as const;
export type SocketFault = (typeof SOCKET_FAULTS)[number];

/** An error shaped like the ones libuv gives (code, syscall). */
function systemError(code: string, syscall: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${syscall} ${code} (injected)`);
  error.code = code;
  error.syscall = syscall;
  return error;
}

type Patched = { target: object; key: string; original: unknown };
type Method<T> = (this: T, ...args: unknown[]) => unknown;

/**
 * Installs the patches; `arm(fault)` makes every matching operation fail until `disarm()`. Error-event faults
 * (`udp-error`, `tcp-error`, `tcp-server-error`) fire at arm time on every live socket, twice, because a
 * leftover `once('error')` listener swallows only the first.
 */
export class SocketFaults {
  /** How many operations failed, per fault. */
  readonly injected: Record<SocketFault, number> = Object.fromEntries(SOCKET_FAULTS.map((f) => [f, 0])) as Record<SocketFault, number>;
  private armed: SocketFault | undefined;
  private readonly patches: Patched[] = [];
  private readonly udp = new Set<dgram.Socket>();
  private readonly tcp = new Set<net.Socket>();
  private readonly servers = new Set<net.Server>();
  private readonly exempted = new WeakSet<object>();

  /** Patches the prototypes; call `uninstall()` in a finally. */
  install(): this {
    const faults = this;
    const udpProto = dgram.Socket.prototype as unknown as Record<string, Method<dgram.Socket>>;
    const tcpProto = net.Socket.prototype as unknown as Record<string, Method<net.Socket>>;
    const serverProto = net.Server.prototype as unknown as Record<string, Method<net.Server>>;

    this.patch(udpProto, 'bind', (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        if (faults.fails('udp-bind', this)) {
          process.nextTick(() => this.emit('error', systemError('EADDRINUSE', 'bind')));
          return this;
        }
        faults.trackUdp(this);
        return original.apply(this, args);
      },
    );
    this.patch(udpProto, 'connect', (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        if (faults.fails('udp-connect', this)) {
          // As Node reports a failed connect: to the callback when there is one, else as an 'error' event.
          const callback = args.find((a) => typeof a === 'function') as ((error: Error) => void) | undefined;
          const error = systemError('ENETUNREACH', 'connect');
          process.nextTick(() => (callback ? callback(error) : this.emit('error', error)));
          return;
        }
        faults.trackUdp(this);
        return original.apply(this, args);
      },
    );
    this.patch(udpProto, 'send', (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        if (faults.fails('udp-send', this)) {
          // Node hands send errors to the callback; without one they are lost.
          const callback = lastFunction(args);
          const error = systemError('ENOBUFS', 'send');
          if (callback) process.nextTick(() => callback(error));
          return;
        }
        return original.apply(this, args);
      },
    );
    this.patch(udpProto, 'close', (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        faults.udp.delete(this);
        return original.apply(this, args);
      },
    );
    this.patch(tcpProto, 'connect', (original) =>
      function (this: net.Socket, ...args: unknown[]) {
        if (faults.fails('tcp-connect', this)) {
          process.nextTick(() => this.destroy(systemError('ECONNREFUSED', 'connect')));
          return this;
        }
        faults.trackTcp(this);
        return original.apply(this, args);
      },
    );
    this.patch(tcpProto, 'write', (original) =>
      function (this: net.Socket, ...args: unknown[]) {
        if (faults.tcp.has(this) && faults.fails('tcp-write', this)) {
          // A failed write destroys the socket with the error ('error', then 'close'), and calls its callback.
          const callback = lastFunction(args);
          const error = systemError('EPIPE', 'write');
          process.nextTick(() => {
            callback?.(error);
            this.destroy(error);
          });
          return false;
        }
        return original.apply(this, args);
      },
    );
    this.patch(serverProto, 'listen', (original) =>
      function (this: net.Server, ...args: unknown[]) {
        if (faults.fails('tcp-listen', this)) {
          process.nextTick(() => this.emit('error', systemError('EADDRINUSE', 'listen')));
          return this;
        }
        // Only listening servers get error events (one whose listen failed never emits again).
        this.once('listening', () => {
          faults.servers.add(this);
          this.once('close', () => faults.servers.delete(this));
        });
        return original.apply(this, args);
      },
    );
    this.patch(serverProto, 'emit', (original) =>
      function (this: net.Server, ...args: unknown[]) {
        if (args[0] === 'connection' && args[1] instanceof net.Socket && faults.servers.has(this)) faults.trackTcp(args[1]);
        return original.apply(this, args);
      },
    );
    return this;
  }

  /** Restores every patched method. */
  uninstall(): void {
    this.armed = undefined;
    for (const { target, key, original } of this.patches.splice(0).reverse()) (target as Record<string, unknown>)[key] = original;
  }

  /** Leaves a socket or server of the test itself alone. */
  exempt(socket: object): void {
    this.exempted.add(socket);
  }

  /** From now on, `fault` fails every time; error-event faults fire now on every live socket. */
  arm(fault: SocketFault): void {
    this.armed = fault;
    const twice = <T extends { emit(event: string, ...args: unknown[]): boolean }>(targets: Iterable<T>, error: () => Error, fault_: SocketFault): void => {
      for (const target of [...targets]) {
        if (this.exempted.has(target)) continue;
        for (let i = 0; i < 2; i++) {
          this.injected[fault_]++;
          target.emit('error', error());
        }
      }
    };
    if (fault === 'udp-error') twice(this.udp, () => systemError('ECONNREFUSED', 'recvmsg'), fault);
    if (fault === 'tcp-server-error') twice(this.servers, () => systemError('EMFILE', 'accept'), fault);
    if (fault === 'tcp-error') {
      for (const socket of [...this.tcp]) {
        if (this.exempted.has(socket)) continue;
        this.injected[fault]++;
        socket.destroy(systemError('ECONNRESET', 'read'));
      }
    }
  }

  /** Operations work again. */
  disarm(): void {
    this.armed = undefined;
  }

  private fails(fault: SocketFault, target: object): boolean {
    if (this.armed !== fault || this.exempted.has(target)) return false;
    this.injected[fault]++;
    return true;
  }

  private trackUdp(socket: dgram.Socket): void {
    this.udp.add(socket);
  }

  private trackTcp(socket: net.Socket): void {
    if (this.tcp.has(socket)) return;
    this.tcp.add(socket);
    socket.once('close', () => this.tcp.delete(socket));
  }

  private patch<T>(target: Record<string, Method<T>>, key: string, make: (original: Method<T>) => Method<T>): void {
    const original = target[key] as Method<T>;
    this.patches.push({ target, key, original });
    target[key] = make(original);
  }
}

function lastFunction(args: unknown[]): ((error: Error) => void) | undefined {
  for (let i = args.length - 1; i >= 0; i--) if (typeof args[i] === 'function') return args[i] as (error: Error) => void;
  return undefined;
}

/** Collects uncaught exceptions and unhandled rejections instead of letting them end the test process. */
export function catchProcessErrors(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onError = (error: unknown): void => {
    errors.push(error);
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    errors,
    stop: () => {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}
