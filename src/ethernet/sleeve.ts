// Sleeve: the UDP transport between neighbouring peers: batching, AEAD, replay check; each link's heartbeats and
// MTU discovery are its LinkProbe (link-probe.ts).
import { EventEmitter } from 'eventemitter3';
import type { Clock } from '../clock.js';
import type { SodiumBackend } from '../crypto/sodium.js';
import { MAX_PACKET_COUNTER } from '../crypto/aead.js';
import type { OverlayLink } from '../mesh/overlay.js';
import type { DatagramBatchSender, DatagramSender, DatagramSocket } from '../mesh/transport.js';
import type { PeerName } from '../wire/peer-name.js';
import { formatPeerName } from '../wire/peer-name.js';
import { DecodeError } from '../errors.js';
import type { SourceFailureStatus } from './source-failures.js';
import { SlowPath, type SlowPathLimits } from './slow-path.js';
import {
  ENTRY_HEADER_BYTES,
  forEachEntry,
  MAX_UDP_PAYLOAD,
  PACKET_HEADER_BYTES,
  packetCounter,
  packetSender,
  readSuperFrameEntry,
  SleeveControl,
  SUPER_FRAME_CAPABILITY,
  SUPER_FRAME_PREFIX_BYTES,
  UDP_SUPER_FRAME_CAPABILITY,
  writeEntry,
  writePacketHeader,
  writeSuperFrameEntry,
} from '../wire/sleeve.js';
import { isUdpSuperFrame } from '../wire/super-frame.js';
import { withDefaults, type Overrides } from '../options.js';
import { frameCrypto, type FrameOpener, type FrameSealer } from './frame-crypto.js';
import { DEFAULT_SLEEVE_TIMINGS, LinkProbe, SleeveAck, type LinkMode, type SleeveTimings } from './link-probe.js';

export { DEFAULT_SLEEVE_TIMINGS, SleeveAck, type LinkMode, type SleeveTimings } from './link-probe.js';

/** Per-link state for status. */
export interface SleeveLinkStatus extends LinkCounters {
  /** The neighbour's peer name in MAC form. */
  peer: string;
  /** Where heartbeat and MTU discovery stand, i.e. how frames travel. */
  mode: LinkMode;
  /** True once the UDP path works both ways (heartbeats acknowledged, MTU known). */
  established: boolean;
  /** True when packets are sealed with the link's keys. */
  encrypted: boolean;
  /** The neighbour's UDP "host:port"; absent on the accepting side until its first authentic packet. */
  remote?: string;
  /** Largest Ethernet frame (header included) the link carries in one piece. */
  maxFrame: number;
  /** The overlay IP MTU this link supports (maxFrame − 14). */
  mtu: number;
  /** Datagrams from the neighbour's own address that failed authentication (someone spoofing it). */
  authFailures: number;
  /** True when the neighbour's datagrams arrive on a receive socket of their own. */
  ownSocket: boolean;
  /** True when that socket is read in batches, one system call per wakeup (recvmmsg). */
  batchedReads: boolean;
}

/** Traffic counters of one link. */
export interface LinkCounters {
  /** UDP datagrams sent to the neighbour, heartbeats and probes included. */
  packetsOut: number;
  /** Authentic UDP datagrams received from the neighbour. */
  packetsIn: number;
  /** Ethernet frames sent to this neighbour (relayed ones included). */
  framesOut: number;
  /** Ethernet frames received from this neighbour (relayed ones included). */
  framesIn: number;
  /** Bytes of the frames sent. */
  bytesOut: number;
  /** Bytes of the frames received. */
  bytesIn: number;
}

/** Drop counters by reason. */
export type SleeveDrops = Record<string, number>;

/**
 * Receive sockets per neighbour on the sleeve's port (see `Transport.connectDatagram`): with them, datagrams
 * from a link's authenticated address wait in a kernel queue of their own, and the shared socket, which then
 * only carries everything else, can stop reading while a flood lasts.
 */
