import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DecodeError, WeaveError } from '../../../src/errors.js';
import { cidrsInRange, parseCidr } from '../../../src/ipam/address.js';
import { MAX_RING_VERSION, Ring, type RingEntry } from '../../../src/ipam/ring.js';
import type { PeerName } from '../../../src/wire/peer-name.js';

const A = 0x0a0000000001;
const B = 0x0a0000000002;
const C = 0x0a0000000003;
const D = 0x0a0000000004;
const E = 0x0a0000000005;

const range26 = (() => {
  const c = parseCidr('10.0.0.0/26');
  return { start: c.start, end: c.start + c.size };
})();
const S = range26.start;

function rangeOf(text: string): { start: number; end: number } {
  const c = parseCidr(text);
  return { start: c.start, end: c.start + c.size };
}

/** Owner of every address, found by walking the entries (not via ownerOf); fails if any address has zero or two owners. */
function ownersByWalk(ring: Ring): PeerName[] {
  const size = ring.end - ring.start;
  const owners = new Array<PeerName | undefined>(size).fill(undefined);
  const entries = ring.entries();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as RingEntry;
    const next = (entries[(i + 1) % entries.length] as RingEntry).token;
    let a = e.token;
    do {
      assert.is(owners[a - ring.start], undefined, `address ${a} has two owners`);
      owners[a - ring.start] = e.owner;
      a = a + 1 === ring.end ? ring.start : a + 1;
    } while (a !== next);
  }
  owners.forEach((o, k) => assert.ok(o !== undefined, `address ${ring.start + k} has no owner`));
  return owners as PeerName[];
}

/** The whole range is covered exactly once: by the per-address walk on small rings, by owned ranges always. */
function assertCoveredOnce(ring: Ring): void {
  ring.validate();
  if (ring.isEmpty()) return;
  const all = ring.owners().flatMap((p) => ring.rangesOf(p).map((r) => ({ ...r, p })));
  all.sort((x, y) => x.start - y.start);
  let at = ring.start;
  for (const r of all) {
    assert.is(r.start, at, 'owned ranges are contiguous and disjoint');
    assert.ok(r.end > r.start);
    assert.is(ring.ownerOf(r.start), r.p);
    assert.is(ring.ownerOf(r.end - 1), r.p);
    at = r.end;
  }
  assert.is(at, ring.end, 'owned ranges reach the end of the range');
  let total = 0;
  for (const e of ring.entries()) total += ring.sizeOf(e.token);
  assert.is(total, ring.end - ring.start);
  if (ring.end - ring.start <= 1024) {
    const owners = ownersByWalk(ring);
    owners.forEach((o, k) => assert.is(ring.ownerOf(ring.start + k), o));
  }
}

function entriesOf(ring: Ring): RingEntry[] {
  return ring.entries().map((e) => ({ ...e }));
}

function expectWeaveError(fn: () => unknown, code: string): void {
  try {
    fn();
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, WeaveError);
    assert.is((e as WeaveError).code, code);
  }
}

const isRangeError = (e: unknown): boolean => e instanceof RangeError;

// --- initial division -------------------------------------------------------------------------

const peerList = (n: number): PeerName[] => Array.from({ length: n }, (_, i) => 0x0a0000000100 + i * 7919);

test('initial division for 1 to 9 peers covers /12, /24 and /28 exactly once with one aligned block each', () => {
  for (const text of ['10.32.0.0/12', '192.168.7.0/24', '10.9.8.16/28']) {
    const range = rangeOf(text);
    for (let n = 1; n <= 9; n++) {
      const ring = new Ring(range);
      ring.claimForPeers(peerList(n));
      assertCoveredOnce(ring);
      assert.is(ring.size, n, 'one entry per peer');
      const shares = peerList(n).map((p) => {
        const ranges = ring.rangesOf(p);
        assert.is(ranges.length, 1, 'each peer holds one contiguous range');
        const r = ranges[0] as { start: number; end: number };
        assert.is(cidrsInRange(r.start, r.end).length, 1, 'each share is one CIDR-aligned block');
        assert.is(ring.freeOf(p), r.end - r.start, 'a fresh share is all free');
        return r.end - r.start;
      });
      // Shares are powers of two (aligned blocks), and the largest is at most twice the smallest.
      assert.ok(Math.max(...shares) <= 2 * Math.min(...shares), `${text} among ${n}: shares ${shares.join(',')}`);
      assert.is(shares.reduce((x, y) => x + y, 0), range.end - range.start);
      for (const e of ring.entries()) assert.is(e.version, 0);
    }
  }
});

