// DataPlane: plugs a switch and the sleeve into a mesh router, giving its peers one virtual Ethernet segment.
import { isIP, isIPv6 } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { loadSodium, type SodiumBackend } from '../crypto/sodium.js';
import type { MeshRouter } from '../mesh/router.js';
import type { LinkOverlay, OverlayLink } from '../mesh/overlay.js';
import { listenError, type DatagramSocket, type Transport } from '../mesh/transport.js';
import { formatHostPort } from '../mesh/address.js';
import type { Nic } from '../nic/nic.js';
import type { PeerName } from '../wire/peer-name.js';
import { OptionsError } from '../errors.js';
import { Sleeve, type LinkSocketFactory, type SleeveLinkStatus, type SleeveReceiveStatus, type SleeveTimings } from './sleeve.js';
import type { SlowPathLimits } from './slow-path.js';
import { Switch, type SwitchRoutes, type SwitchStats } from './switch.js';
import type { MacEntry, PortId } from './mac-table.js';
import { formatMac } from './frame.js';
import { formatPeerName } from '../wire/peer-name.js';
import type { Overrides } from '../options.js';
import { SUPER_FRAME_CAPABILITY, UDP_SUPER_FRAME_CAPABILITY } from '../wire/sleeve.js';
import { FastPath, type FastPathOptions, type FastLinkStatus } from './fast-path.js';

/** Options of a {@link DataPlane}; every field has a default. */
export interface DataPlaneOptions {
  /** Never send fragmented UDP: discover each path's MTU and fragment or refuse big frames ourselves. */
  noFragmentation?: boolean | undefined;
  /** Sleeve heartbeat and probe timing. */
  timings?: Overrides<SleeveTimings> | undefined;
  /**
   * UDP socket buffer sizes in bytes (default 4 MiB: fewer drops under bursts). With the native binding and
   * root (CAP_NET_ADMIN) it is granted past `net.core.rmem_max`; status shows what the kernel gave.
   */
  socketBufferBytes?: number | undefined;
  /** Budgets for datagrams that do not come from their link's authenticated address (see {@link SlowPathLimits}). */
  slowPath?: Overrides<SlowPathLimits> | undefined;
  /** Time source for heartbeats, probes and MAC expiry (default `systemClock`). */
  clock?: Clock | undefined;
  /** Which libsodium binding to prefer (default native). */
  sodium?: 'native' | 'wasm' | undefined;
  /** Binds the UDP socket (default the router's transport). */
  transport?: Transport | undefined;
  /** @internal Send each neighbour's datagrams of a turn with one sendmmsg where the transport can (default true). */
  batchSend?: boolean | undefined;
  /** @internal Read each neighbour's own socket in batches (recvmmsg) where the transport can (default true). */
  batchReceive?: boolean | undefined;
  /**
   * Carry TCP and UDP super-frames from TAP devices with offloads whole to neighbours that take them, where the link carries
   * big datagrams (default true); false cuts every super-frame into segments before it leaves.
   */
  superFrames?: boolean | undefined;
}

/** A JSON-serialisable view of the data plane. */
export interface DataPlaneStatus {
  /** The bound UDP "host:port"; absent before start and after stop. */
  udpAddress?: string;
  /** Per neighbour: the sleeve link's mode, MTU and counters. */
  links: SleeveLinkStatus[];
  /** Switch counters (all zero before start). */
  switch: SwitchStats;
  /** Sleeve packets dropped, by reason (e.g. `auth-failed`, `replayed`, `unknown-peer`, `rate-limited`, `source-blocked`). */
  sleeveDrops: Record<string, number>;
  /** The UDP receive side: buffer size, per-neighbour sockets, pauses under floods, failures per source address. */
  receive: DataPlaneReceiveStatus;
  /** The kernel fast datapath: whether it runs, why not, and each direct neighbour's mode. */
  fastPath: FastPathStatus;
  /** The learned MAC table. */
  macs: {
    /** The MAC, colon-separated hex. */
    mac: string;
    /** `localN` for a local NIC, else the peer name it lives behind. */
    port: string;
    /** Clock time (ms) it was last seen. */
    seen: number;
  }[];
}