export interface LinkSocketFactory {
  /** A socket on the shared port connected to `remote`: it receives exactly that address's datagrams. */
  open(remote: DatagramSender): Promise<DatagramSocket>;
  /** Stops or resumes reading a socket; false when it could not. */
  setReceiving(socket: DatagramSocket, receiving: boolean): boolean;
  /**
   * Reads a socket from `open` in batches (one system call per wakeup), each datagram valid only during the call;
   * false when it cannot, and the socket then emits 'message'.
   */
  receiveBatches?(socket: DatagramSocket, onDatagram: (packet: Uint8Array, sender: DatagramSender) => void): boolean;
}

/** The sleeve's receive side for status. */
export interface SleeveReceiveStatus {
  /** Whether neighbours get receive sockets of their own (`on`), or why not. */
  linkSockets: string;
  /** Times the shared socket stopped reading because the slow path's budget was spent. */
  pauses: number;
  /** True while the shared socket is not reading. */
  paused: boolean;
  /** Per source address, the datagrams that failed (bounded; most failures first). */
  sources: SourceFailureStatus[];
}

export interface SleeveOptions {
  self: PeerName;
  /** The bound UDP socket (its `send` is called directly for every datagram). */
  socket: DatagramSocket;
  /** Receive sockets per neighbour on the same port; without them every datagram arrives on `socket`. */
  linkSockets?: LinkSocketFactory;
  /** Why there are no per-neighbour sockets (status shows it); ignored when `linkSockets` is given. */
  linkSocketsUnavailable?: string;
  /** Sends each neighbour's datagrams of a turn with one system call (sendmmsg) where the socket allows. */
  batchSender?: DatagramBatchSender | undefined;
  /** Budgets of the slow path. */
  slowPath?: Overrides<SlowPathLimits>;
  clock: Clock;
  /** The libsodium binding, needed when links carry keys. */
  sodium?: SodiumBackend;
  /** Never send fragmented datagrams: always discover the path MTU (default false). */
  noFragmentation?: boolean;
  timings?: Overrides<SleeveTimings>;
  /** Send super-frames whole to neighbours that take them (default true; false cuts them all into segments). */
  superFrames?: boolean;
  /** Sends a control message to a neighbour over its TCP link. */
  sendControl: (peer: PeerName, kind: number, payload: Uint8Array) => boolean;
  /** Reports that a link's data path works (or stopped working). */
  setEstablished: (peer: PeerName, established: boolean) => void;
}

/** Receives the frames of one datagram; `frame` is only valid during the call. */
export interface FrameReceiver {
  /**
   * A frame captured by `source`, for `destination` (0 = flood), arriving via neighbour `from`; `segmentSize` above 0
   * marks a super-frame (see `FrameBatchHandler`).
   */
  frame(source: PeerName, destination: PeerName, frame: Uint8Array, from: PeerName, segmentSize: number): void;
  /** The datagram's last frame was handed over (a moment to flush batched writes). */
  end(): void;
}

interface SleeveEvents {
  /** A link changed mode or MTU. */
  link: (status: SleeveLinkStatus) => void;
}

