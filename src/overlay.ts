// Overlay: the composition root: mesh router, data plane, IPAM and DNS as one product, plus endpoints.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4 } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { systemClock, type Clock, type Timer } from './clock.js';
import { systemRandom, type Random } from './random.js';
import { EndpointError, NotReadyError, OptionsError, StateFileError, WeaveError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { VERSION } from './version.js';
import { MeshRouter, type MeshRouterOptions } from './mesh/router.js';
import type { BackoffOptions } from './mesh/connection-maker.js';
import type { Transport } from './mesh/transport.js';
import type { ConnectionTimings } from './mesh/connection.js';
import { Peer, type LinkInfo } from './mesh/peer.js';
import type { NetworkKey } from './crypto/network-key.js';
import { DataPlane } from './ethernet/data-plane.js';
import { probeMacOf, type FastPathTimings } from './ethernet/fast-path.js';
import { KernelVxlan } from './ethernet/kernel-vxlan.js';
import { systemNetCommand, type NetCommand } from './ethernet/net-command.js';
import { encryptedRefusal, isTrusted, parseTrustedSubnets, probeEsp } from './endpoint/fast-path-policy.js';
import type { SleeveTimings } from './ethernet/sleeve.js';
import type { PortId } from './ethernet/mac-table.js';
import { formatMac, macAt, parseMac, randomMac } from './ethernet/frame.js';
import { MemoryNic } from './nic/memory-nic.js';
import { TapNic } from './nic/tap-nic.js';
import type { Nic } from './nic/nic.js';
import { Ipam, type IpamConflict, type IpamInit } from './ipam/ipam.js';
import { blockOf, formatCidr, formatIPv4, hostRange, parseIPv4 } from './ipam/address.js';
import { parseHostPort, parseListenAddress } from './mesh/address.js';
import { Dns } from './dns/dns.js';
import { normaliseName } from './dns/records.js';
import type { DnsRecord } from './wire/dns-records.js';
import { formatPeerName, parsePeerName, randomPeerName, type PeerName } from './wire/peer-name.js';
import { KernelNetwork } from './endpoint/kernel-network.js';
import type { IpCommand } from './endpoint/ip-command.js';
import { validateContainerId } from './endpoint/container-id.js';
import { EndpointRegistry, ENDPOINTS_FILE } from './endpoint/registry.js';
import { KernelEndpoints } from './endpoint/kernel-endpoints.js';
import { describeIoError } from './persist/state-file.js';
import type { FileSystem } from './persist/file-system.js';
import { MemoryEndpoint, type ContainerCheck, type EndpointInfo } from './endpoint/memory-endpoint.js';
import { renderMetrics } from './status/metrics.js';
import type { OverlayState, OverlayStatus } from './status/overlay-status.js';
import { linkViews, type OverlayLinkView } from './status/links.js';
import { HandshakeFailureLog } from './status/handshake-failures.js';
import { describeUnready, readiness, type OverlayReadiness, type ReadinessQuery } from './status/readiness.js';
import { checkTimeout, waitUntil, type WaitOptions } from './wait.js';
import { checkTcpConfig, DEFAULT_TCP_CONFIG, type ResolveOptions, type TcpConfigOptions } from './stack/index.js';
import { withDefaults, type Overrides } from './options.js';

export type { OverlayState, OverlayStatus } from './status/overlay-status.js';

/** Weave's default endpoint MTU: fits an encrypted sleeve packet in a 1500-byte underlay. */
export const DEFAULT_ENDPOINT_MTU = 1376;

/** How long `link:changed` waits for a burst of topology updates to end before comparing views (ms). */
const LINK_REPORT_DELAY_MS = 50;
export { EXPOSE_ID } from './endpoint/kernel-endpoints.js';

/** IPAM settings of an overlay. */
export interface OverlayIpamOptions {
  /** The allocation range (default 10.32.0.0/12); the same on every peer. */
  range?: string | undefined;
  /** The subnet endpoints get addresses from when they name none (default: the whole range). */
  defaultSubnet?: string | undefined;
  /** How the range is first divided (default: consensus among the `peers` given + 1, Weave's rule; see docs/ipam.md §3). */
  init?: IpamInit | undefined;
  /** Hand the ranges of a peer unreachable this long to a live one (default: never; use `rmpeer`). */
  autoReclaimAfterMs?: number | undefined;
}

/** DNS settings of an overlay. */
export interface OverlayDnsOptions {
  /** The domain of endpoint names (default `weave.local.`). */
  domain?: string | undefined;
  /** Also serve names on this `host:port` from start (default: none; `expose()` adds the host's overlay address). */
  listen?: string | undefined;
  /** The port the DNS server uses on the host's overlay address after `expose()` (default 53). */
  exposedPort?: number | undefined;
  /** Answer TTL in seconds (default 5). */
  ttl?: number | undefined;
  /** Upstream resolvers for other names (default: from /etc/resolv.conf). */
  upstream?: string[] | undefined;
  /** How long names of an unreachable peer keep being served, marked stale (default 10 min). */
  staleGraceMs?: number | undefined;
}

/** Timing knobs, mostly for tests; the defaults follow Weave. */
export interface OverlayTuning {
  /** Period of full gossip to random neighbours, in ms (default 30 s). */
  gossipIntervalMs?: number | undefined;
  /** Coalescing delay for topology updates after local link changes, in ms (default 1 s). */
  topologyDelayMs?: number | undefined;
  /** Delay before unreachable peers are forgotten after topology arrives, in ms (default 1 s). */
  gcDelayMs?: number | undefined;
  /** Control links: handshake deadline, heartbeat interval and silence timeout. */
  connection?: Overrides<ConnectionTimings> | undefined;
  /** Reconnect backoff of dialled peers. */
  backoff?: Overrides<BackoffOptions> | undefined;
  /** Data plane: UDP heartbeat and MTU probe timing. */
  sleeve?: Overrides<SleeveTimings> | undefined;
  /** Fast datapath: heartbeat timing of the VXLAN tunnels and their health timeout. */
  fastPath?: Overrides<FastPathTimings> | undefined;
  /** IPAM retry period (default 5 s). */
  ipamTickMs?: number | undefined;
}

/** Options of an overlay; everything has a sane default, so `new Overlay({ password })` is a full peer. */
export interface OverlayOptions {
  /** Permanent peer name (MAC form); default: persisted in `dataDir`, else random. */
  name?: string | undefined;
  /** Display name (default: the host name). */
  nickname?: string | undefined;
  /** Control (TCP) and data (UDP) address, `host:port` (default `0.0.0.0:6783`; port 0 picks one), or false. */
  listen?: string | false | undefined;
  /** Peers to connect to (`host[:port]`). */
  peers?: readonly string[] | undefined;
  /** Network password: encrypts and authenticates every link. Without it the overlay is open to anyone who can reach it. */
  password?: string | Uint8Array | undefined;
  /** A network key already stretched with `deriveNetworkKey`, instead of `password`. */
  networkKey?: NetworkKey | undefined;
  /** Connect to peers learned from others (default true). */
  discovery?: boolean | undefined;
  /** Most links (default 200). */
  connectionLimit?: number | undefined;
  /** Where the peer name, IPAM state and kernel endpoints persist (default: nothing persists). */
  dataDir?: string | undefined;
  /** File access for `dataDir`'s state files (default: node:fs); tests pass one that fails on purpose. */
  fileSystem?: FileSystem | undefined;
  /** Address allocation, or false to give every endpoint an explicit `ip`. */
  ipam?: false | OverlayIpamOptions | undefined;
  /** Name discovery, or false for none. */
  dns?: false | OverlayDnsOptions | undefined;
  /** Name of the Linux bridge kernel endpoints attach to (default `weave`; created on first use). */
  bridge?: string | undefined;
  /** IP MTU of endpoints (default 1376; larger is faster where the underlay carries fragments). */
  mtu?: number | undefined;
  /** Never send fragmented UDP on the underlay: discover each path's MTU instead. */
  noFragmentation?: boolean | undefined;
  /**
   * Kernel endpoints: carry unicast between bridges in kernel VXLAN tunnels (UDP port = listen port + 1)
   * where both peers run one and the link may go unencrypted, with the sleeve as fallback (default true).
   */
  fastdp?: boolean | undefined;
  /**
   * Kernel endpoints: checksum and TCP segmentation offloads on the bridge's TAP device (default true), and UDP
   * segmentation offload where the kernel has it (6.2 and later). The kernel then hands TCP streams (and the
   * datagrams of UDP GSO senders) over in super-frames of up to 64 KiB, which cross links that carry big datagrams
   * whole (the far kernel segments them) and are cut into segments for path-MTU links and in-process endpoints.
   */
  offload?: boolean | undefined;
  /**
   * Underlay subnets (CIDR) whose peers' links may skip encryption: with a password, only links to peers
   * inside them take the fast path (Weave Net's `--trusted-subnets`). Default none.
   */
  trustedSubnets?: string[] | undefined;
  /** TCP tunables of in-process endpoints (buffers, RTO bounds, user timeout, keep-alive, congestion control); see docs/tcp.md. */
  tcp?: TcpConfigOptions | undefined;
  /** A pino-compatible logger (default: silent). */
  logger?: Logger | undefined;
  /** Time source for every component (default `systemClock`); `weave-ts/testing` passes a fake clock. */
  clock?: Clock | undefined;
  /** Randomness for names, MACs, ids and jitter (default `systemRandom`); tests pass `seededRandom`. */
  random?: Random | undefined;
  /** Which libsodium binding to prefer (default native, falling back to WASM). */
  sodium?: 'native' | 'wasm' | undefined;
  /** Timing knobs, mostly for tests (default: Weave's timings). */
  tuning?: OverlayTuning | undefined;
  /** Runs iproute2 for kernel endpoints (default: the `ip` command). */
  ipCommand?: IpCommand | undefined;
  /** Sockets for links and sleeve packets (default: the OS's; `weave-ts/testing` passes a virtual wire). */
  transport?: Transport | undefined;
  /** @internal Extra router options (tests: socket injection). */
  router?: Overrides<MeshRouterOptions> | undefined;
  /** @internal Kernel endpoint seams for tests: where namespaces and resolver files live, how the TAP opens. */
  kernel?: {
    netnsRunDir?: string | undefined;
    netnsConfigDir?: string | undefined;
    openTap?: ((name: string, mtu: number, options?: { offload?: boolean }) => Promise<Nic>) | undefined;
    /** Runs `ip` and `bridge` for the fast path (default the real commands; off when only `ipCommand` is replaced). */
    netCommand?: NetCommand | undefined;
  } | undefined;
}

/** What to attach: a kernel namespace (`netns`) or, without it, an in-process endpoint. */
export interface AttachOptions {
  /** The endpoint's DNS name (a single label gets the overlay's domain). */
  name: string;
  /**
   * A kernel namespace, attach it through a veth on the bridge (needs root): an `ip netns` name, or the
   * path of a namespace file (`/proc/PID/ns/net`, `/var/run/netns/NAME`).
   */
  netns?: string | undefined;
  /**
   * With `netns`: the id a container runtime gave the container (CNI). The endpoint is then keyed by it
   * (IPAM and DNS id `container:ID`), gets a default route through the host's overlay address (exposed
   * if it is not yet), and attaching the same container to the same namespace and interface again
   * returns the endpoint as it is, so a runtime may repeat its request.
   */
  container?: string | undefined;
  /** Interface name inside the namespace (default `ethwe`, Weave's). */
  ifname?: string | undefined;
  /** A fixed address (CIDR, or an address taking the default subnet's prefix); default: allocated by IPAM. */
  ip?: string | undefined;
  /** Allocate from this subnet instead of the default one. */
  subnet?: string | undefined;
  /** In-process endpoints: the MAC (default random, locally administered). */
  mac?: string | undefined;
  /** In-process endpoints: TCP tunables for this endpoint, over the overlay's `tcp` option. */
  tcp?: TcpConfigOptions | undefined;
  /** Aborts the attach while it waits for IPAM (an allocation or claim still pending). */
  signal?: AbortSignal | undefined;
}

/** A kernel endpoint, as returned by `attach({ netns })`. */
export interface NetnsEndpoint {
  /** Always `netns`: tells it apart from a {@link MemoryEndpoint}. */
  kind: 'netns';
  /** What was attached: namespace, interface names, address and MAC. */
  info: EndpointInfo;
}

/** Typed events of an overlay; each payload, with examples, in [docs/events.md](../docs/events.md). */
export interface OverlayEvents {
  /** Another peer became known (directly linked or learned from topology); never this peer itself, which is `overlay.self`. */
  'peer:up': (peer: Peer) => void;
  /** A peer is no longer reachable and was forgotten; the `Peer` keeps the last nickname, uid and connections known. */
  'peer:down': (peer: Peer) => void;
  /** A known peer came back with a new incarnation (uid). */
  'peer:restarted': (peer: Peer) => void;
  /** A direct link to a neighbour came up (not yet carrying data: see `link:changed`). */
  'link:up': (link: LinkInfo) => void;
  /** A direct link closed; `error` says why (undefined for a clean close). */
  'link:down': (link: LinkInfo, error: WeaveError | undefined) => void;
  /**
   * How frames reach a peer changed: its `state` (`established`, `connecting`, `unreachable`), direct or
   * relayed (`via`), the first hop's mode and MTU. `via` and `mtu` are always set once `state` is `established`.
   * Compared once per burst of topology updates (at most every 50 ms): a state shorter than that may be skipped.
   * Not compared while nobody listens: a listener added later first hears every view that changed since the
   * last comparison.
   */
  'link:changed': (link: OverlayLinkView) => void;
  /** This peer allocated or recorded `address` (dotted quad, no prefix) for owner `id`. */
  'ipam:allocated': (id: string, address: string) => void;
  /** This peer freed `address` (dotted quad) of owner `id`. */
  'ipam:released': (id: string, address: string) => void;
  /** One of our addresses now lies in a range another peer owns; also reported as a warning. */
  'ipam:conflict': (conflict: IpamConflict) => void;
  /** DNS records became live or went away, on any peer. */
  'dns:changed': (added: readonly DnsRecord[], removed: readonly DnsRecord[]) => void;
  /** An endpoint of either kind was attached (not emitted for kernel endpoints resumed at start). */
  'endpoint:attached': (endpoint: EndpointInfo) => void;
  /** An endpoint was detached; its address and name are freed. */
  'endpoint:detached': (endpoint: EndpointInfo) => void;
  /** Something an operator should know; also logged. */
  warning: (message: string) => void;
}

/** An attached endpoint of either kind. */
export type Endpoint = MemoryEndpoint | NetnsEndpoint;

/** Options of {@link Overlay.ready}. */
export interface ReadyOptions extends WaitOptions {
  /**
   * What to wait for: peer names, nicknames or `host:port` targets. Default: every configured target
   * (`peers` option, `connect()`) and every peer known so far.
   */
  peers?: readonly string[] | undefined;
  /** Wait for IPAM's ring too (default true when IPAM is on); the wait also starts consensus. */
  ipam?: boolean | undefined;
}

interface MemoryAttachment {
  endpoint: MemoryEndpoint;
  port: PortId | undefined;
  nics: MemoryNic[];
}

/**
 * One peer of a Weave-style overlay network: an encrypted mesh of peers, one virtual Ethernet segment
 * across them, addresses allocated without a cluster store, and names resolvable everywhere.
 *
 * ```ts
 * const overlay = new Overlay({ password, peers: ['192.0.2.2'] });
 * await overlay.start();
 * const db = await overlay.attach({ name: 'db' });          // in-process endpoint with an IP and a name
 * await overlay.attach({ name: 'web', netns: 'web' });       // a kernel namespace (root)
 * ```
 * @category Overlay
 */
export class Overlay extends EventEmitter<OverlayEvents> {
  /** The mesh router (links, topology, gossip). */
  readonly router: MeshRouter;
  /** The data plane (switch and sleeve). */
  readonly dataPlane: DataPlane;
  /** The address allocator, unless `ipam: false`. */
  readonly ipam: Ipam | undefined;
  /** The name service, unless `dns: false`. */
  readonly dns: Dns | undefined;
  /** IP MTU of endpoints (`mtu` option, default {@link DEFAULT_ENDPOINT_MTU}). */
  readonly mtu: number;
  private readonly options: OverlayOptions;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly kernel: KernelNetwork;
  private readonly kernelEndpoints: KernelEndpoints;
  private readonly memory = new Map<string, MemoryAttachment>();
  private readonly attaching = new Set<string>();
  private readonly warnings: string[] = [];
  private readonly handshakeFailures: HandshakeFailureLog;
  private tap: Nic | undefined;
  /** The fast path's probe TAP (heartbeats through the tunnels), while it runs. */
  private probeTap: Nic | undefined;
  private kernelReady: Promise<void> | undefined;
  private lifecycle: OverlayState = 'new';
  private startPromise: Promise<void> | undefined;
  private startAttempt: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private lastLinkViews = new Map<string, string>();
  private linkReportTimer: Timer | undefined;
  /** A peer name chosen for a data dir that had none: written by start(). */
  private unsavedPeerName: string | undefined;

  constructor(options: OverlayOptions = {}) {
    super();
    validateOverlayOptions(options);
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.mtu = options.mtu ?? DEFAULT_ENDPOINT_MTU;
    // The data dir is only read here: a new peer name is written by start(), so a refused option writes nothing.
    const saved = options.name === undefined && options.dataDir ? readPeerName(options.dataDir) : undefined;
    const name = options.name ?? saved ?? (options.dataDir ? formatPeerName(randomPeerName((b) => this.random.fill(b))) : undefined);
    if (options.dataDir && options.name === undefined && saved === undefined) this.unsavedPeerName = name;
    const tuning = options.tuning ?? {};
    this.router = new MeshRouter({
      ...(name !== undefined ? { name } : {}),
      ...(options.nickname !== undefined ? { nickname: options.nickname } : {}),
      ...(options.listen !== undefined ? { listen: options.listen } : {}),
      ...(options.peers ? { peers: options.peers } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...(options.networkKey ? { networkKey: options.networkKey } : {}),
      ...(options.discovery !== undefined ? { discovery: options.discovery } : {}),
      ...(options.connectionLimit !== undefined ? { connectionLimit: options.connectionLimit } : {}),
      ...(tuning.gossipIntervalMs !== undefined ? { gossipIntervalMs: tuning.gossipIntervalMs } : {}),
      ...(tuning.topologyDelayMs !== undefined ? { topologyDelayMs: tuning.topologyDelayMs } : {}),
      ...(tuning.gcDelayMs !== undefined ? { gcDelayMs: tuning.gcDelayMs } : {}),
      ...(tuning.connection ? { timings: tuning.connection } : {}),
      ...(tuning.backoff ? { backoff: tuning.backoff } : {}),
      ...(options.sodium ? { sodium: options.sodium } : {}),
      clock: this.clock,
      random: this.random,
      ...(options.transport ? { transport: options.transport } : {}),
      ...options.router,
    });
    this.dataPlane = new DataPlane(this.router, {
      clock: this.clock,
      ...(options.noFragmentation ? { noFragmentation: true } : {}),
      ...(options.offload === false ? { superFrames: false } : {}),
      ...(tuning.sleeve ? { timings: tuning.sleeve } : {}),
      ...(options.sodium ? { sodium: options.sodium } : {}),
    });
    this.ipam =
      options.ipam === false
        ? undefined
        : new Ipam(this.router, {
            ...(options.ipam?.range ? { range: options.ipam.range } : {}),
            ...(options.ipam?.defaultSubnet ? { defaultSubnet: options.ipam.defaultSubnet } : {}),
            ...(options.ipam?.init ? { init: options.ipam.init } : {}),
            ...(options.ipam?.autoReclaimAfterMs !== undefined ? { autoReclaimAfterMs: options.ipam.autoReclaimAfterMs } : {}),
            ...(options.dataDir ? { dataDir: options.dataDir } : {}),
            ...(options.fileSystem ? { fileSystem: options.fileSystem } : {}),
            ...(tuning.ipamTickMs !== undefined ? { tickMs: tuning.ipamTickMs } : {}),
            clock: this.clock,
            random: this.random,
          });
    const dns = options.dns === false ? undefined : (options.dns ?? {});
    this.dns = dns
      ? new Dns(this.router, {
          ...(dns.domain ? { domain: dns.domain } : {}),
          // Without `listen`, servers start only with expose(); they still take the TTL and upstreams given here.
          server: { listen: dns.listen ?? false, ...serverTuning(dns) },
          ...(dns.staleGraceMs !== undefined ? { staleGraceMs: dns.staleGraceMs } : {}),
          clock: this.clock,
        })
      : undefined;
    this.kernel = new KernelNetwork({
      bridge: options.bridge ?? 'weave',
      mtu: this.mtu,
      ...(options.ipCommand ? { ip: options.ipCommand } : {}),
      ...(options.kernel?.netnsRunDir ? { netnsRunDir: options.kernel.netnsRunDir } : {}),
      ...(options.kernel?.netnsConfigDir ? { netnsConfigDir: options.kernel.netnsConfigDir } : {}),
    });
    this.kernelEndpoints = new KernelEndpoints({
      kernel: this.kernel,
      registry: options.dataDir ? new EndpointRegistry(join(options.dataDir, ENDPOINTS_FILE), options.fileSystem) : undefined,
      ipam: this.ipam,
      dns: this.dns,
      mtu: this.mtu,
      dnsPort: dns?.exposedPort ?? 53,
      range: this.ipam ? formatCidr(this.ipam.range) : undefined,
      addressFor: (id, o) => this.addressFor(id, o),
      ensureKernel: () => this.ensureKernel(),
      logger: this.logger,
      warn: (message) => this.warn(message),
    });
    if (!this.router.encrypted) this.warnings.push('no password: links are neither encrypted nor authenticated; anyone who can reach the port can join');
    this.handshakeFailures = new HandshakeFailureLog({ clock: this.clock, logger: this.logger });
    this.forwardEvents();
  }

  /** This peer. */
  get self(): Peer {
    return this.router.self;
  }

  /** Where the overlay is in its life: `new` until `start()`, `stopped` for good after `stop()`. */
  get state(): OverlayState {
    return this.lifecycle;
  }

  /** Starts the mesh, IPAM and DNS, and resumes persisted kernel endpoints; idempotent and AbortSignal-aware. */
  start(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return Promise.reject(new EndpointError('not-running', 'this overlay was stopped: create a new Overlay to start again'));
    }
    if (this.startPromise) return this.startPromise;
    this.startAttempt = this.doStart(options.signal);
    this.startPromise = this.startAttempt.catch(async (error: unknown) => {
      this.logger.error({ err: error }, 'overlay failed to start');
      await this.stop().catch(() => undefined);
      throw error;
    });
    return this.startPromise;
  }

  private async doStart(signal: AbortSignal | undefined): Promise<void> {
    this.lifecycle = 'starting';
    for (const warning of this.warnings) this.logger.warn({}, warning);
    if (this.unsavedPeerName && this.options.dataDir) {
      writePeerName(this.options.dataDir, this.unsavedPeerName);
      this.unsavedPeerName = undefined;
    }
    // IPAM and DNS join their gossip channels before the router dials, so the state every new link
    // sends lands in them instead of passing by unheard.
    this.ipam?.on('warning', (message) => this.warn(message));
    await this.ipam?.start();
    await this.dns?.start();
    signal?.throwIfAborted();
    await this.router.start(signal ? { signal } : {});
    signal?.throwIfAborted();
    if (this.options.dataDir) {
      await this.kernelEndpoints.recover();
      await this.releaseStaleMemoryAllocations();
    }
    this.lifecycle = 'running';
    this.logger.info(
      { peer: this.self.id, nickname: this.router.nickname, listen: this.router.listenAddress, encrypted: this.router.encrypted, crypto: this.router.cryptoBackend },
      'overlay running',
    );
  }

  /**
   * Stops everything; idempotent. In-process endpoints are closed. Kernel endpoints stay in place when a
   * `dataDir` persists them (a restarted overlay resumes them) unless `detach` is set; without a data dir
   * they are always removed, since nothing could resume them. With `transfer`, this peer's address
   * ranges go to a reachable peer first (for a peer leaving for good, as `weave-ts reset --force` does).
   */
  stop(options: { detach?: boolean | undefined; transfer?: boolean | undefined } = {}): Promise<void> {
    this.stopPromise ??= this.doStop(options.detach ?? !this.options.dataDir, options.transfer ?? false);
    return this.stopPromise;
  }

  private async doStop(detach: boolean, transfer: boolean): Promise<void> {
    await this.startAttempt?.catch(() => undefined); // the raw attempt: startPromise itself waits for this stop on failure
    this.lifecycle = 'stopping';
    for (const name of [...this.memory.keys()]) await this.detachMemory(name).catch((error: unknown) => this.logger.warn({ err: error }, 'detach failed'));
    if (detach) {
      for (const { netns, container } of this.kernelEndpoints.list()) {
        const target = container !== undefined ? this.detach({ container }) : netns ? this.detach(netns) : undefined;
        await target?.catch((error: unknown) => this.logger.warn({ err: error, netns }, 'detach failed'));
      }
      if (this.kernelEndpoints.exposed) await this.hide().catch((error: unknown) => this.logger.warn({ err: error }, 'hide failed'));
    }
    await this.dns?.stop();
    await this.ipam?.stop({ transfer });
    await this.router.stop(); // the data plane stops with it and removes the fast path's tunnels
    await this.probeTap?.close();
    this.probeTap = undefined;
    await this.tap?.close();
    this.tap = undefined;
    if (detach && this.kernelReady) await this.kernel.removeBridge().catch(() => undefined);
    this.linkReportTimer?.cancel();
    this.linkReportTimer = undefined;
    this.lifecycle = 'stopped';
    this.logger.info({}, 'overlay stopped');
  }

  /** Same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Adds a peer to connect to (`host[:port]`), kept as a target with backoff. */
  connect(address: string): void {
    this.router.connect(address);
  }

  /** Stops connecting to an address (an established link stays until it breaks). */
  forget(address: string): void {
    this.router.forget(address);
  }

  /** The peers this peer knows, itself included. */
  peers(): Peer[] {
    return this.router.peers();
  }

  /**
   * Gives a dead peer's address ranges to a live one (by name or unique nickname); refused while the
   * peer is reachable. Returns how many addresses moved.
   */
  rmpeer(peer: string): number {
    const ipam = this.requireIpam('rmpeer');
    return ipam.rmpeer(this.resolvePeer(peer));
  }

  /**
   * Attaches an endpoint: with `netns`, a veth from the bridge into that namespace (root); without it,
   * an in-process endpoint with a userspace IPv4 stack. Either gets an address (IPAM or `ip`), a name
   * in DNS, and a resolver.
   */
  attach(options: AttachOptions & { netns: string }): Promise<NetnsEndpoint>;
  attach(options: AttachOptions & { netns?: undefined }): Promise<MemoryEndpoint>;
  attach(options: AttachOptions): Promise<Endpoint>;
  async attach(options: AttachOptions): Promise<Endpoint> {
    this.requireRunning('attach');
    validateName(options.name);
    const refusal = this.router.refusal;
    if (refusal) throw new EndpointError('name-collision', `nothing is attached: ${refusal.message}`);
    if (options.container !== undefined) {
      validateContainerId(options.container);
      if (options.netns === undefined) throw new OptionsError('attach with a container id needs the container\'s netns');
    }
    if (options.netns !== undefined) {
      const before = options.container === undefined ? undefined : this.kernelEndpoints.container(options.container);
      const info = await this.kernelEndpoints.attach({ ...options, netns: options.netns });
      if (before && before.mac !== info.mac) this.afterKernelDetach(before); // a stale endpoint of the container was replaced
      if (!before || before.mac !== info.mac) this.emit('endpoint:attached', info);
      return { kind: 'netns', info };
    }
    return this.attachMemory(options);
  }

  /**
   * Detaches an endpoint by namespace or in-process name, by container id, or the endpoint itself: frees
   * its address and name. A container that is not attached is not an error (a runtime's DEL may repeat):
   * the result says whether anything was detached.
   */
  async detach(target: { container: string }): Promise<boolean>;
  async detach(target: string | Endpoint): Promise<void>;
  async detach(target: string | Endpoint | { container: string }): Promise<void | boolean> {
    const container = typeof target === 'string' || target instanceof MemoryEndpoint ? undefined : 'container' in target ? target.container : target.info.container;
    if (container !== undefined) {
      validateContainerId(container);
      const info = await this.kernelEndpoints.detachContainer(container);
      this.afterKernelDetach(info);
      return info !== undefined;
    }
    const key = typeof target === 'string' ? target : target instanceof MemoryEndpoint ? target.name : 'info' in target ? (target.info.netns ?? target.info.name) : '';
    if (this.memory.has(key)) return this.detachMemory(key);
    if (this.kernelEndpoints.has(key)) {
      this.afterKernelDetach(await this.kernelEndpoints.detach(key));
      return;
    }
    throw new EndpointError('not-found', `no endpoint "${key}" is attached: endpoints() lists those that are`);
  }

  /** Compares a container's endpoint with the kernel (namespace, interface, MAC, address, routes); undefined when it is not attached. */
  checkContainer(container: string): Promise<ContainerCheck | undefined> {
    validateContainerId(container);
    return this.kernelEndpoints.check(container);
  }

  private afterKernelDetach(info: EndpointInfo | undefined): void {
    const mac = info ? parseMac(info.mac) : undefined;
    if (mac) this.dataPlane.forgetLocalMacs([macAt(mac, 0)]);
    if (info) this.emit('endpoint:detached', info);
  }

  /** Every attached endpoint. */
  endpoints(): EndpointInfo[] {
    return [...[...this.memory.values()].map((m) => m.endpoint.info), ...this.kernelEndpoints.list()];
  }

  /** Endpoints as status shows them: in-process ones with their TCP counters. */
  private endpointStatus(): EndpointInfo[] {
    return [
      ...[...this.memory.values()].map((m) => {
        const tcp = m.endpoint.tcpStats();
        return tcp ? { ...m.endpoint.info, tcp } : m.endpoint.info;
      }),
      ...this.kernelEndpoints.list(),
    ];
  }

  /** An in-process endpoint by name. */
  endpoint(name: string): MemoryEndpoint | undefined {
    return this.memory.get(name)?.endpoint;
  }

  /**
   * Gives the host itself an overlay address on the bridge (root), so host processes reach endpoints;
   * the DNS server listens there too. Returns the address (CIDR). Idempotent.
   */
  expose(options: { ip?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<string> {
    this.requireRunning('expose');
    return this.kernelEndpoints.expose(options);
  }

  /** Removes the host's overlay address. */
  hide(): Promise<void> {
    return this.kernelEndpoints.hide();
  }

  /** A JSON-serialisable snapshot of the router, links, data plane, IPAM, DNS and endpoints. */
  status(): OverlayStatus {
    const dataPlane = this.dataPlane.status();
    return {
      version: VERSION,
      state: this.lifecycle,
      router: this.router.status(),
      links: linkViews(this.router, dataPlane),
      dataPlane,
      ...(this.ipam ? { ipam: this.ipam.status() } : {}),
      ...(this.dns ? { dns: this.dns.status() } : {}),
      endpoints: this.endpointStatus(),
      ...(this.kernelEndpoints.exposed ? { exposed: this.kernelEndpoints.exposed } : {}),
      ...(this.kernelReady ? { bridge: { name: this.kernel.bridge, tap: this.kernel.tapName, mtu: this.kernel.mtu } } : {}),
      handshakeFailures: this.handshakeFailures.recent(),
      warnings: [...this.warnings, ...this.kernelEndpoints.hostWarnings(), ...this.collisionWarnings(), ...this.ipamWarnings(), ...receiveWarnings(dataPlane, this.options.transport === undefined)],
    };
  }

  /** This peer refused by the mesh, or another peer refused for using our name. */
  private collisionWarnings(): string[] {
    const r = this.router;
    if (r.refusal) return [r.refusal.message];
    return r
      .refusals()
      .filter((x) => x.name === r.selfName && x.kept === r.uid)
      .map((x) => `another peer started with our name ${r.self.id} (incarnation ${x.refused}) while we are alive: it is refused mesh-wide; give it a unique name`);
  }

  /** What IPAM knows is wrong now: rings refused for their seeds, addresses inside another peer's range. */
  private ipamWarnings(): string[] {
    const status = this.ipam?.status();
    if (!status) return [];
    return [
      ...status.refusedRings.map(
        (r) =>
          `IP allocation was seeded by different peers: the ring of ${r.peer}${r.nickname ? ` (${r.nickname})` : ''}, seeded by ${r.seeds.join(', ')}, is refused; ours was seeded by ${status.seeds.join(', ')}`,
      ),
      ...status.conflicts.map((c) => `address ${c.address} (${c.id}) lies in a range owned by ${c.owner}`),
    ];
  }

  /**
   * Where readiness stands now: each awaited peer (see {@link ReadyOptions.peers}) and IPAM. A snapshot;
   * {@link Overlay.ready} waits for it to become ready.
   */
  readiness(query: ReadinessQuery = {}): OverlayReadiness {
    return readiness(this.router, this.dataPlane.status(), this.ipam, query);
  }

  /**
   * Waits until the mesh is usable: every awaited peer reachable over established data links (frames
   * flow), and IPAM's ring established (consensus is started if nobody asked for an address yet).
   * Resolves with the report; called while `start()` runs, it waits for the start first. Rejects with
   * NotReadyError `timeout` after `timeoutMs` (default 30 s; `Infinity` waits until aborted) or `aborted`,
   * whose `waitingFor` (and message) say which peers are unreachable or have no data link, and how far
   * IPAM got; EndpointError `not-running` when the overlay is not started, or stops while waiting.
   * With the real clock the wait keeps the process alive.
   */
  async ready(options: ReadyOptions = {}): Promise<OverlayReadiness> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    checkTimeout(timeoutMs, 'ready');
    const { signal } = options;
    const startedAt = this.clock.now();
    if (this.lifecycle === 'starting' && this.startPromise) await this.startPromise;
    this.requireRunning('ready');
    const query: ReadinessQuery = { ...(options.peers ? { peers: options.peers } : {}), ...(options.ipam !== undefined ? { ipam: options.ipam } : {}) };
    // Awaiting IPAM asks for the ring, as Weave's `prime` does; stopped when the wait ends.
    const priming = new AbortController();
    if (this.ipam && options.ipam !== false) this.ipam.prime({ timeoutMs: Infinity, signal: priming.signal }).catch(() => undefined);
    const remainingMs = Math.max(0, timeoutMs - (this.clock.now() - startedAt));
    const unready = (): string[] => describeUnready(this.readiness(query));
    const events = ['link:changed', 'link:up', 'link:down', 'peer:up', 'peer:down'] as const;
    try {
      return await waitUntil<OverlayReadiness>(
        this.clock,
        {
          timeoutMs: remainingMs,
          signal,
          timeout: () => {
            const missing = unready();
            return new NotReadyError('timeout', `the overlay is not ready after ${timeoutMs} ms: ${missing.join('; ')}`, missing);
          },
          aborted: (reason) => new NotReadyError('aborted', 'waiting for the overlay to be ready was aborted', unready(), { cause: reason }),
        },
        {
          check: () => {
            if (this.lifecycle !== 'running') throw new EndpointError('not-running', `the overlay stopped while ready() waited (state: ${this.lifecycle})`);
            const report = this.readiness(query);
            return report.ready ? report : undefined;
          },
          subscribe: (onChange) => {
            for (const event of events) this.on(event, onChange);
            this.ipam?.on('ring:changed', onChange);
            return () => {
              for (const event of events) this.off(event, onChange);
              this.ipam?.off('ring:changed', onChange);
            };
          },
          // Dial retries and stop() emit nothing here: a slow poll notices them.
          pollMs: 100,
        },
      );
    } finally {
      priming.abort();
    }
  }

  /** Metrics in the Prometheus text exposition format (Weave's names where Weave had one). */
  metrics(): string {
    return renderMetrics(this.status(), this.tap?.stats);
  }

  // ---- in-process endpoints ----

  private async attachMemory(options: AttachOptions): Promise<MemoryEndpoint> {
    const name = options.name;
    if (this.memory.has(name) || this.attaching.has(name)) throw new EndpointError('already-exists', `an in-process endpoint named "${name}" is already attached`);
    const id = `mem:${name}`;
    const mac = options.mac ? parseMacOption(options.mac) : randomMac((b) => this.random.fill(b));
    this.attaching.add(name); // reserved while the address is allocated, so a concurrent attach of the name fails
    let address: string;
    try {
      address = await this.addressFor(id, options);
    } finally {
      this.attaching.delete(name);
    }
    let port: MemoryNic;
    let nic: MemoryNic;
    let endpoint: MemoryEndpoint;
    try {
      // The endpoint's end carries its MAC (the stack sends from it and answers ARP with it); the switch's end needs none of its own.
      [port, nic] = MemoryNic.pair({ name, mtu: this.mtu, peerMac: mac });
      endpoint = new MemoryEndpoint(
        { kind: 'memory', name, ...(this.dns ? { fqdn: normaliseName(name, this.dns.domain) } : {}), id, address, mac: formatMac(mac), mtu: this.mtu },
        nic,
        { clock: this.clock, random: this.random, resolve: (n, o) => this.resolveName(n, o), tcp: withDefaults(this.options.tcp ?? {}, options.tcp) },
      );
    } catch (error) {
      await this.ipam?.release(id); // nothing else was set up: give the address back
      throw error;
    }
    const { info } = endpoint;
    const portId = this.dataPlane.attach(port);
    this.memory.set(name, { endpoint, port: portId, nics: [port, nic] });
    endpoint.stack.announce(); // peers that cached the address with another MAC (its previous holder) learn the new one
    this.dns?.add(name, hostPart(address), { id });
    this.emit('endpoint:attached', info);
    this.logger.info({ endpoint: name, address }, 'endpoint attached');
    return endpoint;
  }

  private async detachMemory(name: string): Promise<void> {
    const attachment = this.memory.get(name);
    if (!attachment) return;
    this.memory.delete(name);
    const { info } = attachment.endpoint;
    await attachment.endpoint.close();
    // The stack reset its TCP connections on close: one turn lets those RSTs cross the memory NIC to the switch.
    await new Promise((resolve) => setImmediate(resolve));
    if (attachment.port !== undefined) this.dataPlane.detach(attachment.port);
    await Promise.all(attachment.nics.map((n) => n.close()));
    this.dns?.remove({ id: info.id });
    await this.ipam?.release(info.id);
    this.emit('endpoint:detached', info);
  }

  /** An endpoint's resolver: a name not known yet is waited for (it may be gossiped any moment), as a resolver retries. */
  private async resolveName(name: string, options: ResolveOptions): Promise<string[]> {
    if (!this.dns) return [];
    const known = this.dns.lookup(name).filter((a) => isIPv4(a));
    if (known.length > 0 || options.timeoutMs === 0) return known;
    try {
      return await this.dns.waitFor(name, { family: 4, timeoutMs: options.timeoutMs, signal: options.signal });
    } catch (error) {
      if (error instanceof NotReadyError && error.code === 'timeout') return [];
      throw error;
    }
  }

  // ---- kernel endpoints ----

  /** A TAP device at the overlay's MTU (the test seam `kernel.openTap`, else the native binding). */
  private openTap(name: string, options: { offload?: boolean } = {}): Promise<Nic> {
    const open = this.options.kernel?.openTap;
    return open ? open(name, this.mtu, options) : TapNic.open({ name, mtu: this.mtu, offload: options.offload });
  }

  /** Creates the bridge and the TAP on first use (root). */
  private ensureKernel(): Promise<void> {
    this.kernelReady ??= (async () => {
      await this.kernel.ensureBridge();
      const tap = await this.openTap(this.kernel.tapName, { offload: this.options.offload !== false });
      try {
        await this.kernel.plugTap();
      } catch (error) {
        await tap.close();
        throw error;
      }
      this.tap = tap;
      const port = this.dataPlane.attach(tap);
      this.logger.info({ bridge: this.kernel.bridge, tap: tap.name, mtu: this.mtu, offload: tap.offload === true, udpOffload: tap.udpOffload === true }, 'kernel bridge ready');
      if (port !== undefined) await this.startFastPath(port);
      else this.dataPlane.setFastPathOff('the bridge came up before the data plane started');
    })().catch((error: unknown) => {
      this.kernelReady = undefined;
      throw error;
    });
    return this.kernelReady;
  }

  /**
   * Starts the fast path on the new bridge: removes tunnels of an earlier run, isolates the TAP from the
   * tunnels, opens the probe TAP. It never fails the bridge: when the kernel refuses, links stay on the
   * sleeve and status says why.
   */
  private async startFastPath(bridgePort: PortId): Promise<void> {
    const o = this.options;
    const off = (reason: string): void => this.dataPlane.setFastPathOff(reason);
    if (o.fastdp === false) return off('turned off (fastdp: false, --no-fastdp)');
    const run = o.kernel?.netCommand ?? (o.ipCommand ? undefined : systemNetCommand);
    if (!run) return off('ipCommand is replaced without kernel.netCommand: the fast path would run the real `bridge` command');
    const port = this.router.port + 1;
    if (this.router.port === 0 || port > 65535) return off(`no VXLAN port: it is the listen port + 1, and the listen port is ${this.router.port}`);
    const trusted = parseTrustedSubnets(o.trustedSubnets ?? []);
    let encrypted: string | undefined;
    if (this.router.encrypted) {
      encrypted = encryptedRefusal(await probeEsp(run));
      if (trusted.length === 0) return off(encrypted);
    }
    const kernel = new KernelVxlan({ bridge: this.kernel.bridge, port, mtu: this.mtu, command: run });
    let probe: Nic | undefined;
    try {
      for (const device of await kernel.tunnels()) await kernel.destroyTunnel(device);
      await kernel.isolate(this.kernel.tapName);
      probe = await this.openTap(`${this.kernel.bridge}-fdp`);
      await kernel.plugProbe(probe.name, formatMac(probeMacOf(this.router.selfName)));
    } catch (error) {
      await probe?.close();
      const reason = `the kernel refused to set it up: ${(error as Error).message}`;
      this.warn(`fast datapath off, links use the sleeve: ${reason}`);
      return off(reason);
    }
    this.probeTap = probe;
    this.dataPlane.enableFastPath({
      kernel,
      probe,
      bridgePort,
      refusal: (underlay) => (encrypted === undefined || isTrusted(trusted, underlay) ? undefined : encrypted),
      warn: (message) => this.warn(message),
      ...(o.tuning?.fastPath ? { timings: o.tuning.fastPath } : {}),
    });
    this.logger.info({ port, trustedSubnets: o.trustedSubnets ?? [] }, 'fast datapath ready');
  }

  /** In-process endpoints never outlive their process: allocations a previous run left for them are freed. */
  private async releaseStaleMemoryAllocations(): Promise<void> {
    for (const { id, addresses } of this.ipam?.status().allocated ?? []) {
      if (!id.startsWith('mem:')) continue;
      await this.ipam?.release(id);
      this.warn(`released ${addresses.join(', ')} of ${id}: an in-process endpoint of the last run`);
    }
  }

  // ---- shared ----

  /** An address for `id`: the given `ip` (claimed in IPAM when inside its range) or an allocation. */
  private async addressFor(id: string, options: { ip?: string | undefined; subnet?: string | undefined; signal?: AbortSignal | undefined }): Promise<string> {
    if (options.ip !== undefined) {
      const address = this.withPrefix(options.ip);
      this.checkExplicitAddress(address);
      if (this.ipam) await this.ipam.claim(id, address, options.signal ? { signal: options.signal } : {});
      return address;
    }
    const ipam = this.requireIpam('an endpoint without "ip"');
    return ipam.allocate(id, { ...(options.subnet ? { subnet: options.subnet } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  }

  private withPrefix(ip: string): string {
    if (ip.includes('/')) {
      const [host = '', prefix = ''] = ip.split('/');
      parseIPv4(host); // throws OptionsError saying what is wrong
      if (!/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(prefix)) throw new OptionsError(`ip "${ip}" has an invalid prefix length: use 0 to 32`);
      return `${host}/${prefix}`;
    }
    parseIPv4(ip);
    if (!this.ipam) throw new OptionsError(`ip "${ip}" needs a prefix length (like ${ip}/24) when IPAM is off`);
    return `${ip}/${this.ipam.defaultSubnet.prefix}`;
  }

  /**
   * An address a user gives must be a host of its own subnet and, with IPAM, inside the range: IPAM then
   * claims it from its owner (refused when in use there), as Weave does.
   */
  private checkExplicitAddress(cidr: string): void {
    const [host = '', prefix = ''] = cidr.split('/');
    const address = parseIPv4(host);
    const block = blockOf(address, Number(prefix));
    const { first, last } = hostRange(block);
    if (address < first || address > last) {
      const what = address === block.start ? 'network' : 'broadcast';
      throw new OptionsError(`ip ${host} is the ${what} address of ${formatCidr(block)}: give a host address (${formatIPv4(first)}–${formatIPv4(last)})`);
    }
    const range = this.ipam?.range;
    if (range && !(address >= range.start && address < range.start + range.size)) {
      throw new OptionsError(
        `ip ${host} is outside the IPAM range ${formatCidr(range)}: give an address inside it, or none to have one allocated (addresses outside the range need ipam: false / --no-ipam)`,
      );
    }
  }

  private resolvePeer(text: string): PeerName {
    try {
      return parsePeerName(text);
    } catch {
      const byNickname = new Set<string>();
      for (const p of this.router.peers()) if (p.nickname === text) byNickname.add(p.id);
      for (const o of this.ipam?.status().owners ?? []) if (o.nickname === text) byNickname.add(o.peer);
      if (byNickname.size === 1) return parsePeerName([...byNickname][0] as string);
      if (byNickname.size > 1) throw new EndpointError('not-found', `nickname "${text}" is ambiguous (${[...byNickname].join(', ')}): use the peer name`);
      throw new EndpointError('not-found', `no peer named or nicknamed "${text}" is known`);
    }
  }

  private requireIpam(what: string): Ipam {
    if (!this.ipam) throw new OptionsError(`${what} needs IPAM, which this overlay has turned off (ipam: false)`);
    return this.ipam;
  }

  private requireRunning(what: string): void {
    if (this.lifecycle !== 'running') {
      throw new EndpointError('not-running', `${what} needs a running overlay (state: ${this.lifecycle}); await overlay.start() first`);
    }
  }

  private warn(message: string): void {
    this.logger.warn({}, message);
    this.emit('warning', message);
  }

  private forwardEvents(): void {
    const r = this.router;
    r.on('peer:up', (p) => {
      this.logger.info({ peer: p.id, nickname: p.nickname }, 'peer up');
      this.emit('peer:up', p);
    });
    r.on('peer:down', (p) => {
      this.logger.info({ peer: p.id, nickname: p.nickname }, 'peer down');
      this.emit('peer:down', p);
    });
    r.on('peer:restarted', (p) => this.emit('peer:restarted', p));
    r.on('connection:up', (l) => {
      this.logger.info({ peer: formatPeerName(l.peer), nickname: l.nickname, address: l.remoteAddress, encrypted: l.encrypted }, 'link up');
      this.emit('link:up', l);
    });
    r.on('connection:down', (l, e) => {
      this.logger.info({ peer: formatPeerName(l.peer), nickname: l.nickname, err: e }, 'link down');
      this.emit('link:down', l, e);
    });
    // Refusals an operator must fix (password, version, name) warn once per source per minute; the rest stay at debug.
    r.on('connection:failed', (f) => this.handshakeFailures.record(f));
    r.on('topology:changed', () => this.scheduleLinkReport());
    r.on('name:collision', (c) => {
      if (c.refused !== r.uid) return this.warn(c.message);
      this.logger.error({ peer: formatPeerName(c.name) }, c.message);
      this.emit('warning', c.message);
    });
    this.dataPlane.onLinkChange(() => this.scheduleLinkReport());
    this.dataPlane.onFastPathChange(() => this.scheduleLinkReport());
    this.ipam?.on('allocated', (id, a) => this.emit('ipam:allocated', id, a));
    this.ipam?.on('released', (id, a) => this.emit('ipam:released', id, a));
    this.ipam?.on('conflict', (c) => {
      this.warn(`address ${c.address} (${c.id}) now lies in a range owned by ${c.owner}`);
      this.emit('ipam:conflict', c);
    });
    this.dns?.on('change', (added, removed) => this.emit('dns:changed', added, removed));
  }

  /**
   * Every topology update can change any peer's view, and a converging mesh of N peers brings each peer
   * O(N) updates: views are compared once per burst, not once per update (O(N²) per peer).
   */
  private scheduleLinkReport(): void {
    if (this.linkReportTimer || this.lifecycle === 'stopped') return;
    this.linkReportTimer = this.clock.setTimer(LINK_REPORT_DELAY_MS, () => {
      this.linkReportTimer = undefined;
      if (this.lifecycle === 'running' || this.lifecycle === 'starting') this.reportLinkChanges();
    });
  }

  /** Emits `link:changed` for each peer whose data-path view differs from the last one reported. */
  private reportLinkChanges(): void {
    // Views of every peer on every batch of topology changes: O(N) per peer, for nobody when nobody listens.
    // The baseline stays as it was, so a listener that comes later hears what changed since.
    if (this.listenerCount('link:changed') === 0) return;
    const views = linkViews(this.router, this.dataPlane.status());
    const seen = new Set<string>();
    for (const view of views) {
      seen.add(view.peer);
      const key = JSON.stringify(view);
      if (this.lastLinkViews.get(view.peer) === key) continue;
      this.lastLinkViews.set(view.peer, key);
      this.emit('link:changed', view);
    }
    for (const peer of [...this.lastLinkViews.keys()]) if (!seen.has(peer)) this.lastLinkViews.delete(peer);
  }
}

function serverTuning(dns: OverlayDnsOptions): { ttl?: number; upstream?: string[] } {
  return { ...(dns.ttl !== undefined ? { ttl: dns.ttl } : {}), ...(dns.upstream ? { upstream: dns.upstream } : {}) };
}

/** Flood protection that is weaker than it should be, and floods going on now. */
function receiveWarnings(dataPlane: ReturnType<DataPlane['status']>, realNetwork: boolean): string[] {
  const r = dataPlane.receive;
  const out: string[] = [];
  const sockets = r.linkSockets;
  // In-process transports (weave-ts/testing) have no kernel queues to protect.
  if (realNetwork && sockets !== 'on' && !sockets.startsWith('off (not started)') && dataPlane.links.length > 0) {
    out.push(`neighbours share one UDP receive queue (${sockets}): a flood of forged datagrams competes with their traffic`);
  }
  if (r.bufferBytes !== undefined && r.bufferBytes < r.requestedBufferBytes) {
    out.push(`the sleeve socket got a ${r.bufferBytes}-byte receive buffer, less than the ${r.requestedBufferBytes} asked for: raise net.core.rmem_max (or run as root) to absorb bursts`);
  }
  const blocked = r.sources.filter((x) => x.blocked);
  if (blocked.length > 0) {
    out.push(`datagrams that fail authentication are arriving from ${blocked.map((x) => x.address).join(', ')}: refused before decryption (see dataPlane.receive.sources)`);
  }
  return out;
}

function hostPart(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** An endpoint name is a DNS name: at most 253 characters (without a final dot), labels of 1 to 63. */
function validateName(name: unknown): void {
  const shown = typeof name === 'string' && name.length > 40 ? `"${name.slice(0, 40)}…"` : JSON.stringify(name);
  const invalid = (why: string): OptionsError => new OptionsError(`endpoint name ${shown} is not a valid DNS name: ${why}`);
  if (typeof name !== 'string' || name.length === 0) throw invalid('give a non-empty string');
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare.length > 253) throw invalid(`it is ${bare.length} characters long, and a DNS name has at most 253`);
  const long = bare.split('.').find((label) => label.length > 63);
  if (long !== undefined) throw invalid(`its label "${long.slice(0, 20)}…" is ${long.length} characters long, and a label has at most 63`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,62}))*$/.test(bare)) {
    throw invalid('use letters, digits, "-" and "_" in dot-separated labels of 1 to 63 characters, each starting with a letter or digit (at most 253 in all)');
  }
}

function parseMacOption(text: string): Uint8Array {
  const bytes = parseMac(text);
  if (!bytes || (bytes[0]! & 1) !== 0) throw new OptionsError(`mac "${text}" is not a unicast MAC address like 02:00:00:00:00:01`);
  return bytes;
}

/** The peer name stored in the data dir, or undefined when there is none yet (restarts keep their identity). */
function readPeerName(dataDir: string): string | undefined {
  const path = join(dataDir, 'peer-name');
  try {
    const text = readFileSync(path, 'utf8').trim();
    try {
      return formatPeerName(parsePeerName(text));
    } catch (cause) {
      throw new OptionsError(`${path} does not hold a peer name (${JSON.stringify(text.slice(0, 40))}): fix or delete it`, { cause });
    }
  } catch (error) {
    if (error instanceof OptionsError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateFileError('read-failed', `cannot read the peer name ${path}: ${describeIoError(error)}`, { cause: error });
    return undefined;
  }
}

/** Persists a new peer name in the data dir (created if needed). */
function writePeerName(dataDir: string, name: string): void {
  const path = join(dataDir, 'peer-name');
  try {
    mkdirSync(dataDir, { recursive: true });
    // Temp file and rename: a full disk must not leave a truncated name behind.
    writeFileSync(`${path}.tmp`, `${name}\n`, { mode: 0o644 });
    renameSync(`${path}.tmp`, path);
  } catch (error) {
    rmSync(`${path}.tmp`, { force: true });
    throw new StateFileError('write-failed', `cannot write the peer name ${path}: ${describeIoError(error)}`, { cause: error });
  }
}

/** Checks what the components do not check themselves, with messages that say what to fix. */
function validateOverlayOptions(o: OverlayOptions): void {
  if (typeof o !== 'object' || o === null) throw new OptionsError('Overlay options must be an object');
  if (o.password !== undefined && o.networkKey !== undefined) throw new OptionsError('give either password or networkKey, not both');
  if (typeof o.password === 'string' && o.password.length === 0) throw new OptionsError('password is empty: omit it for an unencrypted overlay, or give a real one');
  if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 576 || o.mtu > 65_000)) {
    throw new OptionsError(`mtu ${o.mtu} is out of range: use an integer from 576 to 65000 (default ${DEFAULT_ENDPOINT_MTU})`);
  }
  if (o.tcp !== undefined) checkTcpConfig(withDefaults(DEFAULT_TCP_CONFIG, o.tcp));
  if (o.peers !== undefined && (!Array.isArray(o.peers) || o.peers.some((p) => typeof p !== 'string' || p.length === 0))) {
    throw new OptionsError('peers must be a list of "host[:port]" strings');
  }
  // Addresses are checked here, not when start() listens or dials, so a typo fails at once and writes nothing.
  if (o.listen !== undefined && o.listen !== false) parseListenAddress(o.listen);
  o.peers?.forEach((peer, i) => {
    try {
      parseHostPort(peer);
    } catch (error) {
      throw new OptionsError(`peers[${i}]: ${(error as Error).message}`, { cause: error });
    }
  });
  if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir.length === 0)) throw new OptionsError('dataDir must be a directory path');
  if (o.trustedSubnets !== undefined) {
    if (!Array.isArray(o.trustedSubnets)) throw new OptionsError('trustedSubnets must be a list of CIDR strings like 10.0.0.0/8');
    parseTrustedSubnets(o.trustedSubnets);
  }
  const dns = o.dns;
  if (dns && dns.listen !== undefined) parseListenAddress(dns.listen, 53);
  if (dns && dns.exposedPort !== undefined && (!Number.isInteger(dns.exposedPort) || dns.exposedPort < 1 || dns.exposedPort > 65535)) {
    throw new OptionsError(`dns.exposedPort ${dns.exposedPort} is not a port (1–65535)`);
  }
}