/** The fast datapath of a {@link DataPlane}, for status. */
export interface FastPathStatus {
  /** True while kernel VXLAN tunnels may carry frames to neighbours. */
  enabled: boolean;
  /** Why it is off (absent while enabled). */
  reason?: string;
  /** The VXLAN UDP port, while enabled. */
  port?: number;
  /** Heartbeats other peers sent through their tunnels to us (each acknowledged). */
  heartbeatsReceived: number;
  /** Fast-path control messages and heartbeat frames that did not decode (counted and dropped). */
  malformed: number;
  /** Per direct neighbour: `fastdp` or `sleeve` with the reason, entries, heartbeats, kernel counters. */
  links: FastLinkStatus[];
}

/** What {@link DataPlane.enableFastPath} needs beyond what the data plane has. @internal */
export type FastPathSetup = Pick<FastPathOptions, 'kernel' | 'probe' | 'refusal' | 'warn' | 'timings' | 'bridgePort'>;

/** The UDP receive side of a {@link DataPlane}, for status. */
export interface DataPlaneReceiveStatus extends SleeveReceiveStatus {
  /** The shared socket's receive buffer as the kernel granted it (Linux reports twice the usable size); absent when unknown. */
  bufferBytes?: number;
  /** The receive buffer asked for. */
  requestedBufferBytes: number;
}

/**
 * The data plane of a mesh router: a UDP socket on the router's port, the sleeve that carries frames to
 * neighbours, and the switch that connects local NICs to every peer. Create it before starting the
 * router; it starts and stops with the router.
 * @category Mesh
 */
export class DataPlane implements LinkOverlay {
  /** Every data plane takes TCP and UDP super-frames whole (it cuts them itself where its NICs cannot). */
  readonly capabilities: readonly string[] = [SUPER_FRAME_CAPABILITY, UDP_SUPER_FRAME_CAPABILITY];
  private readonly clock: Clock;
  private socket: DatagramSocket | undefined;
  private sleeve: Sleeve | undefined;
  private switchCore: Switch | undefined;
  private sweepTimer: Timer | undefined;
  private readonly pendingPorts: Nic[] = [];
  private readonly linkListeners: ((link: SleeveLinkStatus) => void)[] = [];
  private readonly overlayLinks = new Map<PeerName, OverlayLink>();
  private fastPath: FastPath | undefined;
  private fastPathOff = 'no kernel endpoints on this peer yet (the fast path runs between bridges)';
  private readonly fastPathListeners: ((peer: PeerName) => void)[] = [];

  constructor(
    private readonly router: MeshRouter,
    private readonly options: DataPlaneOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    router.attachOverlay(this);
    router.on('peer:down', (peer) => this.switchCore?.forgetPeer(peer.name));
  }

  /** Calls `listener` whenever a link's mode, MTU or established state changes. */
  onLinkChange(listener: (link: SleeveLinkStatus) => void): void {
    this.linkListeners.push(listener);
  }

  /** Calls `listener` whenever a direct link's fast path mode or reason changes. */
  onFastPathChange(listener: (peer: PeerName) => void): void {
    this.fastPathListeners.push(listener);
  }

  /**
   * Starts the kernel fast path (after start, once the bridge exists): tunnels to neighbours that offer
   * one too. Links already up are offered at once.
   * @internal
   */
  enableFastPath(setup: FastPathSetup): void {
    const core = this.switchCore;
    if (!core) throw new Error('the fast path needs a started data plane');
    if (this.fastPath) return;
    this.fastPath = new FastPath({
      ...setup,
      self: this.router.selfName,
      clock: this.clock,
      sendControl: (peer, kind, payload) => this.router.sendOverlayControl(peer, kind, payload),
      bridgeMacs: () => core.macsBehind(setup.bridgePort),
      forgetMacs: (peer, macs) => core.forgetMacs(peer, macs),
      onChange: (peer) => {
        for (const listener of this.fastPathListeners) listener(peer);
      },
    });
    for (const link of this.overlayLinks.values()) this.fastPath.linkUp(link);
  }

  /** Records why the fast path does not run (for status), when it is off. @internal */
  setFastPathOff(reason: string): void {
    this.fastPathOff = reason;
  }

  /** Local endpoints with these MACs detached: neighbours stop tunnelling frames for them. @internal */
  forgetLocalMacs(macs: readonly number[]): void {
    this.fastPath?.forgetLocal(macs);
  }

  /** Connects a NIC to the segment (before or after start). */
  attach(nic: Nic): PortId | undefined {
    if (!this.switchCore) {
      this.pendingPorts.push(nic);
      return undefined;
    }
    return this.switchCore.addPort(nic);
  }