interface Forwarder extends LinkCounters {
  peer: PeerName;
  connectionId: bigint;
  /** Seals our datagrams to the neighbour (or leaves them plain). */
  sealer: FrameSealer;
  /** Opens the neighbour's datagrams and refuses replays (or takes them plain). */
  opener: FrameOpener;
  /** The neighbour takes TCP super-frames whole (it offered the capability, and we send them). */
  superFrames: boolean;
  /** It takes UDP super-frames whole too (it offered `udp-super-frames`). */
  udpSuperFrames: boolean;
  /** The counter of the next datagram we send. */
  sendCounter: number;
  remoteHost: string | undefined;
  remotePort: number;
  /** True once an authentic datagram came from `remoteHost:remotePort`: from then on its datagrams take the fast path. */
  remoteVerified: boolean;
  /** The receive socket connected to the verified address, once open. */
  linkSocket: DatagramSocket | undefined;
  /** `linkSocket` is read in batches. */
  linkSocketBatched: boolean;
  /** The address `linkSocket` is (being) connected to, "host:port". */
  linkSocketFor: string | undefined;
  /** Datagrams from the link's own address that failed authentication (a spoofed source). */
  authFailures: number;
  /** Highest counter of an authentic datagram so far (-1 before the first). */
  newestCounter: number;
  /** Liveness and MTU: mode, established, the largest payload that crosses. */
  link: LinkProbe;
  /** The datagram being filled (a pooled buffer): entries go after its header, where they are sealed in place. */
  packet: Buffer | undefined;
  bodyLength: number;
  /** Sealed datagrams waiting for the batch send at the end of the turn (pooled buffers). */
  outPackets: Buffer[];
  outLengths: Uint32Array;
  outCount: number;
  /** The socket address of `remoteHost:remotePort` for batch sends, and what it was made for. */
  sockaddr: Uint8Array | undefined;
  sockaddrHost: string | undefined;
  sockaddrPort: number;
}

/** Datagrams per neighbour queued for one batch send. */
const SEND_BATCH = 64;

/** Result of `send`: `too-big` carries the largest frame the link takes in one piece. */
export type SendResult = { ok: true } | { ok: false; reason: 'no-link' | 'not-established' | 'too-big'; maxFrame?: number };

const SENT: SendResult = { ok: true };

/**
 * The sleeve transport. Frames for a neighbour are packed into one datagram until it is full or the
 * current turn of the event loop ends (`flush`), sealed with the link's key and sent on one UDP socket.
 */
export class Sleeve extends EventEmitter<SleeveEvents> {
  private readonly forwarders = new Map<PeerName, Forwarder>();
  private readonly dirty = new Set<Forwarder>();
  private readonly timings: SleeveTimings;
  private readonly pool: Buffer[] = [];
  private flushScheduled: NodeJS.Immediate | undefined;
  private closed = false;
  private receiver: FrameReceiver | undefined;
  private readonly slowPath: SlowPath;
  readonly drops: SleeveDrops = {};

  constructor(private readonly options: SleeveOptions) {
    super();
    this.timings = withDefaults(DEFAULT_SLEEVE_TIMINGS, options.timings);
    const factory = options.linkSockets;
    // The shared socket may pause only with per-neighbour sockets, and only while every neighbour with an
    // authenticated address has its own (so nothing authentic waits behind the flood).
    const shared = factory && {
      setReceiving: (receiving: boolean) => factory.setReceiving(options.socket, receiving),
      mayPause: () => [...this.forwarders.values()].every((f) => !f.remoteVerified || f.linkSocket !== undefined),
    };
    this.slowPath = new SlowPath(options.clock, options.slowPath, shared);
    options.socket.on('message', (packet: Buffer, rinfo: DatagramSender) => this.onPacket(packet, rinfo, true));
  }

  /** Sets where received frames go (a direct call per frame: this is the hot path). */
  setReceiver(receiver: FrameReceiver): void {
    this.receiver = receiver;
  }

