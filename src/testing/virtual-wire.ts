// VirtualWire: an in-process network of virtual hosts: streams and datagrams with latency, loss, reordering, partitions and NAT.
import { EventEmitter } from 'eventemitter3';
import type { Clock } from '../clock.js';
import { systemRandom, type Random } from '../random.js';
import type {
  DatagramBindOptions,
  DatagramSender,
  DatagramSocket,
  StreamListener,
  StreamSocket,
  Transport,
} from '../mesh/transport.js';
import { withDefaults } from '../options.js';

/** How one direction of the path between two hosts behaves. Every field defaults to a perfect path. */
export interface LinkConditions {
  /** One-way delay in ms, for streams and datagrams (default 0). */
  latencyMs?: number | undefined;
  /** Extra one-way delay, uniform in [0, jitterMs) (default 0). Streams stay in order regardless. */
  jitterMs?: number | undefined;
  /** Probability in [0, 1] that a datagram is lost (default 0). Streams are reliable, like TCP. */
  loss?: number | undefined;
  /** Probability in [0, 1] that a datagram is held back, so later ones overtake it (default 0). */
  reorder?: number | undefined;
  /**
   * Probability in [0, 1] that a datagram arrives twice, as a path that repeats packets (default 0). The copy
   * takes its own delay and reordering draw. (An encrypted overlay's replay window drops it: see `createTestMesh`'s `password`.)
   */
  duplicate?: number | undefined;
  /** How long a held-back datagram waits on top of its delay (default max(1, latencyMs)). */
  reorderDelayMs?: number | undefined;
  /** Datagrams with a longer payload are dropped, like a path that drops IP fragments (default none). */
  maxDatagramBytes?: number | undefined;
}

/** Why the wire dropped a datagram. */
export type DatagramDropReason =
  /** Random loss on the link. */
  | 'loss'
  /** The two hosts are on different sides of a partition. */
  | 'partition'
  /** Longer than the link's `maxDatagramBytes`. */
  | 'too-big'
  /** No host has the address, it is behind a NAT, or no NAT mapping matches. */
  | 'unreachable'
  /** Nothing is bound to the destination port (a real host would answer ICMP port unreachable). */
  | 'no-socket'
  /** The wire was closed. */
  | 'closed';

/** Counters of everything the wire carried; reset with `resetStats()`. */
export interface VirtualWireStats {
  /** Datagrams handed to the wire by any socket. */
  datagramsSent: number;
  /** Datagrams a socket received. */
  datagramsDelivered: number;
  /** Datagrams held back by `reorder` (delivered late, not dropped). */
  datagramsReordered: number;
  /** Extra copies sent by `duplicate`. */
  datagramsDuplicated: number;
  /** Datagrams dropped, by reason. */
  datagramsDropped: Record<DatagramDropReason, number>;
  /** Payload bytes of every datagram sent. */
  datagramBytesSent: number;
  /** Payload bytes of every datagram delivered. */
  datagramBytesDelivered: number;
  /** Streams that reached a listener. */
  streamsOpened: number;
  /** Connects refused (no listener, unreachable or partitioned). */
  streamsRefused: number;
  /** Streams cut by a partition (`partitionStreams: 'reset'`) or by closing the wire. */
  streamsReset: number;
  /** Stream writes a partition held back (`partitionStreams: 'stall'`), delivered when it heals. */
  streamWritesStalled: number;
  /** Bytes delivered on streams. */
  streamBytesDelivered: number;
}

/** Typed events of the wire, for tests that want to watch the traffic. */
export interface VirtualWireEvents {
  /** A datagram from `from` to `to` ("address:port" as sent) was dropped. */
  'datagram:dropped': (reason: DatagramDropReason, from: string, to: string) => void;
}