test('initial division is the same whatever the order of the names and duplicates', () => {
  fc.assert(
    fc.property(
      fc
        .uniqueArray(fc.integer({ min: 1, max: 2 ** 48 - 1 }), { minLength: 1, maxLength: 40 })
        .chain((names) =>
          fc.tuple(
            fc.constant(names),
            fc.shuffledSubarray([...names, ...names.slice(0, 5)], { minLength: names.length + Math.min(5, names.length) }),
          ),
        ),
      fc.integer({ min: 20, max: 32 }),
      ([names, shuffled], prefix) => {
        const range = rangeOf(`10.32.0.0/${prefix}`);
        const first = new Ring(range);
        first.claimForPeers(names);
        const second = new Ring(range);
        second.claimForPeers(shuffled);
        assert.equal(entriesOf(second), entriesOf(first));
        assertCoveredOnce(first);
      },
    ),
    { numRuns: 200 },
  );
});

test('a range smaller than the peer list still has exactly one owner per address', () => {
  for (const text of ['10.0.0.0/30', '10.0.0.7/32', '10.0.0.2/31']) {
    const ring = new Ring(rangeOf(text));
    ring.claimForPeers(peerList(9));
    assertCoveredOnce(ring);
    assert.ok(ring.size <= ring.end - ring.start);
  }
});

test('the largest ranges divide like any other, but all of 0.0.0.0/0 is refused', () => {
  const ring = new Ring(rangeOf('128.0.0.0/1'));
  ring.claimForPeers(peerList(3));
  assertCoveredOnce(ring);
  assert.equal(ring.rangesOf(peerList(3)[0] as number), [{ start: 2 ** 31, end: 2 ** 31 + 2 ** 30 }]);
  const almost = new Ring({ start: 1, end: 2 ** 32 });
  almost.claimForPeers([A]);
  assert.equal(almost.entries(), [{ token: 1, owner: A, version: 0, free: 2 ** 32 - 1 }]);
  assert.throws(() => new Ring({ start: 0, end: 2 ** 32 }), isRangeError);
});

test('initial division refuses a divided ring, an empty list and invalid names', () => {
  const ring = new Ring(range26);
  assert.throws(() => ring.claimForPeers([]), isRangeError);
  assert.throws(() => ring.claimForPeers([A, 0]), isRangeError);
  assert.throws(() => ring.claimForPeers([2 ** 48]), isRangeError);
  assert.ok(ring.isEmpty());
  ring.claimForPeers([A]);
  expectWeaveError(() => ring.claimForPeers([A]), 'bad-value');
});

test('an empty ring owns nothing and lookups outside the range find nobody', () => {
  const ring = new Ring(range26);
  assert.is(ring.ownerOf(S), undefined);
  assert.equal(ring.rangesOf(A), []);
  ring.claimForPeers([A, B]);
  assert.is(ring.ownerOf(S - 1), undefined);
  assert.is(ring.ownerOf(range26.end), undefined);
  assert.is(ring.ownerOf(S), A);
  assert.is(ring.ownerOf(range26.end - 1), B);
});

