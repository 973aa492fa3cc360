// TcpLayer: a stack's TCP demultiplexer: 4-tuple → connection, port → listener, backlog, ports, RST for closed ports, PMTU.
import type { Clock } from '../../clock.js';
import type { Random } from '../../random.js';
import { ChecksumError } from '../../wire/inet.js';
import { OptionsError, StackError } from '../../errors.js';
import {
  DEFAULT_TCP_CONFIG,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type AcceptTcpConnection,
  type OpenTcpConnection,
  type TcpConfig,
  type TcpConnection,
  type TcpConnectionEvents,
  type TcpConnectionStats,
  zeroTcpConnectionStats,
  type TcpErrorCode,
  type TcpSegment,
} from './contract.js';

/** Tunables given as options: any subset of {@link TcpConfig}; undefined fields take the defaults. */
export type TcpConfigOptions = { [K in keyof TcpConfig]?: TcpConfig[K] | undefined };

/** Bounds of the tunables: a buffer smaller than two segments or a zero timer would stall connections. */
const TCP_CONFIG_BOUNDS: { [K in Exclude<keyof TcpConfig, 'congestionControl'>]: readonly [min: number, max: number] } = {
  sendBufferBytes: [4_096, 1 << 30],
  receiveBufferBytes: [4_096, 1 << 30], // window scale 14 carries up to 1 GiB
  initialRtoMs: [1, 600_000],
  minRtoMs: [1, 600_000],
  maxRtoMs: [1, 3_600_000],
  synRetries: [0, 255],
  dataRetries: [0, 255],
  userTimeoutMs: [0, 2 ** 31 - 1],
  mslMs: [0, 600_000],
  delayedAckMs: [0, 500], // RFC 9293: an ACK must not be delayed more than 0.5 s
  keepAliveIdleMs: [1, 2 ** 31 - 1],
  keepAliveIntervalMs: [1, 2 ** 31 - 1],
  keepAliveProbes: [1, 255],
};

/** Returns `config` when every tunable is an integer within its bounds; throws an OptionsError naming the first that is not. */
export function checkTcpConfig(config: TcpConfig): TcpConfig {
  for (const [key, [min, max]] of Object.entries(TCP_CONFIG_BOUNDS)) {
    const value = config[key as keyof typeof TCP_CONFIG_BOUNDS];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new OptionsError(`tcp.${key} must be an integer from ${min} to ${max}, not ${String(value)}`);
    }
  }
  if (config.minRtoMs > config.maxRtoMs) throw new OptionsError(`tcp.minRtoMs (${config.minRtoMs}) must not exceed tcp.maxRtoMs (${config.maxRtoMs})`);
  if (config.congestionControl !== 'newreno' && config.congestionControl !== 'cubic') {
    throw new OptionsError(`tcp.congestionControl must be 'newreno' or 'cubic', not ${String(config.congestionControl)}`);
  }
  return config;
}

/** A listening port of the stack's TCP layer. */
export interface TcpListenerHandle {
  /** The port listened on (chosen by the stack for port 0). */
  readonly port: number;
  /** Stops accepting: SYNs to the port are answered with RST again; handshakes not yet accepted are reset. */
  close(): void;
}

/**
 * Decides about one connection that completed its handshake on a listener: returns the events that
 * follow it (the new socket's), or undefined to reset it (server closing, `maxConnections` reached).
 */
export type TcpAcceptor = (connection: TcpConnection) => TcpConnectionEvents | undefined;

/** The protocol machine and segment codec the layer runs (connection.ts and segment.ts; fakes in tests). */
export interface TcpImplementation {
  /** Active open (sends SYN). */
  open: OpenTcpConnection;
  /** Passive open from a SYN (answers SYN-ACK). */
  accept: AcceptTcpConnection;
  /**
   * The bytes of a TCP segment from `source` to `destination` (checksum over the pseudo-header filled in), with
   * `headroom` free bytes in front of them in their buffer when asked (the result then starts at that offset).
   */
  encode(segment: TcpSegment, source: number, destination: number, headroom?: number): Uint8Array;
  /** Decodes a TCP segment; throws a DecodeError (ChecksumError for a bad checksum) for bad bytes. */
  decode(bytes: Uint8Array, source: number, destination: number): TcpSegment;
}

