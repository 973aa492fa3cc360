import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { compareRecords, normaliseName, RecordStore, DEFAULT_TOMBSTONE_TTL_MS } from '../../../src/dns/records.js';
import { WeaveError, OptionsError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { decodeWith, encodeWith } from '../../../src/wire/codec.js';
import { decodeRecords, encodeRecords, recordKey, type DnsRecord } from '../../../src/wire/dns-records.js';

const A = 0x0a0000000001;
const B = 0x0a0000000002;
const C = 0x0a0000000003;
const MIN = 60_000;

const store = (self: number, uid = 1n, clock = new FakeClock()): RecordStore => new RecordStore({ self, selfUid: uid, clock });

/** What a peer would receive: the records through the wire codec. */
const wire = (records: readonly DnsRecord[]): DnsRecord[] => decodeWith(decodeRecords, encodeWith(encodeRecords, records));

test('names are lower-cased, completed with the domain when single-label, and end with a dot', () => {
  assert.is(normaliseName('DB', 'weave.local.'), 'db.weave.local.');
  assert.is(normaliseName('db.', 'Weave.Local'), 'db.weave.local.');
  assert.is(normaliseName('Db.Weave.Local', 'weave.local.'), 'db.weave.local.');
  assert.is(normaliseName('api.example.com.', 'weave.local.'), 'api.example.com.');
  assert.is(normaliseName('', 'weave.local.'), '.');
  // Only ASCII folds: the Kelvin sign must not become a 'k'.
  assert.is(normaliseName('\u212Aa', 'weave.local.'), '\u212Aa.weave.local.');
});

test('lookup is case-insensitive and completes single-label names; reverse accepts any address form', () => {
  const s = store(A);
  s.add('DB', '10.32.0.1', 'c1');
  s.add('db.weave.local.', 'FD00:0:0::1', 'c1');
  s.add('Other.Example.com', '10.32.0.1', 'c2');
  assert.equal(
    s.lookup('dB.WEAVE.local').map((r) => r.address),
    ['10.32.0.1', 'fd00::1'],
  );
  assert.equal(s.lookup('db').length, 2);
  assert.equal(s.lookup('DB.').length, 2);
  assert.equal(s.lookup('nope'), []);
  assert.equal(s.reverse('10.32.0.1'), ['db.weave.local.', 'other.example.com.']);
  assert.equal(s.reverse('fd00:0000::0001'), ['db.weave.local.']);
  assert.equal(s.reverse('not an address'), []);
});

test('add, remove and re-add bump the version; adding what is served changes nothing', () => {
  const s = store(A, 5n);
  const added = s.add('db', '10.32.0.1', 'c1');
  assert.equal({ ...added }, { name: 'db.weave.local.', address: '10.32.0.1', id: 'c1', origin: A, originUid: 5n, version: 1, tombstone: false });
  assert.is(s.add('DB', '10.32.0.1', 'c1'), added);
  const [tomb, ...more] = s.remove({ name: 'db' });
  assert.is(more.length, 0);
  assert.is(tomb?.version, 2);
  assert.is(tomb?.tombstone, true);
  assert.equal(s.lookup('db'), []);
  assert.equal(s.remove({ name: 'db' }), [], 'a tombstone is not removed again');
  const again = s.add('db', '10.32.0.1', 'c1');
  assert.is(again.version, 3);
  assert.is(again.tombstone, false);
  assert.is(s.lookup('db').length, 1);
});

test('remove matches every given field and only tombstones our own records', () => {
  const s = store(A);
  s.add('db', '10.32.0.1', 'c1');
  s.add('db', '10.32.0.2', 'c2');
  s.add('web', '10.32.0.3', 'c2');
  const other = store(B);
  s.merge(wire([other.add('db', '10.32.0.9', 'c1')]));
  assert.equal(s.remove({ id: 'c2', address: '10.32.0.3' }).map((r) => r.name), ['web.weave.local.']);
  assert.equal(s.remove({ id: 'c1' }).map((r) => r.address), ['10.32.0.1']);
  assert.equal(s.lookup('db').map((r) => r.address), ['10.32.0.2', '10.32.0.9']);
  assert.equal(s.remove({}).map((r) => r.address), ['10.32.0.2'], 'an empty filter matches all our live records');
  assert.equal(s.lookup('db').map((r) => r.origin), [B]);
});

test('add refuses invalid names, addresses and ids', () => {
  const s = store(A);
  const refuses = (fn: () => unknown): void => {
    assert.throws(fn, (e: unknown) => e instanceof WeaveError && e.code === 'bad-value');
  };
  refuses(() => s.add('bad name', '10.0.0.1', 'x'));
  refuses(() => s.add('', '10.0.0.1', 'x'));
  refuses(() => s.add(`${'a'.repeat(64)}`, '10.0.0.1', 'x'));
  refuses(() => s.add('db', '10.0.0.256', 'x'));
  refuses(() => s.add('db', 'fe80::1%eth0', 'x'));
  refuses(() => s.add('db', '10.0.0.1', 'x'.repeat(256)));
  assert.is(s.size, 0);
  assert.throws(() => new RecordStore({ self: 0, selfUid: 1n, clock: new FakeClock() }), (e: unknown) => e instanceof OptionsError);
  assert.throws(() => new RecordStore({ self: A, selfUid: 0n, clock: new FakeClock() }), (e: unknown) => e instanceof OptionsError);
  assert.throws(() => new RecordStore({ self: A, selfUid: 1n, clock: new FakeClock(), domain: 'bad domain' }), (e: unknown) => e instanceof OptionsError);
  assert.is(new RecordStore({ self: A, selfUid: 1n, clock: new FakeClock(), domain: 'Corp.Example' }).domain, 'corp.example.');
});

test('merge: only newer versions win and only changes are returned', () => {
  const origin = store(A);
  const replica = store(B);
  const v1 = origin.add('db', '10.32.0.1', 'c1');
  const [v2] = origin.remove({ name: 'db' });
  const v3 = origin.add('db', '10.32.0.1', 'c1');
  assert.equal(replica.merge(wire([v3])).map((r) => r.version), [3]);
  assert.equal(replica.merge(wire([v1])), [], 'older versions lose');
  assert.equal(replica.merge(wire([v2 as DnsRecord])), [], 'older tombstones lose too');
  assert.equal(replica.merge(wire([v3])), [], 'merging again changes nothing');
  assert.equal(replica.lookup('db').map((r) => r.version), [3]);
});

test('merge returns each changed key once, with its final value', () => {
  const replica = store(B);
  const base: DnsRecord = { name: 'db.weave.local.', address: '10.32.0.1', id: 'c1', origin: A, originUid: 1n, version: 1, tombstone: false };
  const changed = replica.merge([base, { ...base, version: 4 }, { ...base, version: 2 }]);
  assert.equal(changed.map((r) => r.version), [4]);
});

test('on equal versions a tombstone wins, then the greater uid', () => {
  const base: DnsRecord = { name: 'db.weave.local.', address: '10.32.0.1', id: 'c1', origin: A, originUid: 5n, version: 2, tombstone: false };
  const tomb = { ...base, tombstone: true, originUid: 1n };
  for (const order of [[base, tomb], [tomb, base]]) {
    const s = store(B);
    for (const r of order) s.merge([r]);
    assert.is(s.all()[0]?.tombstone, true);
    assert.equal(s.lookup('db'), []);
  }
  const higherUid = { ...base, originUid: 9n };
  const s = store(B);
  s.merge([higherUid]);
  assert.equal(s.merge([base]), []);
  assert.is(s.all()[0]?.originUid, 9n);
  assert.ok(compareRecords(higherUid, base) > 0 && compareRecords(tomb, base) > 0 && compareRecords(base, base) === 0);
});

test('stored records are frozen copies', () => {
  const s = store(A);
  const r = s.add('db', '10.32.0.1', 'c1');
  assert.ok(Object.isFrozen(r));
  const incoming = { ...r, origin: B };
  const [stored] = s.merge([incoming]);
  incoming.version = 99;
  assert.is(stored?.version, 1);
});

// --- the merge laws over simulated histories -----------------------------------------------------

type Op = { kind: 'add' | 'remove'; name: string; address: string; id: string } | { kind: 'restart'; keep: number };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record(
    {
      kind: fc.constantFrom('add' as const, 'remove' as const),
      name: fc.constantFrom('db', 'Web', 'api.example.com'),
      address: fc.constantFrom('10.32.0.1', '10.32.0.2', 'fd00::1'),
      id: fc.constantFrom('c1', 'c2'),
    },
    { noNullPrototype: true },
  ),
  fc.record({ kind: fc.constant('restart' as const), keep: fc.nat() }, { noNullPrototype: true }),
);
const ORIGINS = [A, B, C];
const historiesArb = fc.tuple(...ORIGINS.map(() => fc.array(opArb, { maxLength: 12 })));

