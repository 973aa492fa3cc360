import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Topology } from '../../../src/mesh/topology.js';
import { OptionsError, WeaveError } from '../../../src/errors.js';
import type { ConnectionSummary, PeerRecord } from '../../../src/wire/topology.js';

const SELF = 1;

const conn = (peer: number, established = true): ConnectionSummary => ({ peer, address: `10.0.0.${peer}:6783`, outbound: true, established });

const rec = (name: number, version: bigint, uid: bigint, peers: number[] = []): PeerRecord => ({
  name,
  nickname: `peer-${name}`,
  uid,
  version,
  connections: peers.map((p) => conn(p)),
});

const fresh = (): Topology => new Topology({ name: SELF, nickname: 'self', uid: 100n });

/** A comparable snapshot of every record, sorted by name. */
const state = (t: Topology): PeerRecord[] => [...t.records()].map((r) => ({ ...r, connections: [...r.connections] })).sort((a, b) => a.name - b.name);

test('starts with only our own record, version 1 and no connections', () => {
  const t = fresh();
  assert.is(t.selfName, SELF);
  assert.is(t.size, 1);
  assert.equal(t.get(SELF), { name: SELF, nickname: 'self', uid: 100n, version: 1n, connections: [] });
  assert.not.ok(t.has(2));
});

test('invalid identities are OptionsErrors', () => {
  assert.throws(() => new Topology({ name: 0, nickname: 'x', uid: 1n }), (e: unknown) => e instanceof OptionsError);
  assert.throws(() => new Topology({ name: 1, nickname: 'x', uid: 0n }), (e: unknown) => e instanceof OptionsError);
  assert.throws(() => new Topology({ name: 1, nickname: 'x'.repeat(256), uid: 1n }), (e: unknown) => e instanceof OptionsError);
});

test('an unknown peer is added and reported changed', () => {
  const t = fresh();
  assert.equal(t.applyUpdate([rec(2, 1n, 5n, [3])]), { changed: [2], restarted: [], added: [2], shrunk: [] });
  assert.is(t.get(2)?.version, 1n);
});

test('a higher version wins, an equal version with a higher uid wins, anything lower is ignored', () => {
  const t = fresh();
  t.applyUpdate([rec(2, 5n, 50n, [3])]);
  assert.equal(t.applyUpdate([rec(2, 4n, 99n, [4])]), { changed: [], restarted: [], added: [], shrunk: [] }, 'lower version');
  assert.equal(t.applyUpdate([rec(2, 5n, 49n, [4])]), { changed: [], restarted: [], added: [], shrunk: [] }, 'equal version, lower uid');
  assert.equal(t.applyUpdate([rec(2, 5n, 50n, [4])]), { changed: [], restarted: [], added: [], shrunk: [] }, 'equal version and uid');
  assert.equal(t.get(2)?.connections.map((c) => c.peer), [3]);
  assert.equal(t.applyUpdate([rec(2, 6n, 50n, [4])]).changed, [2], 'higher version');
  assert.equal(t.get(2)?.connections.map((c) => c.peer), [4]);
  assert.equal(t.applyUpdate([rec(2, 6n, 51n, [5])]).changed, [2], 'equal version, higher uid');
  assert.equal(t.get(2)?.connections.map((c) => c.peer), [5]);
});

test('a known peer accepted with a different uid is reported restarted', () => {
  const t = fresh();
  t.applyUpdate([rec(2, 5n, 50n), rec(3, 1n, 7n)]);
  const change = t.applyUpdate([rec(2, 9n, 60n), rec(3, 2n, 7n)]);
  assert.equal(change, { changed: [2, 3], restarted: [2], added: [], shrunk: [] });
});

test('a record that no longer lists a connection its previous version did is reported shrunk', () => {
  const t = fresh();
  t.applyUpdate([rec(2, 1n, 5n, [3, 4]), rec(3, 1n, 6n, [2])]);
  const change = t.applyUpdate([rec(2, 2n, 5n, [3]), rec(3, 2n, 6n, [2, 4])]);
  assert.equal(change, { changed: [2, 3], restarted: [], added: [], shrunk: [2] });
});

