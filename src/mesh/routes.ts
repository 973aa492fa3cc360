// Routes: next hops and per-source broadcast trees, computed from the topology by a deterministic BFS.
import type { Random } from '../random.js';
import type { PeerName } from '../wire/peer-name.js';
import type { PeerRecord } from '../wire/topology.js';

/** The read side of a topology that routes are computed from (`Topology` satisfies it). */
export interface TopologyView {
  /** The peer routes are computed from. */
  readonly selfName: PeerName;
  /** The record of `name`; undefined when it is not known. */
  get(name: PeerName): PeerRecord | undefined;
}

type Adjacency = Map<PeerName, readonly PeerName[]>;

/** Next hop per destination; the start maps to itself. */
type RouteTable = Map<PeerName, PeerName>;

const byName = (a: PeerName, b: PeerName): number => a - b;

/**
 * An immutable snapshot of routing decisions for one topology. Two modes:
 * - established: only links both ends list as established (symmetric), used by the data plane;
 * - all: every connection any known peer lists, even to a peer with no record yet (a leaf), used by gossip.
 * Recompute after every topology change; broadcast trees are built lazily and cached per source.
 * @category Mesh
 */
export class Routes {
  private readonly broadcastCache = new Map<PeerName, PeerName[]>();
  private readonly broadcastAllCache = new Map<PeerName, PeerName[]>();

  private constructor(
    private readonly selfName: PeerName,
    /** Peers with a record reachable from us over all links: the only sources a tree can start at. */
    private readonly known: ReadonlySet<PeerName>,
    private readonly established: Adjacency,
    private readonly all: Adjacency,
    private readonly unicastTable: RouteTable,
    private readonly unicastAllTable: RouteTable,
  ) {}

  /**
   * Computes routes as seen from `view.selfName`. At each BFS level the worklist is sorted by peer name,
   * so every peer holding the same topology derives the same trees.
   */
  static compute(view: TopologyView): Routes {
    const self = view.selfName;
    // Snapshot every peer reachable over all links: anything a BFS from a reachable source can visit
    // is reachable too, so later broadcast queries never need the (possibly changed) view again.
    const records = new Map<PeerName, PeerRecord>();
    const all: Adjacency = new Map();
    const pending: PeerName[] = [self];
    const visited = new Set<PeerName>([self]);
    for (let cur = pending.pop(); cur !== undefined; cur = pending.pop()) {
      const record = view.get(cur);
      if (record === undefined) continue;
      records.set(cur, record);
      const neighbours = record.connections.map((c) => c.peer).filter((p) => p !== cur);
      all.set(cur, neighbours);
      for (const p of neighbours) {
        if (!visited.has(p)) {
          visited.add(p);
          pending.push(p);
        }
      }
    }
    const establishedOut = new Map<PeerName, Set<PeerName>>();
    for (const [name, record] of records) {
      establishedOut.set(name, new Set(record.connections.filter((c) => c.established).map((c) => c.peer)));
    }
    // A link carries data only when both ends say so; one side's word is not enough.
    const established: Adjacency = new Map();
    for (const [name, out] of establishedOut) {
      established.set(name, [...out].filter((p) => p !== name && (establishedOut.get(p)?.has(name) ?? false)));
    }
    const known = new Set(records.keys());
    return new Routes(self, known, established, all, bfs(established, self).routes, bfs(all, self).routes);
  }

  /** Next hop towards `dest` over established symmetric links; `undefined` if unreachable. `unicast(self)` is self. */
  unicast(dest: PeerName): PeerName | undefined {
    return this.unicastTable.get(dest);
  }

  /** Next hop towards `dest` over all links known peers list (for gossip); `undefined` if unreachable. */
  unicastAll(dest: PeerName): PeerName | undefined {
    return this.unicastAllTable.get(dest);
  }