/** What the layer needs from its stack. */
export interface TcpLayerHost {
  readonly clock: Clock;
  readonly random: Random;
  /** The stack's address (32-bit). */
  readonly localAddress: number;
  /** The NIC's IP MTU (the MSS announced is this − 40). */
  readonly mtu: number;
  /** Sends TCP bytes to `destination` in an IPv4 packet with DF set (ARP as needed); never throws. */
  transmit(destination: number, segment: Uint8Array): void;
  /** Free bytes wanted in front of each encoded segment, where the stack writes its own headers (default 0). */
  readonly headroom?: number;
  /** Throws a StackError when `destination` cannot be reached from this stack (outside the subnet, broadcast). */
  checkDestination(destination: number): void;
}

/** Connections of one stack by RFC 9293 state (absent: none). */
export interface TcpStateCounts {
  /** Connections in CLOSED. */
  'CLOSED'?: number | undefined;
  /** Connections in LISTEN. */
  'LISTEN'?: number | undefined;
  /** Connections in SYN-SENT. */
  'SYN-SENT'?: number | undefined;
  /** Connections in SYN-RECEIVED. */
  'SYN-RECEIVED'?: number | undefined;
  /** Connections in ESTABLISHED. */
  'ESTABLISHED'?: number | undefined;
  /** Connections in FIN-WAIT-1. */
  'FIN-WAIT-1'?: number | undefined;
  /** Connections in FIN-WAIT-2. */
  'FIN-WAIT-2'?: number | undefined;
  /** Connections in CLOSE-WAIT. */
  'CLOSE-WAIT'?: number | undefined;
  /** Connections in CLOSING. */
  'CLOSING'?: number | undefined;
  /** Connections in LAST-ACK. */
  'LAST-ACK'?: number | undefined;
  /** Connections in TIME-WAIT. */
  'TIME-WAIT'?: number | undefined;
}

/** TCP counters of one stack (live connections plus those that ended), for status and metrics. */
export interface TcpStackStats {
  /** Connections by RFC 9293 state now (listeners count as LISTEN). */
  connections: TcpStateCounts;
  /** Active opens (connect). */
  activeOpens: number;
  /** Passive opens (SYNs taken by a listener). */
  passiveOpens: number;
  /** Connections handed to a server's 'connection'. */
  accepted: number;
  /** Segments received (decoded), RSTs included. */
  segmentsIn: number;
  /** Segments sent, RSTs included. */
  segmentsOut: number;
  /** Application bytes received, as the connections count them. */
  bytesIn: number;
  /** Application bytes sent, as the connections count them. */
  bytesOut: number;
  /** Retransmitted segments (timeouts and fast retransmits). */
  retransmits: number;
  /** Fast retransmits (after duplicate ACKs). */
  fastRetransmits: number;
  /** Retransmission timer expiries. */
  timeouts: number;
  /** RST segments received. */
  resetsIn: number;
  /** RST segments sent. */
  resetsOut: number;
  /** Segments dropped by connections (out of window, bad ACK, …). */
  connectionDrops: number;
  /**
   * Segments the layer dropped, by reason: `malformed`, `bad-checksum`, `not-unicast`, `backlog-full`
   * (a SYN to a listener whose backlog is full), `no-listener` (answered with RST), `unexpected`.
   */
  drops: Record<string, number>;
}

/** Where a connection stands in the layer. */
interface Entry {
  connection: TcpConnection | undefined;
  key: number;
  localPort: number;
  /** The owner's events (a socket's); for a passive open, set when a server accepts it. */
  owner: TcpConnectionEvents | undefined;
  /** A passive open not yet accepted: counts against its listener's backlog. */
  listener: Listener | undefined;
  closedReported: boolean;
}

interface Listener {
  port: number;
  backlog: number;
  pending: number;
  acceptor: TcpAcceptor;
  open: boolean;
  onLayerClosed: (() => void) | undefined;
}

const EPHEMERAL_FIRST = 49152;
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST;
const MIN_PATH_MTU = 68;
const TCP_HEADER_BYTES = 20;
const IPV4_HEADER_BYTES = 20;

