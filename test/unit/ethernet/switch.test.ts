import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FLOOD, Switch, type OverlayTransport } from '../../../src/ethernet/switch.js';
import type { SendResult } from '../../../src/ethernet/sleeve.js';
import { macBytes } from '../../../src/ethernet/frame.js';
import { internetChecksum } from '../../../src/ethernet/ipv4.js';
import { MemoryNic } from '../../../src/nic/memory-nic.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import type { FrameBatchHandler, Nic, NicStats } from '../../../src/nic/nic.js';
import { superFrame, udpSuperFrame } from '../../helpers/super-frame.js';

/** Hands one frame to the switch as the sleeve would: one datagram, then the end-of-datagram flush. */
function fromOverlay(sw: Switch, source: number, destination: number, frame: Uint8Array, from: number, segmentSize = 0): void {
  sw.fromOverlay(source, destination, frame, from, segmentSize);
  sw.flushLocal();
}

const SELF = 0x0a;
const P = 0x0b;
const Q = 0x0c;
const R = 0x0d;

const MAC_A = 0x02_00_00_00_00_0a;
const MAC_B = 0x02_00_00_00_00_0b;
const MAC_C = 0x02_00_00_00_00_0c;
const MAC_REMOTE = 0x02_00_00_00_01_01;
const BROADCAST = 0xffff_ffff_ffff;
const MULTICAST = 0x01_00_5e_00_00_fb;
const STP = 0x01_80_c2_00_00_00;

interface Sent {
  hop: number;
  source: number;
  destination: number;
  frame: Uint8Array;
}

/** Records every send; `script` decides the result (default: accepted). */
class FakeTransport implements OverlayTransport {
  readonly sent: Sent[] = [];
  readonly refused: Sent[] = [];
  /** Super-frames handed over whole, with their segment size. */
  readonly superSent: (Sent & { segmentSize: number })[] = [];
  flushes = 0;
  script: (hop: number, frame: Uint8Array) => SendResult = () => ({ ok: true });
  /** Whether super-frames are taken whole (default: refused, so the switch cuts them). */
  takesSuper = false;

  sendSuper(hop: number, source: number, destination: number, frame: Uint8Array, segmentSize: number): SendResult {
    if (!this.takesSuper) return { ok: false, reason: 'too-big', maxFrame: 1500 };
    this.superSent.push({ hop, source, destination, frame: frame.slice(), segmentSize });
    return { ok: true };
  }

  send(hop: number, source: number, destination: number, frame: Uint8Array): SendResult {
    const result = this.script(hop, frame);
    (result.ok ? this.sent : this.refused).push({ hop, source, destination, frame: frame.slice() });
    return result;
  }

  flush(): void {
    this.flushes += 1;
  }
}

/** An endpoint: the far end of a MemoryNic pair whose near end is a switch port. */
interface Endpoint {
  port: number;
  nic: MemoryNic;
  received: Uint8Array[];
  send(frame: Uint8Array): void;
}

function setup(portCount = 3, macMaxAgeMs?: number) {
  const clock = new FakeClock(1000);
  const transport = new FakeTransport();
  const next = new Map<number, number>();
  const trees = new Map<number, number[]>();
  const sw = new Switch({
    self: SELF,
    clock,
    transport,
    routes: () => ({ unicast: (d) => next.get(d), broadcast: (s) => trees.get(s) ?? [] }),
    ...(macMaxAgeMs === undefined ? {} : { macMaxAgeMs }),
  });
  const endpoints: Endpoint[] = [];
  for (let i = 0; i < portCount; i++) {
    const [near, far] = MemoryNic.pair({ name: `port${i}` });
    const port = sw.addPort(near);
    const received: Uint8Array[] = [];
    far.onFrames((frames) => {
      for (const f of frames) received.push(f.slice());
    });
    endpoints.push({ port, nic: far, received, send: (frame) => assert.ok(far.send(frame), 'endpoint send') });
  }
  return { clock, transport, next, trees, sw, endpoints };
}

/** Lets MemoryNic deliveries (one turn each way) happen. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function frame(dst: number, src: number, options: { etherType?: number; length?: number; tag?: number } = {}): Uint8Array {
  const f = new Uint8Array(options.length ?? 60);
  f.set(macBytes(dst), 0);
  f.set(macBytes(src), 6);
  const type = options.etherType ?? 0x88b5; // local experimental EtherType
  f[12] = type >> 8;
  f[13] = type & 0xff;
  if (f.length > 14) f[14] = options.tag ?? 0;
  return f;
}

/** An Ethernet frame with an IPv4 packet of `total` bytes (header 20). */
function ipv4(dst: number, src: number, total: number, df: boolean): Uint8Array {
  const f = frame(dst, src, { etherType: 0x0800, length: 14 + total });
  f[14] = 0x45;
  f[16] = total >> 8;
  f[17] = total & 0xff;
  f[18] = 0x43;
  f[19] = 0x21;
  f[20] = df ? 0x40 : 0;
  f[22] = 64;
  f[23] = 6;
  f.set([10, 32, 0, 1, 10, 32, 0, 2], 26);
  const sum = internetChecksum(f, 14, 34);
  f[24] = sum >> 8;
  f[25] = sum & 0xff;
  for (let i = 34; i < f.length; i++) f[i] = (i * 7) & 0xff;
  return f;
}