/** Options of a virtual wire. */
export interface VirtualWireOptions {
  /**
   * Times every delay. Under a `FakeClock` nothing moves until it advances. The default is the real
   * clock with timers that keep the process alive, as a real socket with traffic in flight would.
   */
  clock?: Clock | undefined;
  /** Decides loss, jitter and reordering (default `systemRandom`; pass `seededRandom(n)` to replay). */
  random?: Random | undefined;
  /** Conditions of every link not set with `link()` (default a perfect path). */
  defaults?: LinkConditions | undefined;
  /** First three octets of the hosts' addresses (default "10.99.0"; hosts get .1, .2, …). */
  subnet?: string | undefined;
  /**
   * What a partition does to the streams across it. `reset` (default): both ends see ECONNRESET at once.
   * `stall`: nothing, as in a real partition: bytes written are held (as TCP keeps retransmitting) and
   * delivered when the partition heals, so the ends notice only by their own timeouts (a mesh link's
   * heartbeat), and meanwhile their datagrams are dropped and counted as `partition`.
   */
  partitionStreams?: 'reset' | 'stall' | undefined;
}

/** Options of `VirtualWire.nat`. */
export interface NatOptions {
  /** The address the host's traffic appears to come from; must not be a host's own address. */
  publicAddress: string;
  /** First public port handed out (default 50000); each (protocol, local port) gets the next one. */
  firstPort?: number | undefined;
}

type Protocol = 'tcp' | 'udp';
type Conditions = { [K in Exclude<keyof LinkConditions, 'maxDatagramBytes' | 'reorderDelayMs'>]-?: NonNullable<LinkConditions[K]> } &
  Pick<LinkConditions, 'maxDatagramBytes' | 'reorderDelayMs'>;

/** Real time with ref'd timers: a datagram in flight keeps the process alive, like a real socket does. */
const liveClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

const PERFECT: Conditions = { latencyMs: 0, jitterMs: 0, loss: 0, reorder: 0, duplicate: 0 };
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_LAST = 60999;