  /** A link was admitted: start heartbeating (once the neighbour's UDP address is known). */
  linkUp(link: OverlayLink): void {
    this.linkDown(link.peer);
    const { sealer, opener } = frameCrypto(link.keys, this.options.sodium);
    const f: Forwarder = {
      peer: link.peer,
      connectionId: link.connectionId,
      sealer,
      opener,
      superFrames: this.options.superFrames !== false && link.capabilities?.includes(SUPER_FRAME_CAPABILITY) === true,
      udpSuperFrames: this.options.superFrames !== false && link.capabilities?.includes(UDP_SUPER_FRAME_CAPABILITY) === true,
      sendCounter: 0,
      // The dialler knows where the neighbour listens; the other side learns it from authentic packets.
      // Port 0 means the neighbour does not listen: nothing to send to until it is learned.
      remoteHost: link.outbound && link.remotePort > 0 ? link.remoteHost : undefined,
      remotePort: link.remotePort,
      remoteVerified: false,
      linkSocket: undefined,
      linkSocketBatched: false,
      linkSocketFor: undefined,
      authFailures: 0,
      newestCounter: -1,
      link: undefined as unknown as LinkProbe, // set below: the probe's host closes over the forwarder
      packet: undefined,
      bodyLength: 0,
      outPackets: [],
      outLengths: new Uint32Array(SEND_BATCH),
      outCount: 0,
      sockaddr: undefined,
      sockaddrHost: undefined,
      sockaddrPort: 0,
      packetsOut: 0,
      packetsIn: 0,
      framesOut: 0,
      framesIn: 0,
      bytesOut: 0,
      bytesIn: 0,
    };
    f.link = new LinkProbe(link.connectionId, {
      clock: this.options.clock,
      timings: this.timings,
      noFragmentation: this.options.noFragmentation === true,
      sendControl: (kind, minLength, payloadSize, fill) => this.sendControl(f, kind, minLength, payloadSize, fill),
      hasAddress: () => f.remoteHost !== undefined,
      // A receive socket that failed to open is tried again at each heartbeat.
      onHeartbeat: () => {
        if (f.remoteVerified && f.linkSocketFor === undefined) this.openLinkSocket(f);
      },
      setEstablished: (established) => this.options.setEstablished(f.peer, established),
      changed: () => this.emit('link', this.linkStatus(f)),
    });
    this.forwarders.set(link.peer, f);
    f.link.heartbeat();
  }

  linkDown(peer: PeerName): void {
    const f = this.forwarders.get(peer);
    if (!f) return;
    f.link.stop();
    this.closeLinkSocket(f);
    if (f.packet && this.pool.length < 256) this.pool.push(f.packet);
    f.packet = undefined;
    this.dirty.delete(f);
    this.forwarders.delete(peer);
  }

  /** Stops all timers and closes the per-neighbour sockets; the shared socket belongs to the caller. */
  close(): void {
    this.closed = true;
    this.slowPath.close();
    for (const peer of [...this.forwarders.keys()]) this.linkDown(peer);
  }

  status(): SleeveLinkStatus[] {
    return [...this.forwarders.values()].map((f) => this.linkStatus(f));
  }

  /** The receive side: per-neighbour sockets, pauses of the shared socket, failures per source. */
  receiveStatus(): SleeveReceiveStatus {
    return { linkSockets: this.options.linkSockets ? 'on' : (this.options.linkSocketsUnavailable ?? 'off'), ...this.slowPath.status() };
  }

  /** True when frames to the neighbour `peer` get through: our heartbeats were answered and the MTU is known. */
  isEstablished(peer: PeerName): boolean {
    return this.forwarders.get(peer)?.link.established === true;
  }

  /** Largest Ethernet frame the link to `peer` carries in one piece, or undefined without a link. */
  maxFrame(peer: PeerName): number | undefined {
    const f = this.forwarders.get(peer);
    return f ? this.frameLimit(f) : undefined;
  }

  /**
   * Queues a frame for the neighbour `nextHop`. Nothing is sent until the datagram is full or `flush`
   * runs (scheduled automatically for the end of this turn).
   */
  send(nextHop: PeerName, source: PeerName, destination: PeerName, frame: Uint8Array): SendResult {
    const f = this.forwarders.get(nextHop);
    if (!f) return this.dropResult('no-link');
    if (!f.link.established) return this.dropResult('not-established');
    const limit = this.frameLimit(f);
    if (frame.byteLength > limit) return { ok: false, reason: 'too-big', maxFrame: limit };
    if (f.bodyLength + ENTRY_HEADER_BYTES + frame.byteLength > this.bodyLimit(f)) this.flushForwarder(f);
    f.packet ??= this.takeBuffer();
    f.bodyLength = writeEntry(f.packet, PACKET_HEADER_BYTES + f.bodyLength, source, destination, frame) - PACKET_HEADER_BYTES;
    f.framesOut += 1;
    f.bytesOut += frame.byteLength;
    this.markDirty(f);
    return SENT;
  }

