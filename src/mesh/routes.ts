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

/** Neighbours by dense index; indexes follow peer names in order, so sorting indexes sorts names. */
type Adjacency = readonly (readonly number[])[];

/** Next hop per destination; the start maps to itself. */
type RouteTable = Map<PeerName, PeerName>;

/** A broadcast tree as seen from one peer: does it reach us, and where do we pass its broadcasts on. */
interface Tree {
  found: boolean;
  hops: readonly PeerName[];
}

const byName = (a: PeerName, b: PeerName): number => a - b;

/**
 * An immutable snapshot of routing decisions for one topology. Two modes:
 * - established: only links both ends list as established (symmetric), used by the data plane;
 * - all: every connection any known peer lists, even to a peer with no record yet (a leaf), used by gossip.
 * Recompute after every topology change; broadcast trees are built lazily and cached per source.
 * @category Mesh
 */
export class Routes {
  private readonly broadcastCache = new Map<PeerName, Tree>();
  /** Shared with the next snapshot when its all-links graph is the same (trees over it are too). */
  private broadcastAllCache = new Map<PeerName, Tree>();

  /** Scratch space of tree searches: next hop (index) per peer, -1 when not reached. */
  private readonly scratch: Int32Array;
  private readonly levels: Levels;

  private constructor(
    private readonly self: number,
    /** Peer names by index: every peer reachable from us over all links, with a record or not. */
    private readonly names: readonly PeerName[],
    private readonly indexOf: ReadonlyMap<PeerName, number>,
    /** Peers with a record (by index): the only sources a tree can start at. */
    private readonly hasRecord: Uint8Array,
    private readonly established: Adjacency,
    private readonly all: Adjacency,
    private readonly unicastTable: RouteTable,
    private readonly unicastAllTable: RouteTable,
  ) {
    this.scratch = new Int32Array(names.length);
    this.levels = newLevels(names.length);
  }

  /**
   * Computes routes as seen from `view.selfName`. At each BFS level the worklist is sorted by peer name,
   * so every peer holding the same topology derives the same trees. With `previous` (the snapshot this one
   * replaces), broadcast trees over all links already searched are kept when that graph did not change:
   * most updates only flip a link to established or bump a version.
   */
  static compute(view: TopologyView, previous?: Routes): Routes {
    const selfName = view.selfName;
    // Snapshot every peer reachable over all links: anything a BFS from a reachable source can visit
    // is reachable too, so later broadcast queries never need the (possibly changed) view again.
    const records = new Map<PeerName, PeerRecord>();
    const pending: PeerName[] = [selfName];
    const visited = new Set<PeerName>([selfName]);
    for (let cur = pending.pop(); cur !== undefined; cur = pending.pop()) {
      const record = view.get(cur);
      if (record === undefined) continue;
      records.set(cur, record);
      for (const c of record.connections) {
        if (!visited.has(c.peer)) {
          visited.add(c.peer);
          pending.push(c.peer);
        }
      }
    }
    const names = [...visited].sort(byName);
    const indexOf = new Map(names.map((name, i) => [name, i]));
    const n = names.length;
    const hasRecord = new Uint8Array(n);
    const all: number[][] = [];
    const establishedOut: number[][] = [];
    // Directed "a lists b as established" edges, keyed a * n + b.
    const establishedEdges = new Set<number>();
    for (let i = 0; i < n; i++) {
      const record = records.get(names[i] as PeerName);
      const out: number[] = [];
      const est: number[] = [];
      if (record) {
        hasRecord[i] = 1;
        for (const c of record.connections) {
          const j = indexOf.get(c.peer) as number;
          if (j === i) continue;
          out.push(j);
          if (c.established) {
            est.push(j);
            establishedEdges.add(i * n + j);
          }
        }
      }
      all.push(out);
      establishedOut.push(est);
    }
    // A link carries data only when both ends say so; one side's word is not enough.
    const established = establishedOut.map((out, i) => out.filter((j) => establishedEdges.has(j * n + i)));
    const self = indexOf.get(selfName) as number;
    const hops = new Int32Array(n);
    const table = (adjacency: Adjacency): RouteTable => {
      bfs(adjacency, self, -1, hops, newLevels(n));
      const routes: RouteTable = new Map();
      for (let i = 0; i < n; i++) if ((hops[i] as number) >= 0) routes.set(names[i] as PeerName, names[hops[i] as number] as PeerName);
      return routes;
    };
    const routes = new Routes(self, names, indexOf, hasRecord, established, all, table(established), table(all));
    if (previous && previous.sameAllGraph(routes)) routes.broadcastAllCache = previous.broadcastAllCache;
    return routes;
  }

