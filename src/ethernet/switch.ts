// Switch: learns MACs, forwards frames between local NICs and remote peers, floods along broadcast trees.
import type { Clock } from '../clock.js';
import type { Nic } from '../nic/nic.js';
import type { PeerName } from '../wire/peer-name.js';
import { destinationMac, ETHERNET_HEADER_BYTES, isGroupDestination, isLinkLocalControl, sourceMac } from './frame.js';
import { isLocalPort, MacTable, type MacEntry, type PortId } from './mac-table.js';
import { fragmentIpv4Frame, fragmentationNeeded } from './ipv4.js';
import { packetTooBig } from './ipv6.js';
import type { SendResult } from './sleeve.js';
import { segmentSuperFrame, tapTakesWhole } from '../wire/super-frame.js';

/** The destination peer that means "every peer" (flood along the source's broadcast tree). */
export const FLOOD = 0;

/** The routes the switch needs: over established links only. */
export interface SwitchRoutes {
  unicast(destination: PeerName): PeerName | undefined;
  broadcast(source: PeerName): PeerName[];
}

/** Where frames for other peers go (the sleeve). */
export interface OverlayTransport {
  send(nextHop: PeerName, source: PeerName, destination: PeerName, frame: Uint8Array): SendResult;
  /**
   * Sends a TCP or UDP super-frame whole (see `FrameBatchHandler`) when the link and the neighbour take it; any
   * failure means the switch cuts it into segments and sends those.
   */
  sendSuper?(nextHop: PeerName, source: PeerName, destination: PeerName, frame: Uint8Array, segmentSize: number): SendResult;
  flush(): void;
}

export interface SwitchOptions {
  self: PeerName;
  clock: Clock;
  routes: () => SwitchRoutes;
  transport: OverlayTransport;
  /** Learned MACs expire after this long without a frame (default 10 min). */
  macMaxAgeMs?: number;
  /** Called when a MAC is learned on a port it was not known on before (new, or moved there). */
  onLearn?: ((mac: number, port: PortId) => void) | undefined;
}

/** Counters of the switch. */
export interface SwitchStats {
  /** Frames captured from local NICs. */
  captured: number;
  /** Frames delivered to local NICs. */
  delivered: number;
  /** Frames sent towards other peers (one per next hop). */
  forwarded: number;
  /** Frames relayed for other peers without looking at their MACs. */
  relayed: number;
  /** Oversized IPv4 packets that we fragmented to fit the link (or, UDP datagrams cut from a super-frame, the endpoint MTU). */
  fragmented: number;
  /** ICMP "fragmentation needed" and ICMPv6 "packet too big" answers we gave local NICs for oversized packets that may not be fragmented. */
  icmpTooBig: number;
  /** Super-frames (TCP or UDP offloads) passed on whole: to a neighbour or a local TAP device with offloads. */
  superFrames: number;
  /** Super-frames cut into segments here (for a NIC, link or neighbour that does not take them whole, or a flood). */
  segmented: number;
  /** Frames dropped, by reason. */
  drops: Record<string, number>;
}

interface Port {
  id: PortId;
  nic: Nic;
  /** Frames waiting for `flushLocal`. */
  pending: Uint8Array[];
  /** Segment size of each pending frame (0: a complete frame). */
  pendingSizes: number[];
  /** True when a pending frame is a super-frame. */
  pendingSuper: boolean;
}

/**
 * An Ethernet switch whose ports are local NICs and, through the transport, every other peer.
 * Unknown unicast, broadcast and multicast are flooded to local ports and along the broadcast tree of
 * the capturing peer; frames for another destination peer are relayed by peer name alone (multi-hop).
 */
export class Switch {
  private readonly ports = new Map<PortId, Port>();
  private readonly macs: MacTable;
  private readonly pendingPorts = new Set<Port>();
  private nextPortId = -1;
  readonly stats: SwitchStats = { captured: 0, delivered: 0, forwarded: 0, relayed: 0, fragmented: 0, icmpTooBig: 0, superFrames: 0, segmented: 0, drops: {} };

  constructor(private readonly options: SwitchOptions) {
    this.macs = new MacTable(options.macMaxAgeMs);
  }