/** A network address error shaped like Node's (`code`, `syscall`, `address`, `port`). */
function systemError(code: string, syscall: string, address: string, port: number, detail = ''): Error {
  return Object.assign(new Error(`${syscall} ${code} ${address}:${port}${detail}`), { code, syscall, address, port });
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** A NAT gateway: one public address shared by the hosts behind it, with full-cone port mappings. */
interface Gateway {
  address: string;
  nextPort: number;
  /** "proto:publicPort" → where it leads inside. */
  inbound: Map<string, { host: string; port: number }>;
  /** "host:proto:localPort" → public port. */
  outbound: Map<string, number>;
}

/** The shared state of one wire; the public classes are thin views of it. */
class Net {
  readonly clock: Clock;
  readonly random: Random;
  readonly hosts = new Map<string, VirtualHost>();
  readonly stats: VirtualWireStats = newStats();
  readonly streams = new Set<VirtualStream>();
  /** Streams holding writes back until a partition heals. */
  readonly stalled = new Set<VirtualStream>();
  readonly partitionStreams: 'reset' | 'stall';
  defaults: Conditions;
  closed = false;
  private readonly links = new Map<string, Conditions>();
  private readonly side = new Map<string, number>();
  private readonly gateways = new Map<string, Gateway>();
  private readonly natOf = new Map<string, Gateway>();

  constructor(
    options: VirtualWireOptions,
    private readonly events: EventEmitter<VirtualWireEvents>,
  ) {
    this.clock = options.clock ?? liveClock;
    this.random = options.random ?? systemRandom;
    this.defaults = withDefaults(PERFECT, options.defaults);
    this.partitionStreams = options.partitionStreams ?? 'reset';
  }

  setLink(from: string, to: string, conditions: LinkConditions): void {
    this.links.set(`${from}>${to}`, withDefaults(PERFECT, conditions));
  }

  conditions(from: string, to: string): Conditions {
    if (from === to) return PERFECT;
    return this.links.get(`${from}>${to}`) ?? this.defaults;
  }

  /** One-way delay for one crossing, jitter drawn now. */
  delay(c: Conditions): number {
    return c.jitterMs > 0 ? c.latencyMs + c.jitterMs * this.random.float() : c.latencyMs;
  }

  blocked(a: string, b: string): boolean {
    const sa = this.side.get(a);
    const sb = this.side.get(b);
    return sa !== undefined && sb !== undefined && sa !== sb;
  }

  partition(groups: readonly (readonly string[])[]): void {
    this.side.clear();
    groups.forEach((group, i) => group.forEach((address) => this.side.set(address, i)));
    if (this.partitionStreams === 'reset') {
      for (const stream of [...this.streams]) {
        if (this.blocked(stream.host.address, stream.remoteHost)) stream.reset();
      }
    }
    this.releaseStalled();
  }

  heal(): void {
    this.side.clear();
    this.releaseStalled();
  }

  /** Delivers what stalled streams held, where the partition no longer stands in the way. */
  private releaseStalled(): void {
    for (const stream of [...this.stalled]) if (!this.blocked(stream.host.address, stream.remoteHost)) stream.release();
  }

  nat(host: string, options: NatOptions): void {
    if (this.hosts.has(options.publicAddress)) throw new Error(`${options.publicAddress} is a host's own address and cannot be a NAT's public address`);
    let gateway = this.gateways.get(options.publicAddress);
    if (!gateway) {
      gateway = { address: options.publicAddress, nextPort: options.firstPort ?? 50000, inbound: new Map(), outbound: new Map() };
      this.gateways.set(options.publicAddress, gateway);
    }
    this.natOf.set(host, gateway);
  }

  /** Forgets a NAT's port mappings, like a gateway reboot: the next packets leave from new public ports. */
  rebind(publicAddress: string): void {
    const gateway = this.gateways.get(publicAddress);
    if (!gateway) return;
    gateway.inbound.clear();
    gateway.outbound.clear();
  }

  /** The source a receiver sees for traffic from `host:port` (after NAT, creating the mapping). */
  seenFrom(host: string, protocol: Protocol, port: number): DatagramSender {
    const gateway = this.natOf.get(host);
    if (!gateway) return { address: host, port };
    const key = `${host}:${protocol}:${port}`;
    let mapped = gateway.outbound.get(key);
    if (mapped === undefined) {
      mapped = gateway.nextPort++;
      gateway.outbound.set(key, mapped);
      gateway.inbound.set(`${protocol}:${mapped}`, { host, port });
    }
    return { address: gateway.address, port: mapped };
  }

  /** Where traffic from `from` to `address:port` ends up, or undefined when nothing there is reachable. */
  route(from: string, address: string, protocol: Protocol, port: number): { host: VirtualHost; port: number } | undefined {
    const gateway = this.gateways.get(address);
    if (gateway) {
      const inside = gateway.inbound.get(`${protocol}:${port}`);
      const host = inside && this.hosts.get(inside.host);
      return host && inside ? { host, port: inside.port } : undefined;
    }
    const host = address === '127.0.0.1' || address === '::1' ? this.hosts.get(from) : this.hosts.get(address);
    if (!host) return undefined;
    // A host behind a NAT has a private address: only hosts behind the same NAT reach it directly.
    const behind = this.natOf.get(host.address);
    if (behind && behind !== this.natOf.get(from)) return undefined;
    return { host, port };
  }

  drop(reason: DatagramDropReason, from: string, to: string): void {
    this.stats.datagramsDropped[reason] += 1;
    this.events.emit('datagram:dropped', reason, from, to);
  }

  sendDatagram(socket: VirtualDatagramSocket, bytes: Buffer, address: string, port: number): void {
    const src = socket.host.address;
    const fromText = `${src}:${socket.port}`;
    const toText = `${address}:${port}`;
    this.stats.datagramsSent += 1;
    this.stats.datagramBytesSent += bytes.byteLength;
    if (this.closed) return this.drop('closed', fromText, toText);
    const target = this.route(src, address, 'udp', port);
    if (!target) return this.drop('unreachable', fromText, toText);
    const dst = target.host.address;
    if (this.blocked(src, dst)) return this.drop('partition', fromText, toText);
    const c = this.conditions(src, dst);
    if (c.maxDatagramBytes !== undefined && bytes.byteLength > c.maxDatagramBytes) return this.drop('too-big', fromText, toText);
    if (c.loss > 0 && this.random.float() < c.loss) return this.drop('loss', fromText, toText);
    const seen = { ...this.seenFrom(src, 'udp', socket.port), family: 'IPv4', size: bytes.byteLength };
    const copies = c.duplicate > 0 && this.random.float() < c.duplicate ? 2 : 1;
    if (copies > 1) this.stats.datagramsDuplicated += 1;
    for (let i = 0; i < copies; i++) {
      let delay = this.delay(c);
      if (c.reorder > 0 && this.random.float() < c.reorder) {
        delay += c.reorderDelayMs ?? Math.max(1, c.latencyMs);
        this.stats.datagramsReordered += 1;
      }
      // Each copy its own buffer: a receiver may work on what it gets in place.
      const payload = i === 0 ? bytes : Buffer.from(bytes);
      this.clock.setTimer(delay, () => {
        // A partition that starts while the datagram is in flight catches it too.
        if (this.closed) return this.drop('closed', fromText, toText);
        if (this.blocked(src, dst)) return this.drop('partition', fromText, toText);
        const receiver = target.host.datagramSockets.get(target.port);
        if (!receiver) return this.drop('no-socket', fromText, toText);
        this.stats.datagramsDelivered += 1;
        this.stats.datagramBytesDelivered += payload.byteLength;
        receiver.emit('message', payload, seen);
      });
    }
  }

  connect(stream: VirtualStream, address: string, port: number): void {
    const src = stream.host.address;
    const target = this.route(src, address, 'tcp', port);
    const dst = target?.host.address ?? address;
    const c = this.conditions(src, dst);
    const there = this.delay(c);
    this.clock.setTimer(there, () => {
      if (stream.destroyed) return;
      const accept = target && !this.closed && !this.blocked(src, dst) ? target.host.streamListeners.get(target.port) : undefined;
      const back = this.delay(this.conditions(dst, src));
      if (!target || !accept) {
        // The refusal (a reset) takes the way back like any answer.
        this.stats.streamsRefused += 1;
        this.clock.setTimer(back, () => stream.fail(systemError('ECONNREFUSED', 'connect', address, port)));
        return;
      }
      const seen = this.seenFrom(src, 'tcp', stream.localPort);
      const server = new VirtualStream(this, target.host, dst, target.port, seen.address, seen.port);
      server.remoteHost = src;
      server.peer = stream;
      stream.peer = server;
      stream.remoteHost = dst;
      // Nothing the server writes may arrive before the client sees the connection open.
      const openAt = this.clock.now() + back;
      server.nextArrival = openAt;
      this.streams.add(server);
      this.stats.streamsOpened += 1;
      this.clock.setTimer(back, () => stream.open(address, port));
      accept(server);
    });
  }
}

function newStats(): VirtualWireStats {
  return {
    datagramsSent: 0,
    datagramsDelivered: 0,
    datagramsReordered: 0,
    datagramsDuplicated: 0,
    datagramsDropped: { loss: 0, partition: 0, 'too-big': 0, unreachable: 0, 'no-socket': 0, closed: 0 },
    datagramBytesSent: 0,
    datagramBytesDelivered: 0,
    streamsOpened: 0,
    streamsRefused: 0,
    streamsReset: 0,
    streamWritesStalled: 0,
    streamBytesDelivered: 0,
  };
}

interface StreamEvents {
  connect: () => void;
  data: (chunk: Buffer) => void;
  end: () => void;
  error: (error: Error) => void;
  close: (hadError: boolean) => void;
}

/** One end of an in-memory stream: reliable and ordered, each chunk delayed by the link. */
class VirtualStream extends EventEmitter<StreamEvents> implements StreamSocket {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  connecting: boolean;
  destroyed = false;
  /** The other end, once connected. */
  peer: VirtualStream | undefined;
  /** The remote's real host address (not what NAT shows), for partitions and link conditions. */
  remoteHost = '';
  /** Chunks arrive no earlier than this, so jitter never reorders a stream. */
  nextArrival = 0;
  private pendingWrites: Buffer[] = [];
  /** Writes (undefined: the end) held back by a partition, in order. */
  private held: (Buffer | undefined)[] = [];

  constructor(
    private readonly net: Net,
    readonly host: VirtualHost,
    readonly localAddress: string,
    readonly localPort: number,
    remoteAddress?: string,
    remotePort?: number,
  ) {
    super();
    this.connecting = remoteAddress === undefined;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
  }

  setNoDelay(): this {
    return this;
  }

  write(data: Uint8Array): boolean {
    if (this.destroyed) return false;
    // Callers may reuse their buffer, so the bytes are copied now.
    const chunk = Buffer.from(data);
    if (this.connecting) this.pendingWrites.push(chunk);
    else this.carry(chunk);
    return true;
  }

  /** Sends a chunk (or, without one, the end of the stream) to the other end after the link's delay. */
  private carry(chunk: Buffer | undefined): void {
    const peer = this.peer;
    if (!peer) return;
    if (this.held.length > 0 || (this.net.partitionStreams === 'stall' && this.net.blocked(this.host.address, this.remoteHost))) {
      this.held.push(chunk);
      this.net.stalled.add(this);
      this.net.stats.streamWritesStalled += 1;
      return;
    }
    const now = this.net.clock.now();
    const at = Math.max(now + this.net.delay(this.net.conditions(this.host.address, this.remoteHost)), this.nextArrival);
    this.nextArrival = at;
    this.net.clock.setTimer(at - now, () => {
      if (peer.destroyed) return;
      if (chunk === undefined) {
        peer.finish();
        return;
      }
      this.net.stats.streamBytesDelivered += chunk.byteLength;
      peer.emit('data', chunk);
    });
  }

  destroy(error?: Error): this {
    if (this.destroyed) return this;
    // The remote sees an orderly end after every byte already written, as with a FIN.
    this.carry(undefined);
    this.shut(error);
    return this;
  }

  /** The partition healed: sends what it held back, in order. */
  release(): void {
    this.net.stalled.delete(this);
    for (const chunk of this.held.splice(0)) this.carry(chunk);
  }

  /** The connection opened (client side). */
  open(address: string, port: number): void {
    if (this.destroyed) return;
    this.connecting = false;
    this.remoteAddress = address;
    this.remotePort = port;
    this.emit('connect');
    for (const chunk of this.pendingWrites.splice(0)) this.carry(chunk);
  }

  /** The connect failed (client side). */
  fail(error: Error): void {
    this.shut(error);
  }

  /** The remote ended the stream. */
  private finish(): void {
    if (this.destroyed) return;
    this.emit('end');
    this.shut(undefined);
  }

  /** Cut by the network: both ends see a reset now, bytes in flight are lost. */
  reset(): void {
    if (this.destroyed) return;
    const peer = this.peer;
    this.net.stats.streamsReset += 1;
    this.shut(systemError('ECONNRESET', 'read', this.remoteAddress ?? '?', this.remotePort ?? 0, ' (the virtual wire cut the link)'));
    if (peer && !peer.destroyed) peer.shut(systemError('ECONNRESET', 'read', peer.remoteAddress ?? '?', peer.remotePort ?? 0, ' (the virtual wire cut the link)'));
  }

  private shut(error: Error | undefined): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.connecting = false;
    this.pendingWrites = [];
    this.net.streams.delete(this);
    this.host.releasePort(this);
    // Like Node, a socket reports its end asynchronously, never from inside the call that caused it.
    queueMicrotask(() => {
      if (error) this.emit('error', error);
      this.emit('close', error !== undefined);
    });
  }
}

