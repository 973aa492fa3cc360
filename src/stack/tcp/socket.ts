// TcpSocket: a net.Socket-shaped Duplex over one TcpConnection of an in-process endpoint's stack.
import { Duplex } from 'node:stream';
import { constants as osConstants } from 'node:os';
import type { Clock, Timer } from '../../clock.js';
import { StackError, WeaveError } from '../../errors.js';
import type { TcpConnection, TcpConnectionEvents, TcpErrorCode } from './contract.js';

/** Node's error codes for socket failures, as `net.Socket` reports them. */
export type TcpSocketErrorCode = TcpErrorCode | 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'ENOTFOUND' | 'ENETUNREACH' | 'EHOSTUNREACH' | 'EPIPE';

/**
 * A socket error shaped like Node's system errors (`err.code === 'ECONNREFUSED'`, `errno`, `syscall`,
 * `address`, `port`), so code written for `net.Socket` matches on it unchanged.
 * @category Endpoints
 */
export class TcpSocketError extends Error {
  /** Node's negative errno (`-os.constants.errno[code]`). */
  readonly errno: number;

  constructor(
    /** The POSIX code: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EADDRINUSE, ENOTFOUND, … */
    readonly code: TcpSocketErrorCode,
    /** The call that failed, as Node names it: `connect`, `read`, `write`, `listen`, `getaddrinfo`. */
    readonly syscall: string,
    /** The remote (or, for `listen`, local) address, when known. */
    readonly address?: string | undefined,
    /** The port that goes with `address`. */
    readonly port?: number | undefined,
    options?: ErrorOptions,
  ) {
    super(`${syscall} ${code}${address !== undefined ? ` ${address}${port !== undefined ? `:${port}` : ''}` : ''}`, options);
    this.name = 'Error';
    const errno = (osConstants.errno as Record<string, number | undefined>)[code];
    this.errno = errno === undefined ? -1 : -errno;
  }
}