test('a garbage-collected peer is not revived by a stale copy of its record, unless the update makes it reachable again', () => {
  const t = fresh();
  t.setLocalConnections([conn(2)]);
  t.applyUpdate([rec(2, 1n, 5n, [SELF, 3]), rec(3, 1n, 6n, [2])]);
  // 2 loses its link to 3: 3 is unreachable and collected.
  t.applyUpdate([rec(2, 2n, 5n, [SELF])]);
  assert.equal(t.garbageCollect(), [3]);
  // A peer that has not forgotten 3 yet sends its records along: still unreachable, so left out.
  assert.equal(t.applyUpdate([rec(3, 1n, 6n, [2])]), { changed: [], restarted: [], added: [], shrunk: [] }, 'stale and unreachable');
  assert.not.ok(t.has(3));
  // The same record with an update that lists a connection to 3 again (a healed link): taken back.
  assert.equal(t.applyUpdate([rec(3, 1n, 6n, [2]), rec(2, 3n, 5n, [SELF, 3])]).added, [3], 'stale but reachable');
  assert.ok(t.has(3));
  // A newer record is never held back.
  t.applyUpdate([rec(2, 4n, 5n, [SELF])]);
  assert.equal(t.garbageCollect(), [3]);
  assert.equal(t.applyUpdate([rec(3, 2n, 6n, [2])]).added, [3], 'newer than the collected record');
});

test('a new peer is reported added, not restarted', () => {
  const t = fresh();
  t.applyUpdate([rec(3, 1n, 7n)]);
  const change = t.applyUpdate([rec(2, 9n, 60n), rec(3, 2n, 7n)]);
  assert.equal(change.restarted, []);
  assert.equal(change.added, [2]);
});

test('records about ourselves with our uid are never accepted', () => {
  const t = fresh();
  const change = t.applyUpdate([rec(SELF, 50n, 100n, [2])]);
  assert.equal(change, { changed: [], restarted: [], added: [], shrunk: [] });
  assert.equal(t.get(SELF), { name: SELF, nickname: 'self', uid: 100n, version: 1n, connections: [] });
});

test('stale incarnation: a record of ours with another uid and version >= ours bumps us past it', () => {
  const t = fresh();
  t.setLocalConnections([conn(2)]);
  assert.is(t.get(SELF)?.version, 2n);
  assert.equal(t.applyUpdate([rec(SELF, 1n, 999n, [7])]), { changed: [], restarted: [], added: [], shrunk: [] }, 'older incarnation with a lower version');
  assert.equal(t.applyUpdate([rec(SELF, 2n, 5n, [7])]), { changed: [SELF], restarted: [], added: [], shrunk: [] });
  assert.is(t.get(SELF)?.version, 3n);
  assert.equal(t.applyUpdate([rec(SELF, 40n, 5n, [7])]).changed, [SELF]);
  const self = t.get(SELF);
  assert.is(self?.version, 41n);
  assert.is(self?.uid, 100n, 'our uid is kept');
  assert.equal(self?.connections.map((c) => c.peer), [2], 'our connections are kept');
});

test('stale incarnation: our version saturates at the u64 maximum instead of wrapping', () => {
  const t = fresh();
  t.applyUpdate([rec(SELF, 2n ** 64n - 1n, 5n)]);
  assert.is(t.get(SELF)?.version, 2n ** 64n - 1n);
});

test('setLocalConnections bumps our version only on change, and keeps the list sorted', () => {
  const t = fresh();
  assert.ok(t.setLocalConnections([conn(9), conn(3), conn(5)]));
  assert.is(t.get(SELF)?.version, 2n);
  assert.equal(t.get(SELF)?.connections.map((c) => c.peer), [3, 5, 9]);
  assert.not.ok(t.setLocalConnections([conn(5), conn(9), conn(3)]), 'same set in another order');
  assert.is(t.get(SELF)?.version, 2n);
  assert.ok(t.setLocalConnections([conn(5), conn(9, false), conn(3)]), 'a flag changed');
  assert.is(t.get(SELF)?.version, 3n);
  assert.ok(t.setLocalConnections([]));
  assert.is(t.get(SELF)?.version, 4n);
});

test('setLocalConnections refuses self, duplicate and zero peers', () => {
  const t = fresh();
  for (const bad of [[conn(SELF)], [conn(2), conn(2)], [conn(0)]]) {
    assert.throws(
      () => t.setLocalConnections(bad),
      (e: unknown) => e instanceof WeaveError && e.code === 'bad-value',
    );
  }
  assert.is(t.get(SELF)?.version, 1n);
});

test('received connection lists are stored sorted', () => {
  const t = fresh();
  t.applyUpdate([rec(2, 1n, 1n, [8, 4, 6])]);
  assert.equal(t.get(2)?.connections.map((c) => c.peer), [4, 6, 8]);
});

