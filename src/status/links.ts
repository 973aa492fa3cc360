// Link views: per remote peer, how frames reach it: its state, direct or relayed, the first hop's mode and MTU.
import type { MeshRouter } from '../mesh/router.js';
import type { DataPlaneStatus } from '../ethernet/data-plane.js';
import type { LinkMode } from '../ethernet/sleeve.js';
import type { FastLinkMode } from '../ethernet/fast-path.js';
import { formatPeerName } from '../wire/peer-name.js';

/**
 * Where the data path to a peer stands: `established` (frames flow, directly or relayed), `connecting` (a
 * direct link or a route exists but its first hop's UDP path is not working yet) or `unreachable` (no
 * direct link and no route: the peer is known from topology only, e.g. after a partition, until it is
 * forgotten with `peer:down`).
 */
export type OverlayLinkState = 'established' | 'connecting' | 'unreachable';

/** A peer frames reach now: the next hop and the MTU are known. */
export interface EstablishedLinkView {
  /** The remote peer's name. */
  peer: string;
  /** The remote peer's display name; empty when its record is not known. */
  nickname: string;
  /** Always `established`. */
  state: 'established';
  /** Always true (kept beside `state` for code that only asks "can frames flow?"). */
  established: true;
  /** True when there is a direct link (TCP control link) to the peer; false when frames are relayed. */
  direct: boolean;
  /** The next hop frames take (the peer itself when direct). */
  via: string;
  /** The next hop's display name (the peer's own nickname when direct). */
  viaNickname: string;
  /** Sleeve mode of the first hop (`fragmenting` or `pmtu`; relayed hops inherit the first hop's). */
  mode: LinkMode;
  /** Largest IP packet carried in one piece over the first hop. */
  mtu: number;
  /** True when this overlay encrypts its links (a network password is set). */
  encrypted: boolean;
  /** How unicast between kernel endpoints travels: `fastdp` (kernel VXLAN tunnel) or `sleeve`. */
  datapath: FastLinkMode;
  /** Why the sleeve (absent on `fastdp`): not trusted, no fast path at the peer, unhealthy, relayed... */
  datapathReason?: string;
}

/** A peer with a direct link or a route whose first hop's data path is still coming up. */
export interface ConnectingLinkView {
  /** The remote peer's name. */
  peer: string;
  /** The remote peer's display name; empty when its record is not known. */
  nickname: string;
  /** Always `connecting`. */
  state: 'connecting';
  /** Always false. */
  established: false;
  /** True when there is a direct link (TCP control link) to the peer. */
  direct: boolean;
  /** The next hop, when a route exists already (its UDP path is not working yet). */
  via?: string | undefined;
  /** The next hop's display name, with `via`. */
  viaNickname?: string | undefined;
  /** Sleeve mode of the first hop: `connecting` (heartbeats unanswered), `testing` or `searching` (MTU). */
  mode: LinkMode;
  /** Not known until the link is established. */
  mtu?: undefined;
  /** True when this overlay encrypts its links (a network password is set). */
  encrypted: boolean;
  /** How unicast between kernel endpoints travels: `fastdp` (kernel VXLAN tunnel) or `sleeve`. */
  datapath: FastLinkMode;
  /** Why the sleeve (absent on `fastdp`). */
  datapathReason?: string;
}

/** A peer known from topology that this peer has neither a link nor a route to. */
export interface UnreachableLinkView {
  /** The remote peer's name. */
  peer: string;
  /** The remote peer's display name; empty when its record is not known. */
  nickname: string;
  /** Always `unreachable`. */
  state: 'unreachable';
  /** Always false. */
  established: false;
  /** Always false. */
  direct: false;
  /** No next hop. */
  via?: undefined;
  /** No next hop. */
  viaNickname?: undefined;
  /** Always `unreachable`. */
  mode: 'unreachable';
  /** No path, no MTU. */
  mtu?: undefined;
  /** True when this overlay encrypts its links (a network password is set). */
  encrypted: boolean;
}

/**
 * How this peer reaches one other peer on the data plane, as in `status().links` and `link:changed`. Narrow
 * on `state`: only an established view has `via` and `mtu` for sure.
 *
 * ```ts
 * overlay.on('link:changed', (link) =>
 *   console.log(link.nickname, link.state === 'established' ? `${link.direct ? 'direct' : `via ${link.viaNickname}`}, ${link.mode}, MTU ${link.mtu}` : link.state));
 * ```
 */
export type OverlayLinkView = EstablishedLinkView | ConnectingLinkView | UnreachableLinkView;

/** Views of every known remote peer, sorted by name. */
export function linkViews(router: MeshRouter, dataPlane: DataPlaneStatus): OverlayLinkView[] {
  const sleeve = new Map(dataPlane.links.map((l) => [l.peer, l]));
  const fast = new Map(dataPlane.fastPath.links.map((l) => [l.peer, l]));
  const routes = router.routes;
  const views: OverlayLinkView[] = [];
  for (const peer of router.peers()) {
    if (peer.isSelf) continue;
    const direct = router.link(peer.name) !== undefined;
    const nextHop = routes.unicast(peer.name);
    const common = { peer: peer.id, nickname: peer.nickname, encrypted: router.encrypted };
    if (nextHop === undefined && !direct) {
      views.push({ ...common, state: 'unreachable', established: false, direct: false, mode: 'unreachable' });
      continue;
    }
    const via = nextHop === undefined ? undefined : { via: formatPeerName(nextHop), viaNickname: router.peer(nextHop)?.nickname ?? '' };
    const hop = via === undefined ? undefined : sleeve.get(via.via);
    const path = datapathOf(direct ? fast.get(peer.id) : undefined, direct, via?.viaNickname || via?.via, dataPlane.fastPath.reason);
    if (via && hop?.established) {
      views.push({ ...common, state: 'established', established: true, direct, ...via, mode: hop.mode, mtu: hop.mtu, ...path });
    } else {
      views.push({ ...common, state: 'connecting', established: false, direct, ...via, mode: hop?.mode ?? 'connecting', ...path });
    }
  }
  return views.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
}

function datapathOf(
  fast: { mode: FastLinkMode; reason?: string } | undefined,
  direct: boolean,
  via: string | undefined,
  offReason: string | undefined,
): { datapath: FastLinkMode; datapathReason?: string } {
  if (fast) return fast.mode === 'fastdp' ? { datapath: 'fastdp' } : { datapath: 'sleeve', datapathReason: fast.reason ?? '' };
  if (!direct) return { datapath: 'sleeve', datapathReason: `relayed through ${via ?? 'another peer'} (tunnels join direct neighbours only)` };
  return { datapath: 'sleeve', datapathReason: offReason ?? 'the fast path is not running here' };
}