interface Simulation {
  /** Everything any incarnation of any origin ever sent, in emission order. */
  emitted: DnsRecord[];
  /** The current incarnation of each origin. */
  origins: RecordStore[];
}

/** Runs each origin's history; a restart starts a new incarnation that hears some of its old records. */
function simulate(histories: Op[][]): Simulation {
  const emitted: DnsRecord[] = [];
  const origins = ORIGINS.map((name, i) => {
    let uid = 1n;
    let s = store(name, uid);
    for (const op of histories[i] ?? []) {
      if (op.kind === 'restart') {
        const old = s.all();
        s = store(name, ++uid);
        emitted.push(...s.merge(wire(old.slice(0, op.keep % (old.length + 1)))));
      } else if (op.kind === 'add') emitted.push(s.add(op.name, op.address, op.id));
      else emitted.push(...s.remove({ name: op.name, address: op.address, id: op.id }));
    }
    return s;
  });
  return { emitted, origins };
}

const REPLICA = 0x0b0000000001;
const stateAfter = (...batches: DnsRecord[][]): DnsRecord[] => {
  const s = store(REPLICA);
  for (const batch of batches) s.merge(batch);
  return s.all();
};

/** The join computed directly: per key the greatest record under compareRecords. */
function join(records: readonly DnsRecord[]): DnsRecord[] {
  const best = new Map<string, DnsRecord>();
  for (const r of records) {
    const key = recordKey(r);
    const known = best.get(key);
    if (known === undefined || compareRecords(r, known) > 0) best.set(key, r);
  }
  return [...best.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, r]) => r);
}