test('stored records are copies that callers cannot change', () => {
  const t = fresh();
  const mine = [conn(2)];
  t.setLocalConnections(mine);
  (mine[0] as ConnectionSummary).peer = 99;
  const incoming = rec(2, 1n, 1n, [3]);
  t.applyUpdate([incoming]);
  incoming.connections.push(conn(4));
  incoming.version = 77n;
  assert.equal(t.get(SELF)?.connections.map((c) => c.peer), [2]);
  assert.equal(t.get(2)?.connections.map((c) => c.peer), [3]);
  assert.is(t.get(2)?.version, 1n);
  const got = t.get(2) as PeerRecord;
  assert.throws(() => {
    got.version = 5n;
  }, (e: unknown) => e instanceof TypeError);
  assert.throws(() => got.connections.push(conn(9)), (e: unknown) => e instanceof TypeError);
});

test('select returns known records for the given names and everything without names', () => {
  const t = fresh();
  t.applyUpdate([rec(2, 1n, 1n), rec(3, 1n, 1n)]);
  assert.equal(
    t.select([3, 42, 3, SELF]).map((r) => r.name),
    [3, SELF],
  );
  assert.equal(
    t.select().map((r) => r.name).sort(),
    [SELF, 2, 3],
  );
});

test('garbage collection removes peers unreachable over any listed connection and keeps pinned ones', () => {
  const t = fresh();
  t.setLocalConnections([conn(2, false)]);
  // 1 -> 2 (not established) -> 3 (2 lists 3, 3 does not list 2: still followed); 4 <-> 5 are an island; 6 alone.
  t.applyUpdate([rec(2, 1n, 1n, [3]), rec(3, 1n, 1n), rec(4, 1n, 1n, [5]), rec(5, 1n, 1n, [4]), rec(6, 1n, 1n)]);
  const removed = t.garbageCollect((name) => name === 6);
  assert.equal(removed, [4, 5]);
  assert.equal([...t.records()].map((r) => r.name).sort(), [SELF, 2, 3, 6]);
  assert.equal(t.garbageCollect(), [6]);
  assert.equal(t.garbageCollect(), []);
});

test('garbage collection never removes ourselves', () => {
  const t = fresh();
  assert.equal(t.garbageCollect(), []);
  assert.ok(t.has(SELF));
});

// Realistic records: the content is a function of (name, version, uid), as when only owners write them.
const mergeRecordArb: fc.Arbitrary<PeerRecord> = fc
  .record(
    { name: fc.integer({ min: 1, max: 6 }), version: fc.bigInt({ min: 0n, max: 4n }), uid: fc.bigInt({ min: 1n, max: 3n }) },
    { noNullPrototype: true },
  )
  .map(({ name, version, uid }) => {
    const seed = Number(version * 7n + uid * 3n) + name;
    const peers = [1, 2, 3, 4, 5, 6].filter((p) => p !== name && (seed + p) % 3 === 0);
    return { ...rec(name, version, uid, peers), nickname: `n${name}-${uid}` };
  });

test('merge is commutative, associative and idempotent (any order, grouping or repetition gives one state)', () => {
  fc.assert(
    fc.property(
      fc.array(mergeRecordArb, { maxLength: 20 }),
      fc.infiniteStream(fc.nat()),
      fc.array(fc.nat({ max: 5 }), { maxLength: 8 }),
      (records, randoms, cuts) => {
        const a = fresh();
        a.applyUpdate(records);
        // Same records shuffled, with duplicates, applied in arbitrary batches.
        const it = randoms[Symbol.iterator]();
        const next = (): number => it.next().value as number;
        const shuffled = [...records, ...records.filter(() => next() % 2 === 0)];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = next() % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j] as PeerRecord, shuffled[i] as PeerRecord];
        }
        const b = fresh();
        let at = 0;
        for (const cut of cuts) {
          b.applyUpdate(shuffled.slice(at, at + cut));
          at += cut;
        }
        b.applyUpdate(shuffled.slice(at));
        assert.equal(state(b), state(a));
        // A third peer merging both full states ends up with the same records (besides its own).
        const c = new Topology({ name: 50, nickname: 'c', uid: 1n });
        c.applyUpdate(b.select());
        c.applyUpdate(a.select());
        assert.equal(state(c).filter((r) => r.name !== 50), state(a));
        assert.equal(a.applyUpdate(records).changed, [], 'applying again changes nothing');
      },
    ),
  );
});

test('two peers exchanging full state converge to the same records', () => {
  fc.assert(
    fc.property(fc.array(mergeRecordArb, { maxLength: 12 }), fc.array(mergeRecordArb, { maxLength: 12 }), (xs, ys) => {
      const p = new Topology({ name: 10, nickname: 'p', uid: 1n });
      const q = new Topology({ name: 11, nickname: 'q', uid: 1n });
      p.applyUpdate(xs);
      q.applyUpdate(ys);
      p.applyUpdate(q.select());
      q.applyUpdate(p.select());
      assert.equal(state(p), state(q));
    }),
  );
});

test.run();