/** Maps a stack failure (unreachable, address in use) to the error Node would report. */
export function socketErrorFrom(error: unknown, syscall: string, address?: string, port?: number): Error {
  if (error instanceof TcpSocketError) return error;
  if (error instanceof WeaveError) {
    const code: TcpSocketErrorCode | undefined =
      error.code === 'address-in-use' ? 'EADDRINUSE' : error.code === 'no-free-port' ? 'EADDRNOTAVAIL' : error.code === 'unreachable' ? 'ENETUNREACH' : error.code === 'not-found' ? 'ENOTFOUND' : error.code === 'closed' ? 'ECONNABORTED' : undefined;
    if (code) return new TcpSocketError(code, code === 'ENOTFOUND' ? 'getaddrinfo' : syscall, address, port, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

/** What a socket needs from the stack's TCP layer: its clock, its address, name lookup and active open. */
export interface TcpSocketHost {
  readonly clock: Clock;
  /** The stack's own address, dotted. */
  readonly localAddress: string;
  /** Resolves an overlay name (or returns a dotted address as is). */
  lookup(host: string): Promise<string>;
  /** Active open to a dotted address; throws a StackError (`address-in-use`, `unreachable`, `closed`). */
  open(remoteAddress: string, remotePort: number, events: TcpConnectionEvents, localPort?: number): TcpConnection;
}

/** Options of {@link TcpSocket} connects (a subset of `net.connect`'s). */
export interface TcpConnectOptions {
  /** Remote port, 1–65535. */
  port: number;
  /** Remote overlay address or name (default: this endpoint's own address). */
  host?: string | undefined;
  /** Local port to bind (default: an ephemeral port 49152–65535). */
  localPort?: number | undefined;
  /** Keep the write side open after the peer's FIN (default false, as `net`). */
  allowHalfOpen?: boolean | undefined;
  /** Disable Nagle at once (default false). */
  noDelay?: boolean | undefined;
  /** Enable keep-alive at once (default false). */
  keepAlive?: boolean | undefined;
  /** Keep-alive idle time in ms when `keepAlive` is set. */
  keepAliveInitialDelay?: number | undefined;
  /** Idle timeout in ms (see `setTimeout`). */
  timeout?: number | undefined;
  /** Aborting destroys the socket with an AbortError, as `net.connect({ signal })`. */
  signal?: AbortSignal | undefined;
}

/** Holds the process open like a real socket's handle while ref'd; unref'd, it does not. */
class ProcessHold {
  private handle: ReturnType<typeof setInterval> | undefined;
  private referenced = true;

  start(): void {
    if (this.handle) return;
    // One long interval is a ref'able libuv handle that costs nothing while it waits.
    this.handle = setInterval(noop, 0x7fff_ffff);
    if (!this.referenced) this.handle.unref();
  }

  ref(): void {
    this.referenced = true;
    this.handle?.ref();
  }

  unref(): void {
    this.referenced = false;
    this.handle?.unref();
  }

  stop(): void {
    if (this.handle) clearInterval(this.handle);
    this.handle = undefined;
  }
}

function noop(): void {}

/** An address and port as `net.Socket.address()` and `net.Server.address()` give them. */
export interface TcpAddressInfo {
  /** The IPv4 address, dotted. */
  address: string;
  /** Always `IPv4`: the in-process stack has no IPv6. */
  family: 'IPv4';
  /** The TCP port. */
  port: number;
}

/** `net.Socket`'s readyState values. */
export type TcpSocketReadyState = 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed';

/**
 * A TCP connection of an in-process endpoint, shaped like `net.Socket`: a Duplex with remote and local
 * addresses, `setNoDelay`, `setKeepAlive`, `setTimeout`, `ref`/`unref`, half-close with `end()`, and errors
 * carrying Node's codes (ECONNREFUSED, ECONNRESET, ETIMEDOUT, …). Backpressure is end to end: `write()`
 * returns false while the connection's send buffer is full, and bytes left unread in this stream keep the
 * receive window closed.
 * @category Endpoints
 */
export class TcpSocket extends Duplex {
  /** Remote address, dotted (undefined until known). */
  remoteAddress: string | undefined;
  /** Remote port (undefined until known). */
  remotePort: number | undefined;
  /** Always `IPv4` once connected. */
  remoteFamily: 'IPv4' | undefined;
  /** Local address, dotted (undefined until connected). */
  localAddress: string | undefined;
  /** Local port (undefined until connected). */
  localPort: number | undefined;
  /** Bytes received and delivered to this stream. */
  bytesRead = 0;
  /** True while an active open has not completed. */
  connecting = false;

  private readonly host: TcpSocketHost;
  private connection: TcpConnection | undefined;
  private established = false;
  private finished = false;
  private readonly hold = new ProcessHold();
  private bytesAccepted = 0;
  /** Bytes pushed into the readable side but not yet credited back to the connection's window. */
  private uncredited = 0;
  private creditScheduled = false;
  private pendingWrite: { chunk: Uint8Array; callback: (error?: Error | null) => void } | undefined;
  private writeScheduled = false;
  /** The peer's FIN arrived behind unread bytes: EOF is pushed once a read() has emptied the buffer. */
  private endPending = false;
  private timeoutMs = 0;
  private idleTimer: Timer | undefined;
  private lastActivity = 0;
  private noDelay = false;
  private keepAlive: { enable: boolean; initialDelayMs?: number | undefined } | undefined;

  /** @internal Created by `MemoryEndpoint.connect` or by a {@link TcpServer} for an accepted connection. */
  constructor(host: TcpSocketHost, options: { allowHalfOpen?: boolean | undefined } = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false, decodeStrings: true, emitClose: true, autoDestroy: true, writableHighWaterMark: 64 * 1024, readableHighWaterMark: 64 * 1024 });
    this.host = host;
  }

  /** @internal The events a connection reports to this socket (bound once). */
  readonly events: TcpConnectionEvents = {
    established: () => this.onEstablished(),
    data: (bytes) => this.onData(bytes),
    end: () => this.onEnd(),
    drain: () => this.scheduleWrite(),
    closed: (error) => this.onClosed(error),
  };

  /** @internal Adopts an established connection accepted by a listener. */
  adopt(connection: TcpConnection): void {
    this.connection = connection;
    this.established = true;
    this.setAddresses();
    this.applyOptions();
    this.hold.start();
    this.touch();
  }

  /** @internal Starts an active open: resolves `host`, then sends SYN. */
  startConnect(options: TcpConnectOptions, listener?: () => void): this {
    const { port } = options;
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`port ${String(port)} is not an integer 1-65535`);
    if (options.noDelay) this.noDelay = true;
    if (options.keepAlive) this.keepAlive = { enable: true, initialDelayMs: options.keepAliveInitialDelay };
    if (options.timeout !== undefined) this.setTimeout(options.timeout);
    if (listener) this.once('connect', listener);
    this.connecting = true;
    this.remotePort = port;
    this.hold.start();
    const { signal } = options;
    if (signal) {
      if (signal.aborted) {
        queueMicrotask(() => this.destroy(abortError(signal)));
        return this;
      }
      const onAbort = (): void => {
        this.destroy(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    const host = options.host ?? this.host.localAddress;
    this.host.lookup(host).then(
      (address) => {
        if (this.destroyed) return;
        this.remoteAddress = address;
        this.remoteFamily = 'IPv4';
        try {
          this.connection = this.host.open(address, port, this.events, options.localPort);
        } catch (error) {
          this.destroy(socketErrorFrom(error, 'connect', address, port));
          return;
        }
        this.localAddress = this.host.localAddress;
        this.localPort = this.connection.tuple.localPort;
      },
      (error: unknown) => {
        if (!this.destroyed) this.destroy(socketErrorFrom(error instanceof WeaveError ? error : new StackError('not-found', String(error)), 'getaddrinfo', host));
      },
    );
    return this;
  }

  /** True until the connection is established (`net.Socket.pending`). */
  get pending(): boolean {
    return !this.established;
  }

  /** `opening`, `open`, `readOnly`, `writeOnly` or `closed`, as `net.Socket.readyState`. */
  get readyState(): TcpSocketReadyState {
    if (this.connecting) return 'opening';
    if (this.destroyed || !this.established) return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** Bytes the connection accepted from `write()` so far. */
  get bytesWritten(): number {
    return this.bytesAccepted;
  }

  /** The connection's state (RFC 9293), or `CLOSED` before it exists. */
  get tcpState(): string {
    return this.connection?.state ?? 'CLOSED';
  }

  /** The local side as `net.Socket.address()` gives it (empty before the connection has a port). */
  address(): TcpAddressInfo | Record<string, never> {
    if (this.localAddress === undefined || this.localPort === undefined) return {};
    return { address: this.localAddress, family: 'IPv4', port: this.localPort };
  }

  /** Disables (true, the default argument) or enables Nagle's algorithm. */
  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    this.connection?.setNoDelay(noDelay);
    return this;
  }

  /** Enables keep-alive probes after `initialDelay` ms idle (0: the stack's default idle time). */
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAlive = { enable, initialDelayMs: initialDelay > 0 ? initialDelay : undefined };
    if (this.connection) this.applyKeepAlive();
    return this;
  }

  /**
   * Emits `'timeout'` after `ms` of inactivity (no bytes in or out); 0 disables. Like `net.Socket`, the
   * socket stays open: the listener decides (usually `destroy()`).
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`timeout ${ms} is not a non-negative number of ms`);
    this.timeoutMs = ms;
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    if (ms > 0) {
      this.lastActivity = this.host.clock.now();
      this.armIdleTimer(ms);
    }
    return this;
  }

  /** The socket holds the process open while connecting or connected (the default). */
  ref(): this {
    this.hold.ref();
    return this;
  }

  /** The socket no longer holds the process open. */
  unref(): this {
    this.hold.unref();
    return this;
  }

  /** Closes with a RST instead of a FIN, as `net.Socket.resetAndDestroy()`. */
  resetAndDestroy(): this {
    if (this.connection && !this.finished) {
      this.finished = true;
      this.connection.abort();
    }
    return this.destroy();
  }

  // ---- Duplex internals ----

  /** Every way of consuming (flowing 'data', read(), pipes, async iteration) goes through read(): credit the window after it. */
  override read(size?: number): ReturnType<Duplex['read']> {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.scheduleCredit();
    if (this.endPending && this.readableLength === 0) this.scheduleEnd();
    return chunk as ReturnType<Duplex['read']>;
  }

  /** @internal */
  override _read(): void {
    // Readable calls _read before it takes the chunk it is reading out of the buffer: count after that.
    this.scheduleCredit();
  }

  /** @internal */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pendingWrite = { chunk, callback };
    if (this.established) this.flushWrite();
  }

  /** @internal */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.connection && !this.finished) this.connection.shutdown();
    callback();
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.connecting = false;
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    this.hold.stop();
    const connection = this.connection;
    if (connection && !this.finished) {
      this.finished = true;
      // Like close(2): unread data or an error resets the connection; otherwise FIN after queued bytes.
      if (error || this.readableLength > 0 || connection.state === 'SYN-SENT' || connection.state === 'SYN-RECEIVED') connection.abort();
      else connection.shutdown();
    }
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.callback(error ?? new TcpSocketError('ECONNABORTED', 'write', this.remoteAddress, this.remotePort));
    callback(error);
  }

  // ---- connection events ----

  private onEstablished(): void {
    if (this.destroyed) return;
    this.established = true;
    this.connecting = false;
    this.setAddresses();
    this.applyOptions();
    this.touch();
    // 'connect' on a later tick, as Node emits it, and outside the protocol machine.
    process.nextTick(() => {
      if (this.destroyed) return;
      this.emit('connect');
      this.emit('ready');
    });
    if (this.pendingWrite) this.scheduleWrite();
  }

  private onData(bytes: Uint8Array): void {
    if (this.destroyed || this.finished) {
      // Data after close(2) resets the connection, as Linux does.
      if (this.connection && !this.finished) this.connection.abort();
      return;
    }
    this.bytesRead += bytes.byteLength;
    this.uncredited += bytes.byteLength;
    this.touch();
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    // Flowing consumers took it already: open the window again (outside the machine's call).
    this.scheduleCredit();
  }

  private onEnd(): void {
    if (this.destroyed) return;
    // As net.Socket, which leaves the FIN in the kernel behind unread bytes: pushing EOF behind buffered data
    // would make the read() that takes the last bytes emit 'end', even when its caller then pauses on them
    // (undici's HTTP/1 parser asserts it is not paused at 'end').
    if (this.readableLength > 0) this.endPending = true;
    else this.push(null);
  }

  /** Pushes the pending EOF after the read() that emptied the buffer has returned, if nothing arrived since. */
  private scheduleEnd(): void {
    queueMicrotask(() => {
      if (!this.endPending || this.destroyed || this.readableLength > 0) return;
      this.endPending = false;
      this.push(null);
    });
  }

  private onClosed(error: TcpErrorCode | undefined): void {
    this.finished = true;
    this.connecting = false;
    // Nothing more can happen on the wire: unread bytes no longer hold the process open.
    this.hold.stop();
    if (this.destroyed) return;
    if (error) {
      const syscall = error === 'ECONNREFUSED' || !this.established ? 'connect' : 'read';
      this.destroy(new TcpSocketError(error, syscall, this.remoteAddress, this.remotePort));
      return;
    }
    // A clean close: the read side ended (end() came first); the stream destroys itself after 'end' and 'finish'.
    if (this.readableEnded === false && !this.endPending) this.push(null);
    if (this.writableFinished) return;
    if (this.pendingWrite || this.writableLength > 0) this.destroy(new TcpSocketError('EPIPE', 'write', this.remoteAddress, this.remotePort));
  }

  // ---- helpers ----

  private setAddresses(): void {
    const connection = this.connection;
    if (!connection) return;
    this.localAddress = this.host.localAddress;
    this.localPort = connection.tuple.localPort;
    this.remoteAddress ??= formatAddress(connection.tuple.remoteAddress);
    this.remotePort = connection.tuple.remotePort;
    this.remoteFamily = 'IPv4';
  }

  private applyOptions(): void {
    if (this.noDelay) this.connection?.setNoDelay(true);
    if (this.keepAlive) this.applyKeepAlive();
  }

  private applyKeepAlive(): void {
    const keepAlive = this.keepAlive;
    if (!keepAlive || !this.connection) return;
    if (keepAlive.initialDelayMs !== undefined) this.connection.setKeepAlive(keepAlive.enable, keepAlive.initialDelayMs);
    else this.connection.setKeepAlive(keepAlive.enable);
  }

  private scheduleCredit(): void {
    if (this.creditScheduled) return;
    this.creditScheduled = true;
    queueMicrotask(() => {
      this.creditScheduled = false;
      this.creditConsumed();
    });
  }

  /** Gives the connection back the window of bytes that have left this stream's readable buffer. */
  private creditConsumed(): void {
    const consumed = this.uncredited - this.readableLength;
    if (consumed <= 0 || !this.connection || this.finished) return;
    this.uncredited -= consumed;
    this.connection.consumed(consumed);
  }

  private scheduleWrite(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    queueMicrotask(() => {
      this.writeScheduled = false;
      this.flushWrite();
    });
  }

  /** Hands the pending chunk to the connection; completes the write once every byte was accepted. */
  private flushWrite(): void {
    const pending = this.pendingWrite;
    const connection = this.connection;
    if (!pending || !connection || !this.established || this.destroyed) return;
    if (this.finished) {
      this.pendingWrite = undefined;
      pending.callback(new TcpSocketError('EPIPE', 'write', this.remoteAddress, this.remotePort));
      return;
    }
    const accepted = pending.chunk.byteLength === 0 ? 0 : connection.write(pending.chunk);
    this.bytesAccepted += accepted;
    if (accepted > 0) this.touch();
    if (accepted < pending.chunk.byteLength) {
      pending.chunk = pending.chunk.subarray(accepted);
      return; // the connection reports drain when it has room
    }
    this.pendingWrite = undefined;
    pending.callback();
  }

  private touch(): void {
    if (this.timeoutMs > 0) this.lastActivity = this.host.clock.now();
  }

  private armIdleTimer(delay: number): void {
    this.idleTimer = this.host.clock.setTimer(delay, () => {
      this.idleTimer = undefined;
      if (this.destroyed || this.timeoutMs === 0) return;
      const idle = this.host.clock.now() - this.lastActivity;
      if (idle >= this.timeoutMs) {
        this.lastActivity = this.host.clock.now();
        this.armIdleTimer(this.timeoutMs);
        this.emit('timeout');
      } else {
        this.armIdleTimer(this.timeoutMs - idle);
      }
    });
  }
}

function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

/** Dotted form of a 32-bit address. */
export function formatAddress(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}
