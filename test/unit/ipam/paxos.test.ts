import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { PaxosNode, compareProposals, type PaxosState } from '../../../src/ipam/paxos.js';

function nodes(n: number, quorum = Math.floor(n / 2) + 1): PaxosNode[] {
  return Array.from({ length: n }, (_, i) => new PaxosNode({ name: i + 1, uid: BigInt(1000 + i) }, quorum));
}

/** Delivers `from`'s current state to `to` and lets `to` think until it settles. */
function deliver(from: PaxosNode, to: PaxosNode): void {
  to.merge(from.snapshot());
  while (to.think());
}

function gossipAll(all: PaxosNode[]): void {
  for (let round = 0; round < all.length + 2; round++) for (const a of all) for (const b of all) if (a !== b) deliver(a, b);
}

test('one proposer and full gossip: everyone decides on the sorted set of voters', () => {
  const all = nodes(5);
  all[2]?.propose();
  gossipAll(all);
  for (const n of all) assert.equal(n.consensus(), [1, 2, 3, 4, 5]);
});

test('no decision without a quorum: two of five nodes talk, nothing is decided', () => {
  const all = nodes(5);
  const [a, b] = all as [PaxosNode, PaxosNode];
  a.propose();
  for (let i = 0; i < 5; i++) {
    deliver(a, b);
    deliver(b, a);
  }
  assert.is(a.consensus(), undefined);
  assert.is(b.consensus(), undefined);
});

test('a late node adopts the decision it hears about', () => {
  const all = nodes(4, 3);
  const early = all.slice(0, 3);
  early[0]?.propose();
  gossipAll(early);
  const decided = early[0]?.consensus();
  assert.equal(decided, [1, 2, 3]);
  const late = all[3] as PaxosNode;
  for (const n of early) deliver(n, late);
  assert.equal(late.consensus(), decided);
});

test('proposal ids order by round, then proposer', () => {
  const a = { round: 2, proposer: { name: 1, uid: 5n } };
  const b = { round: 2, proposer: { name: 2, uid: 1n } };
  assert.ok(compareProposals(a, b) < 0);
  assert.ok(compareProposals(b, { ...a, round: 3 }) < 0);
  assert.ok(compareProposals(undefined, a) < 0);
});

/**
 * Safety under any interleaving: nodes propose at random times, messages carry snapshots taken at
 * random earlier moments (delays, reordering, loss) over random pairs, and every decision seen by
 * anyone, at any time, is the same value.
 */
test('safety: competing proposers, delayed and lost messages: never two different decisions', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 7 }),
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('propose' as const), who: fc.nat() }, { noNullPrototype: true }),
          fc.record({ kind: fc.constant('send' as const), from: fc.nat(), to: fc.nat(), old: fc.nat() }, { noNullPrototype: true }),
        ),
        { minLength: 1, maxLength: 150 },
      ),
      (n, steps) => {
        const all = nodes(n);
        const history: PaxosState[][] = all.map((x) => [x.snapshot()]);
        const decisions = new Set<string>();
        const record = (): void => {
          for (const x of all) {
            const c = x.consensus();
            if (c) decisions.add(JSON.stringify(c));
          }
        };
        for (const step of steps) {
          if (step.kind === 'propose') {
            const x = all[step.who % n] as PaxosNode;
            x.propose();
            while (x.think());
            history[step.who % n]?.push(x.snapshot());
          } else {
            const from = step.from % n;
            const to = step.to % n;
            if (from === to) continue;
            const past = history[from] as PaxosState[];
            const snapshot = past[past.length - 1 - (step.old % past.length)] as PaxosState;
            const target = all[to] as PaxosNode;
            target.merge(snapshot);
            while (target.think());
            history[to]?.push(target.snapshot());
          }
          record();
        }
        // Then everything is delivered: if anyone decided, everyone agrees on that value.
        gossipAll(all);
        record();
        assert.ok(decisions.size <= 1, `different decisions: ${[...decisions].join(' vs ')}`);
      },
    ),
    { numRuns: 300 },
  );
});

test('liveness: after a retry with full connectivity a decision is reached', () => {
  const all = nodes(5);
  // Two proposers race, with partial delivery that decides nothing.
  all[0]?.propose();
  all[4]?.propose();
  deliver(all[0] as PaxosNode, all[1] as PaxosNode);
  deliver(all[4] as PaxosNode, all[3] as PaxosNode);
  // A retry (as the allocator does on its tick) with everyone connected.
  all[2]?.propose();
  gossipAll(all);
  const value = all[0]?.consensus();
  assert.ok(value);
  for (const x of all) assert.equal(x.consensus(), value);
});

test('a later, higher proposal keeps a value already decided (it adopts what its promisers accepted)', () => {
  const all = nodes(5);
  const [a, b, c, d, e] = all as [PaxosNode, PaxosNode, PaxosNode, PaxosNode, PaxosNode];
  // a, b and c decide among themselves: the value is the voters a knows, {1,2,3}.
  a.propose();
  gossipAll([a, b, c]);
  assert.equal(a.consensus(), [1, 2, 3]);
  // e knows d and c only (c accepted the decided value), and proposes a higher round.
  deliver(d, e);
  deliver(c, e);
  e.propose();
  while (e.think());
  for (const x of [c, d]) deliver(e, x);
  deliver(c, e);
  deliver(d, e);
  while (e.think());
  for (const x of [c, d]) deliver(e, x);
  gossipAll(all);
  for (const x of all) assert.equal(x.consensus(), [1, 2, 3], 'the decision stands');
});

test('takeChanges: only claims that changed since the last call, and deltas alone decide over a line', () => {
  const all = nodes(5);
  const [a, b] = all as [PaxosNode, PaxosNode];
  assert.equal([...(a.takeChanges()?.keys() ?? [])], ['1/1000'], 'a new node has its own (empty) claims to announce');
  assert.is(a.takeChanges(), undefined, 'nothing changed since');
  a.propose();
  assert.equal([...(a.takeChanges()?.keys() ?? [])], ['1/1000']);
  b.merge(a.snapshot());
  while (b.think());
  assert.equal([...(b.takeChanges()?.keys() ?? [])].sort(), ['1/1000', '2/1001'], 'what was merged, and our promise');
  b.merge(a.snapshot());
  assert.is(b.takeChanges(), undefined, 'merging what we hold changes nothing');
  // Five nodes on a line that only ever pass on their deltas to their neighbours.
  const fresh = nodes(5);
  fresh[0]?.propose();
  for (let round = 0; round < 40; round++) {
    const deltas = fresh.map((x) => x.takeChanges());
    fresh.forEach((x, i) => {
      for (const j of [i - 1, i + 1]) {
        const delta = deltas[j];
        if (delta) x.merge(delta);
      }
      while (x.think());
    });
  }
  const decided = fresh.map((x) => JSON.stringify(x.consensus()));
  assert.is(new Set(decided).size, 1, decided.join(' '));
  assert.equal(fresh[0]?.consensus(), [1, 2, 3, 4, 5]);
});

test.run();