test('the constructor and ranges are validated', () => {
  assert.throws(() => new Ring({ start: 5, end: 5 }), isRangeError);
  assert.throws(() => new Ring({ start: 0, end: 2 ** 32 + 1 }), isRangeError);
  assert.throws(() => new Ring(range26, [{ token: S + 64, owner: A, version: 0, free: 0 }]), (e: unknown) => e instanceof DecodeError);
  assert.throws(() => new Ring(range26, [{ token: S, owner: A, version: 0, free: 65 }]), (e: unknown) => e instanceof DecodeError);
});

test('entries are frozen and returned sorted', () => {
  const ring = new Ring(range26);
  ring.claimForPeers([C, A, B]);
  const entries = ring.entries();
  assert.ok(Object.isFrozen(entries));
  assert.ok(entries.every((e) => Object.isFrozen(e)));
  assert.equal(entries.map((e) => e.token), [S, S + 32, S + 48]);
});

// --- grants ------------------------------------------------------------------------------------

function fresh(...peers: PeerName[]): Ring {
  const ring = new Ring(range26);
  ring.claimForPeers(peers);
  return ring;
}

test('granting the middle of an entry inserts tokens at both edges and bumps versions', () => {
  const ring = fresh(A);
  ring.grant(A, { start: S + 16, end: S + 32 }, B);
  assert.equal(entriesOf(ring), [
    { token: S, owner: A, version: 1, free: 16 },
    { token: S + 16, owner: B, version: 1, free: 16 },
    { token: S + 32, owner: A, version: 1, free: 32 },
  ]);
  assert.equal(ring.rangesOf(A), [{ start: S, end: S + 16 }, { start: S + 32, end: S + 64 }]);
  assert.equal(ring.rangesOf(B), [{ start: S + 16, end: S + 32 }]);
  assert.is(ring.freeOf(A), 48);
  assertCoveredOnce(ring);
});

test('granting the start of an entry re-owns its token', () => {
  const ring = fresh(A);
  ring.grant(A, { start: S, end: S + 16 }, B);
  assert.equal(entriesOf(ring), [
    { token: S, owner: B, version: 1, free: 16 },
    { token: S + 16, owner: A, version: 1, free: 48 },
  ]);
  assertCoveredOnce(ring);
});

test('granting the end of the ring needs no token after it', () => {
  const ring = fresh(A);
  ring.grant(A, { start: S + 48, end: S + 64 }, B);
  assert.equal(entriesOf(ring), [
    { token: S, owner: A, version: 1, free: 48 },
    { token: S + 48, owner: B, version: 1, free: 16 },
  ]);
  assertCoveredOnce(ring);
});

test('granting the whole ring re-owns every token', () => {
  const ring = fresh(A);
  ring.grant(A, { start: S, end: S + 64 }, B);
  assert.equal(entriesOf(ring), [{ token: S, owner: B, version: 1, free: 64 }]);
});

test('a used entry donates from its free count; the remainder keeps what is left', () => {
  const ring = fresh(A);
  ring.setFree(A, S, 40); // 24 addresses in use
  ring.grant(A, { start: S + 48, end: S + 64 }, B);
  assert.equal(entriesOf(ring), [
    { token: S, owner: A, version: 2, free: 24 },
    { token: S + 48, owner: B, version: 2, free: 16 },
  ]);
});

const wrapRing = (): Ring =>
  new Ring(range26, [
    { token: S + 16, owner: A, version: 0, free: 32 },
    { token: S + 48, owner: B, version: 0, free: 32 }, // owns S+48..S+63 and, wrapping, S..S+15
  ]);

test('the last entry owns the addresses before the first token', () => {
  const ring = wrapRing();
  assertCoveredOnce(ring);
  assert.is(ring.ownerOf(S), B);
  assert.is(ring.ownerOf(S + 15), B);
  assert.equal(ring.rangesOf(B), [{ start: S, end: S + 16 }, { start: S + 48, end: S + 64 }]);
  assert.equal(ring.rangesOfEntry(S + 48), [{ start: S, end: S + 16 }, { start: S + 48, end: S + 64 }]);
  assert.is(ring.sizeOf(S + 48), 32);
});

