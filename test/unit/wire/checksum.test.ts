import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { internetChecksum } from '../../../src/wire/checksum.js';

/** RFC 1071 word by word, the plain way: the model the fast version must match. */
function reference(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += ((b[i] as number) << 8) | (i + 1 < end ? (b[i + 1] as number) : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

test('internetChecksum matches RFC 1071 word by word for any bytes, range and alignment (odd byteOffset too)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), fc.nat({ max: 3 }), (bytes, a, b, shift) => {
      // Copy at a chosen byte offset of a larger buffer, so both the word path and the odd-offset path run.
      const backing = new Uint8Array(bytes.byteLength + 4);
      backing.set(bytes, shift);
      const view = backing.subarray(shift, shift + bytes.byteLength);
      const start = bytes.byteLength === 0 ? 0 : a % (bytes.byteLength + 1);
      const end = start + (bytes.byteLength === 0 ? 0 : b % (bytes.byteLength - start + 1));
      assert.is(internetChecksum(view, start, end), reference(view, start, end));
    }),
    { numRuns: 2000 },
  );
});

test('internetChecksum: RFC 1071 example, all-ones data folds without overflow, ranges longer than one fold', () => {
  // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2, so the checksum is its complement.
  assert.is(internetChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7), 0, 8), ~0xddf2 & 0xffff);
  for (const size of [65_535, 65_536, 200_001]) {
    const ones = new Uint8Array(size).fill(0xff);
    assert.is(internetChecksum(ones, 0, size), reference(ones, 0, size), `${size} bytes of 0xff`);
    assert.is(internetChecksum(ones, 1, size), reference(ones, 1, size), `${size - 1} bytes of 0xff at an odd offset`);
  }
  assert.is(internetChecksum(new Uint8Array(4), 2, 2), 0xffff, 'an empty range');
});

test.run();
