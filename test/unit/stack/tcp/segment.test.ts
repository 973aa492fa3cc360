import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ChecksumError } from '../../../../src/wire/inet.js';
import type { TcpOptions, TcpSegment } from '../../../../src/stack/tcp/contract.js';
import { decodeTcpSegment, encodeTcpSegment } from '../../../../src/stack/tcp/segment.js';
import { seqAdd, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqSub } from '../../../../src/stack/tcp/seq.js';
import { createIsnGenerator } from '../../../../src/stack/tcp/isn.js';
import { FakeClock } from '../../../../src/testing/fake-clock.js';
import { seededRandom } from '../../../../src/random.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../../helpers/fuzz.js';

const SRC = 0x0a20_0001;
const DST = 0x0a20_0002;
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

const optionsArb: fc.Arbitrary<TcpOptions> = fc
  .record(
    {
      mss: fc.option(u16, { nil: undefined }),
      windowScale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
      sackPermitted: fc.option(fc.constant(true), { nil: undefined }),
      timestamp: fc.option(fc.tuple(u32, u32), { nil: undefined }),
      sack: fc.option(fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }), { nil: undefined }),
    },
    { noNullPrototype: true },
  )
  .map((o) => {
    // Keep within 40 bytes: drop SACK blocks until the options fit.
    const fixed = (o.mss !== undefined ? 4 : 0) + (o.windowScale !== undefined ? 4 : 0) + (o.timestamp ? 12 : o.sackPermitted ? 4 : 0);
    const room = Math.floor((40 - fixed - 4) / 8);
    const sack = o.sack ? o.sack.slice(0, Math.max(0, room)) : undefined;
    const out: TcpOptions = {};
    if (o.mss !== undefined) out.mss = o.mss;
    if (o.windowScale !== undefined) out.windowScale = o.windowScale;
    if (o.sackPermitted) out.sackPermitted = true;
    if (o.timestamp) out.timestamp = o.timestamp;
    if (sack && sack.length > 0) out.sack = sack;
    return out;
  });

const segmentArb: fc.Arbitrary<TcpSegment> = fc.record(
  {
    sourcePort: u16,
    destinationPort: u16,
    seq: u32,
    ack: u32,
    flags: fc.integer({ min: 0, max: 255 }),
    window: u16,
    urgentPointer: u16,
    options: optionsArb,
    payload: fc.uint8Array({ maxLength: 300 }),
  },
  { noNullPrototype: true },
);

const plain = (s: TcpSegment) => ({ ...s, payload: [...s.payload], options: JSON.parse(JSON.stringify(s.options)) as unknown });

test('segments round-trip with every option combination', () => {
  fc.assert(
    fc.property(segmentArb, (segment) => {
      const bytes = encodeTcpSegment(segment, SRC, DST);
      assert.is(bytes.length % 1, 0);
      assert.is(((bytes[12] as number) >>> 4) * 4 <= 60, true);
      assert.equal(plain(decodeTcpSegment(bytes, SRC, DST)), plain(segment));
    }),
    { numRuns: 2000 },
  );
});

test('with headroom, a segment encodes to the same bytes, placed that far into a buffer of its own', () => {
  fc.assert(
    fc.property(segmentArb, fc.integer({ min: 1, max: 64 }), (segment, headroom) => {
      const bytes = encodeTcpSegment(segment, SRC, DST, headroom);
      assert.is(bytes.byteOffset, headroom);
      assert.is(bytes.buffer.byteLength, headroom + bytes.byteLength);
      assert.equal([...bytes], [...encodeTcpSegment(segment, SRC, DST)]);
    }),
    { numRuns: 500 },
  );
});

test('a SYN with MSS, SACK-permitted and window scale has the layout Linux sends', () => {
  const bytes = encodeTcpSegment(
    { sourcePort: 1, destinationPort: 2, seq: 3, ack: 0, flags: 0x02, window: 65535, urgentPointer: 0, options: { mss: 1460, sackPermitted: true, windowScale: 7 }, payload: new Uint8Array(0) },
    SRC,
    DST,
  );
  assert.is(bytes.length, 32);
  assert.equal([...bytes.subarray(20)], [2, 4, 5, 180, 1, 1, 4, 2, 1, 3, 3, 7]);
});

test('a corrupted segment is a ChecksumError, and the pseudo-header counts', () => {
  fc.assert(
    fc.property(segmentArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (segment, at, bit) => {
      const bytes = encodeTcpSegment(segment, SRC, DST);
      const flipped = bytes.slice();
      const i = at % flipped.length;
      flipped[i] = (flipped[i] as number) ^ (1 << bit);
      try {
        decodeTcpSegment(flipped, SRC, DST);
        assert.unreachable('corruption went unnoticed');
      } catch (e) {
        assert.ok(e instanceof ChecksumError || (e as { code?: string }).code !== undefined);
      }
      assert.throws(() => decodeTcpSegment(bytes, SRC, DST + 1), (e: unknown) => e instanceof ChecksumError);
    }),
    { numRuns: 500 },
  );
});