test('granting from the wrapped-around part of the last entry', () => {
  const ring = wrapRing();
  ring.grant(B, { start: S, end: S + 8 }, C);
  assert.equal(entriesOf(ring), [
    { token: S, owner: C, version: 1, free: 8 },
    { token: S + 8, owner: B, version: 1, free: 8 },
    { token: S + 16, owner: A, version: 0, free: 32 },
    { token: S + 48, owner: B, version: 1, free: 16 },
  ]);
  assertCoveredOnce(ring);
});

test('granting up to the end of the ring puts a token for the donor at the start', () => {
  const ring = wrapRing();
  ring.grant(B, { start: S + 56, end: S + 64 }, C);
  assert.equal(entriesOf(ring), [
    { token: S, owner: B, version: 1, free: 16 },
    { token: S + 16, owner: A, version: 0, free: 32 },
    { token: S + 48, owner: B, version: 1, free: 8 },
    { token: S + 56, owner: C, version: 1, free: 8 },
  ]);
  assert.equal(ring.rangesOf(B), [{ start: S, end: S + 16 }, { start: S + 48, end: S + 56 }]);
  assertCoveredOnce(ring);
});

test('a grant may span several entries of the donor', () => {
  const ring = new Ring(range26, [
    { token: S, owner: A, version: 0, free: 16 },
    { token: S + 16, owner: A, version: 3, free: 16 },
    { token: S + 32, owner: B, version: 0, free: 32 },
  ]);
  ring.grant(A, { start: S + 8, end: S + 24 }, C);
  assert.equal(entriesOf(ring), [
    { token: S, owner: A, version: 1, free: 8 },
    { token: S + 8, owner: C, version: 1, free: 8 },
    { token: S + 16, owner: C, version: 4, free: 8 },
    { token: S + 24, owner: A, version: 4, free: 8 },
    { token: S + 32, owner: B, version: 0, free: 32 },
  ]);
  assert.equal(ring.rangesOf(C), [{ start: S + 8, end: S + 24 }]);
  assertCoveredOnce(ring);
});

test('grants of addresses the donor does not own all of are refused and change nothing', () => {
  const ring = wrapRing();
  const before = entriesOf(ring);
  expectWeaveError(() => ring.grant(A, { start: S + 40, end: S + 50 }, C), 'bad-value');
  expectWeaveError(() => ring.grant(B, { start: S + 10, end: S + 20 }, C), 'bad-value');
  expectWeaveError(() => ring.grant(C, { start: S, end: S + 1 }, A), 'bad-value');
  for (const bad of [{ start: S + 5, end: S + 5 }, { start: S - 1, end: S + 4 }, { start: S + 60, end: S + 65 }, { start: S + 1.5, end: S + 4 }]) {
    assert.throws(() => ring.grant(B, bad, C), isRangeError);
  }
  assert.throws(() => ring.grant(B, { start: S, end: S + 1 }, 0), isRangeError);
  assert.equal(entriesOf(ring), before);
  expectWeaveError(() => new Ring(range26).grant(A, { start: S, end: S + 1 }, B), 'bad-value');
  ring.grant(B, { start: S, end: S + 4 }, B);
  assert.equal(entriesOf(ring), before, 'granting to oneself changes nothing');
});

test('random grants keep the range covered once and move exactly the granted addresses', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()), { maxLength: 30, size: 'max' }), (steps) => {
      const peers = [A, B, C, D];
      const ring = new Ring(range26, [
        { token: S + 5, owner: A, version: 0, free: 20 },
        { token: S + 40, owner: B, version: 0, free: 29 },
      ]);
      for (const [p, r, x, y] of steps) {
        const from = peers[p % 4] as number;
        const ranges = ring.rangesOf(from);
        if (ranges.length === 0) continue;
        const owned = ranges[r % ranges.length] as { start: number; end: number };
        const s = owned.start + (x % (owned.end - owned.start));
        const e = s + 1 + (y % (owned.end - s));
        const to = peers[(p + 1 + (x % 3)) % 4] as number;
        const before = ownersByWalk(ring);
        ring.grant(from, { start: s, end: e }, to);
        assertCoveredOnce(ring);
        const after = ownersByWalk(ring);
        after.forEach((o, k) => {
          const a = ring.start + k;
          assert.is(o, a >= s && a < e ? to : before[k]);
        });
      }
    }),
    { numRuns: 300 },
  );
});