const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

test('unknown unicast floods to the other local ports and along our broadcast tree with destination FLOOD', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P, Q]);
  trees.set(P, [R]); // another source's tree must not be used
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  const f = frame(MAC_B, MAC_A, { tag: 1 });
  a.send(f);
  await settle();
  assert.equal(a.received, [], 'not back to the ingress port');
  assert.equal(b.received, [f]);
  assert.equal(c.received, [f]);
  assert.equal(transport.sent, [
    { hop: P, source: SELF, destination: FLOOD, frame: f },
    { hop: Q, source: SELF, destination: FLOOD, frame: f },
  ]);
  assert.is(sw.stats.captured, 1);
  assert.is(sw.stats.delivered, 2);
  assert.is(sw.stats.forwarded, 2);
  assert.equal(sw.macTable().map((e) => [e.mac, e.port]), [[MAC_A, a.port]]);
});

test('after learning, local unicast goes to exactly one port and not to the overlay', async () => {
  const { transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  a.send(frame(BROADCAST, MAC_A)); // a is learned
  b.send(frame(BROADCAST, MAC_B)); // b is learned
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.sent.length = 0;
  const toB = frame(MAC_B, MAC_A, { tag: 2 });
  const toA = frame(MAC_A, MAC_B, { tag: 3 });
  a.send(toB);
  b.send(toA);
  await settle();
  assert.equal(a.received, [toA]);
  assert.equal(b.received, [toB]);
  assert.equal(c.received, []);
  assert.equal(transport.sent, []);
});

test('a frame for a MAC on the ingress port is not sent back (hairpin)', async () => {
  const { sw, transport, endpoints } = setup();
  const [a, b] = endpoints as [Endpoint, Endpoint];
  a.send(frame(BROADCAST, MAC_A));
  a.send(frame(BROADCAST, MAC_C)); // two hosts behind port a
  await settle();
  b.received.length = 0;
  a.send(frame(MAC_C, MAC_A));
  await settle();
  assert.equal(a.received, []);
  assert.equal(b.received, []);
  assert.equal(transport.sent, []);
  assert.is(sw.stats.captured, 3);
});

test('broadcast and multicast always flood, even from a known MAC to a learned MAC', async () => {
  const { transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  b.send(frame(BROADCAST, MAC_B));
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.sent.length = 0;
  const bc = frame(BROADCAST, MAC_A, { tag: 4 });
  const mc = frame(MULTICAST, MAC_A, { tag: 5 });
  a.send(bc);
  a.send(mc);
  await settle();
  assert.equal(a.received, []);
  assert.equal(b.received, [bc, mc]);
  assert.equal(c.received, [bc, mc]);
  assert.equal(transport.sent.map((s) => [s.hop, s.source, s.destination]), [[P, SELF, FLOOD], [P, SELF, FLOOD]]);
  assert.equal(transport.sent.map((s) => s.frame), [bc, mc]);
});

test('transport.flush is called once per batch read from a local port', async () => {
  const { transport, endpoints } = setup();
  const [a] = endpoints as [Endpoint];
  a.send(frame(BROADCAST, MAC_A));
  a.send(frame(BROADCAST, MAC_A));
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  assert.is(transport.flushes, 1);
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  assert.is(transport.flushes, 2);
});

test('a frame to a MAC learned behind a remote peer goes to unicast(peer) with that peer as destination', async () => {
  const { sw, transport, next, trees, endpoints } = setup();
  next.set(P, Q); // P is reached through Q
  trees.set(SELF, [Q]);
  const [a, b] = endpoints as [Endpoint, Endpoint];
  fromOverlay(sw, P, FLOOD, frame(BROADCAST, MAC_REMOTE), Q);
  assert.equal(sw.macTable().map((e) => [e.mac, e.port]), [[MAC_REMOTE, P]]);
  await settle();
  for (const e of endpoints) e.received.length = 0;
  const f = frame(MAC_REMOTE, MAC_A, { tag: 6 });
  a.send(f);
  await settle();
  assert.equal(transport.sent, [{ hop: Q, source: SELF, destination: P, frame: f }]);
  assert.equal(b.received, [], 'no local flood');
  assert.is(sw.stats.forwarded, 1);
});

test('a frame to a remote MAC whose peer has no route is dropped as no-route', async () => {
  const { sw, transport, endpoints } = setup();
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P);
  const [a] = endpoints as [Endpoint];
  a.send(frame(MAC_REMOTE, MAC_A));
  await settle();
  assert.equal(transport.sent, []);
  assert.is(sw.stats.drops['no-route'], 1);
});

test('frames from the overlay: source MAC learned behind the source peer, unicast delivered to its port only', async () => {
  const { sw, transport, endpoints } = setup();
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  b.send(frame(BROADCAST, MAC_B));
  await settle();
  for (const e of endpoints) e.received.length = 0;
  const f = frame(MAC_B, MAC_REMOTE, { tag: 7 });
  fromOverlay(sw, P, SELF, f, Q);
  await settle();
  assert.equal(b.received, [f]);
  assert.equal(a.received, []);
  assert.equal(c.received, []);
  assert.equal(transport.sent, []);
  const entry = sw.macTable().find((e) => e.mac === MAC_REMOTE);
  assert.is(entry?.port, P, 'learned behind the source, not the neighbour it came from');
});

test('frames from the overlay for an unknown MAC flood to every local port', async () => {
  const { sw, endpoints } = setup();
  const f = frame(MAC_C, MAC_REMOTE);
  fromOverlay(sw, P, SELF, f, P);
  await settle();
  for (const e of endpoints) assert.equal(e.received, [f]);
});

test('group frames from the overlay flood to every local port', async () => {
  const { sw, endpoints } = setup();
  const [a] = endpoints as [Endpoint];
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  const bc = frame(BROADCAST, MAC_REMOTE, { tag: 8 });
  const mc = frame(MULTICAST, MAC_REMOTE, { tag: 9 });
  fromOverlay(sw, P, FLOOD, bc, P);
  fromOverlay(sw, P, FLOOD, mc, P);
  await settle();
  assert.equal(a.received, [bc, mc]);
  for (const e of endpoints.slice(1)) assert.equal(e.received.slice(-2), [bc, mc]);
});

test('an overlay frame for a MAC we place behind another peer: sent to us, it floods locally; flooded, it is not delivered', async () => {
  const { sw, endpoints } = setup(2);
  fromOverlay(sw, Q, FLOOD, frame(BROADCAST, MAC_C), Q); // MAC_C lives behind Q
  await settle();
  for (const e of endpoints) e.received.length = 0;
  const flooded = frame(MAC_C, MAC_REMOTE, { tag: 10 });
  fromOverlay(sw, P, FLOOD, flooded, P);
  await settle();
  for (const e of endpoints) assert.equal(e.received, [], 'Q delivers it');
  const addressed = frame(MAC_C, MAC_REMOTE, { tag: 11 });
  fromOverlay(sw, P, SELF, addressed, P); // P's table says MAC_C is here: ours may be stale
  await settle();
  for (const e of endpoints) assert.equal(e.received, [addressed]);
});

test('group frames flood in both directions even when a station has used the group MAC as a source', async () => {
  const { sw, endpoints } = setup(3);
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  a.send(frame(BROADCAST, MULTICAST)); // a bogus source MAC gets learned on port a
  await settle();
  for (const e of endpoints) e.received.length = 0;
  const overlayFrame = frame(MULTICAST, MAC_REMOTE, { tag: 12 });
  fromOverlay(sw, P, FLOOD, overlayFrame, P);
  const fromLocal = frame(MULTICAST, MAC_B, { tag: 13 });
  b.send(fromLocal);
  await settle();
  assert.equal(a.received, [overlayFrame, fromLocal]);
  assert.equal(b.received, [overlayFrame]);
  assert.equal(c.received, [overlayFrame, fromLocal]);
});

test('FLOOD frames are relayed along the source peer\'s tree, not back to the neighbour they came from', async () => {
  const { sw, transport, trees } = setup(1);
  trees.set(P, [Q, R]);
  trees.set(SELF, [P]); // our own tree must not be used for someone else's flood
  const f = frame(BROADCAST, MAC_REMOTE);
  fromOverlay(sw, P, FLOOD, f, Q);
  assert.equal(transport.sent, [{ hop: R, source: P, destination: FLOOD, frame: f }]);
  assert.is(sw.stats.relayed, 1);
  const u = frame(MAC_C, MAC_REMOTE); // unknown unicast flooded by P
  fromOverlay(sw, P, FLOOD, u, P);
  assert.equal(transport.sent.slice(1).map((s) => [s.hop, s.source, s.destination]), [[Q, P, FLOOD], [R, P, FLOOD]]);
  assert.is(sw.stats.relayed, 3);
});

test('a relay refused by the transport is counted by reason', () => {
  const { sw, transport, trees, next } = setup(1);
  trees.set(P, [R]);
  next.set(R, Q);
  transport.script = () => ({ ok: false, reason: 'not-established' });
  fromOverlay(sw, P, FLOOD, frame(BROADCAST, MAC_REMOTE), Q);
  fromOverlay(sw, P, R, frame(MAC_C, MAC_REMOTE), P);
  assert.is(sw.stats.drops['relay-not-established'], 2);
  assert.is(sw.stats.relayed, 0);
});

test('frames for another peer are relayed by destination without learning or local delivery (multi-hop)', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(R, Q);
  const f = frame(MAC_C, MAC_REMOTE);
  fromOverlay(sw, P, R, f, P);
  assert.equal(transport.sent, [{ hop: Q, source: P, destination: R, frame: f }]);
  assert.equal(sw.macTable(), [], 'nothing learned');
  assert.is(sw.stats.relayed, 1);
  const group = frame(BROADCAST, MAC_REMOTE);
  fromOverlay(sw, P, R, group, P);
  await settle();
  for (const e of endpoints) assert.equal(e.received, [], 'relayed frames are not delivered locally');
});