/** A header with `options` (raw bytes, padded by the caller) and a valid checksum. */
function withOptions(options: number[], dataOffsetWords?: number): Uint8Array {
  const words = dataOffsetWords ?? 5 + Math.ceil(options.length / 4);
  const bytes = rawBytes((w) => {
    w.u16(1).u16(2).u32(3).u32(4).u8(words << 4).u8(0x10).u16(100).u16(0).u16(0);
    for (const b of options) w.u8(b);
    for (let i = options.length; i < Math.ceil(options.length / 4) * 4; i++) w.u8(0);
  });
  // fix the checksum
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] as number) << 8) | (bytes[i + 1] ?? 0);
  sum += (SRC >>> 16) + (SRC & 0xffff) + (DST >>> 16) + (DST & 0xffff) + 6 + bytes.length;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  bytes[16] = c >>> 8;
  bytes[17] = c & 0xff;
  return bytes;
}

test('unknown options are skipped by length; EOL ends the list; NOPs pad', () => {
  const seg = decodeTcpSegment(withOptions([1, 30, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4, 0, 9, 9]), SRC, DST);
  assert.equal(seg.options, { mss: 1460 });
});

test('bad option lengths and data offsets are DecodeErrors', () => {
  const decode = (b: Uint8Array) => decodeTcpSegment(b, SRC, DST);
  expectDecodeError(decode, withOptions([2, 3, 0, 0]), 'bad-value'); // MSS of length 3
  expectDecodeError(decode, withOptions([3, 4, 7, 0]), 'bad-value'); // window scale of length 4
  expectDecodeError(decode, withOptions([30, 1, 0, 0]), 'bad-value'); // length below 2
  expectDecodeError(decode, withOptions([30, 9, 0, 0]), 'bad-value'); // past the end of the options
  expectDecodeError(decode, withOptions([5, 6, 0, 0, 0, 0]), 'bad-value'); // SACK not 2+8n
  expectDecodeError(decode, withOptions([1, 1, 1, 2]), 'bad-value'); // kind without length byte
  expectDecodeError(decode, withOptions([], 4), 'bad-value'); // data offset below 20
  expectDecodeError(decode, withOptions([], 6), 'short-read'); // data offset beyond the segment
  expectDecodeError(decode, new Uint8Array(19), 'short-read');
});

test('a window scale above 14 is taken as 14 (RFC 7323 §2.3)', () => {
  assert.is(decodeTcpSegment(withOptions([3, 3, 20, 1]), SRC, DST).options.windowScale, 14);
});

test('fuzzed segment bytes only ever give a DecodeError (ChecksumError included)', () => {
  fuzzDecoder((b) => decodeTcpSegment(b, SRC, DST), segmentArb.map((s) => encodeTcpSegment(s, SRC, DST)), 3000);
  // And with the checksum fixed after mutation, so the option parser sees the mutations.
  fuzzDecoder(
    (b) => {
      const fixed = b.slice();
      if (fixed.length >= 18) {
        fixed[16] = 0;
        fixed[17] = 0;
        let sum = 0;
        for (let i = 0; i < fixed.length; i += 2) sum += ((fixed[i] as number) << 8) | (fixed[i + 1] ?? 0);
        sum += (SRC >>> 16) + (SRC & 0xffff) + (DST >>> 16) + (DST & 0xffff) + 6 + fixed.length;
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
        const c = ~sum & 0xffff;
        fixed[16] = c >>> 8;
        fixed[17] = c & 0xff;
      }
      return decodeTcpSegment(fixed, SRC, DST);
    },
    segmentArb.map((s) => encodeTcpSegment(s, SRC, DST)),
    3000,
  );
});

test('sequence comparisons wrap modulo 2^32', () => {
  fc.assert(
    fc.property(u32, fc.integer({ min: 1, max: 0x7fff_ffff }), (a, n) => {
      const b = seqAdd(a, n);
      assert.ok(seqLt(a, b) && seqLe(a, b) && seqGt(b, a) && seqGe(b, a) && !seqLt(b, a));
      assert.is(seqSub(b, a), n);
      assert.ok(seqInWindow(a, a, 1) && !seqInWindow(b, a, n) && seqInWindow(seqAdd(b, -1), a, n));
    }),
  );
  assert.ok(seqLt(0xffff_fff0, 0x10));
  assert.ok(!seqInWindow(5, 5, 0));
});

test('ISNs follow a 4 µs clock, differ per 4-tuple and per secret (RFC 6528)', () => {
  const clock = new FakeClock(0);
  const isn = createIsnGenerator(clock, seededRandom(1));
  const t = { localAddress: SRC, localPort: 1000, remoteAddress: DST, remotePort: 80 };
  const first = isn(t);
  clock.advance(1);
  assert.is(seqSub(isn(t), first), 250);
  assert.is.not(isn({ ...t, localPort: 1001 }), seqAdd(first, 250));
  assert.is.not(createIsnGenerator(clock, seededRandom(2))(t), isn(t));
});

test.run();