// --- transfer and free counts ------------------------------------------------------------------

test('transfer moves every entry of a peer with a version bump and is idempotent', () => {
  const ring = fresh(A, B, C, D);
  const moved = ring.transfer(B, E, 1_000_000);
  assert.is(moved, 16);
  assert.equal(ring.rangesOf(E), [{ start: S + 16, end: S + 32 }]);
  assert.equal(ring.rangesOf(B), []);
  assert.equal(ring.entries().find((e) => e.token === S + 16), { token: S + 16, owner: E, version: 1_000_000, free: 16 });
  const after = entriesOf(ring);
  assert.is(ring.transfer(B, E, 1_000_000), 0);
  assert.equal(entriesOf(ring), after);
  assert.is(ring.transfer(E, E, 5), 0);
  assert.throws(() => ring.transfer(A, E, 0), isRangeError);
  assert.throws(() => ring.transfer(A, 0, 1), isRangeError);
  assertCoveredOnce(ring);
});

test('two replicas doing the same transfer converge with no reowned conflict between them', () => {
  const base = fresh(A, B, C, D);
  base.grant(D, { start: S + 56, end: S + 64 }, A);
  const one = base.clone();
  const two = base.clone();
  one.transfer(D, B, 1_000_000);
  two.transfer(D, B, 1_000_000);
  assert.equal(entriesOf(one), entriesOf(two));
  assert.equal(one.merge(two), { changed: false, reowned: [] });
  assert.equal(two.merge(one), { changed: false, reowned: [] });
  // A replica that has not done the transfer learns it; the addresses changed hands from D.
  const three = base.clone();
  const result = three.merge(one);
  assert.ok(result.changed);
  assert.equal(result.reowned, [S + 48]);
  assert.equal(entriesOf(three), entriesOf(one));
});

test('two peers taking over the same dead peer converge on the higher name; the other sees its loss', () => {
  const base = fresh(A, B, C, D);
  const atA = base.clone();
  const atB = base.clone();
  atA.transfer(D, A, 1_000_000);
  atB.transfer(D, B, 1_000_000);
  const fromA = atA.merge(atB);
  const fromB = atB.merge(atA);
  assert.equal(entriesOf(atA), entriesOf(atB));
  assert.is(atA.ownerOf(S + 48), B);
  assert.equal(fromA.reowned, [S + 48], 'A learns that the range it took went to B');
  assert.equal(fromB, { changed: false, reowned: [] });
});

test('setFree bumps the version only when the count changes', () => {
  const ring = fresh(A, B);
  assert.ok(ring.setFree(A, S, 10));
  assert.equal(ring.entries()[0], { token: S, owner: A, version: 1, free: 10 });
  assert.not.ok(ring.setFree(A, S, 10));
  assert.equal(ring.entries()[0], { token: S, owner: A, version: 1, free: 10 });
  assert.is(ring.freeOf(A), 10);
  expectWeaveError(() => ring.setFree(B, S, 3), 'bad-value');
  expectWeaveError(() => ring.setFree(A, S + 1, 3), 'bad-value');
  assert.throws(() => ring.setFree(A, S, 33), isRangeError);
  assert.throws(() => ring.setFree(A, S, -1), isRangeError);
  const maxed = new Ring(range26, [{ token: S, owner: A, version: MAX_RING_VERSION, free: 64 }]);
  assert.throws(() => maxed.setFree(A, S, 1), isRangeError);
  assert.throws(() => maxed.transfer(A, B, 1), isRangeError);
  assert.throws(() => maxed.grant(A, { start: S, end: S + 1 }, B), isRangeError);
  assert.equal(entriesOf(maxed), [{ token: S, owner: A, version: MAX_RING_VERSION, free: 64 }]);
});

