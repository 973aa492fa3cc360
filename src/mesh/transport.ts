// Transport: the narrow socket surface the router, its connections and the data plane use, and its node:net/dgram implementation.
import { createServer, connect as netConnect } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { closeSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { loadTapBinding, type TapHandle, type TapReadArea } from '../nic/tap-binding.js';
import { WeaveError } from '../errors.js';

/**
 * One end of a reliable, ordered byte stream (a TCP socket). `net.Socket` satisfies it as it is;
 * only what a control connection uses is here, so another transport has little to provide.
 */
export interface StreamSocket {
  /** The remote IP as seen on this socket (undefined until connected). */
  readonly remoteAddress?: string | undefined;
  /** The remote port as seen on this socket (undefined until connected). */
  readonly remotePort?: number | undefined;
  /** This end's IP address. */
  readonly localAddress?: string | undefined;
  /** This end's port. */
  readonly localPort?: number | undefined;
  /** True while an outbound socket waits for its `connect` event. */
  readonly connecting: boolean;
  /** Disables Nagle-style coalescing (a no-op where nothing coalesces). */
  setNoDelay(noDelay?: boolean): unknown;
  /** Queues bytes for the remote; the socket copies or keeps them, the caller does not reuse them. */
  write(data: Uint8Array): unknown;
  /** Closes both directions now; the remote sees the end after any bytes already written. */
  destroy(error?: Error): unknown;
  /** Bytes arrived, in order; chunk boundaries mean nothing. */
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  /** The stream failed (refused, reset…); `close` follows. */
  on(event: 'error', listener: (error: Error) => void): unknown;
  /** The stream is closed for good, by either end or by an error. */
  on(event: 'close', listener: () => void): unknown;
  /** An outbound stream opened. */
  once(event: 'connect', listener: () => void): unknown;
}

/** A listening stream endpoint (a TCP server socket). */
export interface StreamListener {
  /** Where it listens, with the port chosen when 0 was asked for. */
  address(): {
    /** The bound IP address. */
    address: string;
    /** The bound port. */
    port: number;
  };
  /** Stops accepting; existing streams stay open. */
  close(): Promise<void>;
}

/** Who sent a datagram, as the receiving socket sees it (after any NAT on the way). */
export interface DatagramSender {
  /** The sender's IP address. */
  address: string;
  /** The sender's port. */
  port: number;
}

/** A bound datagram (UDP) socket. `dgram.Socket` satisfies it, so the sleeve calls the real `send` directly. */
export interface DatagramSocket {
  /** Sends `buffer[offset, offset + length)`; `callback` runs once the buffer may be reused. */
  send(buffer: Uint8Array, offset: number, length: number, port: number, address: string, callback?: (error: Error | null) => void): void;
  /** A datagram arrived; `packet` is the receiver's to keep. */
  on(event: 'message', listener: (packet: Buffer, sender: DatagramSender) => void): unknown;
  /** The bound address and port. */
  address(): {
    /** The bound IP address. */
    address: string;
    /** The bound port. */
    port: number;
  };
  /** Unbinds; `callback` runs once closed. */
  close(callback?: () => void): unknown;
  /** The receive buffer the kernel granted, in bytes, where the socket has one. */
  getRecvBufferSize?(): number;
}

/** How to bind a datagram socket. */
export interface DatagramBindOptions {
  /** Receive and send buffer sizes in bytes, where the transport has such buffers. */
  bufferBytes?: number | undefined;
  /**
   * Bind so that {@link Transport.connectDatagram} can open more sockets on the same port (Linux `SO_REUSEPORT`,
   * which only lets sockets of the same user join). Rejects with code `ENOTSUP` where the transport cannot.
   */
  sharedPort?: boolean | undefined;
}

/**
 * Everything the mesh and the data plane need from the network: listen and dial streams, bind
 * datagram sockets. `nodeTransport` is the real one; `weave-ts/testing`'s `VirtualWire` gives each
 * peer an in-process one, so a whole mesh runs in one process with latency, loss and partitions.
 */
export interface Transport {
  /**
   * Starts accepting streams on `host:port` (port 0 picks one) and hands each new one to
   * `onConnection`. Rejects with the system's error (EADDRINUSE, EADDRNOTAVAIL…) when it cannot.
   */
  listen(host: string, port: number, onConnection: (socket: StreamSocket) => void): Promise<StreamListener>;
  /** Dials `host:port`; the socket emits `connect` once open, or `error` and `close` when refused. */
  connect(host: string, port: number): StreamSocket;
  /** Binds a datagram socket to `host:port` (port 0 picks one); rejects with the system's error. */
  bindDatagram(host: string, port: number, options?: DatagramBindOptions): Promise<DatagramSocket>;
  /**
   * Makes every datagram of `socket` (from this transport's `bindDatagram`) carry don't-fragment and
   * never be fragmented locally. Returns why it could not, or undefined on success. Absent when the
   * transport cannot do it at all.
   */
  setDontFragment?(socket: DatagramSocket, ipv6: boolean): string | undefined;
  /**
   * Opens a socket on the local address and port of `shared` (bound with `sharedPort`) connected to `remote`:
   * the kernel queues the datagrams from exactly that address there, in a receive queue of its own, and
   * everything else keeps arriving on `shared`. The socket is for receiving only; send through `shared`.
   * Absent when the transport cannot; rejects with the system's error.
   */
  connectDatagram?(shared: DatagramSocket, remote: DatagramSender, options?: DatagramBindOptions): Promise<DatagramSocket>;
  /**
   * Stops (`false`) or resumes (`true`) reading datagrams from `socket` (from this transport). While stopped they
   * wait in the kernel's queue and what overflows it is dropped there, at no cost to this process. Returns
   * false when it could not. Absent when the transport cannot.
   */
  setReceiving?(socket: DatagramSocket, receiving: boolean): boolean;
  /**
   * Sends batches of datagrams on `socket` (from this transport's `bindDatagram`) with one system call, the
   * buffers free for reuse when it returns. Undefined when the socket cannot (no native binding, a plain
   * `dgram` socket); absent when the transport cannot at all.
   */
  batchSender?(socket: DatagramSocket): DatagramBatchSender | undefined;
  /**
   * Reads the datagrams of `socket` (from this transport's `connectDatagram`) in batches, one system call per wakeup
   * (recvmmsg), into buffers reused for every batch, instead of emitting 'message' for each: `onDatagram` gets each
   * one, valid only during the call, with the connected remote as sender. Reading ends when the socket closes.
   * Returns false when it cannot (no native binding, another kind of socket): the socket keeps emitting 'message'.
   */
  receiveBatches?(socket: DatagramSocket, onDatagram: (packet: Uint8Array, sender: DatagramSender) => void): boolean;
}

/** Sends batches of datagrams to one address at a time, synchronously. */
export interface DatagramBatchSender {
  /** The socket address of `host:port` for `send`, or undefined when `host` is not an IP literal. */
  address(host: string, port: number): Uint8Array | undefined;
  /**
   * Sends `packets[i][0, lengths[i])` for `i < count` to `address`; returns how many were sent (fewer when the
   * socket buffer is full: queue the rest) or -errno when none could be.
   */
  send(address: Uint8Array, packets: readonly Uint8Array[], lengths: Uint32Array, count: number): number;
}

/** Sockets of ours made from a native fd (and the remote of connected ones), and how to batch sends on them. */
const nativeSockets = new WeakMap<DatagramSocket, { fd: number; ipv6: boolean; remote?: DatagramSender }>();

/** Datagrams per receive batch, and the slot each gets (the largest UDP payload fits). */
const RECEIVE_BATCH = 32;
const RECEIVE_SLOT = 65536;
/** One receive area for every batched socket of the process (2 MiB): their callbacks never overlap. */
let receiveArea: TapReadArea | undefined;

/** The real network through node:net and node:dgram; sockets are returned unwrapped, so the hot path costs nothing extra. */
export const nodeTransport: Transport = {
  listen(host, port, onConnection) {
    const server = createServer({ noDelay: true }, onConnection);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        // Errors after listening (accept failures) are not fatal to the router.
        server.on('error', () => undefined);
        resolve({
          address: () => {
            const address = server.address();
            return typeof address === 'object' && address !== null ? { address: address.address, port: address.port } : { address: host, port };
          },
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      });
    });
  },

  connect: (host, port) => netConnect({ host, port }),

  bindDatagram(host, port, options = {}) {
    const bufferBytes = options.bufferBytes;
    if (options.sharedPort) {
      const load = loadTapBinding();
      if (!load.binding) {
        return Promise.reject(Object.assign(new Error(`sharing a UDP port needs the native binding, which is not built (${load.error.message})`), { code: 'ENOTSUP' }));
      }
      return adoptUdpFd(load.binding.openUdp(host, port, isIPv6(host), bufferBytes ?? 0, null, 0), isIPv6(host), 'bind', `${host}:${port}`);
    }
    const socket = createSocket({
      type: isIPv6(host) ? 'udp6' : 'udp4',
      ...(bufferBytes !== undefined ? { recvBufferSize: bufferBytes, sendBufferSize: bufferBytes } : {}),
    });
    return new Promise((resolve, reject) => {
      const onError = (cause: Error): void => {
        socket.close();
        reject(cause);
      };
      socket.once('error', onError);
      socket.bind(port, host, () => {
        socket.off('error', onError);
        // dgram has no backpressure and reports send failures here: they are drops, never fatal.
        socket.on('error', () => undefined);
        resolve(socket);
      });
    });
  },

  batchSender(socket) {
    const native = nativeSockets.get(socket);
    const binding = loadTapBinding().binding;
    if (!native || !binding || typeof binding.sendBatch !== 'function') return undefined;
    return {
      address: (host, port) => binding.udpAddress(host, port, native.ipv6) ?? undefined,
      send: (address, packets, lengths, count) => binding.sendBatch(native.fd, address, packets, lengths, count),
    };
  },

  connectDatagram(shared, remote, options = {}) {
    const load = loadTapBinding();
    if (!load.binding) return Promise.reject(Object.assign(new Error(`connected UDP sockets need the native binding (${load.error.message})`), { code: 'ENOTSUP' }));
    try {
      const local = shared.address(); // throws once `shared` is closed
      const ipv6 = isIPv6(local.address);
      const fd = load.binding.openUdp(local.address, local.port, ipv6, options.bufferBytes ?? 0, remote.address, remote.port);
      return adoptUdpFd(fd, ipv6, 'connect', `${remote.address}:${remote.port}`, { address: remote.address, port: remote.port });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  },

  receiveBatches(socket, onDatagram) {
    const native = nativeSockets.get(socket);
    const binding = loadTapBinding().binding;
    const dgramHandle = udpHandle(socket as UdpSocket);
    if (!native?.remote || !binding || typeof binding.adoptUdp !== 'function' || !dgramHandle) return false;
    const sender = native.remote;
    let reader: TapHandle;
    try {
      reader = binding.adoptUdp(native.fd);
      const area = binding.startReading(
        reader,
        RECEIVE_BATCH,
        RECEIVE_SLOT,
        (count) => {
          // Read errors are ICMP reports or a closing socket: nothing to act on, so the count is all that matters.
          const { buffer, lengths } = area;
          for (let i = 0; i < count; i++) {
            const length = lengths[i] as number;
            if (length > 0) onDatagram(new Uint8Array(buffer, i * RECEIVE_SLOT, length), sender);
          }
        },
        receiveArea,
      );
      receiveArea = area;
    } catch {
      return false;
    }
    // dgram stops reading (it keeps the fd for sends); the reader lives as long as the socket.
    dgramHandle.recvStop();
    (socket as UdpSocket).once('close', () => binding.close(reader));
    return true;
  },

  setReceiving(socket, receiving) {
    const handle = udpHandle(socket as UdpSocket);
    if (!handle) return false;
    // The handle's own calls, as dgram makes them when it binds and closes; dgram has no public pause.
    const result = receiving ? handle.recvStart() : handle.recvStop();
    return result === 0 || result === undefined || (receiving && result === UV_EALREADY);
  },

  setDontFragment(socket, ipv6) {
    // Node's dgram cannot set IP_MTU_DISCOVER; the native binding can, given the fd.
    const load = loadTapBinding();
    if (!load.binding) return `the native binding is not built (${load.error.message})`;
    const fd = socketFd(socket as UdpSocket);
    if (fd === undefined) return 'the UDP socket has no file descriptor to configure';
    const result = load.binding.setDontFragment(fd, true, ipv6);
    return result === 0 ? undefined : `setsockopt(IP_MTU_DISCOVER) failed with errno ${-result}`;
  },
};

