// TcpServer: a net.Server-shaped listener on one port of an in-process endpoint's stack.
import { EventEmitter } from 'node:events';
import type { TcpConnection, TcpConnectionEvents } from './contract.js';
import type { TcpAcceptor, TcpListenerHandle } from './tcp-layer.js';
import { TcpSocket, TcpSocketError, formatAddress, socketErrorFrom, type TcpAddressInfo, type TcpSocketHost } from './socket.js';

/** What a server needs from the stack: sockets, and listening on a port. */
export interface TcpServerHost extends TcpSocketHost {
  /** Starts listening; throws a StackError `address-in-use` when another listener has the port. `onClosed` runs when the stack closes under it. */
  listen(port: number, backlog: number, acceptor: TcpAcceptor, onClosed?: () => void): TcpListenerHandle;
}

/** Options of {@link TcpServer} (a subset of `net.createServer`'s). */
export interface TcpServerOptions {
  /** Accepted sockets keep their write side open after the peer's FIN (default false). */
  allowHalfOpen?: boolean | undefined;
  /** Accepted sockets start paused (default false). */
  pauseOnConnect?: boolean | undefined;
  /** Accepted sockets disable Nagle (default false). */
  noDelay?: boolean | undefined;
  /** Accepted sockets enable keep-alive (default false). */
  keepAlive?: boolean | undefined;
  /** Keep-alive idle time in ms when `keepAlive` is set. */
  keepAliveInitialDelay?: number | undefined;
}

/** Options of {@link TcpServer.listen}. */
export interface TcpListenOptions {
  /** Port to listen on; 0 (default) picks a free ephemeral port. */
  port?: number | undefined;
  /** Handshakes in progress plus connections not yet accepted, at most (default 511, as Node). */
  backlog?: number | undefined;
  /** Aborting closes the server, as `server.listen({ signal })`. */
  signal?: AbortSignal | undefined;
}

/** A connection reset because `maxConnections` were open, as `net.Server`'s `'drop'` reports it. */
export interface TcpDropInfo {
  /** This endpoint's address. */
  localAddress: string;
  /** The listening port. */
  localPort: number;
  /** The client's address. */
  remoteAddress: string;
  /** The client's port. */
  remotePort: number;
  /** Always `IPv4`. */
  remoteFamily: 'IPv4';
}

/** Events of a {@link TcpServer}, as `net.Server`'s. */
export interface TcpServerEvents {
  /** A connection completed its handshake and was accepted. */
  connection: [socket: TcpSocket];
  /** The server listens (after `listen()`). */
  listening: [];
  /** The server stopped listening and every accepted connection has ended. */
  close: [];
  /** `listen()` failed (EADDRINUSE). */
  error: [error: Error];
  /** A connection was reset because `maxConnections` were open. */
  drop: [data: TcpDropInfo];
}

const DEFAULT_BACKLOG = 511;

/**
 * A TCP server on an in-process endpoint, shaped like `net.Server`: `listen(port[, backlog][, cb])`,
 * `close(cb)`, `address()`, `'connection'`, `'listening'`, `'close'`, `'error'`, `maxConnections`,
 * `getConnections`, `ref`/`unref`. Node's `http.Server` can be fed from it (see `serveHttp`).
 * @category Endpoints
 */
export class TcpServer extends EventEmitter<TcpServerEvents> {
  /** Connections beyond this many are reset as they complete their handshake (default: no limit). */
  maxConnections: number | undefined;

  private readonly host: TcpServerHost;
  private readonly options: TcpServerOptions;
  private listener: TcpListenerHandle | undefined;
  private readonly sockets = new Set<TcpSocket>();
  private closing = false;
  private referenced = true;
  private holdHandle: ReturnType<typeof setInterval> | undefined;
  private closeCallbacks: ((error?: Error) => void)[] = [];

  /** @internal Created by `MemoryEndpoint.createServer`. */
  constructor(host: TcpServerHost, options: TcpServerOptions = {}, connectionListener?: (socket: TcpSocket) => void) {
    super();
    this.host = host;
    this.options = options;
    if (connectionListener) this.on('connection', connectionListener);
  }

  /** True while listening. */
  get listening(): boolean {
    return this.listener !== undefined;
  }