test('frames for another peer with no route, or whose route leads back where they came from, are dropped', () => {
  const { sw, transport, next } = setup(1);
  fromOverlay(sw, P, R, frame(MAC_C, MAC_REMOTE), P);
  assert.is(sw.stats.drops['no-route'], 1);
  next.set(R, P);
  fromOverlay(sw, P, R, frame(MAC_C, MAC_REMOTE), P);
  assert.is(sw.stats.drops['no-route'], 2);
  assert.equal(transport.sent, []);
});

test('our own frames coming back from the overlay are dropped', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P, Q]);
  fromOverlay(sw, SELF, FLOOD, frame(BROADCAST, MAC_A), P);
  await settle();
  assert.equal(transport.sent, []);
  for (const e of endpoints) assert.equal(e.received, []);
  assert.is(sw.stats.drops['own-frame-returned'], 1);
  assert.equal(sw.macTable(), []);
});

test('link-local control frames (STP) are dropped, counted and not learned from', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  const [a, b] = endpoints as [Endpoint, Endpoint];
  a.send(frame(STP, MAC_A, { etherType: 0x0026 }));
  a.send(frame(0x01_80_c2_00_00_0e, MAC_A)); // LLDP
  await settle();
  assert.equal(b.received, []);
  assert.equal(transport.sent, []);
  assert.is(sw.stats.drops['link-local-control'], 2);
  assert.is(sw.stats.captured, 2);
  assert.equal(sw.macTable(), []);
  a.send(frame(0x01_80_c2_00_00_10, MAC_A)); // outside the reserved block: an ordinary multicast
  await settle();
  assert.is(b.received.length, 1);
  assert.is(transport.sent.length, 1);
});

