import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { fragmentationNeeded, fragmentIpv4Frame, hasDontFragment, internetChecksum } from '../../../src/ethernet/ipv4.js';

const IP = 14;
const DF = 0x4000;
const MF = 0x2000;
const DST_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0xdd);
const SRC_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x55);
const SRC_IP = Uint8Array.of(10, 32, 0, 1);
const DST_IP = Uint8Array.of(10, 32, 0, 2);

const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

interface Ipv4 {
  id: number;
  flags: number; // DF/MF bits
  offset: number; // in 8-byte units
  protocol: number;
  ttl: number;
  tos: number;
  options: Uint8Array; // multiple of 4 bytes, at most 40
  payload: Uint8Array;
  src?: Uint8Array;
  dst?: Uint8Array;
}

/** An Ethernet frame carrying the IPv4 packet, header checksum filled in. */
function ipv4Frame(p: Ipv4, etherType = 0x0800): Uint8Array {
  const ihl = 20 + p.options.length;
  const frame = new Uint8Array(IP + ihl + p.payload.length);
  frame.set(DST_MAC, 0);
  frame.set(SRC_MAC, 6);
  frame[12] = etherType >> 8;
  frame[13] = etherType & 0xff;
  frame[IP] = 0x40 | (ihl / 4);
  frame[IP + 1] = p.tos;
  const total = ihl + p.payload.length;
  frame[IP + 2] = total >> 8;
  frame[IP + 3] = total & 0xff;
  frame[IP + 4] = p.id >> 8;
  frame[IP + 5] = p.id & 0xff;
  const fo = p.flags | p.offset;
  frame[IP + 6] = fo >> 8;
  frame[IP + 7] = fo & 0xff;
  frame[IP + 8] = p.ttl;
  frame[IP + 9] = p.protocol;
  frame.set(p.src ?? SRC_IP, IP + 12);
  frame.set(p.dst ?? DST_IP, IP + 16);
  frame.set(p.options, IP + 20);
  const sum = internetChecksum(frame, IP, IP + ihl);
  frame[IP + 10] = sum >> 8;
  frame[IP + 11] = sum & 0xff;
  frame.set(p.payload, IP + ihl);
  return frame;
}

function packet(overrides: Partial<Ipv4> = {}): Ipv4 {
  return { id: 0x1234, flags: 0, offset: 0, protocol: 17, ttl: 64, tos: 0, options: new Uint8Array(0), payload: new Uint8Array(1000).map((_, i) => i & 0xff), ...overrides };
}

/** A TCP frame with DF (the common case for path-MTU discovery). */
function tcpDf(payloadBytes = 1460): Uint8Array {
  return ipv4Frame(packet({ flags: DF, protocol: 6, payload: new Uint8Array(payloadBytes).map((_, i) => (i * 7) & 0xff) }));
}

/** Checks the fragments and glues their payloads back together by offset. */
function reassemble(original: Uint8Array, pieces: Uint8Array[], maxFrame: number, expectLastMf: boolean): Uint8Array {
  const ihl = ((original[IP] as number) & 0x0f) * 4;
  const baseOffset = (u16(original, IP + 6) & 0x1fff) * 8;
  let total = 0;
  const sorted = pieces
    .map((piece, index) => {
      assert.ok(piece.byteLength <= maxFrame, `fragment ${index} is ${piece.byteLength} > ${maxFrame}`);
      assert.is(internetChecksum(piece, IP, IP + ihl), 0, `header checksum of fragment ${index}`);
      assert.equal(piece.subarray(0, IP), original.subarray(0, IP), 'Ethernet header copied');
      assert.is(piece[IP], original[IP], 'version and IHL');
      assert.is(piece[IP + 1], original[IP + 1], 'TOS');
      assert.is(u16(piece, IP + 2), piece.byteLength - IP, 'total length');
      assert.is(u16(piece, IP + 4), u16(original, IP + 4), 'identification');
      assert.is(piece[IP + 8], original[IP + 8], 'TTL');
      assert.is(piece[IP + 9], original[IP + 9], 'protocol');
      assert.equal(piece.subarray(IP + 12, IP + 20), original.subarray(IP + 12, IP + 20), 'addresses');
      assert.equal(piece.subarray(IP + 20, IP + ihl), original.subarray(IP + 20, IP + ihl), 'options');
      const fo = u16(piece, IP + 6);
      assert.is(fo & DF, 0, 'no DF');
      assert.is(fo & 0x8000, 0, 'reserved bit clear');
      const data = piece.subarray(IP + ihl);
      if (index < pieces.length - 1) assert.is(data.length % 8, 0, 'a non-final piece carries a multiple of 8 bytes');
      total += data.length;
      return { offset: (fo & 0x1fff) * 8, mf: (fo & MF) !== 0, data };
    })
    .sort((a, b) => a.offset - b.offset);
  const out = new Uint8Array(total);
  let expected = baseOffset;
  sorted.forEach((p, i) => {
    assert.is(p.offset, expected, `fragment ${i} starts where the previous ended`);
    assert.is(p.offset % 8, 0);
    const last = i === sorted.length - 1;
    assert.is(p.mf, last ? expectLastMf : true, `MF of fragment ${i}/${sorted.length}`);
    out.set(p.data, p.offset - baseOffset);
    expected += p.data.length;
  });
  return out;
}

