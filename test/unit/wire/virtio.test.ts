import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeVirtioHeader, encodeVirtioHeader, virtioSegmentSize, VIRTIO_GSO_UDP_L4, type VirtioHeader } from '../../../src/wire/virtio.js';
import { DecodeError } from '../../../src/errors.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';

const header = fc.record({
  flags: fc.integer({ min: 0, max: 255 }),
  gsoType: fc.integer({ min: 0, max: 255 }),
  headerLength: fc.integer({ min: 0, max: 0xffff }),
  gsoSize: fc.integer({ min: 0, max: 0xffff }),
  checksumStart: fc.integer({ min: 0, max: 0xffff }),
  checksumOffset: fc.integer({ min: 0, max: 0xffff }),
});

test('the header round-trips, little-endian as the kernel writes it on x86 and arm64', () => {
  const h: VirtioHeader = { flags: 1, gsoType: 4, headerLength: 86, gsoSize: 1304, checksumStart: 54, checksumOffset: 16 };
  const out = new Uint8Array(12);
  encodeVirtioHeader(h, out, 2);
  assert.equal([...out.subarray(2)], [1, 4, 86, 0, 0x18, 0x05, 54, 0, 16, 0]);
  assert.equal(decodeVirtioHeader(out, 2), h);
  fc.assert(
    fc.property(header, (x) => {
      const b = new Uint8Array(10);
      encodeVirtioHeader(x, b);
      assert.equal(decodeVirtioHeader(b), { ...x });
    }),
  );
});

test('virtioSegmentSize: 0 for a complete frame, the size of a TCP or UDP super-frame, -1 for anything weave-ts never asks for', () => {
  const b = new Uint8Array(10);
  assert.is(virtioSegmentSize(b, 0), 0);
  encodeVirtioHeader({ flags: 1, gsoType: 1, headerLength: 66, gsoSize: 1324, checksumStart: 34, checksumOffset: 16 }, b);
  assert.is(virtioSegmentSize(b, 0), 1324);
  b[1] = 4;
  assert.is(virtioSegmentSize(b, 0), 1324);
  b[1] = VIRTIO_GSO_UDP_L4;
  assert.is(virtioSegmentSize(b, 0), 1324, 'USO');
  for (const type of [3, 0x81, 0x84, 0x85]) {
    b[1] = type;
    assert.is(virtioSegmentSize(b, 0), -1, `gso_type ${type}`);
  }
  b[1] = 1;
  b[4] = 0;
  b[5] = 0;
  assert.is(virtioSegmentSize(b, 0), -1, 'a zero segment size');
  assert.is(virtioSegmentSize(b.subarray(0, 9), 0), -1, 'cut short');
});

test('fuzz: decoding only gives DecodeErrors, and virtioSegmentSize never throws', () => {
  const valid = header.map((x) => {
    const b = new Uint8Array(10);
    encodeVirtioHeader(x, b);
    return b;
  });
  fuzzDecoder((bytes) => decodeVirtioHeader(bytes), valid);
  assert.throws(() => decodeVirtioHeader(new Uint8Array(9)), (e: unknown) => e instanceof DecodeError);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: -2, max: 20 }), (bytes, at) => {
      const size = virtioSegmentSize(bytes, at);
      assert.ok(Number.isInteger(size) && size >= -1 && size <= 0xffff);
    }),
  );
});

test.run();