  /** Connects a local NIC; every batch it reads is switched. */
  addPort(nic: Nic): PortId {
    const id = this.nextPortId--;
    this.ports.set(id, { id, nic, pending: [], pendingSizes: [], pendingSuper: false });
    nic.onFrames((frames, segmentSizes) => {
      if (segmentSizes === undefined) for (const frame of frames) this.fromLocal(id, frame);
      else for (let i = 0; i < frames.length; i++) this.fromLocal(id, frames[i] as Uint8Array, segmentSizes[i] ?? 0);
      this.flushLocal();
      this.options.transport.flush();
    });
    return id;
  }

  removePort(id: PortId): void {
    const port = this.ports.get(id);
    if (!port) return;
    port.nic.onFrames(() => undefined);
    this.pendingPorts.delete(port);
    this.ports.delete(id);
    this.macs.forgetPort(id);
  }

  /** Forgets the MACs learned behind a peer that went away. */
  forgetPeer(peer: PeerName): void {
    this.macs.forgetPort(peer);
  }

  /** The MACs learned behind `peer`. */
  macsBehind(peer: PeerName): number[] {
    return this.macs.onPort(peer, this.options.clock.now());
  }

  /** Forgets these MACs if they are behind `peer` (its endpoints went away). */
  forgetMacs(peer: PeerName, macs: readonly number[]): void {
    for (const mac of macs) this.macs.forget(mac, peer);
  }

  private learn(mac: number, port: PortId, now: number): void {
    if (this.macs.learn(mac, port, now) !== 'refreshed') this.options.onLearn?.(mac, port);
  }

  /** Learned MACs, for status. */
  macTable(): MacEntry[] {
    return this.macs.list();
  }

  /** Drops expired MAC entries (call now and then). */
  sweep(): void {
    this.macs.sweep(this.options.clock.now());
  }