test('internetChecksum of the RFC 1071 example', () => {
  // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums (ones' complement) to ddf2; the checksum is its complement.
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  assert.is(internetChecksum(b, 0, b.length), 0x220d);
});

test('internetChecksum of a real IPv4 header: b861, and 0 over the filled-in header', () => {
  const header = Uint8Array.from(Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex'));
  assert.is(internetChecksum(header, 0, 20), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  assert.is(internetChecksum(header, 0, 20), 0);
});

test('internetChecksum pads an odd trailing byte with zero and honours start/end', () => {
  assert.is(internetChecksum(Uint8Array.of(0x01), 0, 1), 0xfeff);
  assert.is(internetChecksum(Uint8Array.of(0xab, 0x01, 0x02, 0x03, 0xcd), 1, 4), ~(0x0102 + 0x0300) & 0xffff);
  assert.is(internetChecksum(new Uint8Array(0), 0, 0), 0xffff);
  assert.is(internetChecksum(Uint8Array.of(0xff, 0xff), 0, 2), 0);
});

test('internetChecksum: appending the checksum makes the total verify to 0 (even lengths, with carries)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }).map((b) => (b.length % 2 ? b.subarray(1) : b)), (data) => {
      const sum = internetChecksum(data, 0, data.length);
      const withSum = new Uint8Array(data.length + 2);
      withSum.set(data);
      withSum[data.length] = sum >> 8;
      withSum[data.length + 1] = sum & 0xff;
      assert.is(internetChecksum(withSum, 0, withSum.length), 0);
    }),
  );
  const ones = new Uint8Array(9000).fill(0xff);
  assert.is(internetChecksum(ones, 0, ones.length), 0);
});

test('fragmentIpv4Frame: pieces fit, carry valid headers and reassemble to the original', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9000 }),
      fc.integer({ min: 68, max: 3000 }),
      fc.integer({ min: 0, max: 10 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.constantFrom(1, 6, 17, 47, 50),
      fc.integer({ min: 0, max: 255 }),
      (size, maxFrame, optionWords, id, protocol, seed) => {
        const payload = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
        const options = new Uint8Array(optionWords * 4).fill(1); // NOPs
        const original = ipv4Frame(packet({ id, protocol, payload, options, ttl: seed, tos: 255 - seed }));
        const copy = original.slice();
        const pieces = fragmentIpv4Frame(original, maxFrame);
        assert.equal(original, copy, 'the input frame is not modified');
        const room = maxFrame - IP - 20 - options.length;
        if (room < 8) {
          assert.is(pieces, undefined, 'no room for 8 bytes of data');
          return;
        }
        assert.ok(pieces);
        assert.is(pieces.length, Math.ceil(size / (Math.floor(room / 8) * 8)));
        assert.equal(reassemble(original, pieces, maxFrame, false), payload);
      },
    ),
    { numRuns: 200 },
  );
});

