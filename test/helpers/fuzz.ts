// Decoder test helpers: fuzzing (random or mutated bytes may only give a DecodeError), expected rejections, hand-made bytes.
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { DecodeError } from '../../src/errors.js';
import { Writer } from '../../src/wire/codec.js';

/** Random bytes plus bit-flipped, truncated and extended mutations of valid encodings. */
export function mutatedBytes(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const flip = fc.tuple(valid, fc.nat(), fc.integer({ min: 0, max: 7 })).map(([b, i, bit]) => {
    if (b.length === 0) return b;
    const copy = b.slice();
    const at = i % copy.length;
    copy[at] = (copy[at] ?? 0) ^ (1 << bit);
    return copy;
  });
  const truncate = fc.tuple(valid, fc.nat()).map(([b, n]) => b.subarray(0, b.length === 0 ? 0 : n % b.length));
  const extend = fc.tuple(valid, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([b, extra]) => {
    const out = new Uint8Array(b.length + extra.length);
    out.set(b);
    out.set(extra, b.length);
    return out;
  });
  return fc.oneof(fc.uint8Array({ maxLength: 512 }), flip, truncate, extend);
}

/** Asserts that `decode` never throws anything but a DecodeError on `bytes`. */
export function assertDecodesOrRejects(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): void {
  try {
    decode(bytes);
  } catch (error) {
    if (!(error instanceof DecodeError)) {
      throw new Error(`decoder threw ${String(error)} instead of a DecodeError`, { cause: error });
    }
  }
}

/** Runs the standard fuzz property: random and mutated bytes only ever give a DecodeError. */
export function fuzzDecoder(decode: (bytes: Uint8Array) => unknown, valid: fc.Arbitrary<Uint8Array>, numRuns = 2000): void {
  fc.assert(
    fc.property(mutatedBytes(valid), (bytes) => {
      assertDecodesOrRejects(decode, bytes);
    }),
    { numRuns },
  );
}

/** Asserts that decoding `bytes` throws a DecodeError with `code`. */
export function expectDecodeError(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array, code: string): void {
  try {
    decode(bytes);
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, DecodeError);
    assert.is((e as DecodeError).code, code);
  }
}

/** Hand-made bytes, so tests can put invalid values on the wire. */
export function rawBytes(write: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  write(w);
  return w.finish();
}