// --- merge ---------------------------------------------------------------------------------------

test('merging rings over different ranges is refused', () => {
  const ring = fresh(A);
  expectWeaveError(() => ring.merge(new Ring(rangeOf('10.0.1.0/26'))), 'bad-value');
  expectWeaveError(() => ring.merge(new Ring({ start: S, end: S + 63 })), 'bad-value');
});

test('merging entry arrays validates them first', () => {
  const ring = fresh(A);
  assert.throws(
    () => ring.merge([{ token: S + 1, owner: B, version: 0, free: 0 }, { token: S + 1, owner: B, version: 0, free: 0 }]),
    (e: unknown) => e instanceof DecodeError,
  );
  const result = ring.merge([{ token: S + 32, owner: B, version: 0, free: 10 }]);
  assert.equal(result, { changed: true, reowned: [S + 32] });
  assert.equal(entriesOf(ring), [
    { token: S, owner: A, version: 0, free: 32 }, // clamped from 64 to its new size
    { token: S + 32, owner: B, version: 0, free: 10 },
  ]);
});

test('an empty replica adopts a ring without reporting reowned addresses', () => {
  const ring = new Ring(range26);
  const result = ring.merge(fresh(A, B, C));
  assert.equal(result, { changed: true, reowned: [] });
  assert.equal(entriesOf(ring), entriesOf(fresh(A, B, C)));
  assert.equal(ring.merge(new Ring(range26)), { changed: false, reowned: [] });
});

test('rings divided apart (different seeds) are never merged: both sides keep their ring', () => {
  const one = fresh(D, E);
  const two = fresh(A, B, C);
  assert.equal(one.seeds, [D, E]);
  assert.equal(two.seeds, [A, B, C]);
  const before = entriesOf(one);
  expectWeaveError(() => one.merge(two), 'different-seeds');
  expectWeaveError(() => two.merge(one), 'different-seeds');
  assert.equal(entriesOf(one), before, 'a refused merge changes nothing');
  assert.equal(one.seeds, [D, E]);
});

test('a ring divided by the same seeds merges; an empty replica or one with unknown seeds adopts them', () => {
  const one = fresh(C, A, B);
  const two = fresh(A, B, C);
  assert.equal(one.merge(two), { changed: false, reowned: [] });
  const empty = new Ring(range26);
  assert.is(empty.merge(one).changed, true);
  assert.equal(empty.seeds, [A, B, C]);
  // A ring from before seeds were recorded (persisted state, older peers) takes the seeds it meets.
  const legacy = Ring.fromState({ ...one.toState(), seeds: [] });
  assert.equal(legacy.seeds, []);
  assert.is(legacy.merge(two).changed, true, 'adopting seeds is a change (persist and relay it)');
  assert.equal(legacy.seeds, [A, B, C]);
  assert.equal(Ring.fromState(legacy.toState()).seeds, [A, B, C], 'seeds travel with the state');
  assert.equal(fresh(A, B, C).merge(Ring.fromState({ ...one.toState(), seeds: [] })).changed, false, 'unknown seeds do not clear known ones');
  assert.throws(() => new Ring(range26, [], [A]), /undivided ring has no seeds/);
});