const simulationArb = historiesArb.map(simulate);
const subsetsArb = simulationArb.chain((sim) =>
  fc.tuple(fc.constant(sim), fc.subarray(sim.emitted), fc.subarray(sim.emitted), fc.subarray(sim.emitted)),
);

test('merge is commutative', () => {
  fc.assert(
    fc.property(subsetsArb, ([, x, y]) => {
      assert.equal(stateAfter(x, y), stateAfter(y, x));
    }),
  );
});

test('merge is associative', () => {
  fc.assert(
    fc.property(subsetsArb, ([, x, y, z]) => {
      assert.equal(stateAfter(stateAfter(x, y), z), stateAfter(x, stateAfter(y, z)));
    }),
  );
});

test('merge is idempotent and a repeated merge reports no change', () => {
  fc.assert(
    fc.property(subsetsArb, ([, x]) => {
      const s = store(REPLICA);
      s.merge(x);
      const before = s.all();
      assert.equal(s.merge(x), []);
      assert.equal(s.merge(s.all()), []);
      assert.equal(s.all(), before);
    }),
  );
});

test('every delivery order and batching of all deltas gives the same state: the join', () => {
  const arb = simulationArb.chain((sim) =>
    fc.tuple(
      fc.constant(sim),
      fc.shuffledSubarray(sim.emitted, { minLength: sim.emitted.length, maxLength: sim.emitted.length }),
      fc.array(fc.nat({ max: 4 }), { maxLength: 40 }),
    ),
  );
  fc.assert(
    fc.property(arb, ([sim, shuffled, cuts]) => {
      const batches: DnsRecord[][] = [];
      let rest = shuffled;
      for (const cut of cuts) {
        batches.push(rest.slice(0, cut));
        rest = rest.slice(cut);
      }
      batches.push(rest);
      assert.equal(stateAfter(...batches), join(sim.emitted));
    }),
  );
});

test('full-state gossip converges every replica and origin; origins stay authoritative', () => {
  fc.assert(
    fc.property(historiesArb, fc.array(fc.nat({ max: 4 }), { minLength: 1, maxLength: 10 }), (histories, order) => {
      const { emitted, origins } = simulate(histories); // stores are stateful: built afresh for every run
      const replicas = [store(REPLICA), store(REPLICA + 1)];
      replicas[0]?.merge(emitted); // one replica heard everything, even from dead incarnations
      const all = [...origins, ...replicas];
      for (let round = 0; ; round++) {
        assert.ok(round < 20, 'gossip does not settle');
        let changes = 0;
        for (const i of order) {
          const from = all[i % all.length] as RecordStore;
          for (const to of all) if (to !== from) changes += to.merge(wire(from.all())).length;
        }
        for (const from of all) for (const to of all) if (to !== from) changes += to.merge(wire(from.all())).length;
        if (changes === 0) break;
      }
      const reference = all[0]?.all();
      for (const s of all) assert.equal(s.all(), reference);
      for (const origin of origins) {
        const ours = (rs: DnsRecord[]) => rs.filter((r) => r.origin === origin.self).map(recordKey);
        // Every live record of an origin is one its current incarnation serves.
        for (const s of replicas) assert.equal(ours(s.live()), ours(origin.live()));
        for (const r of origin.live()) if (r.origin === origin.self) assert.is(r.originUid, origin.selfUid);
      }
    }),
    { numRuns: 100 },
  );
});

