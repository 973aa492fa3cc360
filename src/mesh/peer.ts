// Peer: a peer's identity plus a live view of what this peer knows about it.
import type { ConnectionSummary } from '../wire/topology.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';

/** A direct link from this peer to a neighbour, as the router sees it now. */
export interface LinkInfo {
  /** The neighbour's permanent name. */
  peer: PeerName;
  /** The neighbour's display name, from its handshake. */
  nickname: string;
  /** The neighbour's TCP address on this link ("host:port"). */
  remoteAddress: string;
  /** The neighbour's listening address (its IP with its advertised listen port). */
  listenAddress: string;
  /** True when we dialled the link, false when we accepted it. */
  outbound: boolean;
  /** True once the link carries data: at once without a data plane, when its data path works with one. */
  established: boolean;
  /** True when the link is encrypted and authenticated with the network key. */
  encrypted: boolean;
  /** Clock time this link was accepted. */
  since: number;
  /** Clock time of the last message received on this link. */
  lastReceived: number;
}

type PeerRecordView = NonNullable<ReturnType<PeerSource['peerRecord']>>;

/** Where the live data comes from (the mesh router). */
export interface PeerSource {
  /** Our own peer name. */
  readonly selfName: PeerName;
  /** The peer's current topology record; undefined when it is not known. */
  peerRecord(name: PeerName): {
    /** Display name. */
    nickname: string;
    /** Incarnation, random per start. */
    uid: bigint;
    /** Record version, bumped by its owner. */
    version: bigint;
    /** The peer's own connection list. */
    connections: readonly ConnectionSummary[];
  } | undefined;
  /** Our direct link to the peer (a copy); undefined when there is none. */
  link(name: PeerName): LinkInfo | undefined;
  /** True for ourselves and for peers reachable over the links the topology lists. */
  isReachable(name: PeerName): boolean;
  /** Clock time we last heard from or about the peer (now, for ourselves); undefined if never. */
  lastSeen(name: PeerName): number | undefined;
}

/** JSON form of a peer, as in `status()`. */
export interface PeerSnapshot {
  /** The peer name in MAC form, e.g. `aa:bb:cc:dd:ee:ff`. */
  name: string;
  /** Display name; empty when its record is not known. */
  nickname: string;
  /** Incarnation as a decimal string ("0" when its record is not known). */
  uid: string;
  /** Topology record version as a decimal string ("0" when not known). */
  version: string;
  /** True for this peer itself. */
  self: boolean;
  /** Reachable over the links the topology lists. */
  reachable: boolean;
  /** True when we have a direct link to it. */
  direct: boolean;
  /** Its listening "host:port"; only with a direct link. */
  address?: string;
  /** True when our direct link to it carries data (false without one). */
  established: boolean;
  /** Whether our direct link is encrypted; only with a direct link. */
  encrypted?: boolean;
  /** Clock time (ms) we last heard from or about it; absent if never. */
  lastSeen?: number;
  /** The peer's own connection list, from topology gossip. */
  connections: {
    /** The peer at the other end, in MAC form. */
    name: string;
    /** That peer's listening "host:port". */
    address: string;
    /** True when this peer dialled it. */
    outbound: boolean;
    /** True once the link carries data. */
    established: boolean;
  }[];
}

/**
 * A peer of the mesh. Identity fields are fixed; the rest is a live view that always reflects the
 * router's current knowledge (it is not a snapshot).
 * @category Mesh
 */
export class Peer {
  private lastRecord: PeerRecordView | undefined;

  constructor(
    private readonly source: PeerSource,
    /** The permanent 48-bit name. */
    readonly name: PeerName,
  ) {}

  /**
   * Called when the router forgets the peer: from then on the view answers nickname, uid and connections
   * from this last record (so `peer:down` handlers and logs can still say who left).
   * @internal
   */
  retire(record: PeerRecordView | undefined): void {
    this.lastRecord = record;
  }

  /** The live record, or the last one for a peer the router has forgotten. */
  private record(): PeerRecordView | undefined {
    return this.source.peerRecord(this.name) ?? this.lastRecord;
  }

  /** The name in MAC form, e.g. `aa:bb:cc:dd:ee:ff`. */
  get id(): string {
    return formatPeerName(this.name);
  }

  /** True when this is our own peer. */
  get isSelf(): boolean {
    return this.name === this.source.selfName;
  }

  /** Display name from its topology record (the last one known, for a peer that went down); empty when never known. */
  get nickname(): string {
    return this.record()?.nickname ?? '';
  }

  /** The incarnation: random per start of that peer. */
  get uid(): bigint | undefined {
    return this.record()?.uid;
  }

  /** Reachable over the links that the topology lists. */
  get reachable(): boolean {
    return this.source.isReachable(this.name);
  }

  /** The peer's own connection list, from topology gossip. */
  get connections(): readonly ConnectionSummary[] {
    return this.record()?.connections ?? [];
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

  /** A JSON-ready snapshot of the live view, as in `status()`. */
  toJSON(): PeerSnapshot {
    const link = this.link;
    const record = this.record();
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
