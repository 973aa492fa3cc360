// MeshRouter: the control plane: listens and dials, keeps one link per neighbour, and wires topology gossip
// (topology-gossip.ts) and the gossip channels (gossip-channels.ts) to its links.
import { hostname } from 'node:os';
import { EventEmitter } from 'eventemitter3';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { systemRandom, type Random } from '../random.js';
import { ConnectionError, HandshakeError, OptionsError, WeaveError } from '../errors.js';
import { MessageTag, type ControlMessage } from '../wire/messages.js';
import type { PeerRecord } from '../wire/topology.js';
import { loadSodium, type SodiumBackend } from '../crypto/sodium.js';
import { deriveNetworkKey, type NetworkKey } from '../crypto/network-key.js';
import type { Connection, ConnectionCrypto, ConnectionTimings } from './connection.js';
import { Links, type Link, type LinkFailure, type LinkStats } from './links.js';
import { ConnectionMaker, type BackoffOptions, type TargetStatus } from './connection-maker.js';
import type { Topology } from './topology.js';
import { TOPOLOGY_DIGEST_CHANNEL } from '../wire/topology-digest.js';
import type { Routes } from './routes.js';
import { TOPOLOGY_CHANNEL, TopologyGossip } from './topology-gossip.js';
import type { GossipChannel, GossipChannelStats, GossipHandler } from './gossip.js';
import { GossipChannels, type UnicastMessage } from './gossip-channels.js';
import { formatPeerName, isPeerName, parsePeerName, randomPeerName, type PeerName } from '../wire/peer-name.js';
import { canonicalAddress, DEFAULT_PORT, formatHostPort, parseHostPort, parseListenAddress } from './address.js';
import { Peer, type LinkInfo, type PeerSource } from './peer.js';
import { Incarnations, type Refusal } from './incarnations.js';
import { INCARNATION_CHANNEL } from '../wire/incarnation.js';
import type { LinkOverlay } from './overlay.js';
import { listenError, nodeTransport, type StreamListener, type StreamSocket, type Transport } from './transport.js';
import type { Overrides } from '../options.js';

export { TOPOLOGY_CHANNEL } from './topology-gossip.js';
/** A uid is the start time in ms (42 bits, good until 2109) then this many random bits. */
const UID_RANDOM_BITS = 22n;
const UID_RANDOM_MASK = (1n << UID_RANDOM_BITS) - 1n;
const UID_TIME_MASK = (1n << (64n - UID_RANDOM_BITS)) - 1n;

/** Options of a mesh router; every field has a sane default. */
export interface MeshRouterOptions {
  /** Permanent peer name (MAC form or number); random when omitted. */
  name?: string | PeerName | undefined;
  /** Display name; defaults to the host name. */
  nickname?: string | undefined;
  /** Where to accept control connections: `host:port` (default `0.0.0.0:6783`; port 0 picks one), or false for none. */
  listen?: string | false | undefined;
  /** Peers to dial at start (`host[:port]`). */
  peers?: readonly string[] | undefined;
  /** Network password: encrypts and authenticates every link. Omit for a plain (unauthenticated!) mesh. */
  password?: string | Uint8Array | undefined;
  /** A network key already stretched with `deriveNetworkKey` (instead of `password`). */
  networkKey?: NetworkKey | undefined;
  /** Maximum number of links, established or in handshake (default 200; 0 = unlimited). */
  connectionLimit?: number | undefined;
  /** Inbound accept throttle: a bucket of `burst` tokens refilled one every `refillMs` (default 20 / 50 ms). */
  acceptRate?: {
    /** Accepts allowed back to back (bucket size). */
    burst: number;
    /** Milliseconds to refill one token. */
    refillMs: number;
  } | undefined;
  /** Dial peers that topology gossip tells us about (default true). */
  discovery?: boolean | undefined;
  /** Period of full gossip to random neighbours (default 30 s). */
  gossipIntervalMs?: number | undefined;
  /** Coalescing delay for topology updates after local link changes (default 1 s). */
  topologyDelayMs?: number | undefined;
  /** Delay before unreachable peers are forgotten after topology arrives (default 1 s). */
  gcDelayMs?: number | undefined;
  /** Handshake deadline, heartbeat interval and silence timeout. */
  timings?: Overrides<ConnectionTimings> | undefined;
  /** Reconnect backoff. */
  backoff?: Overrides<BackoffOptions> | undefined;
  /** Time source for timers and timestamps (default `systemClock`); tests pass a fake clock. */
  clock?: Clock | undefined;
  /** Randomness for the peer name, uid, connection ids, backoff jitter and gossip fan-out (default `systemRandom`). */
  random?: Random | undefined;
  /** Which libsodium binding to prefer (default native, falling back to WASM). */
  sodium?: 'native' | 'wasm' | undefined;
  /** Listens and dials (default the real network; `VirtualWire` hosts give in-process ones). */
  transport?: Transport | undefined;
  /** Opens outbound TCP sockets instead of the transport (tests inject one to simulate partitions). */
  connectSocket?: ((host: string, port: number) => StreamSocket) | undefined;
  /**
   * How long a newcomer using a known, reachable peer name waits while the known incarnation is asked
   * whether it is alive (default 2 s). An answer means two incarnations at once: the newer is refused.
   */
  incarnationProbeMs?: number | undefined;
}