test('runts shorter than an Ethernet header are dropped', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  const [a, b] = endpoints as [Endpoint, Endpoint];
  a.send(new Uint8Array(13).fill(0xff));
  a.send(new Uint8Array(0));
  await settle();
  assert.is(sw.stats.drops['runt'], 2);
  assert.equal(b.received, []);
  assert.equal(transport.sent, []);
  assert.equal(sw.macTable(), []);
  a.send(frame(BROADCAST, MAC_A, { length: 14 })); // header only is fine
  await settle();
  assert.is(b.received.length, 1);
});

test('a MAC that moves from a local port to a remote peer is re-learned at once', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(P, P);
  const [a, b] = endpoints as [Endpoint, Endpoint];
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  fromOverlay(sw, P, FLOOD, frame(BROADCAST, MAC_A), P); // the host behind a now lives behind P
  await settle();
  for (const e of endpoints) e.received.length = 0;
  const f = frame(MAC_A, MAC_B);
  b.send(f);
  await settle();
  assert.equal(a.received, [], 'not to the old port');
  assert.equal(transport.sent, [{ hop: P, source: SELF, destination: P, frame: f }]);
  // And back again: a frame from the host on a local port wins it back.
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  a.received.length = 0;
  b.send(f);
  await settle();
  assert.equal(a.received, [f]);
  assert.is(transport.sent.length, 1);
});

test('learned MACs expire after macMaxAgeMs and unicast to them floods again', async () => {
  const { sw, clock, endpoints } = setup(3, 5000);
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  b.send(frame(BROADCAST, MAC_B));
  await settle();
  for (const e of endpoints) e.received.length = 0;
  clock.advance(5000);
  a.send(frame(MAC_B, MAC_A));
  await settle();
  assert.is(c.received.length, 0, 'still known at exactly maxAge');
  clock.advance(5001);
  a.send(frame(MAC_B, MAC_A));
  await settle();
  assert.is(b.received.length, 2);
  assert.is(c.received.length, 1, 'flooded once the entry expired');
  clock.advance(10_000);
  sw.sweep();
  assert.equal(sw.macTable(), []);
});

test('forgetPeer forgets the MACs behind that peer', () => {
  const { sw } = setup(0);
  fromOverlay(sw, P, FLOOD, frame(BROADCAST, MAC_REMOTE), P);
  fromOverlay(sw, Q, FLOOD, frame(BROADCAST, MAC_C), Q);
  sw.forgetPeer(P);
  assert.equal(sw.macTable().map((e) => [e.mac, e.port]), [[MAC_C, Q]]);
});