  /**
   * Queues a super-frame whole, in one datagram, for a neighbour that takes them. `too-big` when the link cannot
   * carry it in one datagram (a path-MTU link, or a frame past the datagram limit) or the neighbour does not take
   * super-frames of its kind (TCP: `super-frames`, UDP: `udp-super-frames`): the caller cuts it into segments.
   */
  sendSuper(nextHop: PeerName, source: PeerName, destination: PeerName, frame: Uint8Array, segmentSize: number): SendResult {
    const f = this.forwarders.get(nextHop);
    if (!f) return this.dropResult('no-link');
    if (!f.link.established) return this.dropResult('not-established');
    const entryLength = ENTRY_HEADER_BYTES + SUPER_FRAME_PREFIX_BYTES + frame.byteLength;
    const bodyLimit = this.bodyLimit(f);
    if (!f.superFrames || entryLength > bodyLimit || (!f.udpSuperFrames && isUdpSuperFrame(frame))) return { ok: false, reason: 'too-big', maxFrame: this.frameLimit(f) };
    if (f.bodyLength + entryLength > bodyLimit) this.flushForwarder(f);
    f.packet ??= this.takeBuffer();
    f.bodyLength = writeSuperFrameEntry(f.packet, PACKET_HEADER_BYTES + f.bodyLength, source, destination, segmentSize, frame) - PACKET_HEADER_BYTES;
    f.framesOut += 1;
    f.bytesOut += frame.byteLength;
    this.markDirty(f);
    return SENT;
  }

  /** Sends every queued datagram now. */
  flush(): void {
    for (const f of this.dirty) this.flushForwarder(f);
    this.dirty.clear();
    if (this.flushScheduled) {
      // Everything went (flushing queues the last body for the batch send, which schedules this again):
      // the fallback flush would find nothing to do.
      clearImmediate(this.flushScheduled);
      this.flushScheduled = undefined;
    }
  }

  private dropResult(reason: 'no-link' | 'not-established'): SendResult {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    return { ok: false, reason };
  }

  private markDirty(f: Forwarder): void {
    this.dirty.add(f);
    this.flushScheduled ??= setImmediate(() => {
      this.flushScheduled = undefined;
      this.flush();
    });
  }

  private overhead(f: Forwarder): number {
    return PACKET_HEADER_BYTES + f.sealer.overhead;
  }

  private bodyLimit(f: Forwarder): number {
    return f.link.maxPayload - this.overhead(f);
  }

  private frameLimit(f: Forwarder): number {
    return this.bodyLimit(f) - ENTRY_HEADER_BYTES;
  }

  private takeBuffer(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(MAX_UDP_PAYLOAD);
  }

  private flushForwarder(f: Forwarder): void {
    if (f.bodyLength > 0 && f.packet) {
      const packet = f.packet;
      f.packet = undefined;
      this.sendPacket(f, packet, f.bodyLength);
      f.bodyLength = 0;
    }
    if (f.outCount > 0) this.sendQueued(f);
  }

  /** The socket address for batch sends to the neighbour, made again when its address changed. */
  private sockaddrOf(f: Forwarder, batch: DatagramBatchSender, host: string): Uint8Array | undefined {
    if (f.sockaddrHost !== host || f.sockaddrPort !== f.remotePort) {
      f.sockaddr = batch.address(host, f.remotePort);
      f.sockaddrHost = host;
      f.sockaddrPort = f.remotePort;
    }
    return f.sockaddr;
  }