/** Two incarnations of one peer name alive at once, and which one was refused. */
export interface NameCollision {
  /** The peer name both use. */
  name: PeerName;
  /** The incarnation refused everywhere (the newer one). */
  refused: bigint;
  /** The incarnation that keeps the name. */
  kept: bigint;
  /** What happened and what to do, for logs. */
  message: string;
}

/** A data plane to attach (see `attachOverlay`). */
export type { LinkOverlay, OverlayLink } from './overlay.js';

export type { LinkFailure } from './links.js';

/** Typed events of the router. */
export interface MeshRouterEvents {
  /** Another peer became known (directly linked or learned from topology); never fired for this peer itself (`self`). */
  'peer:up': (peer: Peer) => void;
  /** A peer is no longer reachable and was forgotten; its view keeps the last nickname, uid and connections known. */
  'peer:down': (peer: Peer) => void;
  /** A known peer came back with a new incarnation (uid). */
  'peer:restarted': (peer: Peer) => void;
  /** A direct link was accepted. */
  'connection:up': (link: LinkInfo) => void;
  /** A direct link closed. */
  'connection:down': (link: LinkInfo, error: WeaveError | undefined) => void;
  /** A dial or an inbound handshake failed. */
  'connection:failed': (failure: LinkFailure) => void;
  /** The topology changed (routes may differ); once per burst of changes, at most every 100 ms. */
  'topology:changed': () => void;
  /** A gossip payload was rejected (and counted); the link stays up. */
  'gossip:rejected': (channel: string, from: PeerName, error: Error) => void;
  /** A data-plane control message from a neighbour (used by the sleeve). */
  'overlay:control': (from: PeerName, kind: number, payload: Uint8Array) => void;
  /**
   * Two incarnations of one name are alive: reported by the peer that decided, by the one that keeps the
   * name (`kept` is our uid), and by the refused one (`refused` is our uid; see `refusal`).
   */
  'name:collision': (collision: NameCollision) => void;
}

/** Counters for status and metrics. */
export interface MeshRouterStats {
  /** Inbound connections closed at once by the accept rate limit (`acceptRate`). */
  acceptsThrottled: number;
  /** Inbound connections closed at once because the connection limit was reached. */
  connectionsRefused: number;
  /** Failed dials and inbound handshakes, by error code. */
  handshakeFailures: Record<string, number>;
  /** Links that closed after being accepted. */
  terminations: number;
  /** Gossip unicasts (ours or relayed) dropped for want of a route. */
  unicastUnroutable: number;
  /** Gossip unicasts addressed to us on a channel we have not registered. */
  unknownChannelDropped: number;
  /** Messages not sent because they exceeded the 10 MiB cap. */
  messagesTooLarge: number;
  /** Neighbours' periodic topology digests that differed from ours and were left unanswered once while our topology was changing. */
  digestsDeferred: number;
}

/** A router's status as JSON-serialisable data. */
export interface MeshRouterStatus {
  /** Our peer name in MAC form. */
  name: string;
  /** Our display name. */
  nickname: string;
  /** Our incarnation, as a decimal string. */
  uid: string;
  /** True when links are encrypted with a network password or key. */
  encryption: boolean;
  /** The listening "host:port"; absent when not listening. */
  listenAddress?: string;
  /** Whether peers learned from topology gossip are dialled. */
  peerDiscovery: boolean;
  /** Most links, established or in handshake (0 = unlimited). */
  connectionLimit: number;
  /** Every known peer, ourselves included. */
  peers: ReturnType<Peer['toJSON']>[];
  /** Our direct links. */
  links: (Omit<LinkInfo, 'peer'> & {
    /** The neighbour's name in MAC form. */
    peer: string;
  })[];
  /** The addresses the connection maker dials, and how that is going. */
  targets: TargetStatus[];
  /** Next hop per reachable peer over established links. */
  unicastRoutes: {
    /** Destination peer, MAC form. */
    dest: string;
    /** Neighbour to send through, MAC form. */
    via: string;
  }[];
  /** Per broadcast source (ourselves first): the neighbours we pass its broadcasts on to. */
  broadcastRoutes: {
    /** Peer that originates the broadcast, MAC form. */
    source: string;
    /** Our neighbours it is relayed to, MAC form, sorted. */
    via: string[];
  }[];
  /** Counters per gossip channel; channels beyond the first 64 are summed under `(other)`. */
  gossip: Record<string, GossipChannelStats>;
  /** Set when the mesh refused this peer: another live peer uses its name (see `refusal`). */
  refused?: string;
  /** Incarnations refused because another incarnation of their name is alive (uids as decimal strings). */
  refusals: {
    /** The peer name both incarnations use, MAC form. */
    name: string;
    /** The refused (newer) incarnation. */
    refused: string;
    /** The incarnation that keeps the name. */
    kept: string;
  }[];
  /** Router counters since construction. */
  stats: MeshRouterStats;
}