test('two independent initial divisions with unknown seeds (legacy) merge deterministically and report the conflict', () => {
  const strip = (r: Ring): Ring => Ring.fromState({ ...r.toState(), seeds: [] });
  const one = strip(fresh(D, E)); // tokens S, S+32
  const two = strip(fresh(A, B, C)); // tokens S, S+32, S+48: same tokens, lower names, plus one more
  const x = one.clone();
  const y = two.clone();
  const rx = x.merge(two);
  const ry = y.merge(one);
  assert.equal(entriesOf(x), entriesOf(y));
  assertCoveredOnce(x);
  assert.equal(entriesOf(x).map((e) => e.owner), [D, E, C], 'equal versions: the higher name wins each shared token');
  assert.equal(rx.reowned, [S + 48]);
  assert.equal(ry.reowned, [S, S + 32]);
});

// Random histories: replicas apply grants, free reports and takeovers to their own views and
// exchange states in random orders; merge must be a join (commutative, associative, idempotent).

const NAMES = [0x11, 0x22, 0x33, 0x44];
const DEAD = 0x55;
const EVERYONE = [...NAMES, DEAD];

interface Command {
  kind: 'grant' | 'free' | 'transfer' | 'sync';
  actor: number;
  a: number;
  b: number;
  c: number;
}

const commandArb: fc.Arbitrary<Command> = fc.record(
  {
    kind: fc.constantFrom<Command['kind']>('grant', 'grant', 'free', 'transfer', 'sync', 'sync', 'sync'),
    actor: fc.nat(),
    a: fc.nat(),
    b: fc.nat(),
    c: fc.nat(),
  },
  { noNullPrototype: true },
);

/** A starting ring: the standard division, or arbitrary tokens (possibly none at the range start). */
const initialArb: fc.Arbitrary<RingEntry[] | 'claim'> = fc.oneof(
  fc.constant('claim' as const),
  fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { minLength: 1, maxLength: 8, size: 'max' }).chain((offsets) => {
    const tokens = offsets.sort((x, y) => x - y).map((o) => S + o);
    return fc.tuple(...tokens.map(() => fc.constantFrom(...EVERYONE))).map((owners) =>
      tokens.map((token, i) => ({ token, owner: owners[i] as number, version: 0, free: 0 })),
    );
  }),
);

function mergedCopy(x: Ring, y: Ring): Ring {
  const copy = x.clone();
  copy.merge(y);
  return copy;
}

function assertReownedExact(before: PeerName[] | undefined, ring: Ring, reowned: number[]): void {
  if (ring.isEmpty()) {
    assert.equal(reowned, []);
    return;
  }
  const after = ownersByWalk(ring);
  const expected = new Set<number>();
  if (before !== undefined) {
    after.forEach((o, k) => {
      if (o !== before[k]) {
        // The address changed hands: the entry now covering it must be listed.
        let covering = ring.entries().filter((e) => e.token <= ring.start + k).pop();
        covering ??= ring.entries()[ring.entries().length - 1];
        expected.add((covering as RingEntry).token);
      }
    });
  }
  assert.equal([...reowned].sort((x, y) => x - y), [...expected].sort((x, y) => x - y));
  assert.equal(reowned, [...reowned].sort((x, y) => x - y), 'reowned is ascending');
}

