// NetStack: a small userspace IPv4 stack (ARP, ICMP echo, UDP, fragments) that drives one NIC of an in-process endpoint.
import { systemClock, type Clock, type Timer } from '../clock.js';
import { NotReadyError, OptionsError, StackError } from '../errors.js';
import { checkTimeout } from '../wait.js';
import {
  BROADCAST_MAC,
  ETHERNET_HEADER_BYTES,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  destinationMac,
  etherType,
  formatMac,
  macAt,
} from '../ethernet/frame.js';
import { fragmentIpv4Frame } from '../ethernet/ipv4.js';
import { formatIPv4 } from '../ipam/address.js';
import { TokenBucket } from '../token-bucket.js';
import type { Nic } from '../nic/nic.js';
import { systemRandom, type Random } from '../random.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  ChecksumError,
  ICMP_FRAGMENTATION_NEEDED,
  ICMP_PORT_UNREACHABLE,
  IP_PROTOCOL_ICMP,
  IP_PROTOCOL_UDP,
  IPV4_FRAME_HEADROOM,
  IPV4_HEADER_BYTES,
  MAX_IPV4_PACKET,
  UDP_HEADER_BYTES,
  decodeArp,
  decodeIcmp,
  decodeIpv4,
  decodeUdp,
  encodeArpFrame,
  encodeIcmpFrame,
  encodeIpv4Frame,
  encodeIpv4Header,
  encodeUdpFrame,
  isMulticastAddress,
  multicastMac,
  writeIpv4FrameHeaders,
  type Ipv4Header,
  type Ipv4Packet,
} from '../wire/inet.js';
import { inSubnet, parseInterfaceAddress, tryParseIPv4, type InterfaceAddress } from './address.js';
import { ArpCache, type ArpCacheOptions } from './arp-cache.js';
import { Reassembly, type ReassemblyOptions } from './reassembly.js';
import { StackUdpSocket, type UdpSocketHost } from './udp-socket.js';
import { TcpLayer, type TcpConfigOptions, type TcpImplementation, type TcpStackStats } from './tcp/tcp-layer.js';
import { acceptTcpConnection, openTcpConnection } from './tcp/connection.js';
import { decodeTcpSegment, encodeTcpSegment, IP_PROTOCOL_TCP } from './tcp/segment.js';
import { TcpSocket, type TcpConnectOptions } from './tcp/socket.js';
import { TcpServer, type TcpServerHost, type TcpServerOptions } from './tcp/server.js';

/** Options of a {@link NetStack}. */
export interface NetStackOptions {
  /** The NIC the stack drives (for a memory NIC pair, the end that is not attached to the switch). The stack owns it and closes it. */
  nic: Nic;
  /** The endpoint's address with its prefix length, like `10.32.0.5/12`. */
  address: string;
  /** Time and timers (ARP retries, ping timeouts, reassembly); default the system clock. */
  clock?: Clock | undefined;
  /** IP identifications, ping identifiers and ephemeral ports; default the system source. */
  random?: Random | undefined;
  /**
   * Name lookup for `ping`, `send` and `lookup` (the overlay plugs its DNS in); returns dotted addresses.
   * Like a real resolver it may wait for an answer, up to `timeoutMs`, and stops when `signal` aborts;
   * it returns [] (or throws) when the name has no address.
   */
  resolve?: ((name: string, options: ResolveOptions) => Promise<string[]>) | undefined;
  /** How long a name lookup waits for the resolve hook to learn the name (default 5000 ms, resolv.conf's `timeout`). */
  resolveTimeoutMs?: number | undefined;
  /** ARP cache tuning. */
  arp?: ArpCacheOptions | undefined;
  /** Fragment reassembly bounds. */
  reassembly?: ReassemblyOptions | undefined;
  /** ICMP errors (port unreachable) sent per second at most, in bursts of the same size (default 10). */
  icmpErrorsPerSecond?: number | undefined;
  /** TCP: the protocol machine and codec (default: the built-in ones) and tunables. */
  tcp?: NetStackTcpOptions | undefined;
}

/** TCP options of a {@link NetStack}. */
export interface NetStackTcpOptions {
  /** @internal The protocol machine and segment codec (default: the built-in ones; tests inject others). */
  implementation?: TcpImplementation | undefined;
  /** Tunables of every connection (buffers, RTO bounds, TIME-WAIT, …). */
  config?: TcpConfigOptions | undefined;
}