  /** True when `other` has the same peers, records and all-links graph as seen from the same peer. */
  private sameAllGraph(other: Routes): boolean {
    const n = this.names.length;
    if (other.names.length !== n || other.self !== this.self) return false;
    for (let i = 0; i < n; i++) {
      if (other.names[i] !== this.names[i] || other.hasRecord[i] !== this.hasRecord[i]) return false;
      const a = this.all[i] as readonly number[];
      const b = other.all[i] as readonly number[];
      if (a.length !== b.length) return false;
      for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
    }
    return true;
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
    return [...this.tree(source, this.established, this.broadcastCache).hops];
  }

  /** Like `broadcast`, over all links known peers list (for gossip). */
  broadcastAll(source: PeerName): PeerName[] {
    return [...this.tree(source, this.all, this.broadcastAllCache).hops];
  }

  /**
   * True when `source` has a broadcast tree over all links that reaches us. It has none while our view
   * is inconsistent (its record unknown, or stale records that leave us off its tree).
   */
  hasTreeFrom(source: PeerName): boolean {
    return this.tree(source, this.all, this.broadcastAllCache).found;
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
      if (dest === this.names[this.self] || hop === except) continue;
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

  /** The source's tree as it concerns us: whether it reaches us, and our hops in it; cached per source. */
  private tree(source: PeerName, adjacency: Adjacency, cache: Map<PeerName, Tree>): Tree {
    let tree = cache.get(source);
    if (tree === undefined) {
      tree = { found: false, hops: [] };
      const start = this.indexOf.get(source);
      if (start !== undefined && this.hasRecord[start] === 1) {
        const reached = this.scratch;
        if (bfs(adjacency, start, this.self, reached, this.levels)) {
          const hops = (adjacency[this.self] ?? []).filter((p) => (reached[p] as number) < 0).map((p) => this.names[p] as PeerName);
          tree = { found: true, hops: hops.sort(byName) };
        }
      }
      cache.set(source, tree);
    }
    return tree;
  }
}

/** Two worklists of a breadth-first search: the level being taken off and the next one. */
type Levels = [Int32Array, Int32Array];

function newLevels(n: number): Levels {
  return [new Int32Array(n), new Int32Array(n)];
}

/**
 * Breadth-first search from `start`, level by level with each level sorted by name (index). Fills `hops`
 * with the next hop (from `start`) of every peer reached, -1 for the others; with `stopAt` (-1 for none),
 * stops when that peer is taken off the worklist, and `hops` then covers exactly the peers reached by
 * then. Returns whether it stopped there. Levels live in typed arrays: a converging mesh runs this once
 * per source for every new snapshot of the routes.
 */
function bfs(adjacency: Adjacency, start: number, stopAt: number, hops: Int32Array, levels: Levels): boolean {
  hops.fill(-1);
  hops[start] = start;
  let [level, next] = levels;
  level[0] = start;
  let levelSize = 1;
  while (levelSize > 0) {
    // Typed-array sort is numeric without a comparator.
    level.subarray(0, levelSize).sort();
    let nextSize = 0;
    for (let k = 0; k < levelSize; k++) {
      const cur = level[k] as number;
      if (cur === stopAt) return true;
      const via = hops[cur] as number;
      for (const remote of adjacency[cur] ?? []) {
        if ((hops[remote] as number) >= 0) continue;
        hops[remote] = cur === start ? remote : via;
        next[nextSize++] = remote;
      }
    }
    [level, next] = [next, level];
    levelSize = nextSize;
  }
  return false;
}
