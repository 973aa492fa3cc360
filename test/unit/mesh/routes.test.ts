import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Routes, type TopologyView } from '../../../src/mesh/routes.js';
import { Topology } from '../../../src/mesh/topology.js';
import { randomPeerName, type PeerName } from '../../../src/wire/peer-name.js';
import { seededRandom, type Random } from '../../../src/random.js';
import type { ConnectionSummary, PeerRecord } from '../../../src/wire/topology.js';

type Edge = [number, number];

/** `n` distinct random names, so name order differs from index order. */
function names(n: number, seed = 1): PeerName[] {
  const rnd = seededRandom(seed);
  const out = new Set<PeerName>();
  while (out.size < n) out.add(randomPeerName((b) => rnd.fill(b)));
  return [...out];
}

const line = (n: number): Edge[] => Array.from({ length: n - 1 }, (_, i) => [i, i + 1] as Edge);
const ring = (n: number): Edge[] => (n < 3 ? line(n) : [...line(n), [n - 1, 0]]);
const star = (n: number): Edge[] => Array.from({ length: n - 1 }, (_, i) => [0, i + 1] as Edge);

/** A random connected graph: a random spanning tree plus about `n` extra edges. */
function randomConnected(n: number, rnd: Random): Edge[] {
  const edges = new Map<string, Edge>();
  const add = (a: number, b: number): void => {
    if (a !== b) edges.set(`${Math.min(a, b)}-${Math.max(a, b)}`, [a, b]);
  };
  for (let i = 1; i < n; i++) add(i, Math.floor(rnd.float() * i));
  for (let k = 0; k < n; k++) add(Math.floor(rnd.float() * n), Math.floor(rnd.float() * n));
  return [...edges.values()];
}

/** Records for a graph whose links are all established and listed by both ends. */
function graphRecords(peers: readonly PeerName[], edges: readonly Edge[]): Map<PeerName, PeerRecord> {
  const records = new Map<PeerName, PeerRecord>();
  peers.forEach((name, i) => records.set(name, { name, nickname: `p${i}`, uid: BigInt(i + 1), version: 1n, connections: [] }));
  const link = (from: PeerName, to: PeerName, outbound: boolean): void => {
    records.get(from)?.connections.push({ peer: to, address: `10.0.0.1:${6783}`, outbound, established: true });
  };
  for (const [a, b] of edges) {
    link(peers[a] as PeerName, peers[b] as PeerName, true);
    link(peers[b] as PeerName, peers[a] as PeerName, false);
  }
  return records;
}

const view = (records: ReadonlyMap<PeerName, PeerRecord>, selfName: PeerName): TopologyView => ({
  selfName,
  get: (name) => records.get(name),
});

const routesOf = (records: ReadonlyMap<PeerName, PeerRecord>): Map<PeerName, Routes> =>
  new Map([...records.keys()].map((name) => [name, Routes.compute(view(records, name))]));

/** Hop distances from `start` over the established symmetric links of `records`. */
function distances(records: ReadonlyMap<PeerName, PeerRecord>, start: PeerName): Map<PeerName, number> {
  const dist = new Map([[start, 0]]);
  const queue = [start];
  for (let cur = queue.shift(); cur !== undefined; cur = queue.shift()) {
    for (const c of records.get(cur)?.connections ?? []) {
      if (!dist.has(c.peer)) {
        dist.set(c.peer, (dist.get(cur) ?? 0) + 1);
        queue.push(c.peer);
      }
    }
  }
  return dist;
}

/** Simulates every peer forwarding a broadcast from `source`; returns how often each peer received it. */
function floodReceipts(routes: ReadonlyMap<PeerName, Routes>, source: PeerName, all: boolean): Map<PeerName, number> {
  const receipts = new Map<PeerName, number>();
  const queue = [source];
  for (let cur = queue.shift(); cur !== undefined; cur = queue.shift()) {
    const r = routes.get(cur);
    const hops = r === undefined ? [] : all ? r.broadcastAll(source) : r.broadcast(source);
    for (const hop of hops) {
      const seen = receipts.get(hop) ?? 0;
      receipts.set(hop, seen + 1);
      if (seen === 0) queue.push(hop);
    }
  }
  return receipts;
}

const shapes: [string, (n: number) => Edge[]][] = [
  ['line', line],
  ['ring', ring],
  ['star', star],
  ['random', (n) => randomConnected(n, seededRandom(n * 31))],
];

