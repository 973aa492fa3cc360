import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { parseUdpSuperFrame, segmentUdpSuperFrame, udpSuperFrameVirtioHeader, VIRTIO_GSO_UDP_L4 } from '../../../src/wire/uso.js';
import { decodeVirtioHeader, VIRTIO_F_NEEDS_CSUM } from '../../../src/wire/virtio.js';
import { fuzzDecoder, expectDecodeError } from '../../helpers/fuzz.js';
import { superFrame as tcpSuperFrame, udpSuperFrame, type UdpSuperFrameSpec } from '../../helpers/super-frame.js';

const IP = 14;
const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

/** A plain byte-at-a-time one's-complement sum (the reference the segmenter's checksums are checked against). */
function onesSum(bytes: number[]): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] as number) << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** True when the segment's UDP checksum is set and verifies (sum over pseudo-header and datagram is 0xffff). */
function udpChecksumVerifies(frame: Uint8Array, ipv6: boolean, udpOffset: number): boolean {
  const udp = [...frame.subarray(udpOffset)];
  const length = udp.length;
  const pseudo = ipv6
    ? [...frame.subarray(IP + 8, IP + 40), 0, 0, length >>> 8, length & 0xff, 0, 0, 0, 17]
    : [...frame.subarray(IP + 12, IP + 20), 0, 17, length >>> 8, length & 0xff];
  return u16(frame, udpOffset + 6) !== 0 && onesSum([...pseudo, ...udp]) === 0xffff;
}

const spec = (over: Partial<UdpSuperFrameSpec> = {}): UdpSuperFrameSpec => ({
  ipv6: false,
  payload: Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff),
  ipId: 0xfffe,
  ipOptions: 0,
  ...over,
});

/** The header bytes a segment keeps from its super-frame: all but lengths, IPv4 id and checksums. */
function fixedHeaderBytes(frame: Uint8Array, ipv6: boolean, udpOffset: number): number[] {
  const bytes = [...frame.subarray(0, udpOffset + 8)];
  const changed = ipv6 ? [IP + 4, udpOffset + 4, udpOffset + 6] : [IP + 2, IP + 4, IP + 10, udpOffset + 4, udpOffset + 6];
  for (const at of changed) bytes.splice(at, 2, -1, -1);
  return bytes;
}

function checkSegments(s: UdpSuperFrameSpec, segmentSize: number): void {
  const frame = udpSuperFrame(s);
  const u = IP + (s.ipv6 ? 40 : 20 + s.ipOptions);
  assert.equal(parseUdpSuperFrame(frame), { ipv6: s.ipv6, udpOffset: u, payloadOffset: u + 8 });
  const segments = segmentUdpSuperFrame(frame, segmentSize);
  const count = Math.ceil(s.payload.length / segmentSize);
  assert.is(segments.length, count);
  const joined: number[] = [];
  segments.forEach((segment, i) => {
    const chunk = segment.length - u - 8;
    const expected = i < count - 1 ? segmentSize : s.payload.length - (count - 1) * segmentSize;
    assert.is(chunk, expected, 'full segments, then the rest');
    assert.equal(fixedHeaderBytes(segment, s.ipv6, u), fixedHeaderBytes(frame, s.ipv6, u), 'headers copied');
    if (s.ipv6) {
      assert.is(u16(segment, IP + 4), segment.length - IP - 40, 'IPv6 payload length');
    } else {
      assert.is(u16(segment, IP + 2), segment.length - IP, 'IPv4 total length');
      assert.is(u16(segment, IP + 4), (s.ipId + i) & 0xffff, 'IPv4 ids count up');
      assert.is(onesSum([...segment.subarray(IP, u)]), 0xffff, 'IPv4 header checksum verifies');
    }
    assert.is(u16(segment, u + 4), 8 + chunk, 'UDP length');
    assert.ok(udpChecksumVerifies(segment, s.ipv6, u), `segment ${i} UDP checksum verifies`);
    joined.push(...segment.subarray(u + 8));
  });
  assert.equal(joined, [...s.payload], 'the payload is cut, not changed');
}

test('segments IPv4 and IPv6 super-frames: lengths, ids, checksums, a shorter last datagram', () => {
  checkSegments(spec(), 1472);
  checkSegments(spec({ ipv6: true }), 1452);
  checkSegments(spec({ ipOptions: 12, payload: new Uint8Array(4001).fill(0xab) }), 1000); // odd tail, IPv4 options
  checkSegments(spec({ ipv6: true, payload: new Uint8Array(65_000).fill(0xff) }), 1232);
  checkSegments(spec({ udpLength: 0 }), 1200); // the super-frame's UDP length is not trusted
});

test('a segment size beyond the payload gives one datagram', () => {
  const segments = segmentUdpSuperFrame(udpSuperFrame(spec({ payload: new Uint8Array(100).fill(9) })), 1472);
  assert.is(segments.length, 1);
  checkSegments(spec({ payload: new Uint8Array(100).fill(9) }), 1472);
  checkSegments(spec({ ipv6: true, payload: new Uint8Array([1]) }), 0xffff);
});