interface DatagramEvents {
  message: (packet: Buffer, sender: DatagramSender & { family: string; size: number }) => void;
}

/** A datagram socket bound on a virtual host. */
class VirtualDatagramSocket extends EventEmitter<DatagramEvents> implements DatagramSocket {
  private closed = false;

  constructor(
    private readonly net: Net,
    readonly host: VirtualHost,
    private readonly boundAddress: string,
    readonly port: number,
  ) {
    super();
  }

  send(buffer: Uint8Array, offset: number, length: number, port: number, address: string, callback?: (error: Error | null) => void): void {
    if (this.closed) {
      if (callback) queueMicrotask(() => callback(systemError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'send', address, port)));
      return;
    }
    // The sender reuses its buffer once the callback runs, so the datagram is copied now.
    const bytes = Buffer.allocUnsafe(length);
    bytes.set(buffer.subarray(offset, offset + length));
    this.net.sendDatagram(this, bytes, address, port);
    if (callback) queueMicrotask(() => callback(null));
  }

  address(): { address: string; port: number } {
    return { address: this.boundAddress, port: this.port };
  }

  close(callback?: () => void): this {
    if (!this.closed) {
      this.closed = true;
      this.host.datagramSockets.delete(this.port);
    }
    if (callback) queueMicrotask(callback);
    return this;
  }
}