for (const [shape, edgesFor] of shapes) {
  for (const n of [2, 5, 25]) {
    test(`${shape} of ${n}: following unicast next hops reaches every destination along a shortest path`, () => {
      const peers = names(n, n);
      const records = graphRecords(peers, edgesFor(n));
      const routes = routesOf(records);
      for (const src of peers) {
        const dist = distances(records, src);
        for (const dest of peers) {
          let cur = src;
          let hops = 0;
          while (cur !== dest) {
            const next = routes.get(cur)?.unicast(dest);
            assert.ok(next !== undefined, `no route from ${cur} to ${dest}`);
            assert.ok(routes.get(cur)?.unicastAll(dest) !== undefined);
            cur = next;
            hops++;
            assert.ok(hops <= n, 'loop');
          }
          assert.is(hops, dist.get(dest), 'path length is the shortest distance');
        }
      }
    });

    test(`${shape} of ${n}: a broadcast from every source reaches every other peer exactly once`, () => {
      const peers = names(n, n + 100);
      const routes = routesOf(graphRecords(peers, edgesFor(n)));
      for (const all of [false, true]) {
        for (const source of peers) {
          const receipts = floodReceipts(routes, source, all);
          assert.not.ok(receipts.has(source), 'the source never gets its own broadcast back');
          for (const p of peers) if (p !== source) assert.is(receipts.get(p), 1, `peer ${p} from ${source} (all=${all})`);
        }
      }
    });
  }
}

test('unicast to ourselves is ourselves; unknown destinations and sources give nothing', () => {
  const peers = names(3);
  const records = graphRecords(peers, line(3));
  const r = Routes.compute(view(records, peers[0] as PeerName));
  assert.is(r.unicast(peers[0] as PeerName), peers[0]);
  assert.is(r.unicastAll(peers[0] as PeerName), peers[0]);
  assert.is(r.unicast(12345), undefined);
  assert.is(r.unicastAll(12345), undefined);
  assert.equal(r.broadcast(12345), []);
  assert.equal(r.broadcastAll(12345), []);
});

test('broadcast from ourselves goes to all our established symmetric neighbours', () => {
  const peers = names(6);
  const records = graphRecords(peers, star(6));
  const r = Routes.compute(view(records, peers[0] as PeerName));
  assert.equal(r.broadcast(peers[0] as PeerName), peers.slice(1).sort((a, b) => a - b));
});

test('one-sided, unestablished and record-less links are used only in "all" mode', () => {
  const [a, b, c, d, e] = names(5) as [PeerName, PeerName, PeerName, PeerName, PeerName];
  const records = graphRecords([a, b, c, d], [[0, 1]]);
  const conn = (peer: PeerName, established: boolean): ConnectionSummary => ({ peer, address: 'x:1', outbound: true, established });
  // b -> c established but c says not established; b -> d listed only by b; b -> e where e has no record.
  records.get(b)?.connections.push(conn(c, true), conn(d, true), conn(e, false));
  records.get(c)?.connections.push(conn(b, false));
  const r = Routes.compute(view(records, a));
  for (const far of [c, d, e]) {
    assert.is(r.unicast(far), undefined, 'not over data links');
    assert.is(r.unicastAll(far), b, 'gossip goes through b');
  }
  assert.is(r.unicast(b), b);
  assert.equal(r.reachable(), [a, b, c, d, e].sort((x, y) => x - y));
  const atB = Routes.compute(view(records, b));
  assert.equal(atB.broadcast(a), []);
  assert.equal(atB.broadcastAll(a), [c, d, e].sort((x, y) => x - y));
  assert.equal(atB.broadcast(b), [a]);
  // At c the gossip tree from a has already covered b; d and e see no way out, so no tree at all.
  assert.equal(Routes.compute(view(records, c)).broadcastAll(a), []);
  const atD = Routes.compute(view(records, d));
  assert.equal(atD.reachable(), [d]);
  assert.equal(atD.broadcastAll(a), []);
  assert.equal(Routes.compute(view(records, e)).reachable(), [e]);
});

test('routes are the same whatever order records and connections were inserted in', () => {
  const rnd = seededRandom(99);
  const peers = names(25, 7);
  const base = graphRecords(peers, randomConnected(25, seededRandom(5)));
  const sortedRoutes = routesOf(base);
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd.float() * (i + 1));
      [xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
    }
    return xs;
  };
  for (let round = 0; round < 5; round++) {
    const shuffled = new Map(
      shuffle([...base.values()]).map((rec) => [rec.name, { ...rec, connections: shuffle([...rec.connections]) }] as const),
    );
    for (const self of peers) {
      // Both a plain map view and a Topology holding the records (in shuffled order) give identical routes.
      const topo = new Topology({ name: self, nickname: 'x', uid: 999n });
      topo.applyUpdate([...shuffled.values()].filter((rec) => rec.name !== self));
      topo.setLocalConnections(shuffled.get(self)?.connections ?? []);
      for (const r of [Routes.compute(view(shuffled, self)), Routes.compute(topo)]) {
        const expected = sortedRoutes.get(self) as Routes;
        for (const p of peers) {
          assert.is(r.unicast(p), expected.unicast(p));
          assert.is(r.unicastAll(p), expected.unicastAll(p));
          assert.equal(r.broadcast(p), expected.broadcast(p));
          assert.equal(r.broadcastAll(p), expected.broadcastAll(p));
        }
      }
    }
  }
});

test('equal-cost paths are broken by peer name, the same on every peer', () => {
  // A square s-x-t-y-s: two equal paths from s to t; the lower-named middle peer wins.
  const [s, t, lo, hi] = [10, 40, 20, 30];
  const records = graphRecords([s, lo, t, hi], ring(4));
  const r = Routes.compute(view(records, s));
  assert.is(r.unicast(t), lo);
  // In a broadcast from s, t is reached (and forwarded to) by lo only.
  assert.equal(Routes.compute(view(records, lo)).broadcast(s), [t]);
  assert.equal(Routes.compute(view(records, hi)).broadcast(s), []);
});

