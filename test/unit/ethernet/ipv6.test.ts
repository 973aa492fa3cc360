import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { packetTooBig } from '../../../src/ethernet/ipv6.js';
import { internetChecksum } from '../../../src/wire/checksum.js';

const IP = 14;
const SRC_MAC = [2, 0, 0, 0, 0, 1];
const DST_MAC = [2, 0, 0, 0, 0, 2];
const SRC_IP = [0xfd, 0x77, ...new Array<number>(13).fill(0), 1];
const DST_IP = [0xfd, 0x77, ...new Array<number>(13).fill(0), 2];
const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

function ipv6Frame(o: { nextHeader?: number; payload?: Uint8Array; src?: readonly number[]; dst?: readonly number[]; etherType?: number } = {}): Uint8Array {
  const payload = o.payload ?? new Uint8Array(1400).fill(0x5a);
  const f = new Uint8Array(IP + 40 + payload.length);
  f.set([...DST_MAC, ...SRC_MAC], 0);
  const type = o.etherType ?? 0x86dd;
  f.set([type >> 8, type & 0xff], 12);
  f[IP] = 0x60;
  f.set([payload.length >> 8, payload.length & 0xff, o.nextHeader ?? 17, 64], IP + 4);
  f.set(o.src ?? SRC_IP, IP + 8);
  f.set(o.dst ?? DST_IP, IP + 24);
  f.set(payload, IP + 40);
  return f;
}

/** True when the ICMPv6 checksum of an answer verifies (pseudo-header included). */
function icmpv6ChecksumVerifies(reply: Uint8Array): boolean {
  const length = reply.byteLength - IP - 40;
  const pseudo = new Uint8Array(40 + length);
  pseudo.set(reply.subarray(IP + 8, IP + 40), 0);
  pseudo.set([length >> 8, length & 0xff], 34);
  pseudo[39] = 58;
  pseudo.set(reply.subarray(IP + 40), 40);
  return internetChecksum(pseudo, 0, pseudo.length) === 0;
}

test('packetTooBig answers an oversized IPv6 packet with ICMPv6 type 2 from its destination', () => {
  const original = ipv6Frame();
  const reply = packetTooBig(original, 1376);
  assert.ok(reply);
  assert.equal([...reply.subarray(0, 6)], SRC_MAC, 'to the sender');
  assert.equal([...reply.subarray(6, 12)], DST_MAC, 'from the destination');
  assert.is(u16(reply, 12), 0x86dd);
  assert.is(reply[IP]! >> 4, 6);
  assert.is(u16(reply, IP + 4), reply.byteLength - IP - 40, 'payload length');
  assert.is(reply[IP + 6], 58, 'next header ICMPv6');
  assert.ok(reply[IP + 7]! > 0, 'hop limit');
  assert.equal([...reply.subarray(IP + 8, IP + 24)], DST_IP, 'source: the original destination');
  assert.equal([...reply.subarray(IP + 24, IP + 40)], SRC_IP, 'destination: the original source');
  const icmp = IP + 40;
  assert.equal([...reply.subarray(icmp, icmp + 2)], [2, 0], 'type 2 code 0');
  assert.is(u16(reply, icmp + 4) * 0x10000 + u16(reply, icmp + 6), 1376, 'MTU');
  assert.ok(icmpv6ChecksumVerifies(reply), 'ICMPv6 checksum');
  assert.is(reply.byteLength - IP, 1280, 'never larger than the IPv6 minimum MTU');
  assert.equal(reply.subarray(icmp + 8), original.subarray(IP, IP + 1232), 'quotes as much of the packet as fits');
  const small = ipv6Frame({ payload: Uint8Array.of(1, 2, 3) });
  const short = packetTooBig(small, 1280);
  assert.ok(short);
  assert.equal(short.subarray(icmp + 8), small.subarray(IP), 'quotes a short packet whole');
  assert.ok(icmpv6ChecksumVerifies(short), 'checksum over an odd length');
});

test('packetTooBig is undefined for ICMPv6 errors, multicast or unspecified addresses and non-IPv6', () => {
  const icmpv6 = (type: number): Uint8Array => ipv6Frame({ nextHeader: 58, payload: Uint8Array.of(type, 0, 0, 0, ...new Uint8Array(1300)) });
  for (const type of [1, 2, 3, 4]) assert.is(packetTooBig(icmpv6(type), 1280), undefined, `ICMPv6 error ${type}`);
  assert.ok(packetTooBig(icmpv6(128), 1280), 'echo request');
  assert.ok(packetTooBig(icmpv6(129), 1280), 'echo reply');
  assert.is(packetTooBig(ipv6Frame({ dst: [0xff, 2, ...new Array<number>(13).fill(0), 1] }), 1280), undefined, 'multicast destination');
  assert.is(packetTooBig(ipv6Frame({ src: new Array<number>(16).fill(0) }), 1280), undefined, 'unspecified source');
  assert.is(packetTooBig(ipv6Frame({ etherType: 0x0800 }), 1280), undefined, 'IPv4 EtherType');
  assert.is(packetTooBig(ipv6Frame().subarray(0, IP + 39), 1280), undefined, 'cut short');
});

test('packetTooBig answers any unicast IPv6 packet with well-formed ICMPv6 (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 1280, max: 0xffff }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => [0xfd, ...a.subarray(1)]),
      (payload, nextHeader, mtu, src) => {
        const original = ipv6Frame({ payload, nextHeader: nextHeader === 58 ? 17 : nextHeader, src });
        const reply = packetTooBig(original, mtu);
        assert.ok(reply);
        assert.ok(icmpv6ChecksumVerifies(reply));
        assert.ok(reply.byteLength - IP <= 1280);
        assert.equal([...reply.subarray(IP + 24, IP + 40)], src);
      },
    ),
    { numRuns: 200 },
  );
});

test.run();