/** What a resolve hook is given for one lookup. */
export interface ResolveOptions {
  /** Wait at most this long for the name to get an address (the stack's `resolveTimeoutMs`, or the caller's). */
  timeoutMs: number;
  /** The caller gave up: stop waiting. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link NetStack.lookup}. */
export interface LookupOptions {
  /** How long to wait for a name that has no address yet (default: the stack's `resolveTimeoutMs`, 5000 ms). */
  timeoutMs?: number | undefined;
  /** Aborting rejects the lookup with `aborted`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link NetStack.ping}. */
export interface PingOptions {
  /**
   * How long to wait for the echo reply once the request has left (default 1000 ms); then the ping rejects
   * with `timeout`. Before that, a name waits for its address (`resolveTimeoutMs`, default 5 s) and a
   * neighbour's MAC is resolved by ARP (3 requests 1 s apart by default), as with ping(8) on Linux, so a
   * ping sent while the overlay is still coming up waits for it instead of failing.
   */
  timeoutMs?: number | undefined;
  /** ICMP data bytes (default 56, like ping(8)); at most 65507. */
  size?: number | undefined;
  /** Aborting rejects the ping with `aborted`, at any stage. */
  signal?: AbortSignal | undefined;
}

/** The answer to one echo request. */
export interface PingResult {
  /** Dotted address that answered. */
  address: string;
  /** Round-trip time by the stack's clock. */
  rttMs: number;
  /** TTL of the reply as it arrived. */
  ttl: number;
  /** ICMP bytes of the reply (8-byte header plus data), as ping(8) reports them. */
  bytes: number;
}

/** Counters of a {@link NetStack}. */
export interface NetStackStats {
  /** Frames read from the NIC. */
  framesIn: number;
  /** Frames handed to the NIC (ARP, fragments and whole packets). */
  framesOut: number;
  /** IPv4 packets (or fragments) that decoded. */
  packetsIn: number;
  /** IPv4 packets sent, counted before fragmentation. */
  packetsOut: number;
  /**
   * Packets dropped, by reason: `bad-checksum`, `malformed`, `not-for-us`, `no-socket`,
   * `arp-timeout`, `arp-queue-full`, `reassembly-timeout`, `reassembly-limit`, `reassembly-overlap`,
   * `reassembly-too-big`, `bad-fragment`, `icmp-rate-limited`, `unsupported`, `nic-refused`, …
   */
  drops: Record<string, number>;
}

interface PendingPing {
  sequence: number;
  address: number;
  size: number;
  /** When the request left (after ARP); NaN before. */
  sentAt: number;
  /** The reply deadline, set once the request has left. */
  timer: Timer | undefined;
  resolve: (result: PingResult) => void;
  reject: (error: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/** How a received packet was addressed to us. */
const enum Cast {
  Unicast,
  Broadcast,
  Multicast,
}

const BROADCAST_MAC_BYTES = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const UNKNOWN_MAC = new Uint8Array(6);
/** Marks a frame whose destination MAC is already set (a reply to the MAC its request came from). */
const REPLY_MAC_IN_FRAME = new Uint8Array(6);
const LIMITED_BROADCAST = 0xffff_ffff;
const DEFAULT_TTL = 64;
/** Multicast leaves with TTL 1, as IP_MULTICAST_TTL defaults to on Linux: the overlay is one segment. */
const MULTICAST_TTL = 1;
const MAX_UDP_PAYLOAD = MAX_IPV4_PACKET - IPV4_HEADER_BYTES - UDP_HEADER_BYTES;
const MAX_PING_DATA = MAX_IPV4_PACKET - IPV4_HEADER_BYTES - 8;
const EPHEMERAL_FIRST = 49152;
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST;

/**
 * A userspace IPv4 stack for an in-process endpoint: answers ARP and ping, resolves neighbours,
 * sends and receives UDP (unicast, broadcast, multicast), fragments and reassembles. Every timer
 * uses the injected clock. Destinations outside the subnet are unreachable: the overlay has no gateway.
 * @category Endpoints
 */
export class NetStack {
  /** Counters; dropped packets are counted here, never thrown. */
  readonly stats: NetStackStats = { framesIn: 0, framesOut: 0, packetsIn: 0, packetsOut: 0, drops: {} };
  private readonly nic: Nic;
  private readonly iface: InterfaceAddress;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly resolveName: ((name: string, options: ResolveOptions) => Promise<string[]>) | undefined;
  private readonly resolveTimeoutMs: number;
  private readonly macBytes: Uint8Array;
  private readonly macNumber: number;
  private readonly arp: ArpCache;
  private readonly reassembly: Reassembly;
  private readonly icmpErrors: TokenBucket;
  private readonly socketHost: UdpSocketHost;
  private readonly sockets = new Map<number, StackUdpSocket>();
  private readonly groups = new Map<number, number>();
  private readonly pings = new Map<number, PendingPing>();
  private readonly pingIdentifier: number;
  private nextSequence = 0;
  private nextIdentification: number;
  private closed = false;
  private readonly tcpLayer: TcpLayer | undefined;
  private readonly tcpHost: TcpServerHost | undefined;

  constructor(options: NetStackOptions) {
    if (!options || typeof options !== 'object' || !options.nic) throw new OptionsError('NetStack needs a nic: pass the endpoint end of MemoryNic.pair()');
    this.nic = options.nic;
    this.iface = parseInterfaceAddress(options.address);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.resolveName = options.resolve;
    this.resolveTimeoutMs = options.resolveTimeoutMs ?? 5000;
    checkTimeout(this.resolveTimeoutMs, 'NetStack resolveTimeoutMs');
    const perSecond = options.icmpErrorsPerSecond ?? 10;
    if (!(perSecond > 0)) throw new OptionsError(`icmpErrorsPerSecond is ${perSecond}; it must be positive`);
    this.macBytes = this.nic.mac.slice();
    this.macNumber = macAt(this.macBytes, 0);
    // The helpers get narrow views of the stack, made once, so its public surface stays the documented one.
    const drop = (reason: string, n?: number): void => this.drop(reason, n);
    this.arp = new ArpCache(
      this.clock,
      { sendRequest: (address) => this.sendArpRequest(address), transmit: (frames) => this.transmitFrames(frames), drop },
      options.arp,
    );
    this.reassembly = new Reassembly(this.clock, { drop }, options.reassembly);
    this.socketHost = {
      clock: this.clock,
      bindSocket: (socket, port) => this.bindSocket(socket, port),
      unbindSocket: (socket, port) => this.unbindSocket(socket, port),
      sendDatagram: (socket, sourcePort, data, port, host) => this.sendDatagram(socket, sourcePort, data, port, host),
      joinGroup: (group) => this.joinGroup(group),
      leaveGroup: (group) => this.leaveGroup(group),
    };
    this.icmpErrors = new TokenBucket(this.clock, Math.max(1, Math.round(perSecond)), 1000 / perSecond);
    this.pingIdentifier = Number(this.random.u64() & 0xffffn);
    this.nextIdentification = Number((this.random.u64() >> 16n) & 0xffffn);
    const tcpImplementation = options.tcp?.implementation ?? defaultTcpImplementation;
    {
      const layer = new TcpLayer(
        {
          clock: this.clock,
          random: this.random,
          localAddress: this.iface.address,
          mtu: this.nic.mtu,
          transmit: (destination, segment) => this.sendTcp(destination, segment),
          headroom: IPV4_FRAME_HEADROOM,
          checkDestination: (destination) => void this.nextHopAddressCheck(destination),
        },
        tcpImplementation,
        options.tcp?.config,
      );
      this.tcpLayer = layer;
      this.tcpHost = {
        clock: this.clock,
        localAddress: this.address,
        lookup: (host) => this.lookup(host),
        open: (remoteAddress, remotePort, events, localPort) => layer.connect(tryParseIPv4(remoteAddress) as number, remotePort, events, localPort),
        listen: (port, backlog, acceptor, onClosed) => layer.listen(port, backlog, acceptor, onClosed),
      };
    }
    this.nic.onFrames(this.receiveBatch);
  }

  /** The stack's address, dotted. */
  get address(): string {
    return formatIPv4(this.iface.address);
  }

  /** Prefix length of the subnet. */
  get prefixLength(): number {
    return this.iface.prefixLength;
  }

  /** The NIC's MAC, aa:bb:cc:dd:ee:ff. */
  get mac(): string {
    return formatMac(this.macBytes);
  }

  /** Largest IP packet sent in one frame; larger ones are fragmented. */
  get mtu(): number {
    return this.nic.mtu;
  }

  /** A new unbound UDP socket. */
  createUdpSocket(): StackUdpSocket {
    this.checkOpen();
    return new StackUdpSocket(this.socketHost, this.address);
  }

  /**
   * Opens a TCP connection to `options.host` (an address or overlay name, default this stack) and port,
   * like `net.connect`: returns the socket at once; `'connect'` follows the handshake, failures arrive as
   * `'error'` with Node's codes (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, ENETUNREACH, EADDRINUSE).
   */
  connect(options: TcpConnectOptions, connectListener?: () => void): TcpSocket;
  connect(port: number, host?: string, connectListener?: () => void): TcpSocket;
  connect(port: number, connectListener?: () => void): TcpSocket;
  connect(first: TcpConnectOptions | number, second?: string | (() => void), third?: () => void): TcpSocket {
    const host = this.requireTcp();
    let options: TcpConnectOptions;
    let listener: (() => void) | undefined;
    if (typeof first === 'object' && first !== null) {
      options = first;
      listener = typeof second === 'function' ? second : undefined;
    } else {
      options = { port: first, ...(typeof second === 'string' ? { host: second } : {}) };
      listener = typeof second === 'function' ? second : third;
    }
    return new TcpSocket(host, { allowHalfOpen: options.allowHalfOpen }).startConnect(options, listener);
  }

  /** A TCP server on this stack's address, like `net.createServer`; `listen(port)` it. */
  createServer(connectionListener?: (socket: TcpSocket) => void): TcpServer;
  createServer(options?: TcpServerOptions, connectionListener?: (socket: TcpSocket) => void): TcpServer;
  createServer(first?: TcpServerOptions | ((socket: TcpSocket) => void), second?: (socket: TcpSocket) => void): TcpServer {
    if (typeof first === 'function') return new TcpServer(this.requireTcp(), {}, first);
    return new TcpServer(this.requireTcp(), first ?? {}, second);
  }

  /** TCP counters and connections by state; undefined when the stack has no TCP. */
  tcpStats(): TcpStackStats | undefined {
    return this.tcpLayer?.stats();
  }

  /**
   * Returns a dotted address for `name`: dotted input is returned as is, anything else goes to the
   * resolve hook (its first IPv4 answer), which waits up to `timeoutMs` (default `resolveTimeoutMs`) for
   * a name that has no address yet, as a resolver waits for its server. Rejects with StackError
   * `not-found` or `aborted`.
   */
  async lookup(name: string, options: LookupOptions = {}): Promise<string> {
    const direct = tryParseIPv4(name);
    if (direct !== undefined) return formatIPv4(direct);
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? this.resolveTimeoutMs;
    checkTimeout(timeoutMs, 'lookup');
    if (!this.resolveName) throw new StackError('not-found', `"${name}" is not an IPv4 address and this stack has no resolve hook to look names up`);
    if (signal?.aborted) throw new StackError('aborted', `the lookup of "${name}" was aborted`, { cause: signal.reason });
    let answers: string[];
    try {
      answers = await this.resolveName(name, { timeoutMs, ...(signal ? { signal } : {}) });
    } catch (cause) {
      if (signal?.aborted || (cause instanceof NotReadyError && cause.code === 'aborted')) {
        throw new StackError('aborted', `the lookup of "${name}" was aborted`, { cause: signal?.reason ?? cause });
      }
      throw new StackError('not-found', `looking up "${name}" failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    for (const answer of answers) {
      const address = tryParseIPv4(answer);
      if (address !== undefined) return formatIPv4(address);
    }
    throw new StackError('not-found', `"${name}" has no IPv4 address${timeoutMs > 0 ? ` (waited ${timeoutMs} ms for one)` : ''}`);
  }

  /**
   * Sends one ICMP echo request and resolves with the reply. Rejects with StackError `timeout`,
   * `aborted`, `unreachable` (outside the subnet, no ARP reply), `not-found`, `permission-denied`
   * (a broadcast address), `message-too-big`, `invalid-option` or `closed`.
   */
  async ping(hostOrName: string, options: PingOptions = {}): Promise<PingResult> {
    const { timeoutMs = 1000, size = 56, signal } = options;
    if (!Number.isInteger(size) || size < 0) throw new StackError('invalid-option', `ping size ${size} is not a byte count`);
    if (size > MAX_PING_DATA) throw new StackError('message-too-big', `ping size ${size} exceeds the ${MAX_PING_DATA} bytes an IPv4 packet can carry`);
    if (!(timeoutMs >= 0)) throw new StackError('invalid-option', `ping timeoutMs ${timeoutMs} is not a duration`);
    if (signal?.aborted) throw new StackError('aborted', 'the ping was aborted before it was sent', { cause: signal.reason });
    const address = tryParseIPv4(await this.lookup(hostOrName, signal ? { signal } : {})) as number;
    if (signal?.aborted) throw new StackError('aborted', 'the ping was aborted before it was sent', { cause: signal.reason });
    const mac = this.nextHop(address, false);
    let sequence = this.nextSequence;
    while (this.pings.has(sequence)) sequence = (sequence + 1) & 0xffff;
    this.nextSequence = (sequence + 1) & 0xffff;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = i & 0xff;
    const frame = encodeIcmpFrame({ destination: mac ?? UNKNOWN_MAC, source: this.macBytes }, this.ipHeader(address, DEFAULT_TTL), {
      type: 'echo-request',
      identifier: this.pingIdentifier,
      sequence,
      data,
    });
    return new Promise<PingResult>((resolve, reject) => {
      const pending: PendingPing = {
        sequence,
        address,
        size,
        sentAt: Number.NaN,
        resolve,
        reject,
        signal,
        timer: undefined,
        onAbort: () => this.settlePing(pending, new StackError('aborted', `the ping to ${hostOrName} was aborted`, { cause: signal?.reason })),
      };
      signal?.addEventListener('abort', pending.onAbort, { once: true });
      this.pings.set(sequence, pending);
      // The reply deadline starts when the request leaves: the ARP resolution before it is bounded by its own
      // retries, as on Linux, so a ping sent while a data link is still coming up is not cut off by it.
      // The deadline is a keep-alive timer: an awaited ping holds the process open until it settles.
      const sent = (): void => {
        if (this.pings.get(sequence) !== pending) return;
        pending.sentAt = this.clock.now();
        pending.timer = this.clock.setTimer(
          timeoutMs,
          () => this.settlePing(pending, new StackError('timeout', `no echo reply from ${hostOrName} within ${timeoutMs} ms`)),
          { keepAlive: true },
        );
      };
      if (mac !== undefined) {
        this.transmit(address, frame, mac).catch((error: Error) => this.settlePing(pending, error));
        sent();
      } else {
        this.transmit(address, frame, mac).then(sent, (error: Error) => this.settlePing(pending, error));
      }
    });
  }

  /** Closes every socket, fails pending pings and sends with `closed`, stops all timers and closes the NIC; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    // Connections are reset first, while ARP and the NIC can still carry the RSTs: peers see ECONNRESET at once.
    this.tcpLayer?.close();
    this.closed = true;
    const error = new StackError('closed', 'the network stack was closed');
    for (const pending of [...this.pings.values()]) this.settlePing(pending, error);
    this.arp.clear(error);
    this.reassembly.clear();
    for (const socket of [...this.sockets.values()]) socket.close();
    this.nic.onFrames(ignoreFrames);
    await this.nic.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Socket host (used by StackUdpSocket)

  private bindSocket(socket: StackUdpSocket, port: number): number {
    this.checkOpen();
    if (port !== 0) {
      if (this.sockets.has(port)) throw new StackError('address-in-use', `UDP port ${port} is already bound on ${this.address}; pick another or bind 0 for an ephemeral port`);
      this.sockets.set(port, socket);
      return port;
    }
    const start = Math.floor(this.random.float() * EPHEMERAL_COUNT);
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const candidate = EPHEMERAL_FIRST + ((start + i) % EPHEMERAL_COUNT);
      if (!this.sockets.has(candidate)) {
        this.sockets.set(candidate, socket);
        return candidate;
      }
    }
    throw new StackError('address-in-use', `all ${EPHEMERAL_COUNT} ephemeral UDP ports of ${this.address} are bound`);
  }

  private unbindSocket(socket: StackUdpSocket, port: number): void {
    if (this.sockets.get(port) === socket) this.sockets.delete(port);
  }

  private joinGroup(group: number): void {
    this.groups.set(group, (this.groups.get(group) ?? 0) + 1);
  }

  private leaveGroup(group: number): void {
    const count = (this.groups.get(group) ?? 0) - 1;
    if (count > 0) this.groups.set(group, count);
    else this.groups.delete(group);
  }

  private async sendDatagram(socket: StackUdpSocket, sourcePort: number, data: Uint8Array, port: number, host: string): Promise<void> {
    this.checkOpen();
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new StackError('invalid-option', `UDP destination port ${port} is not an integer 1-65535`);
    if (data.byteLength > MAX_UDP_PAYLOAD) {
      throw new StackError('message-too-big', `a UDP datagram carries at most ${MAX_UDP_PAYLOAD} bytes; this one has ${data.byteLength}`);
    }
    const address = tryParseIPv4(await this.lookup(host)) as number;
    this.checkOpen();
    const mac = this.nextHop(address, socket.broadcastAllowed);
    const ttl = isMulticastAddress(address) ? MULTICAST_TTL : DEFAULT_TTL;
    const frame = encodeUdpFrame({ destination: mac ?? UNKNOWN_MAC, source: this.macBytes }, this.ipHeader(address, ttl), {
      sourcePort,
      destinationPort: port,
      payload: data,
    });
    await this.transmit(address, frame, mac);
  }

  // ---------------------------------------------------------------------------------------------
  // ARP cache and reassembly hosts

  /**
   * Broadcasts a gratuitous ARP request for this stack's own address (an RFC 5227 announcement), as Weave
   * does when it attaches a container: neighbours that cached the address with another MAC (an endpoint
   * that held it before, a restart) update it now instead of sending to the old MAC until the entry expires.
   */
  announce(): void {
    const frame = encodeArpFrame(BROADCAST_MAC_BYTES, {
      operation: ARP_REQUEST,
      senderMac: this.macBytes,
      senderIp: this.iface.address,
      targetMac: UNKNOWN_MAC,
      targetIp: this.iface.address,
    });
    this.transmitFrames([frame]);
  }

  private sendArpRequest(address: number): void {
    const frame = encodeArpFrame(BROADCAST_MAC_BYTES, {
      operation: ARP_REQUEST,
      senderMac: this.macBytes,
      senderIp: this.iface.address,
      targetMac: UNKNOWN_MAC,
      targetIp: address,
    });
    this.transmitFrames([frame]);
  }

  private transmitFrames(frames: Uint8Array[]): void {
    const sent = this.nic.sendBatch(frames);
    this.stats.framesOut += sent;
    if (sent < frames.length) this.drop('nic-refused', frames.length - sent);
  }

  private drop(reason: string, n = 1): void {
    if (n > 0) this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + n;
  }

  // ---------------------------------------------------------------------------------------------
  // Receive path: one handler bound once, no closures or exceptions per frame for expected cases.

  private readonly receiveBatch = (frames: readonly Uint8Array[]): void => {
    for (let i = 0; i < frames.length; i++) this.receiveFrame(frames[i] as Uint8Array);
  };

  private receiveFrame(frame: Uint8Array): void {
    this.stats.framesIn += 1;
    if (frame.byteLength < ETHERNET_HEADER_BYTES) return this.drop('malformed');
    const destination = destinationMac(frame);
    if (destination !== this.macNumber && destination !== BROADCAST_MAC && !isIpv4MulticastMac(frame)) return this.drop('not-for-us');
    const type = etherType(frame);
    if (type === ETHERTYPE_ARP) return this.receiveArp(frame);
    if (type === ETHERTYPE_IPV4) return this.receiveIpv4(frame);
    this.drop('unsupported');
  }

  private receiveArp(frame: Uint8Array): void {
    let arp;
    try {
      arp = decodeArp(frame.subarray(ETHERNET_HEADER_BYTES));
    } catch {
      return this.drop('malformed');
    }
    const self = this.iface.address;
    if (arp.senderIp === self || macAt(arp.senderMac, 0) === this.macNumber) return this.drop('address-conflict');
    const forUs = arp.targetIp === self;
    // RFC 826: refresh a known binding from any ARP packet; add one only from packets aimed at us.
    if (arp.senderIp !== 0 && inSubnet(this.iface, arp.senderIp) && (forUs || this.arp.has(arp.senderIp))) this.arp.learn(arp.senderIp, arp.senderMac);
    if (!forUs) return;
    if (arp.operation === ARP_REQUEST) {
      const reply = encodeArpFrame(arp.senderMac, {
        operation: ARP_REPLY,
        senderMac: this.macBytes,
        senderIp: self,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      });
      this.transmitFrames([reply]);
    }
  }

  private receiveIpv4(frame: Uint8Array): void {
    let packet: Ipv4Packet;
    try {
      packet = decodeIpv4(frame.subarray(ETHERNET_HEADER_BYTES));
    } catch (error) {
      return this.drop(error instanceof ChecksumError ? 'bad-checksum' : 'malformed');
    }
    this.stats.packetsIn += 1;
    const destination = packet.destination;
    let cast: Cast;
    if (destination === this.iface.address) cast = Cast.Unicast;
    else if (destination === LIMITED_BROADCAST || destination === this.iface.broadcast) cast = Cast.Broadcast;
    else if (this.groups.has(destination)) cast = Cast.Multicast;
    else return this.drop('not-for-us');
    if (packet.source === LIMITED_BROADCAST || isMulticastAddress(packet.source) || packet.source === this.iface.broadcast) return this.drop('bad-source');
    let payload: Uint8Array | undefined = packet.payload;
    if (packet.moreFragments || packet.fragmentOffset !== 0) {
      payload = this.reassembly.add(packet);
      if (payload === undefined) return;
    }
    if (packet.protocol === IP_PROTOCOL_UDP) return this.receiveUdp(frame, packet, payload, cast);
    if (packet.protocol === IP_PROTOCOL_ICMP) return this.receiveIcmp(frame, packet, payload, cast);
    if (packet.protocol === IP_PROTOCOL_TCP && this.tcpLayer) {
      if (cast !== Cast.Unicast) return this.tcpLayer.receiveNotUnicast();
      return this.tcpLayer.receive(packet.source, packet.destination, payload);
    }
    this.drop('unsupported');
  }

  private receiveUdp(frame: Uint8Array, packet: Ipv4Packet, payload: Uint8Array, cast: Cast): void {
    let udp;
    try {
      udp = decodeUdp(payload, packet.source, packet.destination);
    } catch (error) {
      return this.drop(error instanceof ChecksumError ? 'bad-checksum' : 'malformed');
    }
    const socket = this.sockets.get(udp.destinationPort);
    if (socket && (cast !== Cast.Multicast || socket.isMember(packet.destination))) {
      socket.deliver(udp.payload, packet.source, udp.sourcePort);
      return;
    }
    this.drop('no-socket');
    // RFC 1122: never answer broadcast or multicast with an ICMP error.
    if (cast === Cast.Unicast) this.portUnreachable(frame, packet, payload);
  }

  private portUnreachable(frame: Uint8Array, packet: Ipv4Packet, payload: Uint8Array): void {
    if (!this.icmpErrors.tryTake()) return this.drop('icmp-rate-limited');
    const header = encodeIpv4Header({ ...packet, moreFragments: false, fragmentOffset: 0 }, payload.byteLength);
    const quoted = Math.min(8, payload.byteLength);
    const original = new Uint8Array(IPV4_HEADER_BYTES + quoted);
    original.set(header, 0);
    original.set(payload.subarray(0, quoted), IPV4_HEADER_BYTES);
    const reply = encodeIcmpFrame({ destination: frame.subarray(6, 12), source: this.macBytes }, this.ipHeader(packet.source, DEFAULT_TTL), {
      type: 'destination-unreachable',
      code: ICMP_PORT_UNREACHABLE,
      nextHopMtu: 0,
      original,
    });
    void this.transmit(packet.source, reply, REPLY_MAC_IN_FRAME);
  }

  private receiveIcmp(frame: Uint8Array, packet: Ipv4Packet, payload: Uint8Array, cast: Cast): void {
    let message;
    try {
      message = decodeIcmp(payload);
    } catch (error) {
      return this.drop(error instanceof ChecksumError ? 'bad-checksum' : 'unsupported');
    }
    if (message.type === 'echo-request') {
      // Like Linux's icmp_echo_ignore_broadcasts: only echo requests to our own address are answered.
      if (cast !== Cast.Unicast) return this.drop('broadcast-echo');
      const reply = encodeIcmpFrame({ destination: frame.subarray(6, 12), source: this.macBytes }, this.ipHeader(packet.source, DEFAULT_TTL), {
        type: 'echo-reply',
        identifier: message.identifier,
        sequence: message.sequence,
        data: message.data,
      });
      void this.transmit(packet.source, reply, REPLY_MAC_IN_FRAME);
      return;
    }
    if (message.type === 'echo-reply') {
      const pending = this.pings.get(message.sequence);
      if (!pending || message.identifier !== this.pingIdentifier || pending.address !== packet.source || message.data.byteLength !== pending.size) {
        return this.drop('unexpected-echo-reply');
      }
      this.settlePing(pending, undefined, {
        address: formatIPv4(packet.source),
        rttMs: this.clock.now() - pending.sentAt,
        ttl: packet.ttl,
        bytes: payload.byteLength,
      });
      return;
    }
    // Fragmentation needed (RFC 1191) lowers the MSS of the TCP connection it quotes.
    if (message.type === 'destination-unreachable' && message.code === ICMP_FRAGMENTATION_NEEDED && this.tcpLayer) return this.tcpLayer.fragmentationNeeded(message.nextHopMtu, message.original);
    // Other unreachables: nothing here waits for them (UDP sockets are unconnected; for TCP they are soft errors).
    this.drop('icmp-unreachable');
  }

  // ---------------------------------------------------------------------------------------------
  // Send path

  private requireTcp(): TcpServerHost {
    this.checkOpen();
    if (!this.tcpHost) throw new StackError('invalid-option', 'this stack was created without a TCP implementation');
    return this.tcpHost;
  }

  /** Throws StackError for a TCP destination this stack cannot reach (outside the subnet, broadcast, multicast). */
  private nextHopAddressCheck(address: number): void {
    this.checkOpen();
    if (isMulticastAddress(address) || address === LIMITED_BROADCAST || address === this.iface.broadcast) {
      throw new StackError('unreachable', `${formatIPv4(address)} is a broadcast or multicast address: TCP connects to one host`);
    }
    if (address !== this.iface.address) this.nextHop(address, false);
  }

  /** Sends one TCP segment in an IPv4 packet with DF set (path MTU discovery), after ARP if needed. */
  private sendTcp(destination: number, segment: Uint8Array): void {
    if (this.closed) return this.drop('closed');
    let mac: Uint8Array | undefined;
    try {
      mac = this.nextHop(destination, false);
    } catch {
      return this.drop('unreachable');
    }
    const eth = { destination: mac ?? UNKNOWN_MAC, source: this.macBytes };
    const header = this.tcpIpHeader(destination);
    // The codec left room for our headers in front of the segment (headroom): write them there, no copy.
    const inPlace = segment.byteOffset === IPV4_FRAME_HEADROOM && segment.buffer.byteLength === IPV4_FRAME_HEADROOM + segment.byteLength;
    const frame = inPlace
      ? writeIpv4FrameHeaders(new Uint8Array(segment.buffer, 0, segment.buffer.byteLength), eth, header)
      : encodeIpv4Frame(eth, { ...header, payload: segment });
    // ARP failures are counted by the cache; the connection retransmits.
    this.transmit(destination, frame, mac).catch(ignoreError);
  }

  private checkOpen(): void {
    if (this.closed) throw new StackError('closed', 'the network stack is closed');
  }

  /** The IPv4 header of a TCP segment (DF set), built in one literal: this runs once per segment sent. */
  private tcpIpHeader(destination: number): Ipv4Header {
    const identification = this.nextIdentification;
    this.nextIdentification = (identification + 1) & 0xffff;
    return { tos: 0, identification, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: DEFAULT_TTL, protocol: IP_PROTOCOL_TCP, source: this.iface.address, destination };
  }

  private ipHeader(destination: number, ttl: number): Omit<Ipv4Header, 'protocol'> {
    const identification = this.nextIdentification;
    this.nextIdentification = (identification + 1) & 0xffff;
    return { tos: 0, identification, dontFragment: false, moreFragments: false, fragmentOffset: 0, ttl, source: this.iface.address, destination };
  }

  /**
   * The destination MAC for `address`, or undefined when ARP must resolve it first. Throws
   * StackError for destinations the stack cannot or may not send to.
   */
  private nextHop(address: number, broadcastAllowed: boolean): Uint8Array | undefined {
    this.checkOpen();
    if (address === this.iface.address) return this.macBytes;
    if (address === LIMITED_BROADCAST || address === this.iface.broadcast) {
      if (!broadcastAllowed) {
        throw new StackError('permission-denied', `${formatIPv4(address)} is a broadcast address: call setBroadcast(true) on the socket first`);
      }
      return BROADCAST_MAC_BYTES;
    }
    if (isMulticastAddress(address)) return multicastMac(address);
    if (address === 0 || address === this.iface.network || !inSubnet(this.iface, address)) {
      throw new StackError(
        'unreachable',
        `${formatIPv4(address)} is not a host in ${formatIPv4(this.iface.network)}/${this.iface.prefixLength}: the overlay has no gateway, so only the subnet is reachable`,
      );
    }
    return this.arp.lookup(address);
  }

  /**
   * Sends one IPv4 frame, fragmented to the MTU. `mac` is the destination MAC, undefined to wait for
   * ARP, or REPLY_MAC_IN_FRAME for replies already addressed to the MAC their request came from.
   */
  private transmit(address: number, frame: Uint8Array, mac: Uint8Array | undefined): Promise<void> {
    this.stats.packetsOut += 1;
    if (address === this.iface.address) {
      // To ourselves: the frame never reaches the NIC; it arrives as if read from it, on a later turn.
      frame.set(this.macBytes, 0);
      setImmediate(this.receiveBatch, [frame]);
      return Promise.resolve();
    }
    const frames = frame.byteLength - ETHERNET_HEADER_BYTES <= this.nic.mtu ? [frame] : (fragmentIpv4Frame(frame, this.nic.mtu + ETHERNET_HEADER_BYTES) ?? [frame]);
    if (mac === undefined) return new Promise<void>((resolve, reject) => this.arp.enqueue(address, { frames, resolve, reject }));
    if (mac !== REPLY_MAC_IN_FRAME) for (const f of frames) f.set(mac, 0);
    this.transmitFrames(frames);
    return Promise.resolve();
  }

  private settlePing(pending: PendingPing, error: Error | undefined, result?: PingResult): void {
    if (this.pings.get(pending.sequence) !== pending) return;
    this.pings.delete(pending.sequence);
    pending.timer?.cancel();
    pending.signal?.removeEventListener('abort', pending.onAbort);
    if (error) pending.reject(error);
    else if (result) pending.resolve(result);
  }
}

function ignoreFrames(): void {}

function ignoreError(): void {}

/** The built-in TCP: the RFC 9293 machine of connection.ts and the codec of segment.ts. */
const defaultTcpImplementation: TcpImplementation = {
  open: openTcpConnection,
  accept: acceptTcpConnection,
  encode: encodeTcpSegment,
  decode: decodeTcpSegment,
};

/** True for a frame to an IPv4 multicast MAC (01:00:5e with the top bit of the fourth byte clear). */
function isIpv4MulticastMac(frame: Uint8Array): boolean {
  return frame[0] === 0x01 && frame[1] === 0x00 && frame[2] === 0x5e && ((frame[3] as number) & 0x80) === 0;
}
