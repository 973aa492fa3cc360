// FastPath: the kernel fast datapath of a data plane (issue 14). Each direct neighbour that offers a fast
// path too, and whose link may carry plain frames, gets a VXLAN tunnel on the bridge. Heartbeats padded to
// the MTU go through the tunnel and are acknowledged over the control link; while they are, the MACs the
// neighbour says live on its bridge are pointed at the tunnel (and the bridge learns replies there). When
// they stop, the entries go and frames take the sleeve again (through the TAP) until they resume.
//
// Only a peer knows which of its MACs its bridge can deliver from a tunnel: those its switch learned on
// the bridge's TAP port. In-process endpoints' MACs are switch ports of their own, never on the bridge,
// so they are never announced and frames to them keep taking the sleeve.
import { createHash } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import { DecodeError } from '../errors.js';
import type { OverlayLink } from '../mesh/overlay.js';
import type { Nic } from '../nic/nic.js';
import { withDefaults, type Overrides } from '../options.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import {
  decodeAck,
  decodeForget,
  decodeHeartbeat,
  decodeHello,
  encodeAck,
  encodeForget,
  encodeHeartbeat,
  encodeHello,
  FASTDP_VERSION,
  FastControl,
} from '../wire/fastdp.js';
import { formatMac } from './frame.js';
import type { KernelVxlan, VxlanCounters } from './kernel-vxlan.js';
import { isLocalPort, type PortId } from './mac-table.js';

/** MACs per Here or Forget message (6 bytes each). */
const MACS_PER_MESSAGE = 1000;

/** Heartbeat timing of the fast path. */
export interface FastPathTimings {
  /** Heartbeat interval until the tunnel is healthy, and while it is not (default 500 ms, Weave's). */
  fastHeartbeatMs: number;
  /** Heartbeat interval while healthy (default 2 s). */
  slowHeartbeatMs: number;
  /** A healthy tunnel whose heartbeats go unacknowledged this long falls back to the sleeve (default 6 s). */
  timeoutMs: number;
  /** Status reads the tunnels' kernel counters at most this often, when asked (default 2 s). */
  countersMs: number;
}

export const DEFAULT_FAST_PATH_TIMINGS: FastPathTimings = { fastHeartbeatMs: 500, slowHeartbeatMs: 2000, timeoutMs: 6000, countersMs: 2000 };

/** What a {@link FastPath} needs from its data plane. */
export interface FastPathOptions {
  self: PeerName;
  kernel: KernelVxlan;
  /** The probe TAP on the bridge: heartbeats leave and arrive through it. */
  probe: Nic;
  clock: Clock;
  timings?: Overrides<FastPathTimings> | undefined;
  /** Why a neighbour at `underlay` must stay on the sleeve (undefined when its frames may travel plain). */
  refusal: (underlay: string) => string | undefined;
  sendControl: (peer: PeerName, kind: number, payload: Uint8Array) => boolean;
  /** The switch port of the bridge's TAP: MACs learned there live on our bridge. */
  bridgePort: PortId;
  /** The MACs the switch knows on the bridge's TAP port now. */
  bridgeMacs: () => number[];
  /** The MACs in a Forget from `peer` left it: the switch drops them if it has them behind that peer. */
  forgetMacs: (peer: PeerName, macs: readonly number[]) => void;
  /** Something an operator should know (a tunnel fell back, a command failed). */
  warn: (message: string) => void;
  /** Called when a link's mode or reason changes. */
  onChange?: ((peer: PeerName) => void) | undefined;
}

/** How frames to a direct neighbour travel. */
export type FastLinkMode = 'fastdp' | 'sleeve';

/** Heartbeats of one tunnel. */
export interface FastHeartbeatCounts {
  /** Sent through the tunnel. */
  sent: number;
  /** Acknowledged by the neighbour over the control link. */
  acknowledged: number;
}

/** How frames to one direct neighbour travel, and why not fast. */
export interface FastLinkState {
  /** `fastdp` or `sleeve`. */
  mode: FastLinkMode;
  /** Why the sleeve; absent on `fastdp`. */
  reason?: string;
}