// --- incarnations ---------------------------------------------------------------------------------

test('a restarted origin tombstones its previous incarnation’s records and the tombstones win everywhere', () => {
  const first = store(A, 1n);
  const replica = store(B);
  replica.merge(wire([first.add('db', '10.32.0.1', 'c1'), first.add('web', '10.32.0.2', 'c2')]));
  first.remove({});
  first.add('db', '10.32.0.1', 'c1');
  replica.merge(wire(first.all())); // db live v3, web tombstone v2
  first.add('web', '10.32.0.2', 'c2'); // web live v3: the replica never hears it before the restart
  const second = store(A, 2n);
  second.add('db', '10.32.0.1', 'c1'); // the new run serves db again, at version 1
  const fixes = second.merge(wire(replica.all()));
  assert.equal(
    fixes.map((r) => [r.name, r.version, r.tombstone, r.originUid]),
    [
      ['db.weave.local.', 4, false, 2n], // still served: re-stamped above the old run's version
      ['web.weave.local.', 2, true, 1n], // an old tombstone agrees with us: kept as it is
    ],
  );
  assert.equal(replica.merge(wire(fixes)).length, 1);
  // The old run's last state arrives late from somewhere: its live web record becomes a tombstone above it.
  const late = second.merge(wire(first.all()));
  assert.equal(late.map((r) => [r.name, r.version, r.tombstone, r.originUid]), [['web.weave.local.', 4, true, 2n]]);
  replica.merge(wire(first.all()));
  assert.equal(replica.lookup('web').length, 1, 'the replica briefly believes the old run');
  replica.merge(wire(late));
  assert.equal(replica.lookup('web'), []);
  assert.equal(replica.lookup('db').map((r) => [r.version, r.originUid]), [[4, 2n]]);
  assert.equal(replica.all(), second.all());
  assert.equal(second.merge(wire(first.all())), [], 'the old run no longer beats anything');
});

test('a previous incarnation’s live record with no newer copy becomes a tombstone', () => {
  const first = store(A, 1n);
  const old = first.add('db', '10.32.0.1', 'c1');
  const second = store(A, 2n);
  const [fix] = second.merge(wire([old]));
  assert.equal([fix?.version, fix?.tombstone, fix?.originUid], [2, true, 2n]);
  const replica = store(B);
  replica.merge(wire([old]));
  replica.merge(wire([fix as DnsRecord]));
  assert.equal(replica.lookup('db'), []);
});

test('claims about our current incarnation that beat our state are answered with our state above them', () => {
  const origin = store(A, 7n);
  const served = origin.add('db', '10.32.0.1', 'c1');
  const forged = { ...served, version: 10, tombstone: true };
  const [fix] = origin.merge([forged]);
  assert.equal([fix?.version, fix?.tombstone], [11, false]);
  const phantom: DnsRecord = { ...served, name: 'ghost.weave.local.', version: 4 };
  const [ghost] = origin.merge([phantom]);
  assert.equal([ghost?.version, ghost?.tombstone], [5, true], 'a live record we do not serve is tombstoned');
  assert.equal(origin.merge([{ ...served, version: 1 }]), [], 'an older copy is ignored');
});

test('re-adding after our tombstone expired still beats the tombstone others kept longer', () => {
  const originClock = new FakeClock();
  const replicaClock = new FakeClock();
  const origin = store(A, 1n, originClock);
  const replica = store(B, 1n, replicaClock);
  origin.add('db', '10.32.0.1', 'c1');
  origin.remove({ name: 'db' });
  originClock.advance(10 * MIN);
  replica.merge(wire(origin.all())); // the replica learns the tombstone 10 min late
  originClock.advance(DEFAULT_TOMBSTONE_TTL_MS);
  assert.is(origin.expire(originClock.now(), Infinity).length, 1);
  const fresh = origin.add('db', '10.32.0.1', 'c1');
  assert.is(fresh.version, 1);
  replica.merge(wire([fresh])); // loses to the kept tombstone (v2)
  assert.equal(replica.lookup('db'), []);
  const fixes = origin.merge(wire(replica.all()));
  assert.equal(fixes.map((r) => [r.version, r.tombstone]), [[3, false]]);
  replica.merge(wire(fixes));
  assert.is(replica.lookup('db').length, 1);
});