  private drop(reason: string): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
  }

  /**
   * Cuts a super-frame into segments; undefined (counted) when it is not one. Segments are new buffers, so they
   * may wait in a port's queue after the caller's buffer is reused.
   *
   * `mtu` is the endpoint MTU the segments are for. TCP segments fit it (their size is the stream's MSS), but the
   * datagrams of a UDP super-frame keep the size its sender chose, which only the sender's own MTU bounds (UDP
   * cannot be cut smaller). One larger than `mtu` is fragmented to fit when it is IPv4 without DF (as a router
   * would: the receiver reassembles it), else dropped (`too-big`); the first such one is answered on the local port
   * `ingress` it came from, if given, with ICMP "fragmentation needed" or ICMPv6 "packet too big" carrying `mtu`.
   */
  private segment(frame: Uint8Array, segmentSize: number, mtu = Infinity, ingress?: PortId): Uint8Array[] | undefined {
    let segments: Uint8Array[];
    try {
      segments = segmentSuperFrame(frame, segmentSize);
    } catch {
      this.drop('bad-super-frame');
      return undefined;
    }
    this.stats.segmented += 1;
    // The first segment is the largest.
    if ((segments[0]?.byteLength ?? 0) - ETHERNET_HEADER_BYTES <= mtu) return segments;
    const fitting: Uint8Array[] = [];
    let told = false;
    for (const segment of segments) {
      if (segment.byteLength - ETHERNET_HEADER_BYTES <= mtu) {
        fitting.push(segment);
        continue;
      }
      const fragments = fragmentIpv4Frame(segment, mtu + ETHERNET_HEADER_BYTES);
      if (fragments) {
        this.stats.fragmented += 1;
        for (const piece of fragments) fitting.push(piece);
        continue;
      }
      this.drop('too-big');
      const icmp = told || ingress === undefined ? undefined : (fragmentationNeeded(segment, mtu) ?? packetTooBig(segment, mtu));
      told = true;
      if (icmp !== undefined) {
        this.stats.icmpTooBig += 1;
        this.deliver(ingress as PortId, icmp);
      }
    }
    return fitting;
  }

  /** The MTU of a local port's NIC (Infinity for a port that is gone). */
  private portMtu(port: PortId): number {
    return this.ports.get(port)?.nic.mtu ?? Infinity;
  }

  /**
   * A frame captured on a local port; `segmentSize` above 0 marks a super-frame (TCP or UDP) from a NIC with
   * offloads. It goes whole to one destination that takes it, and as segments everywhere else (floods included).
   */
  fromLocal(ingress: PortId, frame: Uint8Array, segmentSize = 0): void {
    if (segmentSize > 0) {
      const port = frame.byteLength < 14 || isGroupDestination(frame) ? undefined : this.macs.lookup(destinationMac(frame), this.options.clock.now());
      if (port === undefined) {
        for (const piece of this.segment(frame, segmentSize, this.portMtu(ingress), ingress) ?? []) this.fromLocal(ingress, piece);
        return;
      }
      this.stats.captured += 1;
      this.learn(sourceMac(frame), ingress, this.options.clock.now());
      if (isLocalPort(port)) {
        if (port !== ingress) this.deliver(port, frame, segmentSize);
        return;
      }
      const hop = this.options.routes().unicast(port);
      if (hop === undefined) return this.drop('no-route');
      if (this.options.transport.sendSuper?.(hop, this.options.self, port, frame, segmentSize).ok === true) {
        this.stats.forwarded += 1;
        this.stats.superFrames += 1;
        return;
      }
      for (const piece of this.segment(frame, segmentSize, this.portMtu(ingress), ingress) ?? []) {
        this.sendFromLocal(hop, port, piece, ingress);
      }
      return;
    }
    this.stats.captured += 1;
    if (frame.byteLength < 14) return this.drop('runt');
    if (isLinkLocalControl(frame)) return this.drop('link-local-control');
    const now = this.options.clock.now();
    this.learn(sourceMac(frame), ingress, now);
    if (isGroupDestination(frame)) {
      this.floodLocal(frame, ingress);
      this.floodPeers(frame, ingress);
      return;
    }
    const port = this.macs.lookup(destinationMac(frame), now);
    if (port === undefined) {
      this.floodLocal(frame, ingress);
      this.floodPeers(frame, ingress);
    } else if (isLocalPort(port)) {
      if (port !== ingress) this.deliver(port, frame);
    } else {
      this.toPeer(port, frame, ingress);
    }
  }

  /**
   * A frame from the overlay: captured by `source`, for `destination`, arriving from neighbour `from`;
   * `segmentSize` above 0 marks a super-frame (see `fromLocal`).
   */
  fromOverlay(source: PeerName, destination: PeerName, frame: Uint8Array, from: PeerName, segmentSize = 0): void {
    const self = this.options.self;
    if (source === self) return this.drop('own-frame-returned');
    if (isLinkLocalControl(frame)) return this.drop('link-local-control');
    if (segmentSize > 0) return this.superFromOverlay(source, destination, frame, from, segmentSize);
    if (destination !== FLOOD && destination !== self) {
      // Multi-hop: pass it on by peer name, without looking at the frame.
      const hop = this.options.routes().unicast(destination);
      if (hop === undefined || hop === from) return this.drop('no-route');
      const result = this.options.transport.send(hop, source, destination, frame);
      if (result.ok) this.stats.relayed += 1;
      else this.drop(`relay-${result.reason}`);
      return;
    }
    this.learn(sourceMac(frame), source, this.options.clock.now());
    if (destination === FLOOD) {
      for (const hop of this.options.routes().broadcast(source)) {
        if (hop === from) continue;
        const result = this.options.transport.send(hop, source, FLOOD, frame);
        if (result.ok) this.stats.relayed += 1;
        else this.drop(`relay-${result.reason}`);
      }
    }
    if (isGroupDestination(frame)) {
      this.floodLocal(frame, undefined);
      return;
    }
    const port = this.macs.lookup(destinationMac(frame), this.options.clock.now());
    if (port !== undefined && isLocalPort(port)) this.deliver(port, frame);
    else if (destination === self || port === undefined) this.floodLocal(frame, undefined);
  }

  /** A super-frame from the overlay: relayed whole where possible, delivered whole to a port that takes it. */
  private superFromOverlay(source: PeerName, destination: PeerName, frame: Uint8Array, from: PeerName, segmentSize: number): void {
    const self = this.options.self;
    if (destination !== FLOOD && destination !== self) {
      const hop = this.options.routes().unicast(destination);
      if (hop === undefined || hop === from) return this.drop('no-route');
      if (this.options.transport.sendSuper?.(hop, source, destination, frame, segmentSize).ok === true) {
        this.stats.relayed += 1;
        this.stats.superFrames += 1;
        return;
      }
    } else if (destination === self && frame.byteLength >= 14 && !isGroupDestination(frame)) {
      const port = this.macs.lookup(destinationMac(frame), this.options.clock.now());
      if (port !== undefined && isLocalPort(port)) {
        this.learn(sourceMac(frame), source, this.options.clock.now());
        this.deliver(port, frame, segmentSize);
        return;
      }
    }
    // Floods, unknown destinations and links that refuse it whole: as segments, each switched on its own.
    for (const piece of this.segment(frame, segmentSize) ?? []) this.fromOverlay(source, destination, piece, from);
  }

  /**
   * Queues a frame for a local port; `flushLocal` hands each port its frames in one batch (one
   * native call for a TAP device). Frames are views into the caller's buffer, so the caller flushes
   * before that buffer is reused: at the end of each NIC batch and each datagram. A super-frame
   * (`segmentSize` above 0) goes whole to a NIC with offloads that takes it (UDP ones need USO, and at most as many
   * datagrams as a kernel takes) and as segments to any other.
   */
  private deliver(port: PortId, frame: Uint8Array, segmentSize = 0): void {
    const p = this.ports.get(port);
    if (!p) return this.drop('no-port');
    if (segmentSize > 0) {
      if (p.nic.offload !== true || !tapTakesWhole(frame, segmentSize, p.nic.udpOffload === true)) {
        for (const piece of this.segment(frame, segmentSize, p.nic.mtu) ?? []) this.deliver(port, piece);
        return;
      }
      p.pendingSuper = true;
      this.stats.superFrames += 1;
    }
    p.pending.push(frame);
    p.pendingSizes.push(segmentSize);
    this.pendingPorts.add(p);
  }

  /** Sends every frame queued for local ports. */
  flushLocal(): void {
    for (const p of this.pendingPorts) {
      const frames = p.pending;
      let sent: number;
      if (p.pendingSuper) sent = p.nic.sendBatch(frames, p.pendingSizes);
      else sent = frames.length === 1 ? (p.nic.send(frames[0] as Uint8Array) ? 1 : 0) : p.nic.sendBatch(frames);
      this.stats.delivered += sent;
      if (sent < frames.length) this.stats.drops['nic-refused'] = (this.stats.drops['nic-refused'] ?? 0) + frames.length - sent;
      frames.length = 0;
      p.pendingSizes.length = 0;
      p.pendingSuper = false;
    }
    this.pendingPorts.clear();
  }

  private floodLocal(frame: Uint8Array, except: PortId | undefined): void {
    for (const id of this.ports.keys()) if (id !== except) this.deliver(id, frame);
  }

  private floodPeers(frame: Uint8Array, ingress: PortId): void {
    const self = this.options.self;
    for (const hop of this.options.routes().broadcast(self)) this.sendFromLocal(hop, FLOOD, frame, ingress);
  }

  private toPeer(peer: PeerName, frame: Uint8Array, ingress: PortId): void {
    const hop = this.options.routes().unicast(peer);
    if (hop === undefined) return this.drop('no-route');
    this.sendFromLocal(hop, peer, frame, ingress);
  }

  /** Sends a locally captured frame; one too big for the link is fragmented or answered with ICMP. */
  private sendFromLocal(hop: PeerName, destination: PeerName, frame: Uint8Array, ingress: PortId): void {
    const self = this.options.self;
    const result = this.options.transport.send(hop, self, destination, frame);
    if (result.ok) {
      this.stats.forwarded += 1;
      return;
    }
    if (result.reason !== 'too-big' || result.maxFrame === undefined) return this.drop(result.reason);
    const fragments = fragmentIpv4Frame(frame, result.maxFrame);
    if (fragments) {
      this.stats.fragmented += 1;
      for (const piece of fragments) {
        if (this.options.transport.send(hop, self, destination, piece).ok) this.stats.forwarded += 1;
        else this.drop('fragment-refused');
      }
      return;
    }
    const mtu = result.maxFrame - 14;
    const icmp = destination === FLOOD ? undefined : (fragmentationNeeded(frame, mtu) ?? packetTooBig(frame, mtu));
    if (icmp) {
      // The sender's stack learns the path MTU as if a router on the way had said so.
      this.stats.icmpTooBig += 1;
      this.deliver(ingress, icmp);
      return;
    }
    this.drop('too-big');
  }
}