  /**
   * Sends the neighbour's queued datagrams with one system call; the kernel copied them when it returns, so
   * the buffers go straight back to the pool. What the socket buffer could not take goes through `send`,
   * which queues it.
   */
  private sendQueued(f: Forwarder): void {
    const count = f.outCount;
    f.outCount = 0;
    const batch = this.options.batchSender;
    const address = f.sockaddr;
    let sent = 0;
    if (batch && address && !this.closed) {
      try {
        sent = Math.max(0, batch.send(address, f.outPackets, f.outLengths, count));
      } catch {
        sent = 0; // a closed socket: the rest below counts the failures
      }
    }
    for (let i = 0; i < count; i++) {
      const packet = f.outPackets[i] as Buffer;
      if (i < sent) {
        if (this.pool.length < 256) this.pool.push(packet);
      } else {
        this.sendNow(f, packet, f.outLengths[i] as number);
      }
    }
  }

  /**
   * Seals the body built in `packet` (a pooled buffer, entries after the header) in place and sends it to the
   * neighbour; the buffer returns to the pool once sent.
   */
  private sendPacket(f: Forwarder, packet: Buffer, bodyLength: number): void {
    if (f.remoteHost === undefined || this.closed || f.sendCounter > MAX_PACKET_COUNTER) {
      this.drop(f.sendCounter > MAX_PACKET_COUNTER ? 'counter-exhausted' : 'no-address');
      if (this.pool.length < 256) this.pool.push(packet);
      return;
    }
    const counter = f.sendCounter++;
    writePacketHeader(packet, this.options.self, counter);
    const length = f.sealer.seal(packet, bodyLength, counter);
    f.packetsOut += 1;
    const batch = this.options.batchSender;
    if (batch && this.sockaddrOf(f, batch, f.remoteHost)) {
      f.outPackets[f.outCount] = packet;
      f.outLengths[f.outCount] = length;
      f.outCount += 1;
      if (f.outCount === SEND_BATCH) this.sendQueued(f);
      else this.markDirty(f);
      return;
    }
    this.sendNow(f, packet, length);
  }

  /** One datagram through the socket's own (queued) send; the buffer returns to the pool once sent. */
  private sendNow(f: Forwarder, packet: Buffer, length: number): void {
    if (f.remoteHost === undefined || this.closed) {
      this.drop('send-failed');
      return;
    }
    try {
      this.options.socket.send(packet, 0, length, f.remotePort, f.remoteHost, (error) => {
        if (error) this.drop('send-failed');
        if (this.pool.length < 256) this.pool.push(packet);
      });
    } catch {
      // dgram throws synchronously for a closed socket or an unusable address: a drop, never fatal.
      this.drop('send-failed');
    }
  }

  /**
   * Sends one control entry of at least `minLength` bytes, padded so the whole datagram payload is
   * `payloadSize` bytes when that is larger.
   */
  private sendControl(f: Forwarder, kind: SleeveControl, minLength: number, payloadSize: number, fill?: (entry: Uint8Array) => void): void {
    const entryLength = Math.max(minLength, payloadSize - this.overhead(f) - ENTRY_HEADER_BYTES);
    const entry = new Uint8Array(entryLength);
    entry[0] = kind;
    fill?.(entry);
    const packet = this.takeBuffer();
    const bodyLength = writeEntry(packet, PACKET_HEADER_BYTES, 0, 0, entry) - PACKET_HEADER_BYTES;
    this.sendPacket(f, packet, bodyLength);
  }

  /** The neighbour acknowledged one of our sleeve control entries over TCP. */
  onControl(peer: PeerName, kind: number, payload: Uint8Array): void {
    this.forwarders.get(peer)?.link.onAck(kind, payload);
  }

