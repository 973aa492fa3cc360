// Readiness: which awaited peers are reachable over established data links, and whether IPAM has its ring.
import type { MeshRouter } from '../mesh/router.js';
import type { TargetStatus } from '../mesh/connection-maker.js';
import { canonicalAddress } from '../mesh/address.js';
import type { DataPlaneStatus } from '../ethernet/data-plane.js';
import type { Ipam, IpamState } from '../ipam/ipam.js';
import { formatPeerName, parsePeerName, type PeerName } from '../wire/peer-name.js';
import { linkViews } from './links.js';

/** Where one awaited peer stands. */
export type PeerReadinessState =
  /** Reachable over established data links: frames flow both ways. */
  | 'ready'
  /** A configured target (`host:port`) with no link yet: being dialled, or waiting to retry. */
  | 'connecting'
  /** No known peer has this name or nickname (yet). */
  | 'unknown'
  /** Reachable over control links, but the data path is not established yet (heartbeats, MTU test). */
  | 'no-data-link'
  /** Known, but no route leads to it now. */
  | 'unreachable'
  /** A target that will not be retried (a peer with our own name took it), or an ambiguous nickname. */
  | 'failed';

/** One awaited peer in a {@link OverlayReadiness} report. */
export interface PeerReadiness {
  /** What was awaited: a peer name, a nickname or a `host:port` target, as given (known peers: their name). */
  target: string;
  /** The peer it stands for, MAC form, once known. */
  peer?: string;
  /** That peer's nickname, once known. */
  nickname?: string;
  /** Where it stands. */
  state: PeerReadinessState;
  /** The why, in words: the target's last dial error and next try, the link's mode. */
  detail?: string;
}

/** Where IPAM stands in a {@link OverlayReadiness} report. */
export interface IpamReadiness {
  /** True once the ring exists (addresses can be allocated). */
  ready: boolean;
  /** The allocator's state. */
  state: IpamState;
  /** In words, with how far consensus got. */
  detail: string;
}

/** What `overlay.ready()` waits for, as it stands now. */
export interface OverlayReadiness {
  /** True when every awaited peer is `ready` and IPAM (when awaited) has its ring. */
  ready: boolean;
  /** Each awaited peer. */
  peers: PeerReadiness[];
  /** IPAM, when it is on and awaited. */
  ipam?: IpamReadiness;
}

/** What to report on. */
export interface ReadinessQuery {
  /** Peer names, nicknames or `host:port` targets; default: every configured target and every known peer. */
  peers?: readonly string[] | undefined;
  /** Include IPAM (default true when IPAM is on). */
  ipam?: boolean | undefined;
}

