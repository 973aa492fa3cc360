import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeWith, encodeWith } from '../../../src/wire/codec.js';
import {
  decodeIncarnationMessage,
  encodeIncarnationMessage,
  IncarnationKind,
  MAX_REFUSALS,
  type IncarnationMessage,
} from '../../../src/wire/incarnation.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

const encode = (m: IncarnationMessage): Uint8Array => encodeWith(encodeIncarnationMessage, m);
const decode = (b: Uint8Array): IncarnationMessage => decodeWith(decodeIncarnationMessage, b);

const uid = fc.bigInt({ min: 1n, max: 2n ** 64n - 1n });
const refusalArb = fc
  .tuple(fc.integer({ min: 1, max: 2 ** 48 - 1 }), uid, uid)
  .filter(([, a, b]) => a !== b)
  .map(([name, refused, kept]) => ({ name, refused, kept }));
const messageArb: fc.Arbitrary<IncarnationMessage> = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((nonce) => ({ kind: IncarnationKind.Probe as const, nonce })),
  fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), uid).map(([nonce, u]) => ({ kind: IncarnationKind.Answer as const, nonce, uid: u })),
  fc
    .uniqueArray(refusalArb, { minLength: 1, maxLength: MAX_REFUSALS, selector: (r) => `${r.name}/${r.refused}` })
    .map((refusals) => ({ kind: IncarnationKind.Refusals as const, refusals })),
);

test('incarnation messages round-trip', () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      assert.equal(decode(encode(m)), m);
    }),
    { numRuns: 500 },
  );
});

test('the layouts are the documented ones', () => {
  assert.equal([...encode({ kind: IncarnationKind.Probe, nonce: 7n })], [1, 0, 0, 0, 0, 0, 0, 0, 7]);
  assert.equal([...encode({ kind: IncarnationKind.Answer, nonce: 7n, uid: 9n })], [2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9]);
  assert.equal(
    encode({ kind: IncarnationKind.Refusals, refusals: [{ name: 0x0a0b0c0d0e0f, refused: 2n, kept: 1n }] }),
    rawBytes((w) => w.u8(3).u8(1).u48(0x0a0b0c0d0e0f).u64(2n).u64(1n)),
  );
});

test('bad messages are rejected: unknown kinds, uid 0, empty, oversized or duplicate refusal lists, equal uids, name 0', () => {
  for (const kind of [0, 4, 0xff]) expectDecodeError(decode, Uint8Array.of(kind, 0, 0, 0, 0, 0, 0, 0, 0), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(2).u64(1n).u64(0n)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(MAX_REFUSALS + 1)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(1).u48(5).u64(3n).u64(3n)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(1).u48(0).u64(3n).u64(4n)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(2).u48(5).u64(3n).u64(4n).u48(5).u64(3n).u64(1n)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u8(1).u64(1n).u8(0)), 'trailing-bytes');
  expectDecodeError(decode, rawBytes((w) => w.u8(3).u8(2).u48(5).u64(3n).u64(4n)), 'short-read');
  assert.throws(() => encode({ kind: IncarnationKind.Refusals, refusals: [] }), RangeError);
  assert.throws(() => encode({ kind: IncarnationKind.Refusals, refusals: [{ name: 1, refused: 2n, kept: 2n }] }), RangeError);
});

test('fuzz: incarnation messages only give DecodeErrors', () => {
  fuzzDecoder(decode, messageArb.map(encode));
});

test.run();