  /**
   * Starts listening on `port` (0: an ephemeral port) of the endpoint's address. `'listening'` follows on a
   * later tick; a port another server holds emits `'error'` with `EADDRINUSE`, as `net.Server` does.
   */
  listen(port?: number, backlog?: number, callback?: () => void): this;
  listen(port: number, callback: () => void): this;
  listen(options: TcpListenOptions, callback?: () => void): this;
  listen(callback?: () => void): this;
  listen(...args: unknown[]): this {
    let options: TcpListenOptions = {};
    let callback: (() => void) | undefined;
    const first = args[0];
    if (typeof first === 'object' && first !== null) {
      options = first as TcpListenOptions;
      callback = args[1] as (() => void) | undefined;
    } else if (typeof first === 'function') {
      callback = first as () => void;
    } else {
      options.port = first as number | undefined;
      if (typeof args[1] === 'function') callback = args[1] as () => void;
      else {
        options.backlog = args[1] as number | undefined;
        callback = args[2] as (() => void) | undefined;
      }
    }
    if (this.listener) throw Object.assign(new Error('Listen method has been called more than once without closing.'), { code: 'ERR_SERVER_ALREADY_LISTEN' });
    const port = options.port === undefined || options.port === null ? 0 : Number(options.port);
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`port ${String(options.port)} is not an integer 0-65535`);
    const backlog = options.backlog ?? DEFAULT_BACKLOG;
    if (!Number.isInteger(backlog) || backlog < 1) throw new RangeError(`backlog ${String(backlog)} is not a positive integer`);
    if (callback) this.once('listening', callback);
    this.closing = false;
    try {
      this.listener = this.host.listen(port, backlog, (connection) => this.accept(connection), () => this.close());
    } catch (error) {
      const failure = socketErrorFrom(error, 'listen', this.host.localAddress, port);
      process.nextTick(() => this.emit('error', failure));
      return this;
    }
    this.holdHandle = setInterval(noop, 0x7fff_ffff);
    if (!this.referenced) this.holdHandle.unref();
    const { signal } = options;
    if (signal) {
      if (signal.aborted) queueMicrotask(() => this.close());
      else signal.addEventListener('abort', () => this.close(), { once: true });
    }
    process.nextTick(() => {
      if (this.listener) this.emit('listening');
    });
    return this;
  }

  /** Where the server listens, as `net.Server.address()`; null when not listening. */
  address(): TcpAddressInfo | null {
    if (!this.listener) return null;
    return { address: this.host.localAddress, family: 'IPv4', port: this.listener.port };
  }

  /**
   * Stops accepting connections; `'close'` (and `callback`) follow once every accepted connection has
   * ended. Calling it when not listening calls back with ERR_SERVER_NOT_RUNNING, as Node does.
   */
  close(callback?: (error?: Error) => void): this {
    if (!this.listener) {
      if (callback) {
        const error = Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' });
        process.nextTick(() => callback(error));
      }
      return this;
    }
    if (callback) this.closeCallbacks.push(callback);
    this.listener.close();
    this.listener = undefined;
    this.closing = true;
    if (this.holdHandle) clearInterval(this.holdHandle);
    this.holdHandle = undefined;
    this.maybeClosed();
    return this;
  }

  /** Calls back with the number of open connections, as `net.Server.getConnections`. */
  getConnections(callback: (error: Error | null, count: number) => void): this {
    const count = this.sockets.size;
    process.nextTick(() => callback(null, count));
    return this;
  }

  /** Open accepted connections now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** The server holds the process open while listening (the default). */
  ref(): this {
    this.referenced = true;
    this.holdHandle?.ref();
    return this;
  }

  /** The server no longer holds the process open. */
  unref(): this {
    this.referenced = false;
    this.holdHandle?.unref();
    return this;
  }

  /** Same as `close()`, awaitable. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.listener) return;
    await new Promise<void>((resolve) => this.close(() => resolve()));
  }

  private accept(connection: TcpConnection): TcpConnectionEvents | undefined {
    if (this.closing || !this.listener) return undefined;
    if (this.maxConnections !== undefined && this.sockets.size >= this.maxConnections) {
      const { tuple } = connection;
      const data = { localAddress: this.host.localAddress, localPort: tuple.localPort, remoteAddress: formatAddress(tuple.remoteAddress), remotePort: tuple.remotePort, remoteFamily: 'IPv4' as const };
      process.nextTick(() => this.emit('drop', data));
      return undefined;
    }
    const socket = new TcpSocket(this.host, { allowHalfOpen: this.options.allowHalfOpen });
    socket.adopt(connection);
    if (this.options.noDelay) socket.setNoDelay(true);
    if (this.options.keepAlive) socket.setKeepAlive(true, this.options.keepAliveInitialDelay ?? 0);
    if (this.options.pauseOnConnect) socket.pause();
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.maybeClosed();
    });
    // 'connection' outside the protocol machine's call, so handlers may write and close freely.
    process.nextTick(() => {
      if (!socket.destroyed || socket.readableLength > 0) this.emit('connection', socket);
    });
    return socket.events;
  }

  private maybeClosed(): void {
    if (!this.closing || this.sockets.size > 0) return;
    this.closing = false;
    const callbacks = this.closeCallbacks;
    this.closeCallbacks = [];
    process.nextTick(() => {
      this.emit('close');
      for (const callback of callbacks) callback();
    });
  }
}

function noop(): void {}

export { TcpSocketError, type TcpAcceptor, type TcpListenerHandle };
