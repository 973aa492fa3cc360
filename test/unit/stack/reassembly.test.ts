import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Reassembly } from '../../../src/stack/reassembly.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import type { Ipv4Packet } from '../../../src/wire/inet.js';

function setup(options: ConstructorParameters<typeof Reassembly>[2] = {}) {
  const clock = new FakeClock();
  const drops: Record<string, number> = {};
  const reassembly = new Reassembly(clock, { drop: (reason, n = 1) => void (drops[reason] = (drops[reason] ?? 0) + n) }, options);
  return { clock, drops, reassembly };
}

function fragment(offset: number, payload: Uint8Array, more: boolean, identification = 1, source = 0x0a200001): Ipv4Packet {
  return {
    tos: 0,
    identification,
    dontFragment: false,
    moreFragments: more,
    fragmentOffset: offset,
    ttl: 64,
    protocol: 17,
    source,
    destination: 0x0a200002,
    payload,
  };
}

/** Splits `data` into fragments of `piece` bytes (a multiple of 8). */
function split(data: Uint8Array, piece: number, identification = 1): Ipv4Packet[] {
  const out: Ipv4Packet[] = [];
  for (let at = 0; at < data.length; at += piece) {
    const end = Math.min(at + piece, data.length);
    out.push(fragment(at, data.subarray(at, end), end < data.length, identification));
  }
  return out;
}

test('fragments in any order, with duplicates, give back the datagram exactly once', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 9, maxLength: 3000 }),
      fc.integer({ min: 1, max: 40 }).map((n) => n * 8),
      fc.nat(),
      fc.boolean(),
      (data, piece, seed, duplicate) => {
        const { reassembly, drops } = setup();
        const pieces = split(data, piece);
        // Deterministic shuffle from the seed.
        let s = seed;
        for (let i = pieces.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) >>> 0;
          const j = s % (i + 1);
          [pieces[i], pieces[j]] = [pieces[j] as Ipv4Packet, pieces[i] as Ipv4Packet];
        }
        // A duplicate of an earlier piece arrives before the datagram completes.
        if (duplicate && pieces.length > 1) pieces.splice(pieces.length - 1, 0, pieces[seed % (pieces.length - 1)] as Ipv4Packet);
        const results = pieces.map((p) => reassembly.add(p)).filter((r) => r !== undefined);
        if (pieces.length === 1 && !duplicate) return; // a lone piece is not a fragment; nothing to check
        assert.is(results.length, 1);
        assert.equal([...(results[0] as Uint8Array)], [...data]);
        assert.equal(drops, {});
        assert.is(reassembly.inProgress, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('an incomplete datagram is discarded when its timeout passes', () => {
  const { clock, drops, reassembly } = setup({ timeoutMs: 30_000 });
  const data = new Uint8Array(64).map((_, i) => i);
  const [first, second, third] = split(data, 24) as [Ipv4Packet, Ipv4Packet, Ipv4Packet];
  assert.is(reassembly.add(first), undefined);
  assert.is(reassembly.add(third), undefined);
  clock.advance(29_999);
  assert.is(reassembly.inProgress, 1);
  clock.advance(1);
  assert.is(reassembly.inProgress, 0);
  assert.equal(drops, { 'reassembly-timeout': 1 });
  // The late fragment starts a new, incomplete datagram instead of completing the old one.
  assert.is(reassembly.add(second), undefined);
  assert.is(reassembly.inProgress, 1);
  assert.is(clock.pending, 1);
});

test('the number of datagrams in reassembly is capped', () => {
  const { drops, reassembly } = setup({ maxDatagrams: 2 });
  const head = (id: number) => fragment(0, new Uint8Array(8), true, id);
  reassembly.add(head(1));
  reassembly.add(head(2));
  reassembly.add(head(3));
  assert.is(reassembly.inProgress, 2);
  assert.equal(drops, { 'reassembly-limit': 1 });
  // Datagrams already in progress can still complete.
  assert.is(reassembly.add(fragment(8, Uint8Array.of(1), false, 2))?.length, 9);
});

test('fragments per datagram are capped', () => {
  const { drops, reassembly } = setup({ maxFragments: 3 });
  for (let i = 0; i < 4; i++) reassembly.add(fragment(i * 8, new Uint8Array(8), true));
  assert.equal(drops, { 'reassembly-limit': 1 });
  assert.is(reassembly.inProgress, 0);
});

test('datagrams beyond 65535 bytes, overlaps and inconsistent ends drop the datagram', () => {
  const big = setup();
  assert.is(big.reassembly.add(fragment(65512, new Uint8Array(8), false)), undefined);
  assert.equal(big.drops, { 'reassembly-too-big': 1 });

  const overlap = setup();
  overlap.reassembly.add(fragment(0, new Uint8Array(16), true));
  overlap.reassembly.add(fragment(8, new Uint8Array(16), true));
  assert.equal(overlap.drops, { 'reassembly-overlap': 1 });
  assert.is(overlap.reassembly.inProgress, 0);

  const ends = setup();
  ends.reassembly.add(fragment(16, new Uint8Array(8), false));
  ends.reassembly.add(fragment(32, new Uint8Array(8), true)); // past the known end
  assert.equal(ends.drops, { 'bad-fragment': 1 });

  const odd = setup();
  odd.reassembly.add(fragment(0, new Uint8Array(9), true)); // non-final pieces are multiples of 8
  assert.equal(odd.drops, { 'bad-fragment': 1 });
  assert.is(odd.reassembly.inProgress, 0);
});

test('fragments of different senders with the same id do not mix', () => {
  const { reassembly } = setup();
  assert.is(reassembly.add(fragment(0, new Uint8Array(8), true, 5, 1)), undefined);
  assert.is(reassembly.add(fragment(8, new Uint8Array(8), false, 5, 2)), undefined);
  assert.is(reassembly.inProgress, 2);
  reassembly.clear();
  assert.is(reassembly.inProgress, 0);
});

test.run();