// --- partitions and staleness ---------------------------------------------------------------------

test('an unreachable peer’s records stay served, flagged stale, until its grace ends; they return when it is back', () => {
  const clock = new FakeClock(1_000);
  const origin = store(A, 1n);
  const replica = store(B, 1n, clock);
  replica.merge(wire([origin.add('db', '10.32.0.1', 'c1')]));
  const grace = 5 * MIN;
  replica.markUnreachable(A, clock.now());
  clock.advance(MIN);
  replica.markUnreachable(A, clock.now()); // repeated: the first time counts
  const [served] = replica.lookup('db');
  assert.ok(served !== undefined && replica.isStale(served));
  assert.equal(replica.stalePeers(), [{ peer: A, since: 1_000, dropped: false }]);
  clock.advance(grace - MIN - 1);
  assert.equal(replica.expire(clock.now(), grace), []);
  assert.is(replica.lookup('db').length, 1);
  clock.advance(1);
  assert.equal(replica.expire(clock.now(), grace).map((r) => r.name), ['db.weave.local.']);
  assert.equal(replica.lookup('db'), []);
  assert.equal(replica.merge(wire(origin.all())), [], 'a third party relaying them does not bring them back');
  replica.markReachable(A);
  assert.equal(replica.stalePeers(), []);
  replica.merge(wire(origin.all())); // re-gossiped on reconnection
  const [back] = replica.lookup('db');
  assert.ok(back !== undefined && !replica.isStale(back));
});

test('a peer reachable again within its grace keeps its records without a gap', () => {
  const clock = new FakeClock();
  const replica = store(B, 1n, clock);
  replica.merge(wire([store(A).add('db', '10.32.0.1', 'c1')]));
  replica.markUnreachable(A, clock.now());
  clock.advance(MIN);
  replica.markReachable(A);
  clock.advance(60 * MIN);
  assert.equal(replica.expire(clock.now(), 5 * MIN), []);
  assert.ok(!replica.isStale(replica.lookup('db')[0] as DnsRecord));
  replica.markUnreachable(B, clock.now());
  assert.equal(replica.stalePeers(), [], 'we are never unreachable to ourselves');
});

// --- tombstone expiry on the local clock ----------------------------------------------------------

test('tombstones expire 30 min after each peer learned them, on its own clock, whatever the skew', () => {
  const originClock = new FakeClock(5_000);
  const replicaClock = new FakeClock(1.7e12); // "wall clock" far from the origin's
  const origin = store(A, 1n, originClock);
  const replica = store(B, 1n, replicaClock);
  const live = origin.add('db', '10.32.0.1', 'c1');
  const other = origin.add('web', '10.32.0.2', 'c2');
  replica.merge(wire([live, other]));
  replica.merge(wire(origin.remove({ name: 'db' })));
  assert.equal(replica.all(), origin.all(), 'skew does not stop convergence');
  const step = (ms: number): void => {
    originClock.advance(ms);
    replicaClock.advance(ms);
  };
  step(DEFAULT_TOMBSTONE_TTL_MS - 1);
  assert.equal(origin.expire(originClock.now(), Infinity), []);
  assert.equal(replica.expire(replicaClock.now(), Infinity), []);
  step(1);
  assert.equal(origin.expire(originClock.now(), Infinity).map((r) => r.name), ['db.weave.local.']);
  assert.equal(replica.expire(replicaClock.now(), Infinity).map((r) => r.name), ['db.weave.local.']);
  assert.equal(replica.all(), origin.all());
  assert.equal(origin.all().map((r) => r.name), ['web.weave.local.'], 'live records never expire');
});

test('a newer tombstone version restarts the expiry timer; a custom ttl is honoured', () => {
  const clock = new FakeClock();
  const s = new RecordStore({ self: B, selfUid: 1n, clock, tombstoneTtlMs: 10 * MIN });
  const base: DnsRecord = { name: 'db.weave.local.', address: '10.32.0.1', id: 'c1', origin: A, originUid: 1n, version: 2, tombstone: true };
  s.merge([base]);
  clock.advance(8 * MIN);
  s.merge([{ ...base, version: 4 }]);
  clock.advance(8 * MIN);
  assert.equal(s.expire(clock.now(), Infinity), []);
  clock.advance(2 * MIN);
  assert.is(s.expire(clock.now(), Infinity).length, 1);
  assert.is(s.size, 0);
  assert.equal(s.lookup('db'), []);
  assert.equal(s.reverse('10.32.0.1'), []);
});

test.run();