/** libuv's "already active" (-EALREADY on Linux): recvStart on a socket that is reading. */
const UV_EALREADY = -114;

/** The libuv handle of a dgram socket, from its internal state (no public API exposes it); undefined once closed. */
interface UdpHandle {
  fd?: unknown;
  recvStart(): number | undefined;
  recvStop(): number | undefined;
}

function udpHandle(socket: UdpSocket): UdpHandle | undefined {
  for (const symbol of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, unknown>)[symbol];
    if (state !== null && typeof state === 'object' && 'handle' in state) {
      const handle = (state as { handle?: unknown }).handle;
      if (handle !== null && typeof handle === 'object' && typeof (handle as UdpHandle).recvStop === 'function') return handle as UdpHandle;
    }
  }
  return undefined;
}

/** The fd behind a bound dgram socket. */
function socketFd(socket: UdpSocket): number | undefined {
  const fd = udpHandle(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Wraps an fd from the native `openUdp` (or its -errno) in a dgram socket whose errors are drops, never fatal. */
function adoptUdpFd(fd: number, ipv6: boolean, syscall: string, what: string, remote?: DatagramSender): Promise<DatagramSocket> {
  if (fd < 0) {
    const code = getSystemErrorName(fd);
    return Promise.reject(Object.assign(new Error(`${syscall} ${code} ${what}`), { code, errno: fd, syscall }));
  }
  const socket = createSocket({ type: ipv6 ? 'udp6' : 'udp4' });
  nativeSockets.set(socket, { fd, ipv6, ...(remote ? { remote } : {}) });
  return new Promise((resolve, reject) => {
    // A bind that fails reports it as an 'error' event: without a listener it would end the process.
    const onError = (cause: Error): void => {
      try {
        socket.close();
      } catch {
        closeSync(fd); // never adopted: the fd is still ours to close
      }
      reject(cause);
    };
    socket.once('error', onError);
    try {
      socket.bind({ fd }, () => {
        socket.off('error', onError);
        socket.on('error', () => undefined);
        resolve(socket);
      });
    } catch (error) {
      socket.off('error', onError);
      closeSync(fd);
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/**
 * The error for a socket that cannot listen or bind at `where` (`what` says which: "listen address",
 * "API address"…). A port in use or a privileged port is the environment's doing, not a bad option, so
 * each has its own code (`address-in-use`, `permission-denied`); the rest is `command-failed`.
 */
export function listenError(what: string, where: string, cause: Error & { code?: string }): WeaveError {
  if (cause.code === 'EADDRINUSE') {
    return new WeaveError('address-in-use', `${what} ${where} is in use: stop whatever listens there or choose another port`, { cause });
  }
  if (cause.code === 'EACCES') {
    return new WeaveError('permission-denied', `no permission to listen on ${what} ${where}: ports below 1024 need root or CAP_NET_BIND_SERVICE`, { cause });
  }
  if (cause.code === 'EADDRNOTAVAIL') {
    return new WeaveError('command-failed', `cannot listen on ${what} ${where}: no interface of this host has that address`, { cause });
  }
  return new WeaveError('command-failed', `cannot listen on ${what} ${where}: ${cause.message}`, { cause });
}