  /**
   * Our neighbours to pass a broadcast originated by `source` on to, over established symmetric links:
   * the BFS from `source` runs until it reaches us, and we cover our neighbours it has not reached yet.
   * Every peer doing this delivers each broadcast to every connected peer exactly once. Sorted by name.
   */
  broadcast(source: PeerName): PeerName[] {
    return this.tree(source, this.established, this.broadcastCache);
  }

  /** Like `broadcast`, over all links known peers list (for gossip). */
  broadcastAll(source: PeerName): PeerName[] {
    return this.tree(source, this.all, this.broadcastAllCache);
  }

  /**
   * True when `source` has a broadcast tree over all links that reaches us. It has none while our view
   * is inconsistent (its record unknown, or stale records that leave us off its tree).
   */
  hasTreeFrom(source: PeerName): boolean {
    return this.known.has(source) && bfs(this.all, source, this.selfName).found;
  }

  /** Peers reachable from us over all links, ourselves included, sorted by name. */
  reachable(): PeerName[] {
    return [...this.unicastAllTable.keys()].sort(byName);
  }

  /**
   * Gossip fan-out: min(⌊2·log2 N⌋, neighbours) of our neighbours (N = reachable peers including us;
   * neighbours = next hops in `unicastAll`, minus `except`), picked without replacement with weight
   * = how many destinations route through each, which favours the far ends of bottleneck links.
   */
  randomNeighbours(random: Random, except?: PeerName): PeerName[] {
    const weights = new Map<PeerName, number>();
    for (const [dest, hop] of this.unicastAllTable) {
      if (dest === this.selfName || hop === except) continue;
      weights.set(hop, (weights.get(hop) ?? 0) + 1);
    }
    const n = this.unicastAllTable.size;
    const want = Math.min(Math.floor(2 * Math.log2(n)), weights.size);
    // Sorted candidates so a seeded random gives the same picks on every run.
    const candidates = [...weights.keys()].sort(byName);
    let total = candidates.reduce((sum, p) => sum + (weights.get(p) ?? 0), 0);
    const picked: PeerName[] = [];
    while (picked.length < want) {
      let x = random.float() * total;
      let i = 0;
      for (; i < candidates.length - 1; i++) {
        x -= weights.get(candidates[i] as PeerName) ?? 0;
        if (x < 0) break;
      }
      const [hop] = candidates.splice(i, 1) as [PeerName];
      total -= weights.get(hop) ?? 0;
      picked.push(hop);
    }
    return picked;
  }

  private tree(source: PeerName, adjacency: Adjacency, cache: Map<PeerName, PeerName[]>): PeerName[] {
    const cached = cache.get(source);
    if (cached !== undefined) return [...cached];
    let hops: PeerName[] = [];
    if (this.known.has(source)) {
      const { routes, found } = bfs(adjacency, source, this.selfName);
      if (found) hops = (adjacency.get(this.selfName) ?? []).filter((p) => !routes.has(p)).sort(byName);
    }
    cache.set(source, hops);
    return [...hops];
  }
}

/**
 * Breadth-first search from `start`, level by level with each level sorted by name. Returns the next hop
 * (from `start`) of every peer reached; with `stopAt`, stops when that peer is taken off the worklist,
 * and `routes` then holds exactly the peers already covered by then.
 */
function bfs(adjacency: Adjacency, start: PeerName, stopAt?: PeerName): { routes: RouteTable; found: boolean } {
  const routes: RouteTable = new Map([[start, start]]);
  let next: PeerName[] = [start];
  while (next.length > 0) {
    const worklist = next.sort(byName);
    next = [];
    for (const cur of worklist) {
      if (cur === stopAt) return { routes, found: true };
      const via = routes.get(cur) as PeerName;
      for (const remote of adjacency.get(cur) ?? []) {
        if (routes.has(remote)) continue;
        routes.set(remote, cur === start ? remote : via);
        next.push(remote);
      }
    }
  }
  return { routes, found: false };
}
