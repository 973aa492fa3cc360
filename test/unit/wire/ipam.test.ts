import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DecodeError } from '../../../src/errors.js';
import { decodeWith, encodeWith, type Writer } from '../../../src/wire/codec.js';
import { decodeRing, encodeRing, MAX_RING_ENTRIES, MAX_RING_VERSION, type RingEntry, type RingState } from '../../../src/wire/ipam.js';
import { Ring } from '../../../src/ipam/ring.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

const SPACE = 2 ** 32;

/** A valid ring state: any non-empty range, sorted unique tokens inside it, free counts within each entry. */
const ringArb: fc.Arbitrary<RingState> = fc
  .tuple(fc.integer({ min: 0, max: SPACE - 1 }), fc.integer({ min: 1, max: SPACE - 1 }))
  .map(([start, size]) => ({ start, end: Math.min(SPACE, start + size) }))
  .chain(({ start, end }) =>
    fc
      .uniqueArray(fc.integer({ min: start, max: end - 1 }), { maxLength: 12, size: 'max' })
      .map((tokens) => tokens.sort((a, b) => a - b))
      .chain((tokens) =>
        fc
          .tuple(
            ...tokens.map((token, i) => {
              const next = i + 1 < tokens.length ? (tokens[i + 1] as number) : end + ((tokens[0] as number) - start);
              return fc.record(
                {
                  token: fc.constant(token),
                  owner: fc.integer({ min: 1, max: 2 ** 48 - 1 }),
                  version: fc.integer({ min: 0, max: MAX_RING_VERSION }),
                  free: fc.integer({ min: 0, max: Math.min(next - token, 2 ** 32 - 1) }),
                },
                { noNullPrototype: true },
              );
            }),
          )
          .map((entries): RingState => ({ start, end, entries })),
      ),
  );

const encode = (ring: RingState): Uint8Array => encodeWith(encodeRing, ring);
const decode = (bytes: Uint8Array): RingState => decodeWith(decodeRing, bytes);

const S = 0x0a000000;
type Raw = [token: number, owner: number, version: bigint, free: number];
/** Hand-made ring bytes over [S, S + 64) unless told otherwise. */
const ringBytes = (entries: Raw[], header: (w: Writer) => Writer = (w) => w.u32(S).u32(64)): Uint8Array =>
  rawBytes((w) => {
    header(w).u32(entries.length);
    for (const [token, owner, version, free] of entries) w.u32(token).u48(owner).u64(version).u32(free);
  });

test('every ring round-trips', () => {
  fc.assert(
    fc.property(ringArb, (ring) => {
      assert.equal(decode(encode(ring)), ring);
    }),
    { numRuns: 500 },
  );
});

test('a Ring round-trips through its state', () => {
  const ring = new Ring({ start: S, end: S + 64 });
  ring.claimForPeers([7, 3, 5]);
  ring.grant(3, { start: S + 8, end: S + 12 }, 9);
  const back = Ring.fromState(decode(encode(ring.toState())));
  assert.equal(back.entries(), ring.entries());
  assert.is(back.start, S);
  assert.is(back.end, S + 64);
});

test('the layout is the documented one', () => {
  const ring: RingState = { start: S, end: S + 64, entries: [{ token: S + 4, owner: 0x0a0000000001, version: 3, free: 60 }] };
  assert.equal(encode(ring), ringBytes([[S + 4, 0x0a0000000001, 3n, 60]]));
  assert.is(encode(ring).length, 4 + 4 + 4 + 22);
});

test('the largest range and an empty ring encode; all of 0.0.0.0/0 does not', () => {
  const largest: RingState = { start: 1, end: SPACE, entries: [] };
  assert.equal(encode(largest), rawBytes((w) => w.u32(1).u32(SPACE - 1).u32(0)));
  assert.equal(decode(encode(largest)), largest);
  const top: RingState = { start: SPACE - 1, end: SPACE, entries: [{ token: SPACE - 1, owner: 1, version: MAX_RING_VERSION, free: 1 }] };
  assert.equal(decode(encode(top)), top);
  const wide: RingState = { start: 0, end: SPACE - 1, entries: [{ token: 5, owner: 1, version: 0, free: SPACE - 1 }] };
  assert.equal(decode(encode(wide)), wide);
  assert.throws(() => encode({ start: 0, end: SPACE, entries: [] }), (e: unknown) => e instanceof RangeError);
});

test('unsorted and duplicate tokens are rejected', () => {
  expectDecodeError(decode, ringBytes([[S + 9, 1, 0n, 0], [S + 3, 2, 0n, 0]]), 'bad-value');
  expectDecodeError(decode, ringBytes([[S + 3, 1, 0n, 0], [S + 3, 2, 0n, 0]]), 'bad-value');
});

test('tokens outside the range are rejected', () => {
  expectDecodeError(decode, ringBytes([[S - 1, 1, 0n, 0]]), 'bad-value');
  expectDecodeError(decode, ringBytes([[S + 64, 1, 0n, 0]]), 'bad-value');
  expectDecodeError(decode, ringBytes([[S, 1, 0n, 0], [S + 64, 1, 0n, 0]]), 'bad-value');
});

