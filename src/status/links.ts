// Link views: per remote peer, how frames reach it: direct or relayed, the link's mode and MTU, encryption.
import type { MeshRouter } from '../mesh/router.js';
import type { DataPlaneStatus } from '../ethernet/data-plane.js';
import type { LinkMode } from '../ethernet/sleeve.js';
import { formatPeerName } from '../wire/peer-name.js';

/** How this peer reaches one other peer on the data plane. */
export interface OverlayLinkView {
  /** The remote peer's name. */
  peer: string;
  /** The remote peer's display name; empty when its record is not known. */
  nickname: string;
  /** True when there is a direct link (TCP control link) to the peer. */
  direct: boolean;
  /** The next hop frames take, when the peer is reachable over established links (itself when direct). */
  via?: string;
  /** True when frames can flow (an established route). */
  established: boolean;
  /** Sleeve mode of the first hop (`relayed` hops inherit the first hop's mode). */
  mode: LinkMode | 'unreachable';
  /** Largest IP packet carried in one piece over the first hop. */
  mtu?: number;
  /** True when this overlay encrypts its links (a network password is set). */
  encrypted: boolean;
}

/** Views of every known remote peer, sorted by name. */
export function linkViews(router: MeshRouter, dataPlane: DataPlaneStatus): OverlayLinkView[] {
  const sleeve = new Map(dataPlane.links.map((l) => [l.peer, l]));
  const routes = router.routes;
  const views: OverlayLinkView[] = [];
  for (const peer of router.peers()) {
    if (peer.isSelf) continue;
    const link = router.link(peer.name);
    const nextHop = routes.unicast(peer.name);
    const hop = nextHop === undefined ? undefined : sleeve.get(formatPeerName(nextHop));
    views.push({
      peer: peer.id,
      nickname: peer.nickname,
      direct: link !== undefined,
      ...(nextHop !== undefined ? { via: formatPeerName(nextHop) } : {}),
      established: nextHop !== undefined && (hop?.established ?? false),
      mode: hop?.mode ?? (link ? 'connecting' : 'unreachable'),
      ...(hop ? { mtu: hop.mtu } : {}),
      encrypted: router.encrypted,
    });
  }
  return views.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
}