/**
 * The mesh router: one TCP link per neighbour, authenticated by the network password, a gossiped
 * topology with deterministic routes, and named gossip channels for applications.
 * @category Mesh
 */
export class MeshRouter extends EventEmitter<MeshRouterEvents> implements PeerSource {
  /** Our permanent peer name (from `name`, else random). */
  readonly selfName: PeerName;
  /** Our display name (from `nickname`, else the host name). */
  readonly nickname: string;
  /**
   * Our incarnation, new on every construction: the wall-clock start time in ms (from the clock) in the
   * high 42 bits and 22 random bits, so a greater uid is a later start and every peer agrees which of two
   * incarnations of a name is newer.
   */
  readonly uid: bigint;
  private readonly options: MeshRouterOptions;
  private readonly clock: Clock;
  private readonly random: Random;
  /** How this router listens and dials; a data plane binds its UDP socket through it too. */
  readonly transport: Transport;
  private readonly topologyGossip: TopologyGossip;
  private readonly linkTable: Links;
  private readonly gossip: GossipChannels;
  private readonly peerObjects = new Map<PeerName, Peer>();
  private readonly lastSeenAt = new Map<PeerName, number>();
  private readonly maker: ConnectionMaker;
  private readonly connectionLimit: number;
  private readonly discovery: boolean;
  private readonly stats: Omit<MeshRouterStats, 'digestsDeferred' | keyof LinkStats> = {
    unicastUnroutable: 0,
    unknownChannelDropped: 0,
    messagesTooLarge: 0,
  };
  private server: StreamListener | undefined;
  private listenPort = 0;
  private crypto: ConnectionCrypto | undefined;
  private sodium: SodiumBackend | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private gossipTimer: Timer | undefined;
  private overlay: LinkOverlay | undefined;
  private readonly incarnations: Incarnations;
  private refusedWith: HandshakeError | undefined;

