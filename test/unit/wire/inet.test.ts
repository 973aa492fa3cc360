import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DecodeError } from '../../../src/errors.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  ChecksumError,
  IP_PROTOCOL_ICMP,
  IP_PROTOCOL_UDP,
  decodeArp,
  decodeIcmp,
  decodeIpv4,
  decodeUdp,
  encodeArpFrame,
  encodeIcmp,
  encodeIcmpFrame,
  encodeIpv4Frame,
  encodeIpv4Header,
  encodeUdpFrame,
  IPV4_FRAME_HEADROOM,
  writeIpv4FrameHeaders,
  isMulticastAddress,
  multicastMac,
  transportChecksum,
  type ArpPacket,
  type IcmpMessage,
  type Ipv4Packet,
  type UdpDatagram,
} from '../../../src/wire/inet.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

const ETH = 14;
const MAC_A = Uint8Array.of(0x02, 0, 0, 0, 0, 0xaa);
const MAC_B = Uint8Array.of(0x02, 0, 0, 0, 0, 0xbb);
const BROADCAST = new Uint8Array(6).fill(0xff);
const eth = { destination: MAC_B, source: MAC_A };

const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 });
const ipArb = fc.integer({ min: 0, max: 0xffff_ffff });
const portArb = fc.integer({ min: 0, max: 0xffff });

const arpArb: fc.Arbitrary<ArpPacket> = fc.record(
  {
    operation: fc.constantFrom(ARP_REQUEST, ARP_REPLY),
    senderMac: macArb,
    senderIp: ipArb,
    targetMac: macArb,
    targetIp: ipArb,
  },
  { noNullPrototype: true },
);

const ipv4Arb: fc.Arbitrary<Ipv4Packet> = fc.record(
  {
    tos: fc.integer({ min: 0, max: 255 }),
    identification: fc.integer({ min: 0, max: 0xffff }),
    dontFragment: fc.boolean(),
    moreFragments: fc.boolean(),
    fragmentOffset: fc.integer({ min: 0, max: 1000 }).map((n) => n * 8),
    ttl: fc.integer({ min: 0, max: 255 }),
    protocol: fc.integer({ min: 0, max: 255 }),
    source: ipArb,
    destination: ipArb,
    payload: fc.uint8Array({ maxLength: 300 }),
  },
  { noNullPrototype: true },
);
const optionsArb = fc.integer({ min: 0, max: 10 }).chain((n) => fc.uint8Array({ minLength: n * 4, maxLength: n * 4 }));