/**
 * One host on a `VirtualWire`, with its own address. It is a `Transport`: pass it as the `transport`
 * option of a `MeshRouter` (a `DataPlane` then uses it too) and listen on `${host.address}:port`.
 * @category Testing
 */
export class VirtualHost implements Transport {
  /** @internal */
  readonly streamListeners = new Map<number, (socket: StreamSocket) => void>();
  /** @internal */
  readonly datagramSockets = new Map<number, VirtualDatagramSocket>();
  private readonly streamPorts = new Set<number>();
  private nextEphemeral = EPHEMERAL_FIRST;

  /** @internal Hosts are made by `VirtualWire.addHost`. */
  constructor(
    private readonly net: Net,
    /** This host's own address, like "10.99.0.1". */
    readonly address: string,
  ) {}

  /** Accepts streams on `host:port`; `host` must be this host's address or a wildcard ("0.0.0.0"). */
  async listen(host: string, port: number, onConnection: (socket: StreamSocket) => void): Promise<StreamListener> {
    this.checkLocal(host, port, 'listen');
    const bound = port === 0 ? this.freePort(this.streamPorts) : port;
    if (this.streamListeners.has(bound)) throw systemError('EADDRINUSE', 'listen', host, bound);
    this.streamListeners.set(bound, onConnection);
    this.streamPorts.add(bound);
    let open = true;
    return {
      address: () => ({ address: host, port: bound }),
      close: async () => {
        if (!open) return;
        open = false;
        this.streamListeners.delete(bound);
        this.streamPorts.delete(bound);
      },
    };
  }

