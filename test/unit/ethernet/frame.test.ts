import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  BROADCAST_MAC,
  destinationMac,
  formatMac,
  isGroupDestination,
  isLinkLocalControl,
  macAt,
  macBytes,
  parseMac,
  randomMac,
  sourceMac,
} from '../../../src/ethernet/frame.js';

const MAX_MAC = 2 ** 48 - 1;
const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 });
const macNumberArb = fc.oneof(fc.integer({ min: 0, max: MAX_MAC }), fc.constantFrom(0, 1, 0xff, 2 ** 32 - 1, 2 ** 32, 2 ** 40, MAX_MAC - 1, MAX_MAC));

/** The numeric value of 6 bytes, computed independently of macAt. */
function expectedNumber(bytes: Uint8Array): number {
  return Number(BigInt(`0x${Buffer.from(bytes).toString('hex')}`));
}

function frameWith(dst: Uint8Array, src: Uint8Array): Uint8Array {
  const frame = new Uint8Array(60);
  frame.set(dst, 0);
  frame.set(src, 6);
  frame[12] = 0x08;
  return frame;
}

test('destinationMac and sourceMac read the header MACs as exact numbers', () => {
  fc.assert(
    fc.property(macArb, macArb, (dst, src) => {
      const frame = frameWith(dst, src);
      assert.is(destinationMac(frame), expectedNumber(dst));
      assert.is(sourceMac(frame), expectedNumber(src));
      assert.equal(macBytes(destinationMac(frame)), dst);
      assert.equal(macBytes(sourceMac(frame)), src);
    }),
  );
});

test('macAt reads at any offset', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), macArb, (prefix, mac) => {
      const buf = new Uint8Array(prefix.length + 6 + 3);
      buf.set(prefix, 0);
      buf.set(mac, prefix.length);
      assert.is(macAt(buf, prefix.length), expectedNumber(mac));
    }),
  );
});

test('macAt of ff:ff:ff:ff:ff:ff is BROADCAST_MAC and the high bit of byte 2 is not sign-extended', () => {
  assert.is(macAt(new Uint8Array(6).fill(0xff), 0), BROADCAST_MAC);
  assert.is(macAt(Uint8Array.of(0, 0, 0x80, 0, 0, 0), 0), 2 ** 31);
  assert.is(macAt(Uint8Array.of(0, 0x01, 0xff, 0xff, 0xff, 0xff), 0), 2 ** 33 - 1);
});

test('macBytes and macAt are inverse on every 48-bit number', () => {
  fc.assert(
    fc.property(macNumberArb, (n) => {
      const bytes = macBytes(n);
      assert.is(bytes.length, 6);
      assert.is(macAt(bytes, 0), n);
    }),
  );
});

test('formatMac and parseMac round-trip, from numbers and from bytes', () => {
  fc.assert(
    fc.property(macArb, (bytes) => {
      const text = formatMac(bytes);
      assert.match(text, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      assert.equal(parseMac(text), bytes);
      assert.is(formatMac(expectedNumber(bytes)), text);
      assert.equal(parseMac(text.toUpperCase().replaceAll(':', '-')), bytes);
    }),
  );
});

test('formatMac writes two lowercase digits per byte', () => {
  assert.is(formatMac(0x0a0b0c0d0e0f), '0a:0b:0c:0d:0e:0f');
  assert.is(formatMac(BROADCAST_MAC), 'ff:ff:ff:ff:ff:ff');
  assert.is(formatMac(0), '00:00:00:00:00:00');
});

test('parseMac rejects malformed text', () => {
  for (const bad of ['', '01:02:03:04:05', '01:02:03:04:05:06:07', '1:02:03:04:05:06', '001:02:03:04:05:06', 'g1:02:03:04:05:06', '01:02:03:04:05:', '01020304050607', '01:02:03:04:05:0x']) {
    assert.is(parseMac(bad), undefined, bad);
  }
});

test('isGroupDestination follows the I/G bit of the first octet', () => {
  fc.assert(
    fc.property(macArb, macArb, (dst, src) => {
      assert.is(isGroupDestination(frameWith(dst, src)), ((dst[0] as number) & 1) === 1);
    }),
  );
  assert.ok(isGroupDestination(frameWith(macBytes(BROADCAST_MAC), new Uint8Array(6))));
  assert.ok(isGroupDestination(frameWith(Uint8Array.of(0x01, 0x00, 0x5e, 0, 0, 1), new Uint8Array(6))));
  assert.ok(isGroupDestination(frameWith(Uint8Array.of(0x33, 0x33, 0, 0, 0, 1), new Uint8Array(6))));
  assert.not.ok(isGroupDestination(frameWith(Uint8Array.of(0x02, 0, 0, 0, 0, 1), Uint8Array.of(0x01, 0, 0, 0, 0, 0))));
});

test('isLinkLocalControl is true for 01:80:c2:00:00:00..0f only', () => {
  for (let last = 0; last <= 0xff; last++) {
    const frame = frameWith(Uint8Array.of(0x01, 0x80, 0xc2, 0, 0, last), new Uint8Array(6));
    assert.is(isLinkLocalControl(frame), last <= 0x0f, `01:80:c2:00:00:${last.toString(16)}`);
  }
  for (const near of [[0x01, 0x80, 0xc2, 0, 1, 0], [0x01, 0x80, 0xc3, 0, 0, 0], [0x03, 0x80, 0xc2, 0, 0, 0], [0x01, 0x81, 0xc2, 0, 0, 0], [0x01, 0x80, 0xc2, 1, 0, 0]]) {
    assert.not.ok(isLinkLocalControl(frameWith(Uint8Array.from(near), new Uint8Array(6))), formatMac(Uint8Array.from(near)));
  }
});

test('randomMac is locally administered unicast and keeps the other random bits', () => {
  fc.assert(
    fc.property(macArb, (random) => {
      const mac = randomMac((b) => b.set(random));
      assert.is(mac.length, 6);
      assert.is((mac[0] as number) & 0x01, 0, 'unicast');
      assert.is((mac[0] as number) & 0x02, 0x02, 'locally administered');
      assert.is((mac[0] as number) & 0xfc, (random[0] as number) & 0xfc);
      assert.equal(mac.subarray(1), random.subarray(1));
    }),
  );
});

test.run();