  constructor(options: MeshRouterOptions = {}) {
    super();
    this.options = { ...options };
    validateOptions(options);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.transport = options.transport ?? nodeTransport;
    this.selfName =
      options.name === undefined
        ? randomPeerName((b) => this.random.fill(b))
        : typeof options.name === 'number'
          ? options.name
          : parsePeerName(options.name);
    this.nickname = options.nickname ?? hostname();
    // The start time leads the uid so every peer agrees which of two incarnations is newer.
    const startMs = BigInt(Math.max(0, Math.floor(this.clock.wallNow?.() ?? this.clock.now()))) & UID_TIME_MASK;
    let uid = (startMs << UID_RANDOM_BITS) | (this.random.u64() & UID_RANDOM_MASK);
    while (uid === 0n) uid = this.random.u64() & UID_RANDOM_MASK;
    this.uid = uid;
    this.connectionLimit = options.connectionLimit ?? 200;
    this.discovery = options.discovery ?? true;
    const router = this;
    this.gossip = new GossipChannels({
      selfName: this.selfName,
      random: this.random,
      routes: () => this.topologyGossip.routes,
      neighbours: () => this.links.keys(),
      isNeighbour: (peer) => this.links.has(peer),
      sendTo: (peer, message) => {
        const link = this.links.get(peer);
        return link !== undefined && this.sendTo(link, message);
      },
      isNewIncarnation: (source, from) => from === source && this.links.get(source)?.uid !== this.topology.get(source)?.uid,
      rejected: (channel, from, error) => this.emit('gossip:rejected', channel, from, error),
      unroutable: () => {
        this.stats.unicastUnroutable += 1;
      },
    });
    this.incarnations = new Incarnations({
      selfName: this.selfName,
      uid: this.uid,
      clock: this.clock,
      random: this.random,
      unicast: (destination, payload) =>
        this.gossip.sendUnicast({ tag: MessageTag.GossipUnicast, channel: INCARNATION_CHANNEL, source: this.selfName, destination, payload }),
      broadcast: (payload) => {
        this.gossip.state(INCARNATION_CHANNEL).stats.sent += this.gossip.relayBroadcast(INCARNATION_CHANNEL, this.selfName, payload, undefined);
      },
      get refused() {
        return router.refusedWith !== undefined;
      },
      onRefusals: (refusals, from) => this.onRefusals(refusals, from),
    });
    this.gossip.reserve(INCARNATION_CHANNEL, this.incarnations);
    this.linkTable = new Links({
      selfName: this.selfName,
      uid: this.uid,
      clock: this.clock,
      random: this.random,
      connectionLimit: this.connectionLimit,
      acceptRate: options.acceptRate ?? { burst: 20, refillMs: 50 },
      timings: options.timings,
      localFeatures: () => ({ name: this.selfName, nickname: this.nickname, uid: this.uid, listenPort: this.listenPort, capabilities: [...(this.overlay?.capabilities ?? [])] }),
      crypto: () => this.crypto,
      connectSocket: (host, port) => (options.connectSocket ? options.connectSocket(host, port) : this.transport.connect(host, port)),
      running: () => this.state === 'running',
      refusal: () => this.refusedWith,
      vet: (connection) => this.vetIncarnation(connection),
      dataPlane: () => this.overlay !== undefined,
      message: (link, message) => this.onMessage(link, message),
      admitted: (link) => this.onLinkUp(link),
      closing: (link, error) => {
        this.emit('connection:down', { ...link.info }, error);
      },
      closed: (link) => this.onLinkDown(link),
      failed: (failure) => this.emit('connection:failed', failure),
    });
    this.maker = new ConnectionMaker({
      clock: this.clock,
      random: this.random,
      dial: (address) => this.linkTable.dial(address),
      discovery: this.discovery,
      ...(options.backoff ? { backoff: options.backoff } : {}),
    });
    this.topologyGossip = new TopologyGossip({
      self: { name: this.selfName, nickname: this.nickname, uid: this.uid },
      clock: this.clock,
      channels: this.gossip,
      topologyDelayMs: options.topologyDelayMs ?? 1000,
      gcDelayMs: options.gcDelayMs ?? 1000,
      gossipIntervalMs: options.gossipIntervalMs ?? 30_000,
      links: {
        connections: () => this.linkTable.connections(),
        linkUid: (peer) => this.links.get(peer)?.uid,
        establishingWaitMs: (holdMs) => this.linkTable.establishingWaitMs(holdMs),
        sendTo: (peer, message) => {
          const link = this.links.get(peer);
          return link !== undefined && this.sendTo(link, message);
        },
        isRefused: (name, uid) => this.incarnations.isRefused(name, uid),
        get running() {
          return router.state !== 'stopping' && router.state !== 'stopped';
        },
        peersUp: (names) => {
          for (const name of names) this.emit('peer:up', this.peer(name) as Peer);
        },
        peersRestarted: (names) => {
          for (const name of names) this.emit('peer:restarted', this.peer(name) as Peer);
        },
        peersHeard: (names) => {
          const now = this.clock.now();
          for (const name of names) this.lastSeenAt.set(name, now);
        },
        peersForgotten: (records) => this.onPeersForgotten(records),
        changed: () => this.onTopologyChanged(),
      },
    });
  }

  private get topology(): Topology {
    return this.topologyGossip.topology;
  }

  /** Our links by neighbour. */
  private get links(): ReadonlyMap<PeerName, Link> {
    return this.linkTable.byPeer;
  }

  /** Our own peer. */
  get self(): Peer {
    return this.peer(this.selfName) as Peer;
  }

  /** True when links are encrypted with a network password. */
  get encrypted(): boolean {
    return this.options.password !== undefined || this.options.networkKey !== undefined;
  }

  /** The listening address once started ("host:port"), or undefined when not listening. */
  get listenAddress(): string | undefined {
    const listen = this.options.listen;
    if (listen === false) return undefined;
    if (this.server === undefined) return undefined;
    const { host } = parseListenAddress(listen ?? `0.0.0.0:${DEFAULT_PORT}`);
    return formatHostPort(host, this.listenPort);
  }

  /**
   * Set when the mesh refused this peer because another live peer uses its name: the router then keeps
   * no links, dials nobody and accepts nobody. Restart it with a unique name.
   */
  get refusal(): WeaveError | undefined {
    return this.refusedWith;
  }

  /** The incarnations refused here because another incarnation of their name is alive (at most 64, oldest first). */
  refusals(): Refusal[] {
    return this.incarnations.list();
  }

  /** True when the incarnation `uid` of peer `name` is refused here (another incarnation of the name is alive). */
  isRefused(name: PeerName, uid: bigint): boolean {
    return this.incarnations.isRefused(name, uid);
  }

  /** The peers given at construction (`peers` option), as given. */
  get initialPeers(): readonly string[] {
    return this.options.peers ?? [];
  }

  /** The TCP port we listen on (0 when not listening). */
  get port(): number {
    return this.listenPort;
  }

  /** The libsodium binding in use (after start, when encrypted). */
  get cryptoBackend(): string | undefined {
    return this.sodium?.name;
  }

  /** Starts listening and dialling; idempotent. */
  start(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    this.startPromise ??= this.doStart(options.signal);
    return this.startPromise;
  }