  private linkStatus(f: Forwarder): SleeveLinkStatus {
    const maxFrame = this.frameLimit(f);
    return {
      peer: formatPeerName(f.peer),
      mode: f.link.mode,
      established: f.link.established,
      encrypted: f.sealer.encrypted,
      ...(f.remoteHost !== undefined ? { remote: `${f.remoteHost}:${f.remotePort}` } : {}),
      maxFrame,
      mtu: maxFrame - 14,
      authFailures: f.authFailures,
      ownSocket: f.linkSocket !== undefined,
      batchedReads: f.linkSocketBatched,
      packetsOut: f.packetsOut,
      packetsIn: f.packetsIn,
      framesOut: f.framesOut,
      framesIn: f.framesIn,
      bytesOut: f.bytesOut,
      bytesIn: f.bytesIn,
    };
  }

  // ---- receive path ----

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  /**
   * Every datagram, from the shared socket (`shared`) or a neighbour's own. The fast path is a datagram from
   * its link's authenticated address; anything else (unknown sender, another address) takes the slow path,
   * which is bounded: a read budget (the shared socket pauses when it is spent), a decryption budget per
   * source address (`source-blocked`), and one for all sources (`rate-limited`). Nothing here throws: a bad
   * datagram is a counter.
   */
  private onPacket(packet: Uint8Array, rinfo: DatagramSender, shared: boolean): void {
    const sender = packetSender(packet);
    const f = sender === 0 ? undefined : this.forwarders.get(sender);
    if (f !== undefined && f.remoteVerified && rinfo.port === f.remotePort && rinfo.address === f.remoteHost) {
      this.receive(f, packet, rinfo, true);
      return;
    }
    const refused = this.slowPath.read(rinfo.address, shared);
    if (refused !== undefined) {
      this.drop(refused);
      return;
    }
    if (f === undefined) {
      this.fail(rinfo, sender === 0 ? 'malformed' : 'unknown-peer');
      return;
    }
    if (f.opener.encrypted) {
      const blocked = this.slowPath.decrypt(rinfo.address);
      if (blocked !== undefined) {
        this.drop(blocked);
        return;
      }
    }
    this.receive(f, packet, rinfo, false);
  }

  private fail(rinfo: DatagramSender, reason: string, decryption = false): void {
    this.drop(reason);
    this.slowPath.fail(rinfo.address, reason, decryption);
  }

  /** Checks and opens one datagram for link `f`; `fast` when it came from the link's authenticated address. */
  private receive(f: Forwarder, packet: Uint8Array, rinfo: DatagramSender, fast: boolean): void {
    const counter = packetCounter(packet);
    if (counter < 0) {
      this.fail(rinfo, 'malformed');
      return;
    }
    if (!f.opener.isFresh(counter)) {
      // Duplicates from the link's own address are normal (the underlay may repeat); elsewhere they are a failure.
      if (fast) this.drop('replayed');
      else this.fail(rinfo, 'replayed');
      return;
    }
    const body = f.opener.open(packet, counter);
    if (body === undefined) {
      // Only the slow path spends the source's budget: the fast path is the link's own address, never refused.
      if (fast) f.authFailures += 1;
      this.fail(rinfo, 'auth-failed', !fast);
      return;
    }
    // Only an authentic packet moves the window, so forged counters cannot push it forward.
    f.opener.accept(counter);
    f.packetsIn += 1;
    // The neighbour's address is learned (or follows a NAT rebinding) only from authentic packets, and only
    // from the newest: a late one from the old address, still in flight, does not move it back.
    if (counter > f.newestCounter) {
      f.newestCounter = counter;
      if (!fast) this.learnAddress(f, rinfo);
    }
    const receiver = this.receiver;
    try {
      forEachEntry(body, (source, destination, frame) => {
        if (source === 0) this.onControlEntry(f, frame, packet.byteLength, receiver);
        else {
          f.framesIn += 1;
          f.bytesIn += frame.byteLength;
          receiver?.frame(source, destination, frame, f.peer, 0);
        }
      });
    } catch (error) {
      // A malformed body, or a failure further in (a NIC write): counted, never fatal to the process.
      this.drop(error instanceof DecodeError ? 'malformed' : 'deliver-failed');
    } finally {
      try {
        receiver?.end();
      } catch {
        this.drop('deliver-failed');
      }
    }
  }