test('fragmentIpv4Frame at the 68-byte minimum: 32-byte pieces', () => {
  const original = ipv4Frame(packet({ payload: new Uint8Array(100).fill(9) }));
  const pieces = fragmentIpv4Frame(original, 68);
  assert.ok(pieces);
  assert.equal(pieces.map((p) => p.byteLength - IP - 20), [32, 32, 32, 4]);
  assert.equal(pieces.map((p) => u16(p, IP + 6)), [MF | 0, MF | 4, MF | 8, 12]);
});

test('fragmentIpv4Frame of a non-final fragment keeps MF on the last piece and continues its offset', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4000 }), fc.integer({ min: 68, max: 1500 }), fc.integer({ min: 0, max: 4000 }), fc.boolean(), (size, maxFrame, offset, mf) => {
      const payload = new Uint8Array(size).map((_, i) => (i * 13) & 0xff);
      const original = ipv4Frame(packet({ payload, flags: mf ? MF : 0, offset }));
      const pieces = fragmentIpv4Frame(original, maxFrame);
      assert.ok(pieces);
      assert.equal(reassemble(original, pieces, maxFrame, mf), payload);
      assert.is(u16(pieces[0] as Uint8Array, IP + 6) & 0x1fff, offset);
    }),
    { numRuns: 100 },
  );
});

test('fragmentIpv4Frame leaves Ethernet padding behind the IP total length out', () => {
  const payload = new Uint8Array(300).fill(7);
  const ip = ipv4Frame(packet({ payload }));
  const padded = new Uint8Array(ip.length + 30).fill(0xee);
  padded.set(ip);
  const pieces = fragmentIpv4Frame(padded, 200);
  assert.ok(pieces);
  assert.equal(reassemble(ip, pieces, 200, false), payload);
});

test('fragmentIpv4Frame refuses DF, non-IPv4 and malformed frames', () => {
  assert.is(fragmentIpv4Frame(ipv4Frame(packet({ flags: DF })), 500), undefined, 'DF');
  assert.ok(fragmentIpv4Frame(ipv4Frame(packet()), 500), 'the same frame without DF is fragmented');
  assert.is(fragmentIpv4Frame(ipv4Frame(packet(), 0x0806), 500), undefined, 'ARP');
  assert.is(fragmentIpv4Frame(ipv4Frame(packet(), 0x86dd), 500), undefined, 'IPv6 EtherType');
  const v6 = ipv4Frame(packet());
  v6[IP] = 0x65;
  assert.is(fragmentIpv4Frame(v6, 500), undefined, 'version 6 in an IPv4 EtherType');
  const shortIhl = ipv4Frame(packet());
  shortIhl[IP] = 0x44;
  assert.is(fragmentIpv4Frame(shortIhl, 500), undefined, 'IHL below 5');
  assert.is(fragmentIpv4Frame(ipv4Frame(packet()).subarray(0, IP + 19), 20), undefined, 'truncated header');
  assert.is(fragmentIpv4Frame(ipv4Frame(packet({ payload: new Uint8Array(0) })), 500), undefined, 'no data');
});

test('hasDontFragment reads the DF bit of IPv4 frames only', () => {
  assert.ok(hasDontFragment(ipv4Frame(packet({ flags: DF }))));
  assert.not.ok(hasDontFragment(ipv4Frame(packet({ flags: MF }))));
  assert.not.ok(hasDontFragment(ipv4Frame(packet({ flags: DF }), 0x0806)));
});

test('fragmentationNeeded answers a DF TCP frame with ICMP 3/4 from its destination', () => {
  const original = tcpDf();
  const reply = fragmentationNeeded(original, 1386);
  assert.ok(reply);
  assert.equal(reply.subarray(0, 6), SRC_MAC, 'to the sender');
  assert.equal(reply.subarray(6, 12), DST_MAC, 'from the destination');
  assert.is(u16(reply, 12), 0x0800);
  assert.is(reply[IP], 0x45);
  assert.is(u16(reply, IP + 2), reply.byteLength - IP, 'total length');
  assert.is(u16(reply, IP + 6) & 0x1fff, 0, 'not a fragment');
  assert.is(u16(reply, IP + 6) & MF, 0);
  assert.ok((reply[IP + 8] as number) > 0, 'TTL');
  assert.is(reply[IP + 9], 1, 'protocol ICMP');
  assert.equal(reply.subarray(IP + 12, IP + 16), DST_IP, 'source: the original destination');
  assert.equal(reply.subarray(IP + 16, IP + 20), SRC_IP, 'destination: the original source');
  assert.is(internetChecksum(reply, IP, IP + 20), 0, 'IP header checksum');
  const icmp = IP + 20;
  assert.is(reply[icmp], 3, 'type');
  assert.is(reply[icmp + 1], 4, 'code');
  assert.is(u16(reply, icmp + 4), 0, 'unused');
  assert.is(u16(reply, icmp + 6), 1386, 'next-hop MTU');
  assert.is(internetChecksum(reply, icmp, reply.byteLength), 0, 'ICMP checksum');
  assert.equal(reply.subarray(icmp + 8), original.subarray(IP, IP + 28), 'quotes the IP header and 8 bytes');
  assert.is(reply.byteLength, IP + 20 + 8 + 28);
});