  /**
   * Dials `host:port` across the wire ("127.0.0.1" is this host itself); refused (ECONNREFUSED) when
   * nothing listens there, the address is unreachable (unknown, or private behind a NAT) or a
   * partition is in the way.
   */
  connect(host: string, port: number): StreamSocket {
    const localPort = this.freePort(this.streamPorts);
    this.streamPorts.add(localPort);
    const stream = new VirtualStream(this.net, this, this.address, localPort);
    this.net.streams.add(stream);
    this.net.connect(stream, host, port);
    return stream;
  }

  /** Binds a datagram socket on `host:port` (port 0 picks one); buffer sizes are ignored. */
  async bindDatagram(host: string, port: number, _options?: DatagramBindOptions): Promise<DatagramSocket> {
    this.checkLocal(host, port, 'bind');
    const used = new Set(this.datagramSockets.keys());
    const bound = port === 0 ? this.freePort(used) : port;
    if (this.datagramSockets.has(bound)) throw systemError('EADDRINUSE', 'bind', host, bound);
    const socket = new VirtualDatagramSocket(this.net, this, host, bound);
    this.datagramSockets.set(bound, socket);
    return socket;
  }

  /** Always possible: the wire never fragments; a link's `maxDatagramBytes` drops what is too big either way. */
  setDontFragment(): string | undefined {
    return undefined;
  }

  /** @internal */
  releasePort(stream: VirtualStream): void {
    // Accepted streams share the listener's port; only a dialled stream owns its port.
    if (!this.streamListeners.has(stream.localPort)) this.streamPorts.delete(stream.localPort);
  }

  private checkLocal(host: string, port: number, syscall: string): void {
    if (this.net.closed) throw systemError('ENETDOWN', syscall, host, port, ' (the virtual wire is closed)');
    if (!isWildcard(host) && host !== this.address) throw systemError('EADDRNOTAVAIL', syscall, host, port, ` (this virtual host is ${this.address})`);
  }

  private freePort(used: ReadonlySet<number>): number {
    for (let i = 0; i <= EPHEMERAL_LAST - EPHEMERAL_FIRST; i++) {
      const port = this.nextEphemeral;
      this.nextEphemeral = port >= EPHEMERAL_LAST ? EPHEMERAL_FIRST : port + 1;
      if (!used.has(port)) return port;
    }
    throw systemError('EADDRINUSE', 'bind', this.address, 0, ' (no free ephemeral port)');
  }
}