test('a checksum that sums to zero is sent as 0xffff', () => {
  for (const ipv6 of [false, true]) {
    const u = ipv6 ? IP + 40 : IP + 20;
    // With a zero payload word the checksum is ~S for the sum S of everything else; a payload word of ~S makes the
    // whole sum 0xffff, so the computed checksum is 0 and must be sent as 0xffff.
    const [probe] = segmentUdpSuperFrame(udpSuperFrame(spec({ ipv6, payload: new Uint8Array(2) })), 64) as [Uint8Array];
    const word = u16(probe, u + 6);
    const [segment] = segmentUdpSuperFrame(udpSuperFrame(spec({ ipv6, payload: Uint8Array.of(word >>> 8, word & 0xff) })), 64) as [Uint8Array];
    assert.is(u16(segment, u + 6), 0xffff, ipv6 ? 'IPv6' : 'IPv4');
    assert.ok(udpChecksumVerifies(segment, ipv6, u), 'the 0xffff checksum verifies');
  }
});

test('segments random super-frames correctly (property)', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uint8Array({ minLength: 1, maxLength: 9000 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 10 }).map((n) => n * 4),
      fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
      fc.integer({ min: 64, max: 3000 }),
      (ipv6, payload, ipId, ipOptions, udpLength, segmentSize) => {
        checkSegments(udpLength === undefined ? { ipv6, payload, ipId, ipOptions } : { ipv6, payload, ipId, ipOptions, udpLength }, segmentSize);
      },
    ),
    { numRuns: 150 },
  );
});

test('refuses what is not a UDP super-frame with a DecodeError', () => {
  const parse = (frame: Uint8Array): unknown => parseUdpSuperFrame(frame);
  const good = udpSuperFrame(spec());
  const good6 = udpSuperFrame(spec({ ipv6: true }));
  expectDecodeError(parse, good.subarray(0, 41), 'short-read');
  expectDecodeError(parse, good6.subarray(0, 61), 'short-read');
  const vlan = good.slice();
  vlan.set([0x81, 0x00], 12);
  expectDecodeError(parse, vlan, 'bad-value');
  for (const ipv6 of [false, true]) {
    const tcp = tcpSuperFrame({ ipv6, payload: new Uint8Array(100), flags: 0x10, sequence: 1, ipId: 1, tcpOptions: 0 });
    expectDecodeError(parse, tcp, 'bad-value');
  }
  const moreFragments = good.slice();
  moreFragments[IP + 6] = 0x20; // MF
  expectDecodeError(parse, moreFragments, 'bad-value');
  const laterFragment = good.slice();
  laterFragment[IP + 7] = 0x01; // offset 8
  expectDecodeError(parse, laterFragment, 'bad-value');
  const extension = good6.slice();
  extension[IP + 6] = 0; // hop-by-hop options first
  expectDecodeError(parse, extension, 'bad-value');
  expectDecodeError(parse, good.subarray(0, good.length - 1), 'bad-value'); // total length disagrees
  expectDecodeError(parse, good6.subarray(0, good6.length - 1), 'bad-value'); // payload length disagrees
  const longer = new Uint8Array(good.length + 1);
  longer.set(good);
  expectDecodeError(parse, longer, 'bad-value');
  expectDecodeError(parse, udpSuperFrame(spec({ payload: new Uint8Array(0) })), 'bad-value');
  expectDecodeError(parse, udpSuperFrame(spec({ ipv6: true, payload: new Uint8Array(0) })), 'bad-value');
  const badIhl = good.slice();
  badIhl[IP] = 0x44;
  expectDecodeError(parse, badIhl, 'bad-value');
  const ihlPastEnd = udpSuperFrame(spec({ ipOptions: 40, payload: new Uint8Array(0) })).subarray(0, IP + 60);
  ihlPastEnd.set([0, 60], IP + 2);
  expectDecodeError(parse, ihlPastEnd, 'short-read'); // the UDP header would start past the frame's end
  for (const size of [0, 63, 1.5, 70_000, Number.NaN]) {
    expectDecodeError((frame) => segmentUdpSuperFrame(frame, size), good, 'bad-value');
    expectDecodeError((frame) => udpSuperFrameVirtioHeader(frame, size, new Uint8Array(10), 0), good, 'bad-value');
  }
});

test('the virtio header hands a super-frame to the kernel: type, header length, checksum position', () => {
  const out = new Uint8Array(20);
  udpSuperFrameVirtioHeader(udpSuperFrame(spec({ ipOptions: 8 })), 1472, out, 10);
  assert.equal(decodeVirtioHeader(out, 10), {
    flags: VIRTIO_F_NEEDS_CSUM,
    gsoType: VIRTIO_GSO_UDP_L4,
    headerLength: IP + 28 + 8,
    gsoSize: 1472,
    checksumStart: IP + 28,
    checksumOffset: 6,
  });
  udpSuperFrameVirtioHeader(udpSuperFrame(spec({ ipv6: true })), 1452, out, 0);
  assert.equal(decodeVirtioHeader(out, 0), {
    flags: VIRTIO_F_NEEDS_CSUM,
    gsoType: 5,
    headerLength: IP + 40 + 8,
    gsoSize: 1452,
    checksumStart: IP + 40,
    checksumOffset: 6,
  });
  expectDecodeError((frame) => udpSuperFrameVirtioHeader(frame, 1452, out, 0), new Uint8Array(60), 'bad-value');
});

test('fuzz: frames from a neighbour only ever parse, segment or give a DecodeError', () => {
  const valid = fc
    .tuple(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 0xffff }))
    .map(([ipv6, payload, options, udpLength]) => udpSuperFrame(spec({ ipv6, payload, ipOptions: options * 4, udpLength })));
  fuzzDecoder((bytes) => parseUdpSuperFrame(bytes), valid);
  fuzzDecoder((bytes) => segmentUdpSuperFrame(bytes, 536), valid, 500);
  fuzzDecoder((bytes) => segmentUdpSuperFrame(bytes, 64), valid, 300);
});

test.run();
