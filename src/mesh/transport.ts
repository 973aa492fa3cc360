// Transport: the narrow socket surface the router, its connections and the data plane use, and its node:net/dgram implementation.
import { createServer, connect as netConnect } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { loadTapBinding } from '../nic/tap-binding.js';

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
}

/** How to bind a datagram socket. */
export interface DatagramBindOptions {
  /** Receive and send buffer sizes in bytes, where the transport has such buffers. */
  bufferBytes?: number;
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
}

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

/** The fd behind a bound dgram socket, read from its internal state (no public API exposes it). */
function socketFd(socket: UdpSocket): number | undefined {
  for (const symbol of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, unknown>)[symbol];
    if (state !== null && typeof state === 'object' && 'handle' in state) {
      const fd = (state as { handle?: { fd?: unknown } }).handle?.fd;
      if (typeof fd === 'number' && fd >= 0) return fd;
    }
  }
  return undefined;
}