test('merge is a join over random histories: commutative, associative, idempotent, convergent', () => {
  fc.assert(
    fc.property(
      initialArb,
      fc.array(commandArb, { maxLength: 60, size: 'max' }),
      fc.array(fc.nat(), { minLength: 3, maxLength: 12, size: 'max' }),
      (initial, commands, picks) => {
        const replicas = NAMES.map(() => new Ring(range26));
        if (initial === 'claim') replicas[0]?.claimForPeers(EVERYONE);
        else replicas[0]?.merge(initial);
        const snapshots: Ring[] = [replicas[0]!.clone()];

        for (const cmd of commands) {
          const index = cmd.actor % NAMES.length;
          const ring = replicas[index] as Ring;
          const self = NAMES[index] as number;
          if (cmd.kind === 'grant') {
            const ranges = ring.rangesOf(self);
            if (ranges.length === 0) continue;
            const owned = ranges[cmd.a % ranges.length] as { start: number; end: number };
            const s = owned.start + (cmd.b % (owned.end - owned.start));
            const e = s + 1 + (cmd.c % (owned.end - s));
            ring.grant(self, { start: s, end: e }, EVERYONE[(index + 1 + (cmd.a % 4)) % 5] as number);
          } else if (cmd.kind === 'free') {
            const mine = ring.entries().filter((e) => e.owner === self);
            if (mine.length === 0) continue;
            const entry = mine[cmd.a % mine.length] as RingEntry;
            ring.setFree(self, entry.token, cmd.b % (ring.sizeOf(entry.token) + 1));
          } else if (cmd.kind === 'transfer') {
            // Mostly the dead peer; sometimes a live one (a mistaken rmpeer), which must still converge.
            const victim = cmd.a % 3 === 0 ? (NAMES[cmd.b % NAMES.length] as number) : DEAD;
            ring.transfer(victim, self, 1_000_000);
          } else {
            const other = replicas[cmd.b % NAMES.length] as Ring;
            const before = ring.isEmpty() ? undefined : ownersByWalk(ring);
            const result = ring.merge(other);
            assertReownedExact(before, ring, result.reowned);
            if (!result.changed) assert.equal(result.reowned, []);
          }
          assertCoveredOnce(ring);
          if (snapshots.length < 40) snapshots.push(ring.clone());
        }

        // Laws on snapshots picked from the history.
        for (let k = 0; k + 2 < picks.length; k += 3) {
          const a = snapshots[(picks[k] as number) % snapshots.length] as Ring;
          const b = snapshots[(picks[k + 1] as number) % snapshots.length] as Ring;
          const c = snapshots[(picks[k + 2] as number) % snapshots.length] as Ring;
          const ab = mergedCopy(a, b);
          assert.equal(entriesOf(ab), entriesOf(mergedCopy(b, a)), 'commutative');
          assert.equal(entriesOf(mergedCopy(ab, c)), entriesOf(mergedCopy(a, mergedCopy(b, c))), 'associative');
          const aa = a.clone();
          assert.equal(aa.merge(a), { changed: false, reowned: [] }, 'idempotent');
          assert.equal(entriesOf(aa), entriesOf(a));
          assert.equal(mergedCopy(ab, a).merge(b).changed, false, 'a merged ring absorbs its inputs');
          assertCoveredOnce(ab);
        }

        // Everyone exchanges with everyone, twice: all replicas are identical and absorb all history.
        for (let round = 0; round < 2; round++) {
          for (const x of replicas) for (const y of replicas) x.merge(y);
        }
        const final = entriesOf(replicas[0] as Ring);
        for (const r of replicas) {
          assert.equal(entriesOf(r), final);
          assertCoveredOnce(r);
        }
        for (const s of snapshots) assert.is((replicas[0] as Ring).clone().merge(s).changed, false);
      },
    ),
    { numRuns: 400 },
  );
});

// --- size -----------------------------------------------------------------------------------------

test('rings of tens of thousands of entries stay fast', () => {
  const range = rangeOf('10.32.0.0/12');
  const peers = Array.from({ length: 20000 }, (_, i) => i + 1);
  const t0 = performance.now();
  const one = new Ring(range);
  one.claimForPeers(peers);
  const two = one.clone();
  for (let i = 0; i < 200; i++) {
    const owner = (i * 97) % 20000 + 1;
    const [r] = one.rangesOf(owner);
    one.grant(owner, { start: r!.start, end: r!.start + 1 }, ((i * 31) % 20000) + 1);
    const [claimed] = two.rangesOf(owner);
    two.setFree(owner, claimed!.start, 3);
  }
  let hits = 0;
  for (let a = range.start; a < range.end; a += 97) if (one.ownerOf(a) !== undefined) hits++;
  one.merge(two);
  two.merge(one);
  assert.equal(entriesOf(one), entriesOf(two));
  assert.ok(hits > 0);
  one.validate();
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `took ${ms} ms`);
});

test.run();