const icmpArb: fc.Arbitrary<IcmpMessage> = fc.oneof(
  fc.record(
    {
      type: fc.constantFrom('echo-request' as const, 'echo-reply' as const),
      identifier: fc.integer({ min: 0, max: 0xffff }),
      sequence: fc.integer({ min: 0, max: 0xffff }),
      data: fc.uint8Array({ maxLength: 200 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant('destination-unreachable' as const),
      code: fc.integer({ min: 0, max: 15 }),
      nextHopMtu: fc.integer({ min: 0, max: 0xffff }),
      original: fc.uint8Array({ minLength: 28, maxLength: 100 }),
    },
    { noNullPrototype: true },
  ).map((m) => ({ ...m, nextHopMtu: m.code === 4 ? m.nextHopMtu : 0 })),
);

const udpArb: fc.Arbitrary<UdpDatagram> = fc.record(
  { sourcePort: portArb, destinationPort: portArb, payload: fc.uint8Array({ maxLength: 400 }) },
  { noNullPrototype: true },
);

const header = (source: number, destination: number) => ({
  tos: 0,
  identification: 7,
  dontFragment: false,
  moreFragments: false,
  fragmentOffset: 0,
  ttl: 64,
  source,
  destination,
});

/** The ones'-complement checksum written out longhand, independent of the code under test. */
function referenceChecksum(words: number[]): number {
  let sum = 0;
  for (const w of words) sum += w;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function wordsOf(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 2) out.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  return out;
}

const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

// ---------------------------------------------------------------------------------------------
// ARP

test('ARP packets round-trip through a complete Ethernet frame', () => {
  fc.assert(
    fc.property(arpArb, macArb, (arp, destination) => {
      const frame = encodeArpFrame(destination, arp);
      assert.is(frame.length, ETH + 28);
      assert.equal([...frame.subarray(0, 6)], [...destination]);
      assert.equal([...frame.subarray(6, 12)], [...arp.senderMac]);
      assert.is(u16(frame, 12), 0x0806);
      const decoded = decodeArp(frame.subarray(ETH));
      assert.equal({ ...decoded, senderMac: [...decoded.senderMac], targetMac: [...decoded.targetMac] }, {
        ...arp,
        senderMac: [...arp.senderMac],
        targetMac: [...arp.targetMac],
      });
    }),
  );
});

test('ARP ignores Ethernet padding after its 28 bytes', () => {
  const frame = encodeArpFrame(BROADCAST, { operation: ARP_REQUEST, senderMac: MAC_A, senderIp: 0x0a200001, targetMac: new Uint8Array(6), targetIp: 0x0a200002 });
  const padded = new Uint8Array(60);
  padded.set(frame);
  assert.is(decodeArp(padded.subarray(ETH)).targetIp, 0x0a200002);
});

test('ARP for other hardware or protocols, or with unknown operations, is rejected', () => {
  const arp = (hw: number, proto: number, hl: number, pl: number, op: number) =>
    rawBytes((w) => w.u16(hw).u16(proto).u8(hl).u8(pl).u16(op).bytes(MAC_A).u32(1).bytes(MAC_B).u32(2));
  expectDecodeError(decodeArp, arp(6, 0x0800, 6, 4, 1), 'bad-value');
  expectDecodeError(decodeArp, arp(1, 0x86dd, 6, 16, 1), 'bad-value');
  expectDecodeError(decodeArp, arp(1, 0x0800, 6, 4, 3), 'bad-value');
  expectDecodeError(decodeArp, arp(1, 0x0800, 6, 4, 1).subarray(0, 27), 'short-read');
});

test('fuzzed ARP bytes only ever give a DecodeError', () => {
  fuzzDecoder(decodeArp, arpArb.map((a) => encodeArpFrame(BROADCAST, a).subarray(ETH)));
});

// ---------------------------------------------------------------------------------------------
// IPv4

test('IPv4 packets round-trip, options skipped', () => {
  fc.assert(
    fc.property(ipv4Arb, optionsArb, (packet, options) => {
      const frame = encodeIpv4Frame(eth, packet, options);
      assert.is(u16(frame, 12), 0x0800);
      assert.is((frame[ETH] as number) & 0x0f, 5 + options.length / 4);
      const decoded = decodeIpv4(frame.subarray(ETH));
      assert.equal({ ...decoded, payload: [...decoded.payload] }, { ...packet, payload: [...packet.payload] });
    }),
  );
});

test('the IPv4 header checksum matches a known header', () => {
  // 45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7 (a widely quoted example)
  const frame = encodeIpv4Frame(eth, {
    tos: 0,
    identification: 0,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    ttl: 64,
    protocol: 17,
    source: 0xc0a80001,
    destination: 0xc0a800c7,
    payload: new Uint8Array(0x73 - 20),
  });
  assert.is(u16(frame, ETH + 10), 0xb861);
});

test('an IPv4 header whose checksum does not verify is a ChecksumError', () => {
  fc.assert(
    fc.property(ipv4Arb, fc.integer({ min: 0, max: 19 }), fc.integer({ min: 0, max: 7 }), (packet, at, bit) => {
      const frame = encodeIpv4Frame(eth, packet);
      frame[ETH + at] = (frame[ETH + at] as number) ^ (1 << bit);
      try {
        decodeIpv4(frame.subarray(ETH));
        assert.unreachable('a flipped header bit must not decode');
      } catch (e) {
        assert.instance(e, DecodeError); // version, length, bounds or checksum: never anything else
        if (at >= 4 && at !== 6 && at !== 7) assert.instance(e, ChecksumError);
      }
    }),
  );
});

test('IPv4 ignores Ethernet padding after the total length and bounds it', () => {
  const packet: Ipv4Packet = { ...header(1, 2), protocol: 17, payload: Uint8Array.of(1, 2, 3) };
  const frame = encodeIpv4Frame(eth, packet);
  const padded = new Uint8Array(60);
  padded.set(frame);
  assert.equal([...decodeIpv4(padded.subarray(ETH)).payload], [1, 2, 3]);
  expectDecodeError(decodeIpv4, frame.subarray(ETH, frame.length - 1), 'short-read');
});

test('IPv4 with a wrong version, a short header or an impossible length is rejected', () => {
  /** A 20-byte header with the given first byte and total length, checksum correct. */
  const raw = (versionIhl: number, total: number, flagsOffset = 0, extra = 0) => {
    const b = rawBytes((w) => w.u8(versionIhl).u8(0).u16(total).u16(1).u16(flagsOffset).u8(64).u8(17).u16(0).u32(1).u32(2).bytes(new Uint8Array(extra)));
    const hl = Math.max(20, (versionIhl & 0xf) * 4);
    const sum = referenceChecksum(wordsOf(b.subarray(0, Math.min(hl, b.length))));
    b[10] = sum >> 8;
    b[11] = sum & 0xff;
    return b;
  };
  expectDecodeError(decodeIpv4, raw(0x65, 20), 'bad-value');
  expectDecodeError(decodeIpv4, raw(0x44, 20), 'bad-value');
  expectDecodeError(decodeIpv4, raw(0x45, 19), 'bad-value');
  expectDecodeError(decodeIpv4, raw(0x45, 40), 'short-read');
  expectDecodeError(decodeIpv4, raw(0x4f, 60), 'short-read');
  expectDecodeError(decodeIpv4, raw(0x45, 28, 0x1fff, 8), 'too-large'); // offset 65528 + 8 bytes
  expectDecodeError(decodeIpv4, raw(0x45, 24, 0x1ffd, 4), 'too-large'); // ends at 65516: one byte past 65535 - 20
  assert.is(decodeIpv4(raw(0x45, 23, 0x1ffd, 3)).fragmentOffset, 0x1ffd * 8); // ends exactly at the limit
  expectDecodeError(decodeIpv4, new Uint8Array(0), 'short-read');
});

test('fuzzed IPv4 bytes only ever give a DecodeError', () => {
  fuzzDecoder(decodeIpv4, fc.tuple(ipv4Arb, optionsArb).map(([p, o]) => encodeIpv4Frame(eth, p, o).subarray(ETH)));
});

test('encodeIpv4Header writes the header a frame would carry', () => {
  fc.assert(
    fc.property(ipv4Arb, (packet) => {
      const frame = encodeIpv4Frame(eth, packet);
      assert.equal([...encodeIpv4Header(packet, packet.payload.length)], [...frame.subarray(ETH, ETH + 20)]);
    }),
  );
});

test('encoders refuse values their fields cannot hold', () => {
  const base: Ipv4Packet = { ...header(1, 2), protocol: 1, payload: new Uint8Array(0) };
  assert.throws(() => encodeIpv4Frame(eth, { ...base, ttl: 256 }), RangeError);
  assert.throws(() => encodeIpv4Frame(eth, { ...base, fragmentOffset: 12 }), RangeError);
  assert.throws(() => encodeIpv4Frame(eth, { ...base, payload: new Uint8Array(65516) }), RangeError);
  assert.throws(() => encodeIpv4Frame(eth, base, new Uint8Array(3)), RangeError);
  assert.throws(() => encodeIpv4Frame({ destination: MAC_B, source: new Uint8Array(5) }, base), RangeError);
  assert.throws(() => encodeUdpFrame(eth, header(1, 2), { sourcePort: 70000, destinationPort: 1, payload: new Uint8Array(0) }), RangeError);
});

// ---------------------------------------------------------------------------------------------
// ICMP

test('ICMP echo and destination-unreachable messages round-trip inside IPv4', () => {
  fc.assert(
    fc.property(icmpArb, (message) => {
      const frame = encodeIcmpFrame(eth, header(0x0a000001, 0x0a000002), message);
      const ip = decodeIpv4(frame.subarray(ETH));
      assert.is(ip.protocol, IP_PROTOCOL_ICMP);
      const decoded = decodeIcmp(ip.payload);
      const body = (m: IcmpMessage) => (m.type === 'destination-unreachable' ? { ...m, original: [...m.original] } : { ...m, data: [...m.data] });
      assert.equal(body(decoded), body(message));
    }),
  );
});

test('an ICMP echo request has the bytes ping(8) sends', () => {
  const bytes = encodeIcmp({ type: 'echo-request', identifier: 0x1234, sequence: 1, data: Uint8Array.of(0x61, 0x62) });
  assert.equal([...bytes.subarray(0, 2)], [8, 0]);
  assert.is(u16(bytes, 2), referenceChecksum(wordsOf(Uint8Array.of(8, 0, 0, 0, 0x12, 0x34, 0, 1, 0x61, 0x62))));
});

test('ICMP with a bad checksum, an unknown type or a short quote is rejected', () => {
  const echo = encodeIcmp({ type: 'echo-reply', identifier: 1, sequence: 2, data: Uint8Array.of(9, 9, 9) });
  const corrupt = echo.slice();
  corrupt[9] = (corrupt[9] as number) ^ 1;
  try {
    decodeIcmp(corrupt);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ChecksumError);
    assert.is((e as DecodeError).code, 'bad-value');
  }
  const timestamp = echo.slice();
  timestamp[0] = 13;
  expectDecodeError(decodeIcmp, timestamp, 'bad-value');
  const badCode = echo.slice();
  badCode[1] = 1;
  expectDecodeError(decodeIcmp, badCode, 'bad-value');
  const shortQuote = encodeIcmp({ type: 'destination-unreachable', code: 3, nextHopMtu: 0, original: new Uint8Array(27) });
  expectDecodeError(decodeIcmp, shortQuote, 'short-read');
  expectDecodeError(decodeIcmp, echo.subarray(0, 7), 'short-read');
});

test('fuzzed ICMP bytes only ever give a DecodeError', () => {
  fuzzDecoder(decodeIcmp, icmpArb.map(encodeIcmp));
});

// ---------------------------------------------------------------------------------------------
// UDP

test('UDP datagrams round-trip inside IPv4 with a checksum over the pseudo-header', () => {
  fc.assert(
    fc.property(udpArb, ipArb, ipArb, (udp, source, destination) => {
      const frame = encodeUdpFrame(eth, header(source, destination), udp);
      const ip = decodeIpv4(frame.subarray(ETH));
      assert.is(ip.protocol, IP_PROTOCOL_UDP);
      const segment = ip.payload;
      // Independent check: pseudo-header words + segment words sum to 0xffff.
      const pseudo = [source >>> 16, source & 0xffff, destination >>> 16, destination & 0xffff, 17, segment.length];
      assert.is(referenceChecksum([...pseudo, ...wordsOf(segment)]), 0);
      assert.is.not(u16(segment, 6), 0);
      const decoded = decodeUdp(segment, source, destination);
      assert.equal({ ...decoded, payload: [...decoded.payload] }, { ...udp, payload: [...udp.payload] });
    }),
  );
});

test('UDP checksum 0 means none and is accepted; a wrong pseudo-header or payload is a ChecksumError', () => {
  const frame = encodeUdpFrame(eth, header(0x0a000001, 0x0a000002), { sourcePort: 1000, destinationPort: 53, payload: Uint8Array.of(1, 2, 3, 4, 5) });
  const segment = decodeIpv4(frame.subarray(ETH)).payload.slice();
  assert.is(transportChecksum(segment, 0, segment.length, 0x0a000001, 0x0a000002, 17), 0);
  for (const [source, destination] of [
    [0x0a000001, 0x0a000003],
    [0x0b000001, 0x0a000002],
  ] as const) {
    try {
      decodeUdp(segment, source, destination);
      assert.unreachable('pseudo-header mismatch must not verify');
    } catch (e) {
      assert.instance(e, ChecksumError);
    }
  }
  const noChecksum = segment.slice();
  noChecksum[6] = 0;
  noChecksum[7] = 0;
  noChecksum[10] = 99; // corrupted, but unchecked
  assert.is(decodeUdp(noChecksum, 1, 2).payload[2], 99);
});

test('UDP lengths must match the IP payload exactly', () => {
  const udp = (length: number, extra: number) => rawBytes((w) => w.u16(1).u16(2).u16(length).u16(0).bytes(new Uint8Array(extra)));
  expectDecodeError((b) => decodeUdp(b, 1, 2), udp(7, 0), 'bad-value');
  expectDecodeError((b) => decodeUdp(b, 1, 2), udp(12, 3), 'short-read');
  expectDecodeError((b) => decodeUdp(b, 1, 2), udp(10, 3), 'trailing-bytes');
  expectDecodeError((b) => decodeUdp(b, 1, 2), udp(8, 0).subarray(0, 6), 'short-read');
  assert.is(decodeUdp(udp(11, 3), 1, 2).payload.length, 3);
});

test('fuzzed UDP bytes only ever give a DecodeError', () => {
  const valid = udpArb.map((u) => decodeIpv4(encodeUdpFrame(eth, header(1, 2), u).subarray(ETH)).payload.slice());
  fuzzDecoder((b) => decodeUdp(b, 1, 2), valid);
});

// ---------------------------------------------------------------------------------------------
// Addresses

test('multicast addresses map to 01:00:5e and their low 23 bits', () => {
  assert.equal([...multicastMac(0xef010203)], [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);
  assert.equal([...multicastMac(0xe0ff0001)], [0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01]);
  assert.ok(isMulticastAddress(0xe0000001));
  assert.ok(isMulticastAddress(0xefffffff));
  assert.not.ok(isMulticastAddress(0xdfffffff));
  assert.not.ok(isMulticastAddress(0xf0000000));
});

test('writeIpv4FrameHeaders in front of a payload in place gives the frame encodeIpv4Frame builds', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 0, max: 0xffff }), fc.boolean(), fc.integer({ min: 0, max: 0xffff_ffff }), (payload, identification, dontFragment, source) => {
      const eth = { destination: Uint8Array.of(2, 0, 0, 0, 0, 1), source: Uint8Array.of(2, 0, 0, 0, 0, 2) };
      const header = { tos: 0, identification, dontFragment, moreFragments: false, fragmentOffset: 0, ttl: 64, protocol: 6, source, destination: 0x0a000001 };
      const frame = new Uint8Array(IPV4_FRAME_HEADROOM + payload.byteLength);
      frame.set(payload, IPV4_FRAME_HEADROOM);
      assert.equal([...writeIpv4FrameHeaders(frame, eth, header)], [...encodeIpv4Frame(eth, { ...header, payload })]);
    }),
    { numRuns: 300 },
  );
});

test.run();
