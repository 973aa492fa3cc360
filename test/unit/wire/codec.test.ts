import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Reader, Writer, copyBytes, decodeWith, encodeWith } from '../../../src/wire/codec.js';
import { DecodeError } from '../../../src/errors.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';

interface Sample {
  a: number;
  b: number;
  c: number;
  d: bigint;
  e: boolean;
  s: string;
  blob: Uint8Array;
}

const encodeSample = (w: Writer, x: Sample): void => {
  w.u8(x.a).u16(x.b).u48(x.c).u64(x.d).bool(x.e).str16(x.s).blob(x.blob);
};
const decodeSample = (r: Reader): Sample => ({
  a: r.u8(),
  b: r.u16(),
  c: r.u48(),
  d: r.u64(),
  e: r.bool(),
  s: r.str16(),
  blob: r.blob(1024).slice(),
});

const sampleArb = fc.record({
  a: fc.integer({ min: 0, max: 255 }),
  b: fc.integer({ min: 0, max: 0xffff }),
  c: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
  d: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  e: fc.boolean(),
  s: fc.string({ maxLength: 40 }),
  blob: fc.uint8Array({ maxLength: 64 }),
}, { noNullPrototype: true });

test('every field round-trips', () => {
  fc.assert(
    fc.property(sampleArb, (x) => {
      assert.equal(decodeWith(decodeSample, encodeWith(encodeSample, x, 1)), x);
    }),
  );
});

test('reading past the end is a short-read DecodeError', () => {
  const r = new Reader(new Uint8Array([1, 2, 3]));
  r.u16();
  try {
    r.u16();
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, DecodeError);
    assert.is((e as DecodeError).code, 'short-read');
  }
});

test('trailing bytes are rejected', () => {
  try {
    decodeWith((r) => r.u8(), new Uint8Array([1, 2]));
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.is((e as DecodeError).code, 'trailing-bytes');
  }
});

test('a count larger than the remaining bytes could hold is rejected before allocating', () => {
  const bytes = encodeWith((w: Writer, n: number) => w.u32(n), 1_000_000);
  try {
    new Reader(bytes).count(1);
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.is((e as DecodeError).code, 'too-large');
  }
});

test('invalid UTF-8 and bad booleans are DecodeErrors', () => {
  assert.throws(() => new Reader(new Uint8Array([2, 0xc3, 0x28])).str8(), (e: unknown) => e instanceof DecodeError);
  assert.throws(() => new Reader(new Uint8Array([7])).bool(), (e: unknown) => e instanceof DecodeError);
});

test('fuzz: random and mutated bytes only give DecodeErrors', () => {
  fuzzDecoder((b) => decodeWith(decodeSample, b), sampleArb.map((x) => encodeWith(encodeSample, x)));
});

test('copyBytes: the same bytes, independent of the source, a plain Uint8Array whose slice copies', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70_000 }), (bytes) => {
      const copy = copyBytes(bytes);
      assert.equal([...copy], [...bytes]);
      assert.is(Object.getPrototypeOf(copy), Uint8Array.prototype);
      if (bytes.byteLength > 0) {
        bytes[0] = (bytes[0] as number) ^ 0xff;
        assert.is.not(copy[0], bytes[0], 'changing the source leaves the copy alone');
        const sliced = copy.slice(0, 1);
        sliced[0] = (sliced[0] as number) ^ 0xff;
        assert.is.not(copy[0], sliced[0], 'slice of the copy is a copy');
      }
    }),
    { numRuns: 200 },
  );
});

test.run();