test('fragmentationNeeded quotes IP options and what little data there is', () => {
  const withOptions = ipv4Frame(packet({ flags: DF, protocol: 6, options: new Uint8Array(12).fill(1), payload: new Uint8Array(100).fill(3) }));
  const reply = fragmentationNeeded(withOptions, 1000);
  assert.ok(reply);
  assert.equal(reply.subarray(IP + 28), withOptions.subarray(IP, IP + 32 + 8));
  assert.is(internetChecksum(reply, IP + 20, reply.byteLength), 0);
  const tiny = ipv4Frame(packet({ flags: DF, protocol: 17, payload: Uint8Array.of(1, 2, 3) }));
  const short = fragmentationNeeded(tiny, 1000);
  assert.ok(short);
  assert.equal(short.subarray(IP + 28), tiny.subarray(IP));
  assert.is(internetChecksum(short, IP + 20, short.byteLength), 0, 'ICMP checksum over an odd length');
  assert.is(internetChecksum(short, IP, IP + 20), 0);
});

test('fragmentationNeeded is undefined for DF clear, non-first fragments, ICMP errors and non-IPv4', () => {
  assert.is(fragmentationNeeded(ipv4Frame(packet({ protocol: 6 })), 1000), undefined, 'DF clear');
  assert.is(fragmentationNeeded(ipv4Frame(packet({ protocol: 6, flags: DF, offset: 185 })), 1000), undefined, 'non-first fragment');
  const icmp = (type: number) => ipv4Frame(packet({ protocol: 1, flags: DF, payload: Uint8Array.of(type, 0, 0, 0, 0, 0, 0, 0, ...new Uint8Array(100)) }));
  assert.is(fragmentationNeeded(icmp(3), 1000), undefined, 'destination unreachable');
  assert.is(fragmentationNeeded(icmp(11), 1000), undefined, 'time exceeded');
  assert.is(fragmentationNeeded(icmp(5), 1000), undefined, 'redirect');
  assert.ok(fragmentationNeeded(icmp(8), 1000), 'echo request');
  assert.ok(fragmentationNeeded(icmp(0), 1000), 'echo reply');
  assert.is(fragmentationNeeded(ipv4Frame(packet({ flags: DF }), 0x86dd), 1000), undefined, 'IPv6 EtherType');
});

test('fragmentationNeeded answers any DF first fragment with well-formed ICMP', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 0, max: 10 }),
      fc.integer({ min: 68, max: 0xffff }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      (size, optionWords, mtu, src, dst) => {
        const original = ipv4Frame(packet({ flags: DF, protocol: 6, payload: new Uint8Array(size).fill(0xab), options: new Uint8Array(optionWords * 4), src, dst }));
        const reply = fragmentationNeeded(original, mtu);
        assert.ok(reply);
        assert.is(internetChecksum(reply, IP, IP + 20), 0);
        assert.is(internetChecksum(reply, IP + 20, reply.byteLength), 0);
        assert.is(u16(reply, IP + 26), mtu);
        assert.equal(reply.subarray(IP + 12, IP + 16), dst);
        assert.equal(reply.subarray(IP + 16, IP + 20), src);
        const quoted = Math.min(20 + optionWords * 4 + 8, original.byteLength - IP);
        assert.equal(reply.subarray(IP + 28), original.subarray(IP, IP + quoted));
      },
    ),
  );
});

test.run();