test('too big: an IPv4 frame without DF is fragmented to fit the link', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P);
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.script = (_hop, f) => (f.byteLength > 1000 ? { ok: false, reason: 'too-big', maxFrame: 1000 } : { ok: true });
  const [a] = endpoints as [Endpoint];
  const big = ipv4(MAC_REMOTE, MAC_A, 2500, false);
  a.send(big);
  await settle();
  assert.is(transport.refused.length, 1);
  assert.ok(transport.sent.length >= 3, `${transport.sent.length} pieces`);
  const data: number[] = [];
  for (const s of transport.sent) {
    assert.ok(s.frame.byteLength <= 1000, `piece of ${s.frame.byteLength}`);
    assert.equal([s.hop, s.source, s.destination], [P, SELF, P]);
    assert.is(internetChecksum(s.frame, 14, 34), 0);
    assert.is(u16(s.frame, 14 + 6) & 0x1fff, data.length / 8);
    data.push(...s.frame.subarray(34));
  }
  assert.equal(Uint8Array.from(data), big.subarray(34));
  assert.is(sw.stats.fragmented, 1);
  assert.is(sw.stats.forwarded, transport.sent.length);
  assert.equal(a.received, []);
});

test('too big: a DF IPv4 frame is answered on the ingress port with ICMP fragmentation needed', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P);
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.script = (_hop, f) => (f.byteLength > 1000 ? { ok: false, reason: 'too-big', maxFrame: 1000 } : { ok: true });
  const [a, b] = endpoints as [Endpoint, Endpoint];
  const big = ipv4(MAC_REMOTE, MAC_A, 1500, true);
  a.send(big);
  await settle();
  assert.equal(transport.sent, []);
  assert.is(sw.stats.icmpTooBig, 1);
  assert.equal(b.received, []);
  assert.is(a.received.length, 1);
  const icmp = a.received[0] as Uint8Array;
  assert.equal(icmp.subarray(0, 6), macBytes(MAC_A));
  assert.equal(icmp.subarray(6, 12), macBytes(MAC_REMOTE));
  assert.is(icmp[14 + 20], 3);
  assert.is(icmp[14 + 21], 4);
  assert.is(u16(icmp, 14 + 26), 1000 - 14, 'next-hop MTU is the IP MTU of the link');
  assert.is(internetChecksum(icmp, 14, 34), 0);
  assert.is(internetChecksum(icmp, 34, icmp.byteLength), 0);
  assert.equal(icmp.subarray(42), big.subarray(14, 42));
});

test('too big: a DF frame flooded to an unknown MAC is dropped without ICMP', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  transport.script = (_hop, f) => (f.byteLength > 1000 ? { ok: false, reason: 'too-big', maxFrame: 1000 } : { ok: true });
  const [a] = endpoints as [Endpoint];
  a.send(ipv4(MAC_REMOTE, MAC_A, 1500, true));
  await settle();
  assert.equal(a.received, []);
  assert.is(sw.stats.icmpTooBig, 0);
  assert.is(sw.stats.drops['too-big'], 1);
});

test('too big: a non-IPv4 frame is dropped as too-big', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P);
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.script = (_hop, f) => (f.byteLength > 1000 ? { ok: false, reason: 'too-big', maxFrame: 1000 } : { ok: true });
  const [a] = endpoints as [Endpoint];
  a.send(frame(MAC_REMOTE, MAC_A, { length: 1500, etherType: 0x86dd }));
  await settle();
  assert.equal(transport.sent, []);
  assert.is(sw.stats.drops['too-big'], 1);
  assert.is(sw.stats.fragmented, 0);
  assert.is(sw.stats.icmpTooBig, 0);
  assert.equal(a.received, []);
});

test('too big: an IPv6 frame is answered on the ingress port with ICMPv6 packet too big', async () => {
  const { sw, transport, next, endpoints } = setup();
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P);
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.script = (_hop, f) => (f.byteLength > 1000 ? { ok: false, reason: 'too-big', maxFrame: 1000 } : { ok: true });
  const [a] = endpoints as [Endpoint];
  const big = frame(MAC_REMOTE, MAC_A, { length: 1500, etherType: 0x86dd, tag: 0x60 });
  big.set([(1500 - 54) >> 8, (1500 - 54) & 0xff, 6, 64, 0xfd, 0x77], 18); // payload length, TCP, hop limit, fd77::
  a.send(big);
  await settle();
  assert.equal(transport.sent, []);
  assert.is(sw.stats.icmpTooBig, 1);
  assert.is(a.received.length, 1);
  const icmp = a.received[0] as Uint8Array;
  assert.equal(icmp.subarray(0, 6), macBytes(MAC_A));
  assert.is(icmp[14 + 6], 58, 'ICMPv6');
  assert.is(icmp[54], 2, 'packet too big');
  assert.is(u16(icmp, 54 + 6), 1000 - 14, 'the IP MTU of the link');
});

test('other transport refusals are counted by reason', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P, Q]);
  transport.script = (hop) => (hop === P ? { ok: false, reason: 'no-link' } : { ok: true });
  (endpoints[0] as Endpoint).send(frame(BROADCAST, MAC_A));
  await settle();
  assert.is(sw.stats.drops['no-link'], 1);
  assert.is(sw.stats.forwarded, 1);
});

