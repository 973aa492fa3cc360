import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fragmentIpv4Frame } from '../../../src/ethernet/ipv4.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  IP_PROTOCOL_UDP,
  decodeArp,
  decodeIcmp,
  decodeIpv4,
  decodeUdp,
  encodeArpFrame,
  encodeIcmpFrame,
  encodeUdpFrame,
} from '../../../src/wire/inet.js';
import { nextMessage, stackOnRawWire, until } from '../../helpers/stack.js';

// The hand-driven end of the wire: MAC 02:00:00:00:00:99, address 10.32.0.9.
const PEER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x99);
const PEER_IP = 0x0a200009;
const STACK_IP = 0x0a200001;
const BROADCAST = new Uint8Array(6).fill(0xff);

const ip = (destination: number, identification = 1) => ({
  tos: 0,
  identification,
  dontFragment: false,
  moreFragments: false,
  fragmentOffset: 0,
  ttl: 64,
  source: PEER_IP,
  destination,
});

test('ARP requests for the stack address are answered, others are not', async () => {
  const { stack, wire, received } = stackOnRawWire();
  const request = (targetIp: number) =>
    encodeArpFrame(BROADCAST, { operation: ARP_REQUEST, senderMac: PEER_MAC, senderIp: PEER_IP, targetMac: new Uint8Array(6), targetIp });
  wire.send(request(0x0a200002));
  wire.send(request(STACK_IP));
  await until(() => stack.stats.framesIn === 2, 'both requests to arrive');
  await until(() => received.length === 1, 'one reply');
  const reply = received[0] as Uint8Array;
  assert.equal([...reply.subarray(0, 6)], [...PEER_MAC]);
  const arp = decodeArp(reply.subarray(14));
  assert.is(arp.operation, ARP_REPLY);
  assert.is(arp.senderIp, STACK_IP);
  assert.is(arp.targetIp, PEER_IP);
  assert.is(stack.mac, [...arp.senderMac].map((b) => b.toString(16).padStart(2, '0')).join(':'));
  await stack.close();
});

test('an echo request is answered to the MAC it came from; a broadcast one is ignored', async () => {
  const { stack, wire, received, nicMac } = stackOnRawWire();
  const data = Uint8Array.of(1, 2, 3, 4);
  wire.send(encodeIcmpFrame({ destination: nicMac, source: PEER_MAC }, ip(STACK_IP), { type: 'echo-request', identifier: 77, sequence: 5, data }));
  wire.send(encodeIcmpFrame({ destination: BROADCAST, source: PEER_MAC }, ip(0x0a2fffff), { type: 'echo-request', identifier: 77, sequence: 6, data }));
  await until(() => stack.stats.framesIn === 2, 'both requests to arrive');
  await until(() => received.length === 1, 'one reply');
  const reply = received[0] as Uint8Array;
  assert.equal([...reply.subarray(0, 6)], [...PEER_MAC]);
  const packet = decodeIpv4(reply.subarray(14));
  assert.is(packet.source, STACK_IP);
  assert.is(packet.destination, PEER_IP);
  assert.is(packet.ttl, 64);
  const icmp = decodeIcmp(packet.payload);
  assert.equal(icmp.type === 'echo-reply' ? { id: icmp.identifier, seq: icmp.sequence, data: [...icmp.data] } : icmp, { id: 77, seq: 5, data: [1, 2, 3, 4] });
  assert.is(stack.stats.drops['broadcast-echo'], 1);
  await stack.close();
});

test('UDP to an unbound port is answered with a port unreachable quoting it', async () => {
  const { stack, wire, received, nicMac } = stackOnRawWire();
  wire.send(encodeUdpFrame({ destination: nicMac, source: PEER_MAC }, ip(STACK_IP, 0x4242), { sourcePort: 5555, destinationPort: 9, payload: Uint8Array.of(1, 2, 3) }));
  await until(() => received.length === 1, 'the ICMP error');
  const packet = decodeIpv4((received[0] as Uint8Array).subarray(14));
  const icmp = decodeIcmp(packet.payload);
  assert.is(icmp.type, 'destination-unreachable');
  if (icmp.type !== 'destination-unreachable') return;
  assert.is(icmp.code, 3);
  const quoted = decodeIpv4Header(icmp.original);
  assert.equal(quoted, { identification: 0x4242, source: PEER_IP, destination: STACK_IP, protocol: IP_PROTOCOL_UDP, totalLength: 31 });
  assert.equal([...icmp.original.subarray(20, 24)], [0x15, 0xb3, 0, 9], 'the UDP ports');
  assert.is(stack.stats.drops['no-socket'], 1);
  await stack.close();
});