/** One direct neighbour's fast path, for status. */
export interface FastLinkStatus {
  /** The neighbour's peer name. */
  peer: string;
  /** `fastdp` when unicast frames to its endpoints take the kernel tunnel, else `sleeve`. */
  mode: FastLinkMode;
  /** Why the link is on the sleeve; absent in `fastdp` mode. */
  reason?: string;
  /** The neighbour's underlay (IPv4) address. */
  underlay?: string;
  /** The tunnel device, once created. */
  device?: string;
  /** Its VXLAN id. */
  vni?: number;
  /** MACs we pointed at the tunnel. */
  entries: number;
  /** Heartbeats sent through the tunnel and acknowledged. */
  heartbeats: FastHeartbeatCounts;
  /** The tunnel device's kernel counters (read every `countersMs`). */
  counters?: VxlanCounters;
}

interface FastLink {
  readonly peer: PeerName;
  readonly connectionId: bigint;
  readonly underlay: string | undefined;
  readonly device: string;
  readonly vni: number;
  readonly probeMac: number;
  /** MACs the neighbour announced on its bridge (Here), until it forgets them or they show up elsewhere. */
  readonly announced: Set<number>;
  /** Our own reason to keep the link on the sleeve (fixed for the link's life). */
  readonly refusal: string | undefined;
  /** What the neighbour said: nothing yet, ready, or why its offer does not fit ours. */
  remote: { kind: 'unknown' } | { kind: 'ready' } | { kind: 'mismatch'; why: string };
  tunnel: 'none' | 'creating' | 'up' | 'failed';
  tunnelError: string;
  healthy: boolean;
  lastAck: number | undefined;
  sequence: number;
  sent: number;
  acknowledged: number;
  timer: Timer | undefined;
  /** Fires `timeoutMs` after the last acknowledgement of a healthy tunnel. */
  watchdog: Timer | undefined;
  readonly programmed: Set<number>;
  closed: boolean;
}

/**
 * The fast path of one data plane: tunnels, their health, and the bridge entries that send known unicast
 * through them. Everything else (broadcast, multicast, unknown unicast, relayed frames) stays on the sleeve.
 * @internal
 */
export class FastPath {
  private readonly timings: FastPathTimings;
  private readonly links = new Map<PeerName, FastLink>();
  private readonly byProbeMac = new Map<number, FastLink>();
  private readonly selfProbeMac: number;
  /** Our MACs on the bridge that neighbours were (or will be) told of. */
  private readonly onBridge = new Set<number>();
  private readonly pendingHere = new Set<number>();
  private readonly pendingForget = new Set<number>();
  private announceTimer: Timer | undefined;
  private counters = new Map<string, VxlanCounters>();
  /** When counters were last asked of the kernel (undefined: never); reads happen only when status asks. */
  private countersReadAt: number | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Heartbeats received through tunnels (acknowledged to their senders). */
  heartbeatsReceived = 0;
  /** Control messages and heartbeat frames that did not decode. */
  malformed = 0;

  constructor(private readonly o: FastPathOptions) {
    this.timings = withDefaults(DEFAULT_FAST_PATH_TIMINGS, o.timings);
    this.selfProbeMac = probeMacOf(o.self);
    for (const mac of o.bridgeMacs()) this.onBridge.add(mac);
    o.probe.onFrames((frames) => {
      for (const frame of frames) this.onProbeFrame(frame);
    });
  }

  /** The VXLAN UDP port of the tunnels. */
  get port(): number {
    return this.o.kernel.port;
  }

  /** A new direct link: offer the fast path when its frames may travel plain. */
  linkUp(link: OverlayLink): void {
    if (this.closed) return;
    this.linkDown(link.peer);
    const underlay = ipv4Of(link.remoteHost);
    const refusal = underlay === undefined ? `the underlay address ${link.remoteHost} is not IPv4 (the fast path tunnels over IPv4 only)` : this.o.refusal(underlay);
    const state: FastLink = {
      peer: link.peer,
      connectionId: link.connectionId,
      underlay,
      device: tunnelDeviceName(this.o.kernel.bridge, link.peer),
      vni: pairVni(this.o.self, link.peer),
      probeMac: probeMacOf(link.peer),
      refusal,
      remote: { kind: 'unknown' },
      tunnel: 'none',
      tunnelError: '',
      healthy: false,
      lastAck: undefined,
      sequence: 0,
      sent: 0,
      acknowledged: 0,
      timer: undefined,
      watchdog: undefined,
      programmed: new Set(),
      announced: new Set(),
      closed: false,
    };
    this.links.set(link.peer, state);
    this.byProbeMac.set(state.probeMac, state);
    this.sendHello(state, refusal === undefined);
    this.o.onChange?.(link.peer);
  }

