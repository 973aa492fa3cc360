// Fuzz helpers: a decoder fed random or mutated bytes may only return or throw a DecodeError.
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';

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