/** The fields of a quoted IPv4 header that an ICMP error must preserve. */
function decodeIpv4Header(b: Uint8Array) {
  const u16 = (at: number) => ((b[at] as number) << 8) | (b[at + 1] as number);
  const u32 = (at: number) => u16(at) * 0x10000 + u16(at + 2);
  return { identification: u16(4), source: u32(12), destination: u32(16), protocol: b[9], totalLength: u16(2) };
}

test('corrupt, misaddressed and foreign frames are counted, not thrown', async () => {
  const { stack, wire, received, nicMac } = stackOnRawWire();
  const good = encodeUdpFrame({ destination: nicMac, source: PEER_MAC }, ip(STACK_IP), { sourcePort: 1, destinationPort: 2, payload: Uint8Array.of(7) });
  const badHeader = good.slice();
  badHeader[14 + 8] = 1; // TTL changed, checksum not
  const badUdp = good.slice();
  badUdp[good.length - 1] = 8; // payload changed, UDP checksum not
  const otherMac = good.slice();
  otherMac[5] = (otherMac[5] as number) ^ 1;
  const otherIp = encodeUdpFrame({ destination: nicMac, source: PEER_MAC }, ip(0x0a200003), { sourcePort: 1, destinationPort: 2, payload: new Uint8Array(1) });
  const ipv6 = good.slice();
  ipv6[12] = 0x86;
  ipv6[13] = 0xdd;
  wire.sendBatch([badHeader, badUdp, otherMac, otherIp, ipv6, good.subarray(0, 10), good.subarray(0, 30)]);
  await until(() => stack.stats.framesIn === 7, 'all frames to arrive');
  assert.equal(stack.stats.drops, { 'bad-checksum': 2, 'not-for-us': 2, unsupported: 1, malformed: 2 });
  assert.is(received.length, 0);
  await stack.close();
});

test('fragments that never complete are discarded after the reassembly timeout', async () => {
  const { clock, stack, wire, nicMac } = stackOnRawWire({ reassembly: { timeoutMs: 30_000 } });
  const socket = stack.createUdpSocket();
  await socket.bind(2000);
  const got: number[] = [];
  socket.on('message', (m) => got.push(m.length));
  const whole = encodeUdpFrame({ destination: nicMac, source: PEER_MAC }, ip(STACK_IP, 9), { sourcePort: 1, destinationPort: 2000, payload: new Uint8Array(3000) });
  const fragments = fragmentIpv4Frame(whole, 1514) as Uint8Array[];
  assert.is(fragments.length, 3);
  wire.sendBatch([fragments[0] as Uint8Array, fragments[2] as Uint8Array]);
  await until(() => stack.stats.framesIn === 2, 'two fragments');
  clock.advance(30_000);
  assert.is(stack.stats.drops['reassembly-timeout'], 1);
  wire.send(fragments[1] as Uint8Array);
  await until(() => stack.stats.framesIn === 3, 'the late fragment');
  assert.equal(got, []);
  // A complete set still works afterwards.
  const message = nextMessage(socket);
  wire.sendBatch(fragments);
  assert.is((await message).rinfo.size, 3000);
  await stack.close();
});

test('a checksum-less UDP datagram is delivered', async () => {
  const { stack, wire, nicMac } = stackOnRawWire();
  const socket = stack.createUdpSocket();
  await socket.bind(3000);
  const frame = encodeUdpFrame({ destination: nicMac, source: PEER_MAC }, ip(STACK_IP), { sourcePort: 1, destinationPort: 3000, payload: Uint8Array.of(4, 5) });
  frame[14 + 20 + 6] = 0;
  frame[14 + 20 + 7] = 0;
  assert.is(decodeUdp(decodeIpv4(frame.subarray(14)).payload, PEER_IP, STACK_IP).payload.length, 2);
  const message = nextMessage(socket);
  wire.send(frame);
  assert.equal([...(await message).msg], [4, 5]);
  await stack.close();
});

test.run();