  private async doStart(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    this.state = 'starting';
    if (this.encrypted) {
      this.sodium = await loadSodium(this.options.sodium ? { prefer: this.options.sodium } : {});
      const networkKey = this.options.networkKey ?? (await deriveNetworkKey(this.options.password as string | Uint8Array, this.sodium));
      this.crypto = { sodium: this.sodium, networkKey };
    }
    signal?.throwIfAborted();
    if (this.options.listen !== false) await this.listen(signal);
    if (this.overlay?.start) {
      const listen = this.options.listen === false ? undefined : { host: parseListenAddress(this.options.listen || `0.0.0.0:${DEFAULT_PORT}`).host, port: this.listenPort };
      await this.overlay.start(listen);
    }
    signal?.throwIfAborted();
    this.topology.setLocalConnections([]);
    this.state = 'running';
    this.scheduleGossip();
    for (const peer of this.options.peers ?? []) this.connect(peer);
  }

  private async listen(signal: AbortSignal | undefined): Promise<void> {
    const { host, port } = parseListenAddress(this.options.listen || `0.0.0.0:${DEFAULT_PORT}`);
    const listening = this.transport.listen(host, port, (socket) => this.linkTable.accept(socket));
    const server = await new Promise<StreamListener>((resolve, reject) => {
      const onAbort = (): void => {
        // A listener that opens after the abort is closed at once.
        void listening.then((l) => l.close(), () => undefined);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      listening.then(
        (l) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(l);
        },
        (cause: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(listenError('listen address', `${formatHostPort(host, port)} (TCP)`, cause));
        },
      );
    });
    this.server = server;
    this.listenPort = server.address().port;
  }

  /** Closes every link and stops listening; idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    await this.startPromise?.catch(() => undefined);
    this.state = 'stopping';
    this.maker.stop();
    this.incarnations.close();
    this.gossipTimer?.cancel();
    this.topologyGossip.stop();
    this.linkTable.closeAll(new ConnectionError('closed', 'router stopped'));
    const server = this.server;
    if (server) await server.close();
    await this.overlay?.stop?.();
    this.state = 'stopped';
  }

  /** Same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Adds a direct target (`host[:port]`) and dials it now. */
  connect(address: string): void {
    this.maker.connect(canonicalAddress(address));
  }

  /** Removes a direct target; an existing link stays up but is not re-dialled. */
  forget(address: string): void {
    this.maker.forget(canonicalAddress(address));
  }

  /** Closes our direct link to a peer, if any (the connection maker may dial it again). */
  disconnect(peer: PeerName, reason = 'closed by request'): void {
    this.links.get(peer)?.connection.close(new ConnectionError('closed', reason));
  }

  /** Every peer currently known, ourselves included. */
  peers(): Peer[] {
    return [...this.topology.records()].map((r) => this.peer(r.name) as Peer);
  }

  /** The live view of one peer, or undefined when it is not known. */
  peer(name: PeerName | string): Peer | undefined {
    const n = typeof name === 'string' ? parsePeerName(name) : name;
    if (!this.topology.has(n)) return undefined;
    let p = this.peerObjects.get(n);
    if (!p) {
      p = new Peer(this, n);
      this.peerObjects.set(n, p);
    }
    return p;
  }

  /** Our direct links. */
  linkInfos(): LinkInfo[] {
    return [...this.links.values()].map((l) => ({ ...l.info }));
  }

  /** The current routes (recomputed lazily after topology changes). */
  get routes(): Routes {
    return this.topologyGossip.routes;
  }

  /** The topology records, for status and tests. */
  topologyRecords(): PeerRecord[] {
    return this.topology.select([...this.topology.records()].map((r) => r.name));
  }

  /** Connection maker targets. */
  targets(): TargetStatus[] {
    return this.maker.status();
  }

  // PeerSource, for Peer's live view.
  /** The peer's topology record; undefined when it is not known. */
  peerRecord(name: PeerName): PeerRecord | undefined {
    return this.topology.get(name);
  }

  /** A copy of our direct link to the peer; undefined when there is none. */
  link(name: PeerName): LinkInfo | undefined {
    const link = this.links.get(name);
    return link ? { ...link.info } : undefined;
  }

  /** True for ourselves and for peers reachable over the links the topology lists. */
  isReachable(name: PeerName): boolean {
    return name === this.selfName || this.routes.unicastAll(name) !== undefined;
  }

  /** Clock time we last heard from or about the peer (now, for ourselves); undefined if never. */
  lastSeen(name: PeerName): number | undefined {
    return name === this.selfName ? this.clock.now() : this.lastSeenAt.get(name);
  }

  /**
   * Registers an application gossip channel. Messages for channels a peer has not registered are
   * still relayed by it, so peers with different features can share a mesh.
   */
  registerGossip(name: string, handler: GossipHandler): GossipChannel {
    return this.gossip.register(name, handler, [TOPOLOGY_CHANNEL, INCARNATION_CHANNEL, TOPOLOGY_DIGEST_CHANNEL]);
  }