/**
 * The TCP layer of one stack: it decodes segments, finds their connection (4-tuple) or listener (port),
 * answers segments to closed ports with RST (RFC 9293 §3.10.7.1), bounds each listener's backlog
 * (handshakes in progress plus connections not yet accepted: a SYN flood fills it and is then dropped,
 * memory stays bounded), allocates ephemeral ports (49152–65535 from a random start, never a 4-tuple
 * still in use or in TIME-WAIT), and routes ICMP "fragmentation needed" to its connection.
 */
export class TcpLayer {
  private readonly host: TcpLayerHost;
  private readonly implementation: TcpImplementation;
  /** Tunables of every connection. */
  readonly config: TcpConfig;
  /** localPort → (remoteAddress·65536 + remotePort) → entry. */
  private readonly connections = new Map<number, Map<number, Entry>>();
  private readonly listeners = new Map<number, Listener>();
  private readonly totals: TcpConnectionStats = zeroTcpConnectionStats();
  private readonly counters = { activeOpens: 0, passiveOpens: 0, accepted: 0, segmentsIn: 0, segmentsOut: 0, resetsIn: 0, resetsOut: 0 };
  private readonly drops: Record<string, number> = {};
  private readonly connectionHost;
  private closed = false;

  constructor(host: TcpLayerHost, implementation: TcpImplementation, config: TcpConfigOptions = {}) {
    this.host = host;
    this.implementation = implementation;
    this.config = checkTcpConfig({ ...DEFAULT_TCP_CONFIG, ...definedOnly(config) });
    this.connectionHost = { clock: host.clock, random: host.random, config: this.config };
  }

  /** The MSS this stack announces: the NIC MTU − 40. */
  get mss(): number {
    return this.host.mtu - IPV4_HEADER_BYTES - TCP_HEADER_BYTES;
  }

  /** Live connections (every state but LISTEN), TIME-WAIT included. */
  get connectionCount(): number {
    let n = 0;
    for (const byRemote of this.connections.values()) n += byRemote.size;
    return n;
  }

  // ---- receive ----

  /** A TCP segment (the IPv4 payload) from `source` to our address; never throws. */
  receive(source: number, destination: number, bytes: Uint8Array): void {
    let segment: TcpSegment;
    try {
      segment = this.implementation.decode(bytes, source, destination);
    } catch (error) {
      return this.drop(error instanceof ChecksumError ? 'bad-checksum' : 'malformed');
    }
    this.counters.segmentsIn += 1;
    if (segment.flags & TCP_RST) this.counters.resetsIn += 1;
    const entry = this.connections.get(segment.destinationPort)?.get(remoteKey(source, segment.sourcePort));
    if (entry?.connection) {
      entry.connection.handleSegment(segment);
      return;
    }
    const listener = this.listeners.get(segment.destinationPort);
    if (listener) return this.receiveOnListener(listener, source, segment);
    this.drop('no-listener');
    this.reset(source, segment);
  }

  /** Segments that arrived as broadcast or multicast: TCP is unicast only (RFC 1122 §4.2.3.10). */
  receiveNotUnicast(): void {
    this.drop('not-unicast');
  }

  /**
   * ICMP destination unreachable "fragmentation needed" (code 4) quoting one of our packets: the
   * connection it belongs to lowers its MSS to fit `nextHopMtu`. Other codes are ignored (RFC 1122:
   * soft errors), as are quotes that match no connection.
   */
  fragmentationNeeded(nextHopMtu: number, quoted: Uint8Array): void {
    if (quoted.byteLength < IPV4_HEADER_BYTES + 4) return this.drop('icmp-malformed');
    const headerLength = ((quoted[0] as number) & 0x0f) * 4;
    if (headerLength < IPV4_HEADER_BYTES || quoted.byteLength < headerLength + 4) return this.drop('icmp-malformed');
    if (quoted[9] !== 6) return;
    const source = u32(quoted, 12);
    const destination = u32(quoted, 16);
    if (source !== this.host.localAddress) return this.drop('icmp-not-ours');
    const localPort = u16(quoted, headerLength);
    const remotePort = u16(quoted, headerLength + 2);
    const entry = this.connections.get(localPort)?.get(remoteKey(destination, remotePort));
    if (!entry?.connection) return this.drop('icmp-no-connection');
    // RFC 1191: a next-hop MTU of 0 comes from an old router; nothing safe to learn from it. Never raise, never below 68.
    if (nextHopMtu < MIN_PATH_MTU || nextHopMtu >= this.host.mtu) return this.drop('icmp-bad-mtu');
    entry.connection.pathMtuChanged(nextHopMtu);
  }