test('routes are a snapshot: later topology changes do not leak into cached or new broadcast trees', () => {
  const peers = names(4);
  const topo = new Topology({ name: peers[0] as PeerName, nickname: 'a', uid: 1n });
  const records = graphRecords(peers, line(4));
  topo.applyUpdate([...records.values()].filter((rec) => rec.name !== peers[0]));
  topo.setLocalConnections(records.get(peers[0] as PeerName)?.connections ?? []);
  const at1 = new Topology({ name: peers[1] as PeerName, nickname: 'b', uid: 1n });
  at1.applyUpdate(topo.select());
  at1.setLocalConnections(records.get(peers[1] as PeerName)?.connections ?? []);
  const r = Routes.compute(at1);
  const before = r.broadcast(peers[0] as PeerName);
  assert.equal(before, [peers[2]]);
  at1.setLocalConnections([]);
  assert.equal(r.broadcast(peers[0] as PeerName), before);
  assert.equal(r.broadcast(peers[3] as PeerName), [peers[0]]);
  before.push(1);
  assert.equal(r.broadcast(peers[0] as PeerName), [peers[2]], 'callers cannot change the cache');
});

test('a snapshot computed from the previous one has the same trees as one computed afresh, whether the graph changed or not', () => {
  const rnd = seededRandom(9);
  for (let round = 0; round < 30; round++) {
    const n = 3 + Math.floor(rnd.float() * 12);
    const peers = names(n, 100 + round);
    const records = graphRecords(peers, randomConnected(n, rnd));
    const self = peers[Math.floor(rnd.float() * n)] as PeerName;
    const previous = Routes.compute(view(records, self));
    // Every tree searched, so the cache the next snapshot may take over is full.
    for (const source of peers) previous.broadcastAll(source);
    // Half the rounds only flip a link to unestablished (the all-links graph stays); the others also drop one.
    const changed = new Map([...records].map(([name, rec]) => [name, { ...rec, connections: rec.connections.map((c) => ({ ...c })) }]));
    const victim = changed.get(peers[Math.floor(rnd.float() * n)] as PeerName) as PeerRecord;
    if (victim.connections.length > 0) {
      (victim.connections[0] as ConnectionSummary).established = false;
      if (round % 2 === 1) victim.connections.pop();
    }
    const reused = Routes.compute(view(changed, self), previous);
    const fresh = Routes.compute(view(changed, self));
    for (const source of peers) {
      assert.equal(reused.broadcastAll(source), fresh.broadcastAll(source), `round ${round}: tree of ${source}`);
      assert.is(reused.hasTreeFrom(source), fresh.hasTreeFrom(source));
      assert.equal(reused.broadcast(source), fresh.broadcast(source));
    }
  }
});

test('randomNeighbours: min(⌊2·log2 N⌋, neighbours) distinct neighbours, never `except`', () => {
  const rnd = seededRandom(3);
  for (const [shape, edgesFor] of shapes) {
    for (const n of [2, 5, 25]) {
      const peers = names(n, n + 7);
      const routes = routesOf(graphRecords(peers, edgesFor(n)));
      for (const self of peers) {
        const r = routes.get(self) as Routes;
        const neighbours = new Set(peers.map((p) => r.unicastAll(p)).filter((h) => h !== undefined && h !== self));
        for (const except of [undefined, ...neighbours]) {
          const candidates = [...neighbours].filter((p) => p !== except);
          const picked = r.randomNeighbours(rnd, except);
          assert.is(picked.length, Math.min(Math.floor(2 * Math.log2(n)), candidates.length), `${shape} ${n}`);
          assert.is(new Set(picked).size, picked.length, 'no duplicates');
          for (const p of picked) assert.ok(candidates.includes(p), 'only neighbours, never except');
        }
      }
    }
  }
});

test('randomNeighbours favours the neighbour most destinations route through, and a seed repeats', () => {
  // self - big - (20 leaves), self - small; N = 23 so both are always picked, but big usually first.
  const peers = names(23);
  const edges: Edge[] = [[0, 1], [0, 2], ...Array.from({ length: 20 }, (_, i) => [1, i + 3] as Edge)];
  const r = Routes.compute(view(graphRecords(peers, edges), peers[0] as PeerName));
  const rnd = seededRandom(11);
  let bigFirst = 0;
  for (let i = 0; i < 1000; i++) {
    const picked = r.randomNeighbours(rnd);
    assert.is(picked.length, 2);
    if (picked[0] === peers[1]) bigFirst++;
  }
  // Expected 21/22 ≈ 955.
  assert.ok(bigFirst > 900 && bigFirst < 990, `big first ${bigFirst} times`);
  assert.equal(r.randomNeighbours(seededRandom(5)), r.randomNeighbours(seededRandom(5)));
  assert.equal(Routes.compute(view(graphRecords(peers.slice(0, 1), []), peers[0] as PeerName)).randomNeighbours(rnd), []);
});

test.run();