  /**
   * Plugs in a data plane before `start()`. From then on links start not established, and the data
   * plane reports when its path works with `setLinkEstablished`.
   */
  attachOverlay(overlay: LinkOverlay): void {
    if (this.state !== 'new') throw new OptionsError('attach the data plane before starting the router');
    if (this.overlay) throw new OptionsError('a data plane is already attached');
    this.overlay = overlay;
  }

  /** Marks our link to `peer` as carrying data (or not); the change is published in our topology record. */
  setLinkEstablished(peer: PeerName, established: boolean): void {
    const link = this.links.get(peer);
    if (!link || link.info.established === established || this.state !== 'running') return;
    link.info.established = established;
    this.updateLocalTopology(peer);
  }

  /** Sends a data-plane control message to a directly linked neighbour; false if there is no link. */
  sendOverlayControl(peer: PeerName, kind: number, payload: Uint8Array): boolean {
    const link = this.links.get(peer);
    if (!link) return false;
    return this.sendTo(link, { tag: MessageTag.OverlayControl, kind, payload });
  }

  /** A JSON-serialisable snapshot. */
  status(): MeshRouterStatus {
    const routes = this.routes;
    const others = [...this.topology.records()].map((r) => r.name).filter((n) => n !== this.selfName);
    const gossip = this.gossip.stats();
    const listenAddress = this.listenAddress;
    return {
      name: formatPeerName(this.selfName),
      nickname: this.nickname,
      uid: String(this.uid),
      encryption: this.encrypted,
      ...(listenAddress !== undefined ? { listenAddress } : {}),
      peerDiscovery: this.discovery,
      connectionLimit: this.connectionLimit,
      peers: this.peers().map((p) => p.toJSON()),
      links: this.linkInfos().map((l) => ({ ...l, peer: formatPeerName(l.peer) })),
      targets: this.targets(),
      unicastRoutes: others.flatMap((dest) => {
        const via = routes.unicast(dest);
        return via === undefined ? [] : [{ dest: formatPeerName(dest), via: formatPeerName(via) }];
      }),
      broadcastRoutes: [this.selfName, ...others].map((source) => ({
        source: formatPeerName(source),
        via: routes.broadcast(source).map(formatPeerName),
      })),
      gossip,
      ...(this.refusedWith ? { refused: this.refusedWith.message } : {}),
      refusals: this.incarnations.list().map((r) => ({ name: formatPeerName(r.name), refused: String(r.refused), kept: String(r.kept) })),
      stats: {
        ...this.linkTable.stats,
        handshakeFailures: { ...this.linkTable.stats.handshakeFailures },
        ...this.stats,
        digestsDeferred: this.topologyGossip.digestsDeferred,
      },
    };
  }

  // ---- links (see links.ts): incarnation checks, what an admitted or closed link changes ----

  /**
   * A newcomer using a name we know as reachable under another uid is a restart, unless the incarnation
   * we know answers a probe: then two are alive, and the newer one (greater uid: later start) is refused
   * here and, by broadcast, everywhere. Throws name-collision when the newcomer is the one refused.
   */
  private async vetIncarnation(connection: Connection): Promise<void> {
    const remote = connection.remote;
    if (remote.name === this.selfName) return; // admit() tells connect-to-self from a collision with us
    const known = this.incarnations.refusalOf(remote.name, remote.uid);
    if (known) throw this.refuseConnection(connection, known);
    const current = this.links.get(remote.name)?.uid ?? (this.isReachable(remote.name) ? this.topology.get(remote.name)?.uid : undefined);
    if (current === undefined || current === remote.uid || this.incarnations.isRefused(remote.name, current)) return;
    const answered = await this.incarnations.probe(remote.name, this.options.incarnationProbeMs ?? 2000);
    if (connection.closed) throw new ConnectionError('closed', `connection to ${connection.remoteAddress} closed while its peer name was checked`);
    if (answered !== current) return; // no answer (dead, frozen) or the newcomer itself answered: a restart
    const refusal: Refusal = remote.uid > current ? { name: remote.name, refused: remote.uid, kept: current } : { name: remote.name, refused: current, kept: remote.uid };
    if (this.incarnations.refuse(refusal)) this.onRefusals([refusal], this.selfName);
    if (refusal.refused === remote.uid) throw this.refuseConnection(connection, refusal);
  }

  /** Tells a refused incarnation why over its connection (it closes the link itself), and returns the error for our side. */
  private refuseConnection(connection: Connection, refusal: Refusal): HandshakeError {
    connection.send({
      tag: MessageTag.GossipUnicast,
      channel: INCARNATION_CHANNEL,
      source: this.selfName,
      destination: refusal.name,
      payload: this.incarnations.encodeRefusal(refusal),
    });
    return new HandshakeError(
      'name-collision',
      `${connection.remoteAddress} uses peer name ${formatPeerName(refusal.name)}, which a live peer (uid ${refusal.kept}) holds: its incarnation ${refusal.refused} is refused`,
    );
  }

