// Peer: a peer's identity plus a live view of what this peer knows about it.
import type { ConnectionSummary } from '../wire/topology.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';

/** A direct link from this peer to a neighbour, as the router sees it now. */
export interface LinkInfo {
  peer: PeerName;
  nickname: string;
  /** The neighbour's TCP address on this link ("host:port"). */
  remoteAddress: string;
  /** The neighbour's listening address (its IP with its advertised listen port). */
  listenAddress: string;
  outbound: boolean;
  established: boolean;
  encrypted: boolean;
  /** Clock time this link was accepted. */
  since: number;
  /** Clock time of the last message received on this link. */
  lastReceived: number;
}

/** Where the live data comes from (the mesh router). */
export interface PeerSource {
  readonly selfName: PeerName;
  peerRecord(name: PeerName): { nickname: string; uid: bigint; version: bigint; connections: readonly ConnectionSummary[] } | undefined;
  link(name: PeerName): LinkInfo | undefined;
  isReachable(name: PeerName): boolean;
  lastSeen(name: PeerName): number | undefined;
}

/** JSON form of a peer, as in `status()`. */
export interface PeerSnapshot {
  name: string;
  nickname: string;
  uid: string;
  version: string;
  self: boolean;
  reachable: boolean;
  direct: boolean;
  address?: string;
  established: boolean;
  encrypted?: boolean;
  lastSeen?: number;
  connections: { name: string; address: string; outbound: boolean; established: boolean }[];
}

/**
 * A peer of the mesh. Identity fields are fixed; the rest is a live view that always reflects the
 * router's current knowledge (it is not a snapshot).
 */
export class Peer {
  constructor(
    private readonly source: PeerSource,
    /** The permanent 48-bit name. */
    readonly name: PeerName,
  ) {}

  /** The name in MAC form, e.g. `aa:bb:cc:dd:ee:ff`. */
  get id(): string {
    return formatPeerName(this.name);
  }

  get isSelf(): boolean {
    return this.name === this.source.selfName;
  }

  get nickname(): string {
    return this.source.peerRecord(this.name)?.nickname ?? '';
  }

  /** The incarnation: random per start of that peer. */
  get uid(): bigint | undefined {
    return this.source.peerRecord(this.name)?.uid;
  }

  /** Reachable over the links that the topology lists. */
  get reachable(): boolean {
    return this.source.isReachable(this.name);
  }

  /** The peer's own connection list, from topology gossip. */
  get connections(): readonly ConnectionSummary[] {
    return this.source.peerRecord(this.name)?.connections ?? [];
  }

  /** Our direct link to it, if any. */
  get link(): LinkInfo | undefined {
    return this.source.link(this.name);
  }

  /** Its listening address, when we have a direct link. */
  get address(): string | undefined {
    return this.link?.listenAddress;
  }

  /** True when we hold an established direct link to it. */
  get established(): boolean {
    return this.link?.established ?? false;
  }

  /** Whether our direct link is encrypted (undefined without a direct link). */
  get encrypted(): boolean | undefined {
    return this.link?.encrypted;
  }

  /** Clock time we last heard from or about it. */
  get lastSeen(): number | undefined {
    return this.source.lastSeen(this.name);
  }

  toJSON(): PeerSnapshot {
    const link = this.link;
    const record = this.source.peerRecord(this.name);
    const lastSeen = this.lastSeen;
    return {
      name: this.id,
      nickname: this.nickname,
      uid: String(record?.uid ?? 0n),
      version: String(record?.version ?? 0n),
      self: this.isSelf,
      reachable: this.reachable,
      direct: link !== undefined,
      ...(link ? { address: link.listenAddress, encrypted: link.encrypted } : {}),
      established: link?.established ?? false,
      ...(lastSeen !== undefined ? { lastSeen } : {}),
      connections: this.connections.map((c) => ({
        name: formatPeerName(c.peer),
        address: c.address,
        outbound: c.outbound,
        established: c.established,
      })),
    };
  }
}
