// TCP for in-process endpoints: the contract between the protocol machine (one connection, no I/O of its own)
// and the stack that carries its segments and the Node-shaped sockets that users hold.
//
// Layering inside src/stack/tcp/ (imports point down):
//   socket.ts, server.ts    net.Socket / net.Server shapes (Duplex streams) over a TcpConnection
//   tcp-layer.ts            demultiplexing (4-tuple → connection, port → listener), ports, backlog, RST for
//                           closed ports, ICMP "fragmentation needed" → lowerMss; owned by NetStack
//   connection.ts           the RFC 9293 machine of one connection (this contract's TcpConnection)
//   segment.ts, seq.ts, isn.ts, options.ts   pure codecs and arithmetic
import type { Clock } from '../../clock.js';
import type { Random } from '../../random.js';

/** TCP flag bits as in the header's 13th byte (CWR … FIN). */
export const TCP_FIN = 0x01;
/** See {@link TCP_FIN}. */
export const TCP_SYN = 0x02;
/** See {@link TCP_FIN}. */
export const TCP_RST = 0x04;
/** See {@link TCP_FIN}. */
export const TCP_PSH = 0x08;
/** See {@link TCP_FIN}. */
export const TCP_ACK = 0x10;
/** See {@link TCP_FIN}. */
export const TCP_URG = 0x20;
/** See {@link TCP_FIN}. */
export const TCP_ECE = 0x40;
/** See {@link TCP_FIN}. */
export const TCP_CWR = 0x80;

/** TCP options this stack understands; unknown ones are skipped on decode and never sent. */
export interface TcpOptions {
  /** Maximum segment size (SYN only). */
  mss?: number | undefined;
  /** Window scale shift 0–14 (SYN only; RFC 7323). */
  windowScale?: number | undefined;
  /** SACK permitted (SYN only; RFC 2018). */
  sackPermitted?: boolean | undefined;
  /** SACK blocks: [left, right) sequence numbers, at most 4 (3 with timestamps). */
  sack?: readonly (readonly [number, number])[] | undefined;
  /** Timestamps (RFC 7323): value and echo reply. */
  timestamp?: readonly [number, number] | undefined;
}

/**
 * One TCP segment, decoded. Sequence and acknowledgement numbers are unsigned 32-bit values held in
 * numbers (compare them only with the modular helpers of seq.ts). `window` is the raw 16-bit field
 * (unscaled). `payload` may be a view into the received frame: copy what you keep.
 */