  /** Acts on refusals new to us: step down, warn the owner, or drop links to the refused incarnation. */
  private onRefusals(refusals: readonly Refusal[], from: PeerName): void {
    for (const refusal of refusals) {
      const name = formatPeerName(refusal.name);
      if (refusal.name === this.selfName && refusal.refused === this.uid) {
        this.stepDown(refusal, from);
        continue;
      }
      if (refusal.name === this.selfName && refusal.kept === this.uid) {
        this.emit('name:collision', {
          ...refusal,
          message: `another peer started with our name ${name} (incarnation ${refusal.refused}) while we are alive: it is refused mesh-wide; find it (weave-ts status on the peers it dialled lists the refusal) and give it a unique name`,
        });
        continue;
      }
      this.emit('name:collision', {
        ...refusal,
        message: `two peers use the name ${name}: the newer incarnation ${refusal.refused} is refused, ${refusal.kept} keeps the name`,
      });
      const link = this.links.get(refusal.name);
      if (link && link.uid === refusal.refused) {
        link.connection.send({
          tag: MessageTag.GossipUnicast,
          channel: INCARNATION_CHANNEL,
          source: this.selfName,
          destination: refusal.name,
          payload: this.incarnations.encodeRefusal(refusal),
        });
        link.connection.close(new HandshakeError('name-collision', `${link.info.remoteAddress} uses the name ${name} of a live peer: refused`));
      }
      // Its record must not stand in for the incarnation that keeps the name.
      this.topologyGossip.discard(refusal.name, refusal.refused);
    }
  }

  /** The mesh refused us: another live peer holds our name. Keep no links, dial and accept nobody. */
  private stepDown(refusal: Refusal, from: PeerName): void {
    if (this.refusedWith) return;
    const message = `peer name ${formatPeerName(this.selfName)} is in use by a live peer (incarnation ${refusal.kept}) in this mesh, so ${formatPeerName(from)} refused this peer (incarnation ${this.uid}): it keeps no links and allocates no addresses. Restart it with a unique name (--name, or a data dir of its own)`;
    this.refusedWith = new HandshakeError('name-collision', message);
    this.emit('name:collision', { ...refusal, message });
    this.maker.stop();
    for (const link of [...this.links.values()]) {
      if (link.info.peer === from) this.emit('connection:failed', { address: link.info.remoteAddress, peer: from, error: this.refusedWith, bytesReceived: link.connection.bytesReceived });
      link.connection.close(this.refusedWith);
    }
    for (const connection of [...this.linkTable.pending]) connection.close(this.refusedWith);
  }

  /** A link was admitted (see Links): topology, gossip, the data plane and listeners learn of it. */
  private onLinkUp(link: Link): void {
    const peer = link.info.peer;
    this.lastSeenAt.set(peer, link.info.since);
    const known = this.topology.get(peer);
    this.updateLocalTopology(peer);
    if (known && known.uid !== link.uid) this.emit('peer:restarted', this.peer(peer) as Peer);
    this.sendAllGossipTo(link);
    this.overlay?.linkUp({
      peer,
      connectionId: link.connection.id,
      outbound: link.connection.outbound,
      remoteHost: link.connection.remoteHost,
      remotePort: link.connection.remote.listenPort,
      keys: link.connection.datagramKeys,
      capabilities: link.connection.remote.capabilities,
    });
    this.emit('connection:up', { ...link.info });
  }

  /** A link that held its neighbour's slot closed. */
  private onLinkDown(link: Link): void {
    this.overlay?.linkDown(link.info.peer);
    if (this.state === 'running') this.updateLocalTopology(link.info.peer, true);
  }

  // ---- topology ----

  /** Our links changed: topology gossip republishes our record, the connection maker learns what is linked. */
  private updateLocalTopology(neighbour: PeerName, lost = false): void {
    this.topologyGossip.linksChanged(neighbour, lost);
    this.maker.setConnected(
      [...this.links.values()].map((l) => l.info.listenAddress),
      this.links.keys(),
    );
  }

  /** A batch of topology changes: probes, discovery and listeners follow. */
  private onTopologyChanged(): void {
    // A probed name that just became unreachable cannot answer: its holder is gone (a restart).
    this.incarnations.abandon((name) => !this.links.has(name) && !this.isReachable(name));
    this.refreshDiscovered();
    this.emit('topology:changed');
  }

  private refreshDiscovered(): void {
    if (!this.discovery) return;
    const addresses: string[] = [];
    for (const record of this.topology.records()) {
      if (record.name === this.selfName) continue;
      for (const c of record.connections) {
        // Linked peers stay in the set: the maker keeps their backoff state for when the link drops.
        if (c.peer === this.selfName || c.address.endsWith(':0')) continue;
        addresses.push(c.address);
      }
    }
    this.maker.setDiscovered(addresses);
  }