test('a local NIC that refuses a frame is counted as nic-refused', async () => {
  const { sw, endpoints } = setup(2);
  const [a, b] = endpoints as [Endpoint, Endpoint];
  await b.nic.close();
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  assert.is(sw.stats.drops['nic-refused'], 1);
  assert.is(sw.stats.delivered, 0);
});

test('removePort stops delivery to and capture from that port and forgets its MACs', async () => {
  const { sw, transport, trees, endpoints } = setup();
  trees.set(SELF, [P]);
  const [a, b, c] = endpoints as [Endpoint, Endpoint, Endpoint];
  b.send(frame(BROADCAST, MAC_B));
  await settle();
  for (const e of endpoints) e.received.length = 0;
  transport.sent.length = 0;
  sw.removePort(b.port);
  assert.not.ok(sw.macTable().some((e) => e.mac === MAC_B));
  a.send(frame(MAC_B, MAC_A));
  a.send(frame(BROADCAST, MAC_A));
  await settle();
  assert.equal(b.received, []);
  assert.is(c.received.length, 2, 'the unknown unicast and the broadcast reach the remaining port');
  const captured = sw.stats.captured;
  b.send(frame(BROADCAST, MAC_B));
  await settle();
  assert.is(sw.stats.captured, captured, 'frames from the removed port are not switched');
  assert.equal(c.received.length, 2);
  sw.removePort(b.port); // idempotent
});

// ---- TCP and UDP super-frames (offloads) ----

/** A NIC with offloads (UDP ones too with `udpOffload`) that records what it is given (frames and their segment sizes). */
class OffloadNic implements Nic {
  readonly name = 'tapoffload';
  readonly mac = new Uint8Array(6);
  readonly mtu = 1376;
  readonly offload = true;
  constructor(readonly udpOffload = false) {}
  readonly stats: NicStats = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, drops: {} };
  readonly written: { frame: Uint8Array; segmentSize: number }[] = [];
  handler: FrameBatchHandler | undefined;
  onFrames(handler: FrameBatchHandler): void {
    this.handler = handler;
  }
  send(frame: Uint8Array): boolean {
    this.written.push({ frame: frame.slice(), segmentSize: 0 });
    return true;
  }
  sendBatch(frames: readonly Uint8Array[], segmentSizes?: ArrayLike<number>): number {
    frames.forEach((frame, i) => this.written.push({ frame: frame.slice(), segmentSize: segmentSizes?.[i] ?? 0 }));
    return frames.length;
  }
  async close(): Promise<void> {}
}

const macs = (dst: number, src: number): number[] => [...macBytes(dst), ...macBytes(src)];
const tcpSuper = (dst: number, src: number, payload = 4000): Uint8Array =>
  superFrame({ ipv6: false, payload: new Uint8Array(payload).fill(0x5a), flags: 0x18, sequence: 1, ipId: 1, tcpOptions: 12, macs: macs(dst, src) });

test('a super-frame from an offload NIC goes whole to a neighbour that takes it, else as segments', () => {
  const { sw, transport, next } = setup(0);
  const tap = new OffloadNic();
  sw.addPort(tap);
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P); // MAC_REMOTE lives behind P
  const big = tcpSuper(MAC_REMOTE, MAC_A);
  transport.takesSuper = true;
  tap.handler?.([big], [1000]);
  assert.equal(transport.superSent.map((s) => [s.hop, s.source, s.destination, s.frame.length, s.segmentSize]), [[P, SELF, P, big.length, 1000]]);
  assert.equal(transport.sent, []);
  assert.is(sw.stats.superFrames, 1);
  transport.takesSuper = false;
  tap.handler?.([big], [1000]);
  assert.equal(transport.sent.map((s) => s.frame.length), [14 + 20 + 32 + 1000, 14 + 20 + 32 + 1000, 14 + 20 + 32 + 1000, 14 + 20 + 32 + 1000]);
  assert.ok(transport.sent.every((s) => s.hop === P && s.destination === P));
  assert.is(sw.stats.segmented, 1);
  tap.handler?.([big.subarray(0, 60)], [1000]);
  assert.is(sw.stats.drops['bad-super-frame'], 1, 'a frame that is not a super-frame is counted, not thrown');
});