test('owner 0 is rejected', () => {
  expectDecodeError(decode, ringBytes([[S, 0, 0n, 0]]), 'bad-value');
});

test('a free count larger than the entry is rejected', () => {
  expectDecodeError(decode, ringBytes([[S, 1, 0n, 65]]), 'bad-value');
  expectDecodeError(decode, ringBytes([[S, 1, 0n, 8], [S + 8, 2, 0n, 57]]), 'bad-value');
  // The last entry wraps: from S+60 to the end (4) and from the start to S+8 (8) makes 12.
  assert.is(decode(ringBytes([[S + 8, 1, 0n, 52], [S + 60, 2, 0n, 12]])).entries.length, 2);
  expectDecodeError(decode, ringBytes([[S + 8, 1, 0n, 52], [S + 60, 2, 0n, 13]]), 'bad-value');
});

test('versions above 2^53 are rejected', () => {
  assert.is(decode(ringBytes([[S, 1, 2n ** 53n, 0]])).entries[0]?.version, 2 ** 53);
  expectDecodeError(decode, ringBytes([[S, 1, 2n ** 53n + 1n, 0]]), 'bad-value');
  expectDecodeError(decode, ringBytes([[S, 1, 2n ** 64n - 1n, 0]]), 'bad-value');
});

test('an empty range or one running past the end of the address space is rejected', () => {
  expectDecodeError(decode, ringBytes([], (w) => w.u32(2).u32(SPACE - 1)), 'bad-value');
  expectDecodeError(decode, ringBytes([], (w) => w.u32(SPACE - 1).u32(2)), 'bad-value');
  expectDecodeError(decode, ringBytes([], (w) => w.u32(S).u32(0)), 'bad-value');
});

test('entry counts larger than the bytes or the limit are rejected before allocating', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(S).u32(64).u32(0xffffffff)), 'too-large');
  expectDecodeError(decode, rawBytes((w) => w.u32(S).u32(64).u32(2).u32(S).u48(1).u64(0n).u32(0)), 'too-large');
  const overLimit = rawBytes((w) => {
    w.u32(0).u32(SPACE - 1).u32(MAX_RING_ENTRIES + 1);
    for (let i = 0; i <= MAX_RING_ENTRIES; i++) w.u32(i).u48(1).u64(0n).u32(0);
  });
  expectDecodeError(decode, overLimit, 'too-large');
});

test('truncated rings and trailing bytes are rejected', () => {
  const bytes = ringBytes([[S, 1, 0n, 0], [S + 8, 2, 0n, 0]]);
  // A cut inside the entries fails the count check before any entry is read.
  expectDecodeError(decode, bytes.subarray(0, bytes.length - 1), 'too-large');
  expectDecodeError(decode, bytes.subarray(0, 5), 'short-read');
  expectDecodeError(decode, bytes.subarray(0, 10), 'short-read');
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  expectDecodeError(decode, longer, 'trailing-bytes');
});

test('the encoder refuses what the layout cannot hold', () => {
  const isRangeError = (e: unknown): boolean => e instanceof RangeError;
  const tooMany: RingEntry[] = Array.from({ length: MAX_RING_ENTRIES + 1 }, (_, i) => ({ token: i, owner: 1, version: 0, free: 0 }));
  assert.throws(() => encode({ start: 0, end: SPACE - 1, entries: tooMany }), isRangeError);
  assert.throws(() => encode({ start: S, end: S + 64, entries: [{ token: S, owner: 1, version: MAX_RING_VERSION + 2, free: 0 }] }), isRangeError);
  assert.throws(() => encode({ start: S, end: S + 64, entries: [{ token: S, owner: 2 ** 48, version: 0, free: 0 }] }), isRangeError);
  assert.throws(() => encode({ start: S, end: S, entries: [] }), isRangeError);
});

test('a ring of the largest size round-trips', () => {
  const entries: RingEntry[] = Array.from({ length: MAX_RING_ENTRIES }, (_, i) => ({ token: i * 16, owner: (i % 50) + 1, version: i, free: 16 }));
  const ring: RingState = { start: 0, end: MAX_RING_ENTRIES * 16, entries };
  const bytes = encode(ring);
  assert.is(bytes.length, 12 + 22 * MAX_RING_ENTRIES);
  assert.equal(decode(bytes), ring);
});

test('fuzz: random and mutated bytes only give DecodeErrors', () => {
  fuzzDecoder(decode, ringArb.map(encode));
  fuzzDecoder((bytes) => Ring.fromState(decode(bytes)), ringArb.map(encode), 500);
});

test('decoded rings satisfy the Ring invariants', () => {
  fc.assert(
    fc.property(ringArb, (state) => {
      const ring = Ring.fromState(decode(encode(state)));
      ring.validate();
      assert.is(ring.size, state.entries.length);
    }),
  );
  assert.throws(() => Ring.fromState({ start: S, end: S + 64, entries: [{ token: S, owner: 1, version: 0.5, free: 0 }] }), (e: unknown) => e instanceof DecodeError);
});

test.run();