  /** Peers garbage-collected from the topology: their live views retire with their last records. */
  private onPeersForgotten(records: ReadonlyMap<PeerName, PeerRecord | undefined>): void {
    for (const [name, record] of records) {
      const peer = this.peerObjects.get(name) ?? new Peer(this, name);
      peer.retire(record);
      this.peerObjects.delete(name);
      this.lastSeenAt.delete(name);
      this.emit('peer:down', peer);
    }
  }

  // ---- gossip ----

  private scheduleGossip(): void {
    const interval = this.options.gossipIntervalMs ?? 30_000;
    this.gossipTimer = this.clock.setTimer(interval, () => {
      this.topologyGossip.periodic();
      this.gossip.gossipAll();
      this.scheduleGossip();
    });
  }

  /** Full state of every channel down a new link. */
  private sendAllGossipTo(link: Link): void {
    this.topologyGossip.sendAllTo(link.info.peer);
    this.gossip.gossipAllTo(link.info.peer);
  }

  /** Sends on a link; a message over the cap is dropped and counted rather than thrown. */
  private sendTo(link: Link, message: ControlMessage): boolean {
    if (link.connection.send(message)) return true;
    if (!link.connection.closed) this.stats.messagesTooLarge += 1;
    return false;
  }

  private onMessage(link: Link, message: ControlMessage): void {
    const now = this.clock.now();
    link.info.lastReceived = now;
    this.lastSeenAt.set(link.info.peer, now);
    switch (message.tag) {
      case MessageTag.Heartbeat:
        return;
      case MessageTag.OverlayControl:
        this.overlay?.onControl(link.info.peer, message.kind, message.payload);
        this.emit('overlay:control', link.info.peer, message.kind, message.payload);
        return;
      case MessageTag.Gossip:
        this.onGossip(link, message.channel, message.payload);
        return;
      case MessageTag.GossipBroadcast:
        this.onBroadcast(link, message.channel, message.source, message.payload);
        return;
      case MessageTag.GossipUnicast:
        this.onUnicast(link, message);
        return;
    }
  }

  private onGossip(link: Link, channel: string, payload: Uint8Array): void {
    if (channel === TOPOLOGY_CHANNEL) this.topologyGossip.onGossip(link.info.peer, payload);
    else if (channel === TOPOLOGY_DIGEST_CHANNEL) this.topologyGossip.onDigest(link.info.peer, payload);
    else this.gossip.onGossip(link.info.peer, channel, payload);
  }

  private onBroadcast(link: Link, channel: string, source: PeerName, payload: Uint8Array): void {
    if (channel === TOPOLOGY_CHANNEL) this.topologyGossip.onBroadcast(link.info.peer, source, payload);
    else this.gossip.onBroadcast(link.info.peer, channel, source, payload);
  }

  private onUnicast(link: Link, message: UnicastMessage): void {
    if (message.channel === TOPOLOGY_CHANNEL) {
      this.topologyGossip.onRequest(link.info.peer, message);
      return;
    }
    this.gossip.onUnicast(link.info.peer, message, () => {
      this.stats.unknownChannelDropped += 1;
    });
  }
}

function validateOptions(o: MeshRouterOptions): void {
  if (o.password !== undefined && o.networkKey !== undefined) {
    throw new OptionsError('give either password or networkKey, not both');
  }
  if (o.name !== undefined && typeof o.name === 'number' && !isPeerName(o.name)) {
    throw new OptionsError(`name ${o.name} is not a valid 48-bit peer name (1 to 2^48-1)`);
  }
  if (o.name !== undefined && typeof o.name === 'string') {
    try {
      if (!isPeerName(parsePeerName(o.name))) throw new Error('reserved');
    } catch (cause) {
      throw new OptionsError(`name "${o.name}" is not a valid peer name: use MAC form like aa:bb:cc:dd:ee:ff`, { cause });
    }
  }
  if (o.nickname !== undefined && Buffer.byteLength(o.nickname) > 255) {
    throw new OptionsError('nickname is longer than 255 bytes');
  }
  if (o.listen !== undefined && o.listen !== false) parseListenAddress(o.listen);
  for (const p of o.peers ?? []) parseHostPort(p);
  for (const [key, value] of Object.entries({
    connectionLimit: o.connectionLimit,
    gossipIntervalMs: o.gossipIntervalMs,
    topologyDelayMs: o.topologyDelayMs,
    gcDelayMs: o.gcDelayMs,
  })) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new OptionsError(`${key} must be a non-negative number, got ${String(value)}`);
    }
  }
  if (o.gossipIntervalMs === 0) throw new OptionsError('gossipIntervalMs must be greater than 0');
}