test('super-frames flood as segments, reach plain NICs as segments and offload NICs whole', async () => {
  const { sw, transport, trees, endpoints } = setup(1);
  const tap = new OffloadNic();
  const tapPort = sw.addPort(tap);
  trees.set(SELF, [Q]);
  const [plain] = endpoints as [Endpoint];
  // Unknown destination: segments flood to the plain port and to the peers.
  tap.handler?.([tcpSuper(MAC_B, MAC_A, 2500)], [1000]);
  await settle();
  assert.equal(plain.received.map((f) => f.length), [1066, 1066, 566]);
  assert.is(transport.sent.length, 3);
  assert.ok(transport.sent.every((s) => s.destination === FLOOD));
  // From the overlay to the offload NIC (its MAC now known): whole, with the segment size.
  fromOverlay(sw, P, SELF, tcpSuper(MAC_A, MAC_REMOTE), P, 1000);
  assert.equal(tap.written.map((w) => [w.frame.length, w.segmentSize]), [[14 + 20 + 32 + 4000, 1000]]);
  // From the overlay to the plain NIC: segments.
  plain.send(frame(BROADCAST, MAC_B));
  await settle();
  plain.received.length = 0;
  fromOverlay(sw, P, SELF, tcpSuper(MAC_B, MAC_REMOTE), P, 1000);
  await settle();
  assert.equal(plain.received.map((f) => f.length), [1066, 1066, 1066, 1066]);
  assert.ok(sw.stats.segmented >= 2);
  // Relayed for another peer: whole when the next link takes it, as segments when it does not.
  const relayed = setup(0);
  relayed.next.set(R, Q);
  relayed.transport.takesSuper = true;
  fromOverlay(relayed.sw, P, R, tcpSuper(MAC_C, MAC_REMOTE), P, 1000);
  assert.equal(relayed.transport.superSent.map((x) => [x.hop, x.source, x.destination, x.segmentSize]), [[Q, P, R, 1000]]);
  relayed.transport.takesSuper = false;
  fromOverlay(relayed.sw, P, R, tcpSuper(MAC_C, MAC_REMOTE), P, 1000);
  assert.equal(relayed.transport.sent.map((x) => [x.hop, x.source, x.destination, x.frame.length]), new Array(4).fill([Q, P, R, 1066]));
  assert.is(relayed.sw.stats.relayed, 5);
  sw.removePort(tapPort);
});

const udpSuper = (dst: number, src: number, payload = 4000, ipv6 = false): Uint8Array =>
  udpSuperFrame({ ipv6, payload: Uint8Array.from({ length: payload }, (_, i) => i & 0xff), ipId: 1, ipOptions: 0, macs: macs(dst, src) });

test('a UDP super-frame goes whole to a neighbour that takes it, else as datagrams of the segment size', () => {
  const { sw, transport, next } = setup(0);
  const tap = new OffloadNic(true);
  sw.addPort(tap);
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P); // MAC_REMOTE lives behind P
  for (const ipv6 of [false, true]) {
    const big = udpSuper(MAC_REMOTE, MAC_A, 4000, ipv6);
    transport.takesSuper = true;
    transport.superSent.length = 0;
    tap.handler?.([big], [1200]);
    assert.equal(transport.superSent.map((s) => [s.hop, s.source, s.destination, s.frame.length, s.segmentSize]), [[P, SELF, P, big.length, 1200]]);
    transport.takesSuper = false;
    transport.sent.length = 0;
    tap.handler?.([big], [1200]);
    const headers = 14 + (ipv6 ? 40 : 20) + 8;
    assert.equal(
      transport.sent.map((s) => s.frame.length),
      [1200, 1200, 1200, 400].map((n) => headers + n),
      'datagrams: full ones, then the rest',
    );
    assert.ok(transport.sent.every((s) => s.hop === P && s.destination === P && s.frame[ipv6 ? 20 : 23] === 17));
  }
  assert.is(sw.stats.superFrames, 2);
  assert.is(sw.stats.segmented, 2);
  assert.is(sw.stats.drops['bad-super-frame'], undefined);
});

test('UDP super-frames reach an offload NIC whole only when it has USO and they hold at most 128 datagrams', () => {
  for (const udpOffload of [false, true]) {
    const { sw } = setup(0);
    const tap = new OffloadNic(udpOffload);
    sw.addPort(tap);
    tap.handler?.([frame(BROADCAST, MAC_A)]); // MAC_A lives behind the TAP
    tap.written.length = 0;
    fromOverlay(sw, P, SELF, udpSuper(MAC_A, MAC_REMOTE, 2500), P, 1000);
    const expected = udpOffload ? [[14 + 28 + 2500, 1000]] : [1000, 1000, 500].map((n) => [14 + 28 + n, 0]);
    assert.equal(
      tap.written.map((w) => [w.frame.length, w.segmentSize]),
      expected,
      udpOffload ? 'USO: whole' : 'no USO: as datagrams',
    );
    assert.is(sw.stats.superFrames, udpOffload ? 1 : 0);
    assert.is(sw.stats.segmented, udpOffload ? 0 : 1);
    // A TCP super-frame goes whole either way.
    tap.written.length = 0;
    fromOverlay(sw, P, SELF, tcpSuper(MAC_A, MAC_REMOTE), P, 1000);
    assert.equal(tap.written.map((w) => w.segmentSize), [1000]);
  }
  const { sw } = setup(0);
  const tap = new OffloadNic(true);
  sw.addPort(tap);
  tap.handler?.([frame(BROADCAST, MAC_A)]);
  tap.written.length = 0;
  fromOverlay(sw, P, SELF, udpSuper(MAC_A, MAC_REMOTE, 128 * 100, true), P, 100);
  assert.equal(tap.written.map((w) => w.segmentSize), [100], '128 datagrams: whole');
  tap.written.length = 0;
  fromOverlay(sw, P, SELF, udpSuper(MAC_A, MAC_REMOTE, 128 * 100 + 1, true), P, 100);
  assert.is(tap.written.length, 129, 'more than the kernel takes in one write: as datagrams');
  assert.ok(tap.written.every((w) => w.segmentSize === 0));
  // Local to local, between two TAPs: the same rule.
  const other = new OffloadNic(false);
  sw.addPort(other);
  other.handler?.([frame(BROADCAST, MAC_B)]);
  tap.handler?.([udpSuper(MAC_B, MAC_A, 2500)], [1000]);
  sw.flushLocal();
  assert.equal(other.written.map((w) => [w.frame.length, w.segmentSize]), [1000, 1000, 500].map((n) => [14 + 28 + n, 0]));
});