/**
 * An in-process network for whole meshes, with no real sockets. Each `addHost()` is a host with its
 * own address and a `Transport` for a router and its data plane; streams are in-memory pairs and
 * datagrams are carried by the wire. Per link it adds latency and jitter, datagram loss and
 * reordering; it can partition hosts into groups and put hosts behind a NAT. Every delay runs on the
 * injected clock and every random choice comes from the injected random, so a test under a
 * `FakeClock` with `seededRandom` replays exactly.
 *
 * ```ts
 * const wire = new VirtualWire({ defaults: { latencyMs: 2, loss: 0.01 } });
 * const host = wire.addHost();
 * const router = new MeshRouter({ transport: host, listen: `${host.address}:6783`, peers: ['10.99.0.2'] });
 * ```
 * @category Testing
 */
export class VirtualWire extends EventEmitter<VirtualWireEvents> {
  private readonly net: Net;
  private readonly subnet: string;

  constructor(options: VirtualWireOptions = {}) {
    super();
    this.net = new Net(options, this);
    this.subnet = options.subnet ?? '10.99.0';
  }

  /** Counters of the traffic so far (a live object). */
  get stats(): VirtualWireStats {
    return this.net.stats;
  }

  /** Adds a host; its address is the next free one in the subnet unless given. */
  addHost(address?: string): VirtualHost {
    let chosen = address;
    for (let i = this.net.hosts.size + 1; chosen === undefined || this.net.hosts.has(chosen); i++) {
      if (address !== undefined) throw new Error(`the virtual wire already has a host ${address}`);
      chosen = `${this.subnet}.${i}`;
    }
    const host = new VirtualHost(this.net, chosen);
    this.net.hosts.set(chosen, host);
    return host;
  }

  /** The host with this address, if any. */
  host(address: string): VirtualHost | undefined {
    return this.net.hosts.get(address);
  }

  /** Every host, in the order added. */
  hosts(): VirtualHost[] {
    return [...this.net.hosts.values()];
  }

  /** Sets the conditions of the links between `a` and `b`, both ways unless `oneWay` (then only a → b). */
  link(a: string | VirtualHost, b: string | VirtualHost, conditions: LinkConditions, options: { oneWay?: boolean | undefined } = {}): void {
    const from = addressOf(a);
    const to = addressOf(b);
    this.net.setLink(from, to, conditions);
    if (!options.oneWay) this.net.setLink(to, from, conditions);
  }

  /** Sets the conditions of every link not set with `link()`. */
  setDefaults(conditions: LinkConditions): void {
    this.net.defaults = withDefaults(PERFECT, conditions);
  }

  /**
   * Splits hosts into groups that cannot reach each other (replacing any earlier partition); hosts
   * in no group reach everyone. Streams across are reset (ECONNRESET), or with `partitionStreams:
   * 'stall'` hold their bytes until heal; connects across are refused (ECONNREFUSED) and datagrams
   * across are dropped (counted as `partition`), including those already in flight.
   */
  partition(...groups: readonly (string | VirtualHost)[][]): void {
    this.net.partition(groups.map((group) => group.map(addressOf)));
  }

  /** Ends the partition: every host reaches every other again (cut streams stay cut; stalled ones deliver what they held). */
  heal(): void {
    this.net.heal();
  }

  /**
   * Puts `host` behind a NAT: its streams and datagrams appear to come from `publicAddress` and a
   * mapped port (full cone: replies to that port come back), and nobody outside reaches its own
   * address. Several hosts may share one public address.
   */
  nat(host: string | VirtualHost, options: NatOptions): void {
    this.net.nat(addressOf(host), options);
  }

  /** Drops every mapping of the NAT at `publicAddress`, so later traffic leaves from new ports (a NAT rebinding). */
  rebindNat(publicAddress: string): void {
    this.net.rebind(publicAddress);
  }

  /** Zeroes the counters. */
  resetStats(): void {
    Object.assign(this.net.stats, newStats());
  }

  /** Resets every stream, drops everything in flight and refuses new listeners and sockets. */
  close(): void {
    this.net.closed = true;
    this.net.stalled.clear();
    for (const stream of [...this.net.streams]) stream.reset();
  }
}

function addressOf(host: string | VirtualHost): string {
  return typeof host === 'string' ? host : host.address;
}