  /** The link to `peer` closed: its tunnel goes, with every entry towards it. */
  linkDown(peer: PeerName): void {
    const link = this.links.get(peer);
    if (!link) return;
    this.links.delete(peer);
    if (this.byProbeMac.get(link.probeMac) === link) this.byProbeMac.delete(link.probeMac);
    link.closed = true;
    link.timer?.cancel();
    link.watchdog?.cancel();
    if (link.tunnel !== 'none') this.enqueue(`removing the tunnel to ${formatPeerName(peer)}`, () => this.o.kernel.destroyTunnel(link.device));
    this.o.onChange?.(peer);
  }

  /** A fast path control message from a neighbour; false when `kind` is not one of ours. */
  onControl(peer: PeerName, kind: number, payload: Uint8Array): boolean {
    if (kind !== FastControl.Hello && kind !== FastControl.Ack && kind !== FastControl.Forget && kind !== FastControl.Here) return false;
    try {
      if (kind === FastControl.Hello) this.onHello(peer, payload);
      else if (kind === FastControl.Ack) this.onAck(peer, payload);
      else if (kind === FastControl.Here) this.onHere(peer, payload);
      else this.onForget(peer, payload);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.malformed += 1;
    }
    return true;
  }

  /**
   * The switch learned `mac` on `port` (new, or moved there). On the bridge's port: neighbours hear it
   * lives on our bridge. Elsewhere: it no longer does, if it did.
   */
  learned(mac: number, port: PortId): void {
    if (this.closed) return;
    if (port === this.o.bridgePort) {
      this.onBridge.add(mac);
      this.pendingHere.add(mac);
      this.pendingForget.delete(mac);
    } else if (this.onBridge.delete(mac)) {
      this.pendingForget.add(mac);
      this.pendingHere.delete(mac);
    }
    // A MAC another neighbour announced that now shows up behind this one moved: the old entry goes.
    if (!isLocalPort(port)) {
      for (const link of this.links.values()) if (link.peer !== port && link.announced.has(mac)) this.unannounce(link, mac);
    }
    this.scheduleAnnouncements();
  }

  /** Local endpoints with these MACs went away: neighbours drop their entries for them. */
  forgetLocal(macs: readonly number[]): void {
    for (const mac of macs) {
      this.onBridge.delete(mac);
      this.pendingHere.delete(mac);
      this.pendingForget.add(mac);
    }
    this.scheduleAnnouncements();
  }