test('UDP super-frames flood as datagrams and are relayed whole where the next link takes them', async () => {
  const { sw, transport, trees, endpoints } = setup(1);
  const tap = new OffloadNic(true);
  sw.addPort(tap);
  trees.set(SELF, [Q]);
  const [plain] = endpoints as [Endpoint];
  tap.handler?.([udpSuper(MAC_B, MAC_A, 2500)], [1000]);
  await settle();
  assert.equal(plain.received.map((f) => f.length), [1042, 1042, 542]);
  assert.ok(transport.sent.length === 3 && transport.sent.every((s) => s.destination === FLOOD));
  const relayed = setup(0);
  relayed.next.set(R, Q);
  relayed.transport.takesSuper = true;
  fromOverlay(relayed.sw, P, R, udpSuper(MAC_C, MAC_REMOTE), P, 1000);
  assert.equal(relayed.transport.superSent.map((x) => [x.hop, x.source, x.destination, x.segmentSize]), [[Q, P, R, 1000]]);
  relayed.transport.takesSuper = false;
  fromOverlay(relayed.sw, P, R, udpSuper(MAC_C, MAC_REMOTE), P, 1000);
  assert.equal(relayed.transport.sent.map((x) => [x.hop, x.source, x.destination, x.frame.length]), [[Q, P, R, 1042], [Q, P, R, 1042], [Q, P, R, 1042], [Q, P, R, 1042]]);
});

test('UDP datagrams cut larger than the endpoint MTU: IPv4 without DF fragmented to fit, others answered once and dropped', async () => {
  const { sw, transport, next } = setup(0);
  const tap = new OffloadNic(true); // MTU 1376: the sender's own MTU allowed 1400-byte datagrams
  sw.addPort(tap);
  next.set(P, P);
  fromOverlay(sw, P, SELF, frame(MAC_A, MAC_REMOTE), P); // MAC_REMOTE lives behind P
  tap.written.length = 0;
  // No DF (what a UDP GSO socket sends by default): each 1428-byte datagram goes as two fragments of at most 1376.
  const noDf = udpSuper(MAC_REMOTE, MAC_A, 3 * 1400);
  noDf[14 + 6] = 0;
  tap.handler?.([noDf], [1400]);
  assert.equal(transport.sent.map((s) => s.frame.length - 14), [1372, 76, 1372, 76, 1372, 76]);
  assert.ok(transport.sent.every((s) => s.frame.length - 14 <= tap.mtu));
  assert.is(sw.stats.fragmented, 3);
  // DF: dropped, one ICMP "fragmentation needed" with the endpoint MTU per super-frame.
  transport.sent.length = 0;
  tap.handler?.([udpSuper(MAC_REMOTE, MAC_A, 3 * 1400)], [1400]);
  assert.equal(transport.sent, []);
  assert.is(sw.stats.drops['too-big'], 3);
  assert.is(sw.stats.icmpTooBig, 1);
  const [icmp] = tap.written;
  assert.ok(icmp !== undefined && icmp.frame[14 + 9] === 1 && icmp.frame[34] === 3 && icmp.frame[35] === 4, 'ICMP type 3 code 4');
  assert.is(((icmp!.frame[40] as number) << 8) | (icmp!.frame[41] as number), 1376, 'carrying the endpoint MTU');
  // IPv6 (never fragmented on the way): dropped, one ICMPv6 "packet too big" with the endpoint MTU.
  tap.handler?.([udpSuper(MAC_REMOTE, MAC_A, 2 * 1400, true)], [1400]);
  assert.equal(transport.sent, []);
  assert.is(sw.stats.drops['too-big'], 5);
  assert.is(sw.stats.icmpTooBig, 2);
  const ptb = tap.written[1]?.frame;
  assert.ok(ptb !== undefined && ptb[14 + 6] === 58 && ptb[54] === 2, 'ICMPv6 type 2');
  assert.is(u16(ptb!, 54 + 6), 1376);
  // Datagrams that fit pass as they are.
  tap.handler?.([udpSuper(MAC_REMOTE, MAC_A, 3 * 1348)], [1348]);
  assert.equal(transport.sent.map((s) => s.frame.length - 14), [1376, 1376, 1376]);
});

test.run();