  /** Disconnects the NIC on `port` (from {@link DataPlane.attach}); a no-op before start. */
  detach(port: PortId): void {
    this.switchCore?.removePort(port);
  }

  /** Largest overlay IP packet the link to `peer` carries in one piece. */
  linkMtu(peer: PeerName): number | undefined {
    const frame = this.sleeve?.maxFrame(peer);
    return frame === undefined ? undefined : frame - 14;
  }

  /** A JSON-ready snapshot of the socket, links, switch counters and MAC table. */
  status(): DataPlaneStatus {
    const address = this.socket?.address();
    return {
      ...(address ? { udpAddress: `${address.address}:${address.port}` } : {}),
      links: this.sleeve?.status() ?? [],
      switch: this.switchCore ? { ...this.switchCore.stats, drops: { ...this.switchCore.stats.drops } } : emptySwitchStats(),
      sleeveDrops: { ...(this.sleeve?.drops ?? {}) },
      receive: this.receiveStatus(),
      fastPath: this.fastPath
        ? {
            enabled: true,
            port: this.fastPath.port,
            heartbeatsReceived: this.fastPath.heartbeatsReceived,
            malformed: this.fastPath.malformed,
            links: this.fastPath.status(),
          }
        : { enabled: false, reason: this.fastPathOff, heartbeatsReceived: 0, malformed: 0, links: [] },
      macs: (this.switchCore?.macTable() ?? []).map((e: MacEntry) => ({
        mac: formatMac(e.mac),
        port: e.port < 0 ? `local${-e.port}` : formatPeerName(e.port),
        seen: e.seen,
      })),
    };
  }

  private receiveStatus(): DataPlaneReceiveStatus {
    const requestedBufferBytes = this.bufferBytes();
    const sleeve = this.sleeve?.receiveStatus() ?? { linkSockets: 'off (not started)', pauses: 0, paused: false, sources: [] };
    let bufferBytes: number | undefined;
    try {
      bufferBytes = this.socket?.getRecvBufferSize?.();
    } catch {
      bufferBytes = undefined; // the socket is closing
    }
    return { ...sleeve, ...(bufferBytes !== undefined ? { bufferBytes } : {}), requestedBufferBytes };
  }

  private bufferBytes(): number {
    return this.options.socketBufferBytes ?? 4 * 1024 * 1024;
  }

