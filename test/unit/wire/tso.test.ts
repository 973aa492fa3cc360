import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { parseTcpSuperFrame, segmentTcpSuperFrame, tcpSuperFrameVirtioHeader } from '../../../src/wire/tso.js';
import { decodeVirtioHeader, VIRTIO_F_NEEDS_CSUM, VIRTIO_GSO_TCPV4, VIRTIO_GSO_TCPV6 } from '../../../src/wire/virtio.js';
import { DecodeError } from '../../../src/errors.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';
import { superFrame, type SuperFrameSpec } from '../../helpers/super-frame.js';

const IP = 14;
const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);
const u32 = (b: Uint8Array, at: number): number => (u16(b, at) * 0x10000 + u16(b, at + 2)) >>> 0;

/** A plain byte-at-a-time one's-complement sum (the reference the fast checksum is checked against). */
function onesSum(bytes: number[]): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] as number) << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** True when the segment's TCP checksum verifies (sum over pseudo-header and segment is 0xffff). */
function tcpChecksumVerifies(frame: Uint8Array, ipv6: boolean, tcpOffset: number): boolean {
  const tcp = [...frame.subarray(tcpOffset)];
  const length = tcp.length;
  const pseudo = ipv6
    ? [...frame.subarray(IP + 8, IP + 40), 0, 0, length >>> 8, length & 0xff, 0, 0, 0, 6]
    : [...frame.subarray(IP + 12, IP + 20), 0, 6, length >>> 8, length & 0xff];
  return onesSum([...pseudo, ...tcp]) === 0xffff;
}

const spec = (over: Partial<SuperFrameSpec> = {}): SuperFrameSpec => ({
  ipv6: false,
  payload: Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff),
  flags: 0x18, // ACK PSH
  sequence: 0xffff_f000,
  ipId: 0xfffe,
  tcpOptions: 12,
  ...over,
});

function checkSegments(s: SuperFrameSpec, segmentSize: number): void {
  const frame = superFrame(s);
  const segments = segmentTcpSuperFrame(frame, segmentSize);
  const ipHeader = s.ipv6 ? 40 : 20;
  const t = IP + ipHeader;
  const headers = t + 20 + s.tcpOptions;
  assert.is(segments.length, Math.ceil(s.payload.length / segmentSize));
  const joined: number[] = [];
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    assert.ok(segment.length - headers <= segmentSize, 'payload within the segment size');
    assert.equal([...segment.subarray(0, 12)], [...frame.subarray(0, 12)], 'MACs kept');
    if (s.ipv6) {
      assert.is(u16(segment, IP + 4), segment.length - IP - 40, 'IPv6 payload length');
    } else {
      assert.is(u16(segment, IP + 2), segment.length - IP, 'IPv4 total length');
      assert.is(u16(segment, IP + 4), (s.ipId + i) & 0xffff, 'IPv4 ids count up');
      assert.is(onesSum([...segment.subarray(IP, t)]), 0xffff, 'IPv4 header checksum verifies');
    }
    assert.is(u32(segment, t + 4), (s.sequence + i * segmentSize) >>> 0, 'sequence numbers advance');
    const flags = segment[t + 13] as number;
    assert.is((flags & 0x09) !== 0, last && (s.flags & 0x09) !== 0, 'FIN/PSH only on the last');
    assert.is((flags & 0x80) !== 0, i === 0 && (s.flags & 0x80) !== 0, 'CWR only on the first');
    assert.is(flags & 0x10, s.flags & 0x10, 'ACK kept');
    assert.ok(tcpChecksumVerifies(segment, s.ipv6, t), `segment ${i} TCP checksum verifies`);
    joined.push(...segment.subarray(headers));
  });
  assert.equal(joined, [...s.payload], 'the payload is cut, not changed');
}

test('segments IPv4 and IPv6 super-frames: lengths, ids, sequence numbers, flags, checksums', () => {
  checkSegments(spec(), 1324);
  checkSegments(spec({ ipv6: true }), 1304);
  checkSegments(spec({ flags: 0x80 | 0x10 | 0x08 | 0x01, payload: new Uint8Array(4001).fill(0xab) }), 1000); // odd tail
  checkSegments(spec({ tcpOptions: 0, payload: new Uint8Array(100) }), 1324); // one segment
  checkSegments(spec({ ipv6: true, payload: new Uint8Array(65_000).fill(0xff) }), 1376 - 60 - 12);
});

test('segments random super-frames correctly (property)', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uint8Array({ minLength: 1, maxLength: 9000 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 10 }).map((n) => n * 4),
      fc.integer({ min: 64, max: 3000 }),
      (ipv6, payload, flags, sequence, ipId, tcpOptions, segmentSize) => {
        checkSegments({ ipv6, payload, flags, sequence, ipId, tcpOptions }, segmentSize);
      },
    ),
    { numRuns: 150 },
  );
});

test('refuses what is not a TCP super-frame with a DecodeError', () => {
  const reject = (frame: Uint8Array, size = 1000): void => {
    assert.throws(() => segmentTcpSuperFrame(frame, size), (e: unknown) => e instanceof DecodeError);
  };
  const good = superFrame(spec());
  reject(good.subarray(0, 40));
  const vlan = good.slice();
  vlan.set([0x81, 0x00], 12);
  reject(vlan);
  const udp = good.slice();
  udp[IP + 9] = 17;
  reject(udp);
  const fragment = good.slice();
  fragment[IP + 6] = 0x20; // MF
  reject(fragment);
  reject(good.subarray(0, good.length - 1)); // total length disagrees
  reject(superFrame(spec({ payload: new Uint8Array(0) })));
  const badOffset = good.slice();
  badOffset[IP + 20 + 12] = 0x40; // data offset 16
  reject(badOffset);
  const extension = superFrame(spec({ ipv6: true }));
  extension[IP + 6] = 0; // hop-by-hop options first
  reject(extension);
  reject(good, 0);
  reject(good, 63);
  reject(good, 70_000);
});

test('the virtio header hands a super-frame to the kernel: type, header length, checksum position', () => {
  const out = new Uint8Array(20);
  tcpSuperFrameVirtioHeader(superFrame(spec()), 1324, out, 10);
  assert.equal(decodeVirtioHeader(out, 10), {
    flags: VIRTIO_F_NEEDS_CSUM,
    gsoType: VIRTIO_GSO_TCPV4,
    headerLength: IP + 20 + 32,
    gsoSize: 1324,
    checksumStart: IP + 20,
    checksumOffset: 16,
  });
  tcpSuperFrameVirtioHeader(superFrame(spec({ ipv6: true, tcpOptions: 0 })), 1304, out, 0);
  assert.equal(decodeVirtioHeader(out, 0), {
    flags: VIRTIO_F_NEEDS_CSUM,
    gsoType: VIRTIO_GSO_TCPV6,
    headerLength: IP + 40 + 20,
    gsoSize: 1304,
    checksumStart: IP + 40,
    checksumOffset: 16,
  });
  assert.throws(() => tcpSuperFrameVirtioHeader(new Uint8Array(60), 1304, out, 0), (e: unknown) => e instanceof DecodeError);
});

test('fuzz: frames from a neighbour only ever parse, segment or give a DecodeError', () => {
  const valid = fc
    .tuple(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.integer({ min: 0, max: 10 }))
    .map(([ipv6, payload, options]) => superFrame(spec({ ipv6, payload, tcpOptions: options * 4 })));
  fuzzDecoder((bytes) => parseTcpSuperFrame(bytes), valid);
  fuzzDecoder((bytes) => segmentTcpSuperFrame(bytes, 536), valid, 500);
});

test.run();