  private receiveOnListener(listener: Listener, source: number, segment: TcpSegment): void {
    const flags = segment.flags;
    // RFC 9293 §3.10.7.2 (LISTEN): RST ignored, ACK answered with RST, only a plain SYN opens.
    if (flags & TCP_RST) return this.drop('unexpected');
    if (flags & TCP_ACK) {
      this.drop('unexpected');
      return this.reset(source, segment);
    }
    if (!(flags & TCP_SYN) || flags & TCP_FIN) return this.drop('unexpected');
    if (listener.pending >= listener.backlog) return this.drop('backlog-full');
    const tuple = { localAddress: this.host.localAddress, localPort: listener.port, remoteAddress: source, remotePort: segment.sourcePort };
    const entry = this.addEntry(listener.port, remoteKey(source, segment.sourcePort), listener);
    listener.pending += 1;
    this.counters.passiveOpens += 1;
    const init = this.connectionInit(entry, tuple);
    try {
      entry.connection = this.implementation.accept(init, segment);
    } catch {
      this.release(entry);
      this.removeEntry(entry);
      return this.drop('accept-failed');
    }
  }

  // ---- open ----

  /**
   * Active open to `remoteAddress:remotePort` from `localPort` (0 or undefined: an ephemeral port).
   * Throws StackError `address-in-use` (the port given is taken), `no-free-port` (every ephemeral port
   * is, for this destination), `unreachable` or `closed`.
   */
  connect(remoteAddress: number, remotePort: number, events: TcpConnectionEvents, localPort = 0): TcpConnection {
    if (this.closed) throw new StackError('closed', 'the network stack is closed');
    if (!Number.isInteger(remotePort) || remotePort < 1 || remotePort > 0xffff) throw new StackError('invalid-option', `TCP port ${remotePort} is not an integer 1-65535`);
    this.host.checkDestination(remoteAddress);
    const key = remoteKey(remoteAddress, remotePort);
    let port: number;
    if (localPort !== 0) {
      if (!Number.isInteger(localPort) || localPort < 1 || localPort > 0xffff) throw new StackError('invalid-option', `local TCP port ${localPort} is not an integer 1-65535`);
      if (this.listeners.has(localPort) || (this.connections.get(localPort)?.size ?? 0) > 0) {
        throw new StackError('address-in-use', `TCP port ${localPort} is already in use on ${formatIPv4(this.host.localAddress)}; pick another or leave localPort unset`);
      }
      port = localPort;
    } else {
      port = this.ephemeralPort(key);
    }
    const tuple = { localAddress: this.host.localAddress, localPort: port, remoteAddress, remotePort };
    const entry = this.addEntry(port, key, undefined);
    entry.owner = events;
    this.counters.activeOpens += 1;
    try {
      entry.connection = this.implementation.open(this.connectionInit(entry, tuple));
    } catch (error) {
      this.removeEntry(entry);
      throw error;
    }
    return entry.connection;
  }

  /**
   * Listens on `port` (0: a free ephemeral port); throws StackError `address-in-use` when another listener
   * has it. `onLayerClosed` runs if the stack closes while the listener is open.
   */
  listen(port: number, backlog: number, acceptor: TcpAcceptor, onLayerClosed?: () => void): TcpListenerHandle {
    if (this.closed) throw new StackError('closed', 'the network stack is closed');
    if (port === 0) port = this.ephemeralPort(undefined);
    else if (this.listeners.has(port)) {
      throw new StackError('address-in-use', `TCP port ${port} already has a listener on ${formatIPv4(this.host.localAddress)}; close that server first or pick another port`);
    }
    const listener: Listener = { port, backlog, pending: 0, acceptor, open: true, onLayerClosed };
    this.listeners.set(port, listener);
    return {
      port,
      close: () => this.unlisten(listener),
    };
  }