  /**
   * Per direct neighbour: mode, reason, entries, heartbeats and counters. The kernel's counters are those
   * of the last read; a call starts a new read when the last is older than `countersMs` (an idle agent
   * that nobody asks spawns no `ip`).
   */
  status(): FastLinkStatus[] {
    this.refreshCounters();
    return [...this.links.values()]
      .map((link) => {
        const reason = this.reasonOf(link);
        const counters = this.counters.get(link.device);
        return {
          peer: formatPeerName(link.peer),
          mode: reason === undefined ? ('fastdp' as const) : ('sleeve' as const),
          ...(reason !== undefined ? { reason } : {}),
          ...(link.underlay !== undefined ? { underlay: link.underlay } : {}),
          ...(link.tunnel === 'up' ? { device: link.device, vni: link.vni } : {}),
          entries: link.programmed.size,
          heartbeats: { sent: link.sent, acknowledged: link.acknowledged },
          ...(counters && link.tunnel === 'up' ? { counters: { ...counters } } : {}),
        };
      })
      .sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  /** `fastdp` or `sleeve` for a direct neighbour, with the reason; undefined when it is not one. */
  modeOf(peer: PeerName): FastLinkState | undefined {
    const link = this.links.get(peer);
    if (!link) return undefined;
    const reason = this.reasonOf(link);
    return reason === undefined ? { mode: 'fastdp' } : { mode: 'sleeve', reason };
  }

  /** Removes every tunnel (and its entries) and stops heartbeats; waits for the kernel. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.announceTimer?.cancel();
      this.o.probe.onFrames(() => undefined);
      for (const peer of [...this.links.keys()]) this.linkDown(peer);
    }
    await this.queue;
  }

  // ---- internals ----

  private refreshCounters(): void {
    const now = this.o.clock.now();
    if (this.closed || this.links.size === 0 || (this.countersReadAt !== undefined && now - this.countersReadAt < this.timings.countersMs)) return;
    this.countersReadAt = now;
    this.o.kernel.counters().then(
      (c) => (this.counters = c),
      () => undefined, // status keeps the last counters; the tunnels' own commands report failures
    );
  }

  private reasonOf(link: FastLink): string | undefined {
    if (link.refusal !== undefined) return link.refusal;
    if (link.remote.kind === 'unknown') return 'the peer offers no fast path (no kernel endpoints there yet, fast datapath off, or an older weave-ts)';
    if (link.remote.kind === 'mismatch') return link.remote.why;
    if (link.tunnel === 'failed') return `the VXLAN tunnel could not be created: ${link.tunnelError}`;
    if (link.tunnel !== 'up') return 'creating the VXLAN tunnel';
    if (link.healthy) return undefined;
    if (link.lastAck === undefined) return 'waiting for a heartbeat through the VXLAN tunnel';
    return `unhealthy: heartbeats through the VXLAN tunnel went unacknowledged for over ${this.timings.timeoutMs / 1000} s (UDP port ${this.o.kernel.port} blocked, or the path does not carry ${this.o.kernel.mtu + 50}-byte packets)`;
  }

  /** Offers the fast path, or (refused) says we will not take plain frames, so the peer can tell why. */
  private sendHello(link: FastLink, wantReply: boolean): void {
    const accepts = link.refusal === undefined;
    const payload = encodeHello({ version: FASTDP_VERSION, port: this.o.kernel.port, mtu: this.o.kernel.mtu, connectionId: link.connectionId, wantReply, accepts });
    this.o.sendControl(link.peer, FastControl.Hello, payload);
  }

  private onHello(peer: PeerName, payload: Uint8Array): void {
    const hello = decodeHello(payload);
    const link = this.links.get(peer);
    if (!link || link.connectionId !== hello.connectionId) return;
    if (link.refusal !== undefined) {
      if (hello.wantReply) this.sendHello(link, false);
      return;
    }
    const first = link.remote.kind !== 'ready';
    if (!hello.accepts) {
      link.remote = { kind: 'mismatch', why: 'the peer keeps this link encrypted on the sleeve: it has a password and our address is not in its trustedSubnets' };
    } else if (hello.port !== this.o.kernel.port) {
      link.remote = { kind: 'mismatch', why: `the peer's VXLAN port is ${hello.port}, ours ${this.o.kernel.port} (both use the control port + 1: give both the same port)` };
    } else if (hello.mtu !== this.o.kernel.mtu) {
      link.remote = { kind: 'mismatch', why: `the peer's endpoint MTU is ${hello.mtu}, ours ${this.o.kernel.mtu} (one tunnel carries one MTU: give both the same --mtu)` };
    } else {
      link.remote = { kind: 'ready' };
    }
    if (hello.wantReply) this.sendHello(link, false);
    if (first && link.remote.kind === 'ready') {
      this.sendMacs(link, FastControl.Here, [...this.onBridge]);
      if (link.tunnel === 'none') this.createTunnel(link);
    }
    this.o.onChange?.(peer);
  }

  private createTunnel(link: FastLink): void {
    const underlay = link.underlay;
    if (underlay === undefined) return;
    link.tunnel = 'creating';
    this.enqueue(`creating the tunnel to ${formatPeerName(link.peer)}`, async () => {
      if (link.closed) return;
      try {
        await this.o.kernel.destroyTunnel(link.device); // a leftover of an earlier link to this peer
        await this.o.kernel.createTunnel(link.device, link.vni);
        await this.o.kernel.setRemote(link.device, formatMac(link.probeMac), underlay);
      } catch (error) {
        link.tunnel = 'failed';
        link.tunnelError = (error as Error).message;
        this.o.onChange?.(link.peer);
        throw error;
      }
      if (link.closed) {
        await this.o.kernel.destroyTunnel(link.device);
        return;
      }
      link.tunnel = 'up';
      this.o.onChange?.(link.peer);
      this.heartbeat(link);
    });
  }

  private heartbeat(link: FastLink): void {
    if (link.closed) return;
    link.sequence = (link.sequence + 1) >>> 0;
    link.sent += 1;
    const frame = encodeHeartbeat({ destination: link.probeMac, source: this.selfProbeMac, connectionId: link.connectionId, sequence: link.sequence }, this.o.kernel.mtu + 14);
    this.o.probe.send(frame);
    const interval = link.healthy ? this.timings.slowHeartbeatMs : this.timings.fastHeartbeatMs;
    link.timer = this.o.clock.setTimer(interval, () => this.heartbeat(link));
  }

  private onProbeFrame(frame: Uint8Array): void {
    let heartbeat;
    try {
      heartbeat = decodeHeartbeat(frame);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.malformed += 1;
      return;
    }
    if (!heartbeat || heartbeat.destination !== this.selfProbeMac) return;
    const link = this.byProbeMac.get(heartbeat.source);
    if (!link || link.connectionId !== heartbeat.connectionId) return;
    this.heartbeatsReceived += 1;
    this.o.sendControl(link.peer, FastControl.Ack, encodeAck({ connectionId: link.connectionId, sequence: heartbeat.sequence }));
  }

  private onAck(peer: PeerName, payload: Uint8Array): void {
    const ack = decodeAck(payload);
    const link = this.links.get(peer);
    if (!link || link.connectionId !== ack.connectionId || link.tunnel !== 'up') return;
    link.acknowledged += 1;
    link.lastAck = this.o.clock.now();
    link.watchdog?.cancel();
    link.watchdog = this.o.clock.setTimer(this.timings.timeoutMs, () => {
      this.setHealthy(link, false);
      link.timer?.cancel();
      this.heartbeat(link); // fast heartbeats until one gets through again
    });
    if (!link.healthy) {
      this.setHealthy(link, true);
      // Back to the slow interval at once rather than after the next fast one.
      link.timer?.cancel();
      link.timer = this.o.clock.setTimer(this.timings.slowHeartbeatMs, () => this.heartbeat(link));
    }
  }

  private onHere(peer: PeerName, payload: Uint8Array): void {
    const macs = decodeForget(payload);
    const link = this.links.get(peer);
    if (!link || link.remote.kind !== 'ready') return;
    for (const mac of macs) {
      for (const other of this.links.values()) if (other !== link && other.announced.has(mac)) this.unannounce(other, mac);
      link.announced.add(mac);
      if (link.healthy && !link.programmed.has(mac)) this.program(link, mac);
    }
  }

  private onForget(peer: PeerName, payload: Uint8Array): void {
    const macs = decodeForget(payload);
    this.o.forgetMacs(peer, macs);
    const link = this.links.get(peer);
    if (!link) return;
    for (const mac of macs) this.unannounce(link, mac, true);
  }

  /** `mac` is no longer on `link`'s bridge: its entries there go (learned ones too, with `learned`). */
  private unannounce(link: FastLink, mac: number, learned = false): void {
    link.announced.delete(mac);
    const had = link.programmed.delete(mac);
    if ((had || learned) && link.tunnel === 'up') {
      this.enqueue(`removing ${formatMac(mac)} from the tunnel to ${formatPeerName(link.peer)}`, () => this.o.kernel.removeRemote(link.device, formatMac(mac)));
    }
  }

  /** Sends what changed on our bridge once per turn of the event loop, to neighbours that offered a fast path. */
  private scheduleAnnouncements(): void {
    if (this.announceTimer || (this.pendingHere.size === 0 && this.pendingForget.size === 0)) return;
    this.announceTimer = this.o.clock.setTimer(0, () => {
      this.announceTimer = undefined;
      const here = [...this.pendingHere];
      const forget = [...this.pendingForget];
      this.pendingHere.clear();
      this.pendingForget.clear();
      for (const link of this.links.values()) {
        if (link.remote.kind !== 'ready') continue;
        this.sendMacs(link, FastControl.Here, here);
        this.sendMacs(link, FastControl.Forget, forget);
      }
    });
  }

  private sendMacs(link: FastLink, kind: FastControl, macs: readonly number[]): void {
    for (let i = 0; i < macs.length; i += MACS_PER_MESSAGE) this.o.sendControl(link.peer, kind, encodeForget(macs.slice(i, i + MACS_PER_MESSAGE)));
  }

  private setHealthy(link: FastLink, healthy: boolean): void {
    link.healthy = healthy;
    const name = formatPeerName(link.peer);
    if (healthy) {
      this.enqueue(`letting the tunnel to ${name} learn`, () => this.o.kernel.setLearning(link.device, true));
      for (const mac of link.announced) this.program(link, mac);
    } else {
      this.o.warn(`fast datapath to ${name} is unhealthy (${this.reasonOf(link) ?? ''}): its frames take the sleeve until heartbeats get through again`);
      link.programmed.clear();
      const probe = formatMac(link.probeMac);
      this.enqueue(`emptying the tunnel to ${name}`, async () => {
        await this.o.kernel.setLearning(link.device, false);
        const macs = new Set((await this.o.kernel.entries(link.device)).map((e) => e.mac));
        for (const mac of macs) {
          if (mac !== probe && !link.programmed.has(parseMacNumber(mac))) await this.o.kernel.removeRemote(link.device, mac);
        }
      });
    }
    this.o.onChange?.(link.peer);
  }

  private program(link: FastLink, mac: number): void {
    const underlay = link.underlay;
    if (underlay === undefined) return;
    link.programmed.add(mac);
    this.enqueue(`pointing ${formatMac(mac)} at the tunnel to ${formatPeerName(link.peer)}`, async () => {
      if (link.closed || !link.programmed.has(mac)) return;
      await this.o.kernel.setRemote(link.device, formatMac(mac), underlay);
    });
  }

  /** Runs kernel changes one at a time, in order; a failure is reported and the next change still runs. */
  private enqueue(what: string, job: () => Promise<void>): void {
    this.queue = this.queue.then(job).catch((error: unknown) => {
      this.o.warn(`fast datapath: ${what} failed: ${(error as Error).message}`);
    });
  }
}

/** A peer's probe MAC: its name made a locally administered unicast address. */
export function probeMacOf(peer: PeerName): number {
  const first = Math.floor(peer / 2 ** 40);
  return ((first & 0xfc) | 0x02) * 2 ** 40 + (peer % 2 ** 40);
}

/** The tunnel device towards `peer`: the bridge's first 7 characters, `x`, and a hash of the peer name (15 characters). */
export function tunnelDeviceName(bridge: string, peer: PeerName): string {
  const prefix = bridge.slice(0, 7);
  const hash = createHash('sha256').update(formatPeerName(peer)).digest('hex');
  return `${prefix}x${hash.slice(0, 14 - prefix.length)}`;
}

/** True when `name` follows the scheme of {@link tunnelDeviceName} for `bridge` (a leftover to remove). */
export function isTunnelDeviceName(bridge: string, name: string): boolean {
  const prefix = bridge.slice(0, 7);
  return name.length === 15 && name.startsWith(`${prefix}x`) && /^[0-9a-f]+$/.test(name.slice(prefix.length + 1));
}

/** The VXLAN id of the tunnel between two peers: the same at both ends, different for other pairs (24-bit hash). */
export function pairVni(a: PeerName, b: PeerName): number {
  const [low, high] = a < b ? [a, b] : [b, a];
  const digest = createHash('sha256').update(`weave-ts fastdp ${formatPeerName(low)} ${formatPeerName(high)}`).digest();
  return ((digest[0] ?? 0) << 16 | (digest[1] ?? 0) << 8 | (digest[2] ?? 0)) || 1;
}

/** The IPv4 address of a TCP peer address (IPv4-mapped IPv6 included); undefined for IPv6. */
function ipv4Of(host: string): string | undefined {
  const plain = host.startsWith('::ffff:') ? host.slice(7) : host;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(plain) ? plain : undefined;
}

function parseMacNumber(mac: string): number {
  return parseInt(mac.replace(/:/g, ''), 16);
}