export interface TcpSegment {
  sourcePort: number;
  destinationPort: number;
  seq: number;
  ack: number;
  /** Bitwise OR of TCP_FIN … TCP_CWR. */
  flags: number;
  window: number;
  urgentPointer: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** RFC 9293 connection states. */
export type TcpState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT';

/** Why a connection ended abnormally, with Node's error codes (what `net.Socket` users match on). */
export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'ECONNABORTED';

/** Tunables of every connection of a stack; tests shrink the timers. */
export interface TcpConfig {
  /** Send buffer per connection in bytes (default 1 MiB); `write()` is refused beyond it (backpressure). */
  sendBufferBytes: number;
  /** Receive buffer per connection in bytes (default 4 MiB: ≥ 1 Gbit/s at 1 ms RTT needs ~125 KB in flight, more for headroom); the advertised window. */
  receiveBufferBytes: number;
  /** RTO before any RTT sample (RFC 6298: 1 s). */
  initialRtoMs: number;
  /** Lowest RTO (RFC 6298 says 1 s; Linux's 200 ms is the default here; fake-clock tests lower it). */
  minRtoMs: number;
  /** Highest RTO after backoff (default 120 s, as Linux). */
  maxRtoMs: number;
  /** SYN retransmissions before ETIMEDOUT/ECONNREFUSED-style failure (default 6, as Linux). */
  synRetries: number;
  /** Data retransmissions of one segment before ETIMEDOUT (default 15, as Linux's tcp_retries2). */
  dataRetries: number;
  /** Abort a connection whose sent data stays unacknowledged this long (user timeout, RFC 5482; default 0 = by retries only). */
  userTimeoutMs: number;
  /** Maximum segment lifetime; TIME-WAIT lasts 2·MSL (default MSL 30 s, TIME-WAIT 60 s as Linux). */
  mslMs: number;
  /** Delayed ACK timeout (default 40 ms) — ACK at least every second full segment regardless. */
  delayedAckMs: number;
  /** Idle time before the first keep-alive probe once enabled (default 2 h, as Linux). */
  keepAliveIdleMs: number;
  /** Time between unanswered keep-alive probes (default 75 s). */
  keepAliveIntervalMs: number;
  /** Unanswered probes before ETIMEDOUT (default 9). */
  keepAliveProbes: number;
  /** Congestion control (default 'newreno'; 'cubic' optional). */
  congestionControl: 'newreno' | 'cubic';
}

/** The stack's side of one connection: where its segments go and what it runs on. */
export interface TcpConnectionHost {
  readonly clock: Clock;
  readonly random: Random;
  readonly config: TcpConfig;
  /**
   * Sends one segment to the connection's remote address (the stack adds IPv4 and Ethernet). The payload may be a
   * view of the connection's send buffer, valid only during the call: encode or copy it before returning.
   */
  transmit(segment: TcpSegment): void;
}

/** What a connection tells its owner (the socket); every callback runs synchronously inside the machine. */
export interface TcpConnectionEvents {
  /** The three-way handshake completed (ESTABLISHED). */
  established(): void;
  /** In-order bytes for the application (a copy it may keep). The window opens again as `consumed()` is called. */
  data(bytes: Uint8Array): void;
  /** The peer sent FIN and every byte before it was delivered: the read side has ended. */
  end(): void;
  /** Send buffer space was freed after `write()` accepted less than asked (backpressure relief). */
  drain(): void;
  /**
   * The connection is over for its owner: after a clean close (error undefined; TIME-WAIT may continue
   * inside the stack), a RST, a refused SYN or a timeout. Called exactly once.
   */
  closed(error: TcpErrorCode | undefined): void;
}

/** Endpoints of a connection: IPv4 addresses as 32-bit unsigned numbers. */
export interface TcpFourTuple {
  localAddress: number;
  localPort: number;
  remoteAddress: number;
  remotePort: number;
}

/** Counters of one connection (summed per stack for status and metrics). */
export interface TcpConnectionStats {
  segmentsIn: number;
  segmentsOut: number;
  bytesIn: number;
  bytesOut: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  resetsIn: number;
  resetsOut: number;
  /** Segments dropped as out of window, malformed for the state, or bad ACKs. */
  dropped: number;
}

/** Fresh counters: every field zero. */
export function zeroTcpConnectionStats(): TcpConnectionStats {
  return { segmentsIn: 0, segmentsOut: 0, bytesIn: 0, bytesOut: 0, retransmits: 0, fastRetransmits: 0, timeouts: 0, resetsIn: 0, resetsOut: 0, dropped: 0 };
}

/**
 * One connection's protocol machine (implemented in connection.ts). It owns sequence space, buffers,
 * retransmission, congestion control and timers; it never touches sockets or frames.
 */
export interface TcpConnection {
  readonly tuple: TcpFourTuple;
  readonly state: TcpState;
  readonly stats: TcpConnectionStats;
  /** Free space in the send buffer: `write()` accepts at most this many bytes now. */
  readonly sendBufferFree: number;
  /** A segment for this connection's 4-tuple arrived (checksum already verified). Never throws. */
  handleSegment(segment: TcpSegment): void;
  /** Queues bytes to send; returns how many were accepted (fewer than given when the buffer is full: wait for `drain`). */
  write(bytes: Uint8Array): number;
  /** The application read `n` bytes delivered by `data`: the receive window opens by that much. */
  consumed(n: number): void;
  /** Half-close: FIN after every queued byte. */
  shutdown(): void;
  /** Abortive close: RST now, `closed('ECONNABORTED')` is not reported (the owner asked). */
  abort(): void;
  setNoDelay(noDelay: boolean): void;
  setKeepAlive(enable: boolean, initialDelayMs?: number): void;
  /** ICMP "fragmentation needed" with this next-hop MTU arrived for this connection: lower the MSS and resend. */
  pathMtuChanged(mtu: number): void;
}

/** How the stack creates a connection (connection.ts exports `openTcpConnection` and `acceptTcpConnection` of these types). */
export interface TcpConnectionInit {
  host: TcpConnectionHost;
  tuple: TcpFourTuple;
  events: TcpConnectionEvents;
  /** MSS this side announces and caps its own segments at: the endpoint MTU − 40. */
  mss: number;
  /** The machine reached CLOSED (after TIME-WAIT, a RST or a timeout): the stack frees the 4-tuple. */
  finished(): void;
}

/** Active open: sends SYN (state SYN-SENT). */
export type OpenTcpConnection = (init: TcpConnectionInit) => TcpConnection;
/** Passive open from a listener: takes the SYN, answers SYN-ACK (state SYN-RECEIVED). */
export type AcceptTcpConnection = (init: TcpConnectionInit, syn: TcpSegment) => TcpConnection;

/** Default tunables (see {@link TcpConfig}). */
export const DEFAULT_TCP_CONFIG: TcpConfig = {
  sendBufferBytes: 1 << 20,
  receiveBufferBytes: 4 << 20,
  initialRtoMs: 1_000,
  minRtoMs: 200,
  maxRtoMs: 120_000,
  synRetries: 6,
  dataRetries: 15,
  userTimeoutMs: 0,
  mslMs: 30_000,
  delayedAckMs: 40,
  keepAliveIdleMs: 2 * 60 * 60 * 1_000,
  keepAliveIntervalMs: 75_000,
  keepAliveProbes: 9,
  congestionControl: 'newreno',
};
