// DataPlane: plugs a switch and the sleeve into a mesh router, giving its peers one virtual Ethernet segment.
import { isIPv6 } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { loadSodium, type SodiumBackend } from '../crypto/sodium.js';
import type { MeshRouter } from '../mesh/router.js';
import type { LinkOverlay, OverlayLink } from '../mesh/overlay.js';
import type { DatagramSocket, Transport } from '../mesh/transport.js';
import type { Nic } from '../nic/nic.js';
import type { PeerName } from '../wire/peer-name.js';
import { OptionsError } from '../errors.js';
import { Sleeve, type SleeveLinkStatus, type SleeveTimings } from './sleeve.js';
import { Switch, type SwitchStats } from './switch.js';
import type { MacEntry, PortId } from './mac-table.js';
import { formatMac } from './frame.js';
import { formatPeerName } from '../wire/peer-name.js';

/** Options of a {@link DataPlane}; every field has a default. */
export interface DataPlaneOptions {
  /** Never send fragmented UDP: discover each path's MTU and fragment or refuse big frames ourselves. */
  noFragmentation?: boolean;
  /** Sleeve heartbeat and probe timing. */
  timings?: Partial<SleeveTimings>;
  /** UDP socket buffer sizes in bytes (default 4 MiB: fewer drops under bursts). */
  socketBufferBytes?: number;
  /** Time source for heartbeats, probes and MAC expiry (default `systemClock`). */
  clock?: Clock;
  /** Which libsodium binding to prefer (default native). */
  sodium?: 'native' | 'wasm';
  /** Binds the UDP socket (default the router's transport). */
  transport?: Transport;
}

/** A JSON-serialisable view of the data plane. */
export interface DataPlaneStatus {
  /** The bound UDP "host:port"; absent before start and after stop. */
  udpAddress?: string;
  /** Per neighbour: the sleeve link's mode, MTU and counters. */
  links: SleeveLinkStatus[];
  /** Switch counters (all zero before start). */
  switch: SwitchStats;
  /** Sleeve packets dropped, by reason (e.g. `auth-failed`, `replayed`, `unknown-peer`). */
  sleeveDrops: Record<string, number>;
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

/**
 * The data plane of a mesh router: a UDP socket on the router's port, the sleeve that carries frames to
 * neighbours, and the switch that connects local NICs to every peer. Create it before starting the
 * router; it starts and stops with the router.
 */
export class DataPlane implements LinkOverlay {
  private readonly clock: Clock;
  private socket: DatagramSocket | undefined;
  private sleeve: Sleeve | undefined;
  private switchCore: Switch | undefined;
  private sweepTimer: Timer | undefined;
  private readonly pendingPorts: Nic[] = [];
  private readonly linkListeners: ((link: SleeveLinkStatus) => void)[] = [];

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
      macs: (this.switchCore?.macTable() ?? []).map((e: MacEntry) => ({
        mac: formatMac(e.mac),
        port: e.port < 0 ? `local${-e.port}` : formatPeerName(e.port),
        seen: e.seen,
      })),
    };
  }

  // ---- LinkOverlay, called by the router ----

  async start(listen: { host: string; port: number } | undefined): Promise<void> {
    const sodium: SodiumBackend | undefined = this.router.encrypted
      ? await loadSodium(this.options.sodium ? { prefer: this.options.sodium } : {})
      : undefined;
    const host = listen?.host ?? '0.0.0.0';
    const port = listen?.port ?? 0;
    const transport = this.options.transport ?? this.router.transport;
    const bufferBytes = this.options.socketBufferBytes ?? 4 * 1024 * 1024;
    const socket = await transport.bindDatagram(host, port, { bufferBytes }).catch((cause: Error) => {
      throw new OptionsError(`cannot bind the data plane's UDP socket to ${host}:${port}: ${cause.message}`, { cause });
    });
    if (this.options.noFragmentation) {
      const why = transport.setDontFragment ? transport.setDontFragment(socket, isIPv6(host)) : 'the transport has no such option';
      if (why) {
        socket.close();
        throw new OptionsError(`noFragmentation needs don't-fragment on the UDP socket, but ${why}`);
      }
    }
    this.socket = socket;
    const self = this.router.selfName;
    this.sleeve = new Sleeve({
      self,
      socket,
      clock: this.clock,
      ...(sodium ? { sodium } : {}),
      ...(this.options.noFragmentation ? { noFragmentation: true } : {}),
      ...(this.options.timings ? { timings: this.options.timings } : {}),
      sendControl: (peer, kind, payload) => this.router.sendOverlayControl(peer, kind, payload),
      setEstablished: (peer, established) => this.router.setLinkEstablished(peer, established),
    });
    const sleeve = this.sleeve;
    sleeve.on('link', (link) => {
      for (const listener of this.linkListeners) listener(link);
    });
    this.switchCore = new Switch({ self, clock: this.clock, routes: () => this.router.routes, transport: sleeve });
    const core = this.switchCore;
    sleeve.setReceiver({
      frame: (source, destination, frame, from) => core.fromOverlay(source, destination, frame, from),
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
    this.sleeve?.close();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Starts heartbeats on the new link (see {@link LinkOverlay.linkUp}). */
  linkUp(link: OverlayLink): void {
    this.sleeve?.linkUp(link);
  }

  /** Stops sending to `peer` and drops its link state (see {@link LinkOverlay.linkDown}). */
  linkDown(peer: PeerName): void {
    this.sleeve?.linkDown(peer);
  }

  onControl(peer: PeerName, kind: number, payload: Uint8Array): void {
    this.sleeve?.onControl(peer, kind, payload);
  }
}

function emptySwitchStats(): SwitchStats {
  return { captured: 0, delivered: 0, forwarded: 0, relayed: 0, fragmented: 0, icmpTooBig: 0, drops: {} };
}