/** Computes the readiness report from the router, the data plane's status and IPAM. */
export function readiness(router: MeshRouter, dataPlane: DataPlaneStatus, ipam: Ipam | undefined, query: ReadinessQuery = {}): OverlayReadiness {
  const views = new Map(linkViews(router, dataPlane).map((v) => [v.peer, v]));
  const targets = router.targets();
  const links = router.linkInfos();

  const peerState = (target: string, name: PeerName): PeerReadiness => {
    const id = formatPeerName(name);
    if (name === router.selfName) return { target, peer: id, nickname: router.nickname, state: 'ready', detail: 'this peer' };
    const known = router.peer(name);
    if (!known) return { target, peer: id, state: 'unknown', detail: 'not in the topology (yet)' };
    const base = { target, peer: id, ...(known.nickname ? { nickname: known.nickname } : {}) };
    const view = views.get(id);
    if (view?.established) return { ...base, state: 'ready', detail: view.direct ? `direct, ${view.mode}` : `via ${view.via ?? '?'}` };
    if (!router.isReachable(name)) return { ...base, state: 'unreachable', detail: 'no route to it over the links the topology lists' };
    return { ...base, state: 'no-data-link', detail: view?.direct ? `data link ${view.mode}` : 'no established data path yet' };
  };

  /** The peer a connected target leads to: its last dial, else the link whose address it is. */
  const targetPeer = (t: TargetStatus): PeerName | undefined => {
    if (t.peer !== undefined) return parsePeerName(t.peer);
    return links.find((l) => l.listenAddress === t.address || l.remoteAddress === t.address)?.peer;
  };

  const targetState = (given: string, t: TargetStatus): PeerReadiness | undefined => {
    if (t.state === 'failed' && t.lastErrorCode === 'connect-to-self') return peerState(given, router.selfName);
    if (t.state === 'connected') {
      const name = targetPeer(t);
      if (name !== undefined) return peerState(given, name);
    }
    if (t.state === 'failed') return { target: given, state: 'failed', detail: t.lastError ?? 'given up' };
    const parts = [t.state === 'attempting' ? 'dialling now' : 'waiting to dial', `${t.attempts} attempt${t.attempts === 1 ? '' : 's'}`];
    if (t.lastError) parts.push(`last error: ${t.lastError}`);
    if (t.retryInMs !== undefined) parts.push(`next try in ${t.retryInMs} ms`);
    return { target: given, state: 'connecting', detail: parts.join(', ') };
  };

  const resolveGiven = (given: string): PeerReadiness => {
    const address = canonicalOrUndefined(given);
    const target = address === undefined ? undefined : targets.find((t) => t.address === address);
    if (target) return targetState(given, target) as PeerReadiness;
    const linked = address === undefined ? undefined : links.find((l) => l.listenAddress === address || l.remoteAddress === address);
    if (linked) return peerState(given, linked.peer);
    const name = peerNameOrUndefined(given);
    if (name !== undefined) return peerState(given, name);
    const byNickname = router.peers().filter((p) => p.nickname === given);
    if (byNickname.length === 1) return peerState(given, (byNickname[0] as (typeof byNickname)[number]).name);
    if (byNickname.length > 1) return { target: given, state: 'failed', detail: `the nickname is ambiguous (${byNickname.map((p) => p.id).join(', ')}): use the peer name` };
    return { target: given, state: 'unknown', detail: 'no known peer has this name or nickname, and it is not a configured target' };
  };

  let peers: PeerReadiness[];
  if (query.peers) {
    peers = query.peers.map(resolveGiven);
  } else {
    // Every configured target (as given) and every known peer, each peer once.
    peers = [];
    const covered = new Set<string>();
    for (const t of targets) {
      if (!t.direct) continue;
      const r = targetState(t.address, t);
      if (!r || (r.peer !== undefined && covered.has(r.peer))) continue;
      if (r.peer === formatPeerName(router.selfName)) continue; // our own address in the list
      if (r.peer !== undefined) covered.add(r.peer);
      peers.push(r);
    }
    for (const p of router.peers()) {
      if (p.isSelf || covered.has(p.id)) continue;
      covered.add(p.id);
      peers.push(peerState(p.id, p.name));
    }
  }

  const wantIpam = ipam !== undefined && query.ipam !== false;
  const ipamReport: IpamReadiness | undefined = wantIpam
    ? { ready: ipam.state === 'ready' || ipam.state === 'waiting-for-space', state: ipam.state, detail: ipam.describeState() }
    : undefined;
  return {
    ready: peers.every((p) => p.state === 'ready') && (ipamReport?.ready ?? true),
    peers,
    ...(ipamReport ? { ipam: ipamReport } : {}),
  };
}

/** One line per thing not ready, for errors: `"192.0.2.2:6783": connecting (…)`. */
export function describeUnready(report: OverlayReadiness): string[] {
  const out: string[] = [];
  for (const p of report.peers) {
    if (p.state === 'ready') continue;
    const who = p.nickname && p.nickname !== p.target ? `"${p.target}" (${p.nickname})` : `"${p.target}"`;
    out.push(`${who}: ${p.state}${p.detail ? ` (${p.detail})` : ''}`);
  }
  if (report.ipam && !report.ipam.ready) out.push(`IPAM: ${report.ipam.detail}`);
  return out;
}

function canonicalOrUndefined(text: string): string | undefined {
  try {
    return canonicalAddress(text);
  } catch {
    return undefined;
  }
}

function peerNameOrUndefined(text: string): PeerName | undefined {
  try {
    return parsePeerName(text);
  } catch {
    return undefined;
  }
}