  private learnAddress(f: Forwarder, rinfo: DatagramSender): void {
    const first = f.remoteHost === undefined;
    f.remoteHost = rinfo.address;
    f.remotePort = rinfo.port;
    f.remoteVerified = true;
    this.openLinkSocket(f);
    if (first) f.link.heartbeat();
  }

  // ---- per-neighbour receive sockets ----

  private openLinkSocket(f: Forwarder): void {
    const factory = this.options.linkSockets;
    if (!factory || this.closed || f.remoteHost === undefined) return;
    const remote = { address: f.remoteHost, port: f.remotePort };
    const key = `${remote.address}:${remote.port}`;
    if (f.linkSocketFor === key) return;
    this.closeLinkSocket(f);
    f.linkSocketFor = key;
    let opening: Promise<DatagramSocket>;
    try {
      opening = factory.open(remote);
    } catch (error) {
      opening = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    opening.then(
      (socket) => {
        if (this.closed || this.forwarders.get(f.peer) !== f || f.linkSocketFor !== key) {
          closeQuietly(socket);
          return;
        }
        const onDatagram = (packet: Uint8Array, rinfo: DatagramSender): void => this.onPacket(packet, rinfo, false);
        f.linkSocketBatched = factory.receiveBatches?.(socket, onDatagram) === true;
        if (!f.linkSocketBatched) socket.on('message', onDatagram);
        f.linkSocket = socket;
      },
      () => {
        // The neighbour's datagrams keep arriving on the shared socket, which then never pauses.
        if (f.linkSocketFor === key) f.linkSocketFor = undefined;
        this.drop('link-socket-failed');
      },
    );
  }

  private closeLinkSocket(f: Forwarder): void {
    if (f.linkSocket) closeQuietly(f.linkSocket);
    f.linkSocket = undefined;
    f.linkSocketBatched = false;
    f.linkSocketFor = undefined;
  }

  private onControlEntry(f: Forwarder, entry: Uint8Array, datagramSize: number, receiver: FrameReceiver | undefined): void {
    switch (entry[0]) {
      case SleeveControl.SuperFrame: {
        // A malformed one throws DecodeError: counted as malformed by the caller, like a bad entry.
        const superFrame = readSuperFrameEntry(entry);
        f.framesIn += 1;
        f.bytesIn += superFrame.frame.byteLength;
        receiver?.frame(superFrame.source, superFrame.destination, superFrame.frame, f.peer, superFrame.segmentSize);
        return;
      }
      case SleeveControl.Heartbeat: {
        if (entry.byteLength < 9) return this.drop('malformed');
        const id = new DataView(entry.buffer, entry.byteOffset, 9).getBigUint64(1);
        if (id !== f.connectionId) return this.drop('stale-heartbeat');
        f.link.heard();
        const ack = new Uint8Array(8);
        new DataView(ack.buffer).setBigUint64(0, id);
        this.options.sendControl(f.peer, SleeveAck.Heartbeat, ack);
        return;
      }
      case SleeveControl.FragTest:
        this.options.sendControl(f.peer, SleeveAck.FragTest, new Uint8Array(0));
        return;
      case SleeveControl.MtuProbe: {
        if (entry.byteLength < 3) return this.drop('malformed');
        const size = ((entry[1] as number) << 8) | (entry[2] as number);
        if (size !== datagramSize) return this.drop('malformed');
        this.options.sendControl(f.peer, SleeveAck.MtuProbe, Uint8Array.of(size >>> 8, size & 0xff));
        return;
      }
      default:
        this.drop('unknown-control');
    }
  }
}

function closeQuietly(socket: DatagramSocket): void {
  try {
    socket.close();
  } catch {
    // Already closed.
  }
}
