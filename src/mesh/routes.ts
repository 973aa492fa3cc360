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

/**
 * A directed graph over dense peer indexes in compressed rows: the neighbours of `i` are
 * `targets[offsets[i]] … targets[offsets[i + 1] - 1]`, ascending. Indexes follow peer names in order, so
 * sorting indexes sorts names. Flat typed arrays: a converging mesh searches these once per broadcast source
 * for every new snapshot of the routes.
 */
interface Graph {
  offsets: Int32Array;
  targets: Int32Array;
}

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
    private readonly established: Graph,
    private readonly all: Graph,
    /** Next hop (index) from us per peer over established links, -1 when unreachable. */
    private readonly unicastHops: Int32Array,
    /** The same over all links. */
    private readonly unicastAllHops: Int32Array,
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
    let edges = 0;
    for (const record of records.values()) edges += record.connections.length;
    const all: Graph = { offsets: new Int32Array(n + 1), targets: new Int32Array(edges) };
    /** Per edge of `all`: the owner lists it as established. */
    const listedEstablished = new Uint8Array(edges);
    let e = 0;
    for (let i = 0; i < n; i++) {
      all.offsets[i] = e;
      const record = records.get(names[i] as PeerName);
      if (record === undefined) continue;
      hasRecord[i] = 1;
      const rowStart = e;
      for (const c of record.connections) {
        const j = indexOf.get(c.peer) as number;
        if (j === i) continue;
        all.targets[e] = j;
        listedEstablished[e] = c.established ? 1 : 0;
        e++;
      }
      sortRow(all.targets, listedEstablished, rowStart, e);
    }
    all.offsets[n] = e;
    // A link carries data only when both ends say so; one side's word is not enough.
    const estOffsets = new Int32Array(n + 1);
    const estTargets: number[] = [];
    for (let i = 0; i < n; i++) {
      estOffsets[i] = estTargets.length;
      for (let k = all.offsets[i] as number; k < (all.offsets[i + 1] as number); k++) {
        const j = all.targets[k] as number;
        if (listedEstablished[k] === 1 && listsEstablished(all, listedEstablished, j, i)) estTargets.push(j);
      }
    }
    estOffsets[n] = estTargets.length;
    const established: Graph = { offsets: estOffsets, targets: Int32Array.from(estTargets) };
    const self = indexOf.get(selfName) as number;
    const levels = newLevels(n);
    const unicastHops = new Int32Array(n);
    const unicastAllHops = new Int32Array(n);
    bfs(established, self, -1, unicastHops, levels);
    bfs(all, self, -1, unicastAllHops, levels);
    const routes = new Routes(self, names, indexOf, hasRecord, established, all, unicastHops, unicastAllHops);
    if (previous && previous.sameAllGraph(routes)) routes.broadcastAllCache = previous.broadcastAllCache;
    return routes;
  }

  /** True when `other` has the same peers, records and all-links graph as seen from the same peer. */
  private sameAllGraph(other: Routes): boolean {
    const n = this.names.length;
    if (other.names.length !== n || other.self !== this.self) return false;
    for (let i = 0; i < n; i++) {
      if (other.names[i] !== this.names[i] || other.hasRecord[i] !== this.hasRecord[i]) return false;
    }
    return sameArray(this.all.offsets, other.all.offsets) && sameArray(this.all.targets, other.all.targets);
  }

  /** Next hop towards `dest` over established symmetric links; `undefined` if unreachable. `unicast(self)` is self. */
  unicast(dest: PeerName): PeerName | undefined {
    return this.hopTo(this.unicastHops, dest);
  }

  /** Next hop towards `dest` over all links known peers list (for gossip); `undefined` if unreachable. */
  unicastAll(dest: PeerName): PeerName | undefined {
    return this.hopTo(this.unicastAllHops, dest);
  }

  private hopTo(hops: Int32Array, dest: PeerName): PeerName | undefined {
    const i = this.indexOf.get(dest);
    if (i === undefined) return undefined;
    const hop = hops[i] as number;
    return hop < 0 ? undefined : (this.names[hop] as PeerName);
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
    return this.names.filter((_, i) => (this.unicastAllHops[i] as number) >= 0);
  }

  /**
   * Gossip fan-out: min(⌊2·log2 N⌋, neighbours) of our neighbours (N = reachable peers including us;
   * neighbours = next hops in `unicastAll`, minus `except`), picked without replacement with weight
   * = how many destinations route through each, which favours the far ends of bottleneck links.
   */
  randomNeighbours(random: Random, except?: PeerName): PeerName[] {
    const weights = new Map<PeerName, number>();
    let n = 0;
    for (let i = 0; i < this.names.length; i++) {
      const hopIndex = this.unicastAllHops[i] as number;
      if (hopIndex < 0) continue;
      n += 1;
      const hop = this.names[hopIndex] as PeerName;
      if (i === this.self || hop === except) continue;
      weights.set(hop, (weights.get(hop) ?? 0) + 1);
    }
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
  private tree(source: PeerName, graph: Graph, cache: Map<PeerName, Tree>): Tree {
    let tree = cache.get(source);
    if (tree === undefined) {
      tree = { found: false, hops: [] };
      const start = this.indexOf.get(source);
      if (start !== undefined && this.hasRecord[start] === 1) {
        const reached = this.scratch;
        if (bfs(graph, start, this.self, reached, this.levels)) {
          // Rows are ascending, so the hops come out sorted by name.
          const hops: PeerName[] = [];
          for (let k = graph.offsets[this.self] as number; k < (graph.offsets[this.self + 1] as number); k++) {
            const p = graph.targets[k] as number;
            if ((reached[p] as number) < 0) hops.push(this.names[p] as PeerName);
          }
          tree = { found: true, hops };
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
 * then. Returns whether it stopped there.
 */
function bfs(graph: Graph, start: number, stopAt: number, hops: Int32Array, levels: Levels): boolean {
  const { offsets, targets } = graph;
  hops.fill(-1);
  hops[start] = start;
  let [level, next] = levels;
  level[0] = start;
  let levelSize = 1;
  while (levelSize > 0) {
    sortPrefix(level, levelSize);
    let nextSize = 0;
    for (let k = 0; k < levelSize; k++) {
      const cur = level[k] as number;
      if (cur === stopAt) return true;
      const via = cur === start ? -1 : (hops[cur] as number);
      const end = offsets[cur + 1] as number;
      for (let m = offsets[cur] as number; m < end; m++) {
        const remote = targets[m] as number;
        if ((hops[remote] as number) >= 0) continue;
        hops[remote] = via < 0 ? remote : via;
        next[nextSize++] = remote;
      }
    }
    [level, next] = [next, level];
    levelSize = nextSize;
  }
  return false;
}

/** Sorts the first `size` entries in place (insertion sort: levels are short and often nearly sorted). */
function sortPrefix(a: Int32Array, size: number): void {
  for (let i = 1; i < size; i++) {
    const x = a[i] as number;
    let j = i - 1;
    while (j >= 0 && (a[j] as number) > x) {
      a[j + 1] = a[j] as number;
      j--;
    }
    a[j + 1] = x;
  }
}

/** Sorts `targets[from, to)` ascending, moving `flags` along. */
function sortRow(targets: Int32Array, flags: Uint8Array, from: number, to: number): void {
  for (let i = from + 1; i < to; i++) {
    const t = targets[i] as number;
    const f = flags[i] as number;
    let j = i - 1;
    while (j >= from && (targets[j] as number) > t) {
      targets[j + 1] = targets[j] as number;
      flags[j + 1] = flags[j] as number;
      j--;
    }
    targets[j + 1] = t;
    flags[j + 1] = f;
  }
}

/** True when `from` lists `to` as established (rows are ascending: binary search). */
function listsEstablished(graph: Graph, flags: Uint8Array, from: number, to: number): boolean {
  let lo = graph.offsets[from] as number;
  let hi = (graph.offsets[from + 1] as number) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const t = graph.targets[mid] as number;
    if (t === to) return flags[mid] === 1;
    if (t < to) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function sameArray(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