  private unlisten(listener: Listener): void {
    if (!listener.open) return;
    listener.open = false;
    if (this.listeners.get(listener.port) === listener) this.listeners.delete(listener.port);
    // Handshakes not yet accepted go with the listener, as close(2) of a listening socket resets them.
    for (const entry of [...(this.connections.get(listener.port)?.values() ?? [])]) {
      if (entry.listener !== listener) continue;
      entry.connection?.abort();
      this.release(entry);
      this.removeEntry(entry);
    }
  }

  /** A free local port for a connection to `key` (any free port for a listener when undefined). */
  private ephemeralPort(key: number | undefined): number {
    const start = Math.floor(this.host.random.float() * EPHEMERAL_COUNT);
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const candidate = EPHEMERAL_FIRST + ((start + i) % EPHEMERAL_COUNT);
      if (this.listeners.has(candidate)) continue;
      const byRemote = this.connections.get(candidate);
      // A local port may serve several destinations (as Linux's connect does), never one 4-tuple twice.
      if (key === undefined ? byRemote !== undefined && byRemote.size > 0 : byRemote?.has(key)) continue;
      return candidate;
    }
    if (key === undefined) throw new StackError('no-free-port', `every ephemeral TCP port (${EPHEMERAL_FIRST}-65535) of ${formatIPv4(this.host.localAddress)} is in use`);
    // Linux says EADDRNOTAVAIL here too. Closed connections hold their 4-tuple for 2·MSL (TIME-WAIT).
    throw new StackError(
      'no-free-port',
      `every ephemeral TCP port (${EPHEMERAL_FIRST}-65535) of ${formatIPv4(this.host.localAddress)} is in use or in TIME-WAIT for ${formatIPv4(Math.floor(key / 65536))}:${key % 65536} ` +
        `(a closed connection holds its port for 2·MSL = ${(2 * this.config.mslMs) / 1000} s): reuse connections (keep-alive), close from the server side, or lower tcp.mslMs`,
    );
  }

  // ---- connections ----

  private addEntry(localPort: number, key: number, listener: Listener | undefined): Entry {
    const entry: Entry = { connection: undefined, key, localPort, owner: undefined, listener, closedReported: false };
    let byRemote = this.connections.get(localPort);
    if (!byRemote) {
      byRemote = new Map();
      this.connections.set(localPort, byRemote);
    }
    byRemote.set(key, entry);
    return entry;
  }

  private removeEntry(entry: Entry): void {
    const byRemote = this.connections.get(entry.localPort);
    if (byRemote?.get(entry.key) !== entry) return;
    byRemote.delete(entry.key);
    if (byRemote.size === 0) this.connections.delete(entry.localPort);
    const stats = entry.connection?.stats;
    if (stats) for (const k of Object.keys(this.totals) as (keyof TcpConnectionStats)[]) this.totals[k] += stats[k];
  }

  /** A passive open leaves its listener's backlog (accepted, or ended before). */
  private release(entry: Entry): void {
    const listener = entry.listener;
    if (!listener) return;
    entry.listener = undefined;
    listener.pending -= 1;
  }

  private connectionInit(entry: Entry, tuple: { localAddress: number; localPort: number; remoteAddress: number; remotePort: number }) {
    const layer = this;
    const { remoteAddress } = tuple;
    const events: TcpConnectionEvents = {
      established() {
        if (entry.listener) layer.established(entry);
        else entry.owner?.established();
      },
      data(bytes) {
        entry.owner?.data(bytes);
      },
      end() {
        entry.owner?.end();
      },
      drain() {
        entry.owner?.drain();
      },
      closed(error) {
        layer.connectionClosed(entry, error);
      },
    };
    return {
      host: {
        ...this.connectionHost,
        transmit: (segment: TcpSegment) => this.send(remoteAddress, segment),
      },
      tuple,
      events,
      mss: this.mss,
      finished: () => {
        this.release(entry);
        this.removeEntry(entry);
      },
    };
  }

  /** A passive open completed its handshake: its listener's server takes it, or it is reset. */
  private established(entry: Entry): void {
    const listener = entry.listener;
    const connection = entry.connection;
    this.release(entry);
    if (!listener || !connection) return;
    const owner = listener.open ? listener.acceptor(connection) : undefined;
    if (!owner) {
      entry.closedReported = true;
      connection.abort();
      this.removeEntry(entry);
      return;
    }
    this.counters.accepted += 1;
    entry.owner = owner;
  }

  private connectionClosed(entry: Entry, error: TcpErrorCode | undefined): void {
    this.release(entry);
    if (entry.closedReported) return;
    entry.closedReported = true;
    entry.owner?.closed(error);
  }

  private send(destination: number, segment: TcpSegment): void {
    this.counters.segmentsOut += 1;
    if (segment.flags & TCP_RST) this.counters.resetsOut += 1;
    this.host.transmit(destination, this.implementation.encode(segment, this.host.localAddress, destination, this.host.headroom ?? 0));
  }

  /** RFC 9293 §3.10.7.1: the answer to a segment no connection takes (never to a RST). */
  private reset(source: number, segment: TcpSegment): void {
    if (segment.flags & TCP_RST) return;
    const base = { sourcePort: segment.destinationPort, destinationPort: segment.sourcePort, window: 0, urgentPointer: 0, options: {}, payload: new Uint8Array(0) };
    if (segment.flags & TCP_ACK) {
      this.send(source, { ...base, seq: segment.ack, ack: 0, flags: TCP_RST });
    } else {
      const length = segment.payload.byteLength + (segment.flags & TCP_SYN ? 1 : 0) + (segment.flags & TCP_FIN ? 1 : 0);
      this.send(source, { ...base, seq: 0, ack: (segment.seq + length) >>> 0, flags: TCP_RST | TCP_ACK });
    }
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  // ---- status ----

  /** Counters of every connection this stack has had, and the states of the live ones. */
  stats(): TcpStackStats {
    const sums: TcpConnectionStats = { ...this.totals };
    const connections: TcpStateCounts = {};
    if (this.listeners.size > 0) connections.LISTEN = this.listeners.size;
    for (const byRemote of this.connections.values()) {
      for (const entry of byRemote.values()) {
        const connection = entry.connection;
        if (!connection) continue;
        connections[connection.state] = (connections[connection.state] ?? 0) + 1;
        for (const k of Object.keys(sums) as (keyof TcpConnectionStats)[]) sums[k] += connection.stats[k];
      }
    }
    return {
      connections,
      activeOpens: this.counters.activeOpens,
      passiveOpens: this.counters.passiveOpens,
      accepted: this.counters.accepted,
      segmentsIn: this.counters.segmentsIn,
      segmentsOut: this.counters.segmentsOut,
      bytesIn: sums.bytesIn,
      bytesOut: sums.bytesOut,
      retransmits: sums.retransmits,
      fastRetransmits: sums.fastRetransmits,
      timeouts: sums.timeouts,
      resetsIn: this.counters.resetsIn,
      resetsOut: this.counters.resetsOut,
      connectionDrops: sums.dropped,
      drops: { ...this.drops },
    };
  }

  /**
   * Closes the layer with its stack: every connection is reset (the peers see ECONNRESET at once instead
   * of timing out) and its owner gets ECONNABORTED; listeners stop. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of [...this.listeners.values()]) {
      this.unlisten(listener);
      listener.onLayerClosed?.();
    }
    for (const byRemote of [...this.connections.values()]) {
      for (const entry of [...byRemote.values()]) {
        const state = entry.connection?.state;
        if (state !== 'TIME-WAIT' && state !== 'CLOSED') entry.connection?.abort();
        this.connectionClosed(entry, 'ECONNABORTED');
        this.removeEntry(entry);
      }
    }
  }
}

function remoteKey(address: number, port: number): number {
  return address * 65536 + port;
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function u32(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
}

function formatIPv4(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

function definedOnly(value: TcpConfigOptions): Partial<TcpConfig> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<TcpConfig>;
}