  /**
   * Binds the sleeve socket so that neighbours can get receive sockets of their own on the same port, when the
   * transport can; otherwise a plain socket, and the reason why not.
   */
  private async bindSocket(
    transport: Transport,
    host: string,
    port: number,
  ): Promise<{ socket: DatagramSocket; linkSockets: LinkSocketFactory | undefined; unavailable: string }> {
    const bufferBytes = this.bufferBytes();
    const fail = (cause: Error): never => {
      throw listenError('listen address', `${formatHostPort(host, port)} (UDP, the data plane)`, cause);
    };
    const connect = transport.connectDatagram?.bind(transport);
    const setReceiving = transport.setReceiving?.bind(transport);
    // Sockets sharing a port are bound by address: a host name or a scoped IPv6 address gets a plain socket.
    const literal = isIP(host) !== 0 && !host.includes('%');
    if (connect && setReceiving && literal) {
      try {
        const socket = await transport.bindDatagram(host, port, { bufferBytes, sharedPort: true });
        const receiveBatches = this.options.batchReceive === false ? undefined : transport.receiveBatches?.bind(transport);
        const linkSockets: LinkSocketFactory = {
          open: (remote) => connect(socket, remote, { bufferBytes }),
          setReceiving,
          ...(receiveBatches ? { receiveBatches } : {}),
        };
        return { socket, linkSockets, unavailable: '' };
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'ENOTSUP') return fail(error as Error);
        const socket = await transport.bindDatagram(host, port, { bufferBytes }).catch(fail);
        return { socket, linkSockets: undefined, unavailable: `off (${(error as Error).message})` };
      }
    }
    const socket = await transport.bindDatagram(host, port, { bufferBytes }).catch(fail);
    const why = literal ? 'the transport cannot share a port' : `the listen host ${host} is not a plain IP address`;
    return { socket, linkSockets: undefined, unavailable: `off (${why})` };
  }

  // ---- LinkOverlay, called by the router ----

  async start(listen: { host: string; port: number } | undefined): Promise<void> {
    const sodium: SodiumBackend | undefined = this.router.encrypted
      ? await loadSodium(this.options.sodium ? { prefer: this.options.sodium } : {})
      : undefined;
    const host = listen?.host ?? '0.0.0.0';
    const port = listen?.port ?? 0;
    const transport = this.options.transport ?? this.router.transport;
    const { socket, linkSockets, unavailable } = await this.bindSocket(transport, host, port);
    if (this.options.noFragmentation) {
      const why = transport.setDontFragment ? transport.setDontFragment(socket, isIPv6(host)) : 'the transport has no such option';
      if (why) {
        socket.close();
        throw new OptionsError(`noFragmentation needs don't-fragment on the UDP socket, but ${why}`);
      }
    }
    this.socket = socket;
    const self = this.router.selfName;
    const batchSender = this.options.batchSend === false ? undefined : transport.batchSender?.(socket);
    this.sleeve = new Sleeve({
      self,
      socket,
      ...(linkSockets ? { linkSockets } : { linkSocketsUnavailable: unavailable }),
      ...(batchSender ? { batchSender } : {}),
      ...(this.options.slowPath ? { slowPath: this.options.slowPath } : {}),
      clock: this.clock,
      ...(sodium ? { sodium } : {}),
      ...(this.options.noFragmentation ? { noFragmentation: true } : {}),
      ...(this.options.timings ? { timings: this.options.timings } : {}),
      ...(this.options.superFrames === false ? { superFrames: false } : {}),
      sendControl: (peer, kind, payload) => this.router.sendOverlayControl(peer, kind, payload),
      setEstablished: (peer, established) => this.router.setLinkEstablished(peer, established),
    });
    const sleeve = this.sleeve;
    sleeve.on('link', (link) => {
      for (const listener of this.linkListeners) listener(link);
    });
    // Unicast to a direct neighbour needs only our end of the link to work. Topology routes also wait for the
    // neighbour's record to say its end works, and that record can lag (coalesced, a loaded peer): a reply
    // dropped meanwhile would be a lost ping or a TCP retransmission. Floods keep to the shared trees.
    const routes: SwitchRoutes = {
      unicast: (destination) => this.router.routes.unicast(destination) ?? (sleeve.isEstablished(destination) ? destination : undefined),
      broadcast: (source) => this.router.routes.broadcast(source),
    };
    this.switchCore = new Switch({ self, clock: this.clock, routes: () => routes, transport: sleeve, onLearn: (mac, port) => this.fastPath?.learned(mac, port) });
    const core = this.switchCore;
    sleeve.setReceiver({
      frame: (source, destination, frame, from, segmentSize) => core.fromOverlay(source, destination, frame, from, segmentSize),
      end: () => core.flushLocal(),
    });
    for (const nic of this.pendingPorts.splice(0)) core.addPort(nic);
    const sweep = (): void => {
      core.sweep();
      this.sweepTimer = this.clock.setTimer(60_000, sweep);
    };
    this.sweepTimer = this.clock.setTimer(60_000, sweep);
  }

  async stop(): Promise<void> {
    this.sweepTimer?.cancel();
    await this.fastPath?.close();
    this.sleeve?.close();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Starts heartbeats on the new link (see {@link LinkOverlay.linkUp}). */
  linkUp(link: OverlayLink): void {
    this.overlayLinks.set(link.peer, link);
    this.sleeve?.linkUp(link);
    this.fastPath?.linkUp(link);
  }

  /** Stops sending to `peer` and drops its link state (see {@link LinkOverlay.linkDown}). */
  linkDown(peer: PeerName): void {
    this.overlayLinks.delete(peer);
    this.sleeve?.linkDown(peer);
    this.fastPath?.linkDown(peer);
  }

  onControl(peer: PeerName, kind: number, payload: Uint8Array): void {
    if (kind >= FIRST_FAST_PATH_KIND) {
      this.fastPath?.onControl(peer, kind, payload); // without a fast path here, offers go unanswered
      return;
    }
    this.sleeve?.onControl(peer, kind, payload);
  }
}

/** Control kinds from here up belong to the fast path (the sleeve's are below). */
const FIRST_FAST_PATH_KIND = 16;

function emptySwitchStats(): SwitchStats {
  return { captured: 0, delivered: 0, forwarded: 0, relayed: 0, fragmented: 0, icmpTooBig: 0, superFrames: 0, segmented: 0, drops: {} };
}
