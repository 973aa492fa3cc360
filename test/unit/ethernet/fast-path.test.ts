// FastPath with a FakeClock, recording iproute2 and a simulated tunnel between two peers' probe ports:
// offers, tunnel creation, health by heartbeats, entries from the switch, fallback and return, forget, close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { FastPath, pairVni, probeMacOf, tunnelDeviceName } from '../../../src/ethernet/fast-path.js';
import { KernelVxlan } from '../../../src/ethernet/kernel-vxlan.js';
import type { NetCommand } from '../../../src/ethernet/net-command.js';
import type { FrameBatchHandler, Nic, NicStats } from '../../../src/nic/nic.js';
import type { PeerName } from '../../../src/wire/peer-name.js';
import { FastControl, decodeAck, decodeForget, decodeHeartbeat, decodeHello, encodeAck, encodeForget, encodeHeartbeat, encodeHello } from '../../../src/wire/fastdp.js';
import { assertDecodesOrRejects, mutatedBytes } from '../../helpers/fuzz.js';

const A: PeerName = 0x0a_00_00_00_00_01;
const B: PeerName = 0x0b_00_00_00_00_02;

/** A probe port whose frames reach the other end while the simulated tunnel carries them. */
class ProbePort implements Nic {
  readonly name = 'probe';
  readonly mac = new Uint8Array(6);
  readonly mtu = 1376;
  readonly stats: NicStats = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, drops: {} };
  other: ProbePort | undefined;
  carries = true;
  sizes: number[] = [];
  private handler: FrameBatchHandler = () => undefined;
  onFrames(handler: FrameBatchHandler): void {
    this.handler = handler;
  }
  send(frame: Uint8Array): boolean {
    this.sizes.push(frame.byteLength);
    if (this.carries) this.other?.handler([frame.slice()]);
    return true;
  }
  sendBatch(frames: readonly Uint8Array[]): number {
    for (const f of frames) this.send(f);
    return frames.length;
  }
  async close(): Promise<void> {}
}

interface Side {
  fast: FastPath;
  calls: string[];
  probe: ProbePort;
  /** MACs this side's switch knows on its bridge port (-1) when the fast path starts. */
  bridge: number[];
  forgotten: [PeerName, number[]][];
  warnings: string[];
}

/** Two fast paths (A and B) joined by a control link (synchronous) and a simulated tunnel. */
function pair(options: { refuse?: boolean; refuseB?: boolean; portB?: number; bridgeA?: number[]; bridgeB?: number[] } = {}) {
  const clock = new FakeClock();
  const sides = new Map<PeerName, Side>();
  const make = (self: PeerName, port: number): Side => {
    const calls: string[] = [];
    const run: NetCommand = (argv) => {
      calls.push(argv.join(' '));
      return Promise.resolve('');
    };
    const probe = new ProbePort();
    const side: Side = { calls, probe, bridge: [], forgotten: [], warnings: [], fast: undefined as unknown as FastPath };
    side.fast = new FastPath({
      self,
      kernel: new KernelVxlan({ bridge: 'weave', port, mtu: 1376, command: run }),
      probe,
      clock,
      refusal: () => (options.refuse || (options.refuseB && self === B) ? 'not trusted' : undefined),
      sendControl: (peer, kind, payload) => {
        sides.get(peer)?.fast.onControl(self, kind, payload);
        return true;
      },
      bridgePort: -1,
      bridgeMacs: () => side.bridge,
      forgetMacs: (peer, list) => side.forgotten.push([peer, [...list]]),
      warn: (message) => side.warnings.push(message),
    });
    return side;
  };
  const a = make(A, 6784);
  const b = make(B, options.portB ?? 6784);
  for (const [side, macs] of [[a, options.bridgeA ?? []], [b, options.bridgeB ?? []]] as const) for (const mac of macs) side.fast.learned(mac, -1);
  sides.set(A, a);
  sides.set(B, b);
  a.probe.other = b.probe;
  b.probe.other = a.probe;
  const up = (): void => {
    a.fast.linkUp({ peer: B, connectionId: 77n, outbound: true, remoteHost: '10.0.0.2', remotePort: 6783, keys: undefined });
    b.fast.linkUp({ peer: A, connectionId: 77n, outbound: false, remoteHost: '::ffff:10.0.0.1', remotePort: 6783, keys: undefined });
  };
  /** Lets queued kernel commands run, then moves the clock. */
  const settle = async (ms = 0): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    clock.advance(ms);
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { clock, a, b, up, settle };
}

test('offers cross the control link, each side creates its tunnel and heartbeats make the link fast', async () => {
  const { a, b, up, settle } = pair();
  up();
  await settle();
  const device = tunnelDeviceName('weave', B);
  const vni = pairVni(A, B);
  assert.is(vni, pairVni(B, A), 'both ends compute the same VXLAN id');
  assert.equal(a.calls.slice(0, 6), [
    `ip link del ${device}`,
    `ip link add ${device} type vxlan id ${vni} dstport 6784 ttl 64`,
    `ip link set ${device} mtu 1376 addrgenmode none master weave`,
    `bridge link set dev ${device} learning off flood off mcast_flood off bcast_flood off isolated on`,
    `ip link set ${device} up`,
    `bridge fdb replace 0a:00:00:00:00:02 dev ${device} master static sticky`,
  ]);
  assert.is(a.calls[6], `bridge fdb replace 0a:00:00:00:00:02 dev ${device} dst 10.0.0.2 self permanent`, "B's probe MAC: B's name, locally administered");
  assert.ok(b.calls.includes(`bridge fdb replace 0a:00:00:00:00:01 dev ${tunnelDeviceName('weave', A)} dst 10.0.0.1 self permanent`), 'an IPv4-mapped address is used as IPv4');
  assert.equal(a.fast.modeOf(B), { mode: 'fastdp' }, 'the first heartbeat was acknowledged');
  assert.equal(b.fast.modeOf(A), { mode: 'fastdp' });
  assert.ok(a.probe.sizes.every((n) => n === 1376 + 14), 'heartbeats are padded to the MTU');
  assert.ok(a.calls.includes(`bridge link set dev ${device} learning on`), 'a healthy tunnel learns replies');
  assert.is(a.fast.status()[0]?.heartbeats.acknowledged, 1);
});

test('MACs the peer announces on its bridge are pointed at a healthy tunnel; MACs on other ports never are', async () => {
  const { a, b, up, settle } = pair({ bridgeB: [0x5a_00_00_00_00_01] });
  up();
  await settle();
  const device = tunnelDeviceName('weave', B);
  assert.ok(a.calls.includes(`bridge fdb replace 5a:00:00:00:00:01 dev ${device} dst 10.0.0.2 self permanent`), 'announced when the offers met');
  b.fast.learned(0x5a_00_00_00_00_02, -1);
  await settle();
  assert.ok(a.calls.includes(`bridge fdb replace 5a:00:00:00:00:02 dev ${device} master static sticky`), 'learned on B\'s bridge later');
  const before = a.calls.length;
  b.fast.learned(0x5a_00_00_00_00_03, -2); // an in-process endpoint: a switch port of its own, not on the bridge
  await settle();
  assert.equal(a.calls.slice(before), [], 'its frames keep the sleeve');
  b.fast.learned(0x5a_00_00_00_00_02, -2); // moved off B's bridge
  await settle();
  assert.equal(a.calls.slice(-2), [`bridge fdb del 5a:00:00:00:00:02 dev ${device} master`, `bridge fdb del 5a:00:00:00:00:02 dev ${device} self`], 'moved off the bridge');
  a.fast.learned(0x5a_00_00_00_00_01, 0x0c_00_00_00_00_03); // and one shows up behind a third peer
  await settle();
  assert.equal(a.calls.slice(-2), [`bridge fdb del 5a:00:00:00:00:01 dev ${device} master`, `bridge fdb del 5a:00:00:00:00:01 dev ${device} self`], 'moved elsewhere');
  assert.is(a.fast.status()[0]?.entries, 0);
});

test('a tunnel that stops carrying heartbeats falls back to the sleeve within the timeout, and returns', async () => {
  const { a, b, up, settle } = pair({ bridgeB: [0x5a_00_00_00_00_01] });
  up();
  await settle();
  a.probe.carries = false; // a firewall drops the VXLAN port on the way from A to B
  for (let t = 0; t < 5000; t += 500) await settle(500);
  assert.is(a.fast.modeOf(B)?.mode, 'fastdp', 'still within the 6 s timeout');
  for (let t = 0; t < 2000; t += 500) await settle(500);
  const mode = a.fast.modeOf(B);
  assert.is(mode?.mode, 'sleeve');
  assert.match(mode?.reason ?? '', /unhealthy/);
  assert.match(a.warnings.join('\n'), /unhealthy/);
  assert.ok(a.calls.includes(`bridge link set dev ${tunnelDeviceName('weave', B)} learning off`), 'the tunnel stops learning');
  assert.is(a.fast.status()[0]?.entries, 0);
  assert.is(b.fast.modeOf(A)?.mode, 'fastdp', 'the other direction still works and keeps its own health');
  a.probe.carries = true;
  await settle(500);
  assert.equal(a.fast.modeOf(B), { mode: 'fastdp' }, 'back within one fast heartbeat');
  assert.ok(a.calls.filter((c) => c.startsWith('bridge fdb replace 5a:00:00:00:00:01')).length >= 4, 'entries programmed again');
});

test('a refused link sends no offer and creates nothing; a port mismatch says why', async () => {
  const refused = pair({ refuse: true });
  refused.up();
  await refused.settle(1000);
  assert.equal(refused.a.calls, []);
  assert.equal(refused.a.fast.modeOf(B), { mode: 'sleeve', reason: 'not trusted' });
  const oneSided = pair({ refuseB: true });
  oneSided.up();
  await oneSided.settle(1000);
  assert.equal(oneSided.a.calls, [], 'no tunnel to a peer that will not take plain frames');
  assert.match(oneSided.a.fast.modeOf(B)?.reason ?? '', /the peer keeps this link encrypted on the sleeve/);
  assert.equal(oneSided.b.fast.modeOf(A), { mode: 'sleeve', reason: 'not trusted' });
  const mismatch = pair({ portB: 7000 });
  mismatch.up();
  await mismatch.settle(1000);
  assert.equal(mismatch.a.calls, []);
  assert.match(mismatch.a.fast.modeOf(B)?.reason ?? '', /VXLAN port is 7000, ours 6784/);
});

test('a late fast path still meets the peer: its offer asks for a reply', async () => {
  const { a, b, settle } = pair();
  // B's link comes up first; A's fast path hears of the link only later (its bridge came later).
  b.fast.linkUp({ peer: A, connectionId: 5n, outbound: false, remoteHost: '10.0.0.1', remotePort: 6783, keys: undefined });
  await settle();
  assert.match(b.fast.modeOf(A)?.reason ?? '', /offers no fast path/);
  a.fast.linkUp({ peer: B, connectionId: 5n, outbound: true, remoteHost: '10.0.0.2', remotePort: 6783, keys: undefined });
  await settle();
  assert.equal(a.fast.modeOf(B), { mode: 'fastdp' });
  assert.equal(b.fast.modeOf(A), { mode: 'fastdp' });
});

test('forget and link down remove entries and tunnels; close removes the rest', async () => {
  const { a, b, up, settle } = pair({ bridgeA: [0x5a_00_00_00_00_07] });
  up();
  await settle();
  a.fast.forgetLocal([0x5a_00_00_00_00_07]);
  await settle();
  const deviceOnB = tunnelDeviceName('weave', A);
  assert.equal(b.forgotten, [[A, [0x5a_00_00_00_00_07]]], 'the switch forgets it too');
  assert.equal(b.calls.slice(-2), [`bridge fdb del 5a:00:00:00:00:07 dev ${deviceOnB} master`, `bridge fdb del 5a:00:00:00:00:07 dev ${deviceOnB} self`]);
  b.fast.linkDown(A);
  await settle();
  assert.is(b.calls[b.calls.length - 1], `ip link del ${deviceOnB}`);
  assert.is(b.fast.modeOf(A), undefined);
  await a.fast.close();
  assert.is(a.calls[a.calls.length - 1], `ip link del ${tunnelDeviceName('weave', B)}`);
});

test('heartbeats for another connection or peer are not acknowledged; malformed control is counted, not thrown', async () => {
  const { a, b, up, settle } = pair();
  up();
  await settle();
  const before = b.fast.heartbeatsReceived;
  a.probe.send(encodeHeartbeat({ destination: probeMacOf(B), source: probeMacOf(A), connectionId: 78n, sequence: 1 }, 100));
  a.probe.send(encodeHeartbeat({ destination: probeMacOf(A), source: probeMacOf(A), connectionId: 77n, sequence: 1 }, 100));
  assert.is(b.fast.heartbeatsReceived, before);
  assert.ok(b.fast.onControl(A, FastControl.Hello, Uint8Array.of(9, 9)));
  assert.ok(b.fast.onControl(A, FastControl.Forget, Uint8Array.of(1, 2, 3)));
  assert.is(b.fast.malformed, 2);
  assert.not.ok(b.fast.onControl(A, 1, new Uint8Array(8)), 'sleeve kinds are not ours');
});

test('wire: fast path messages round-trip, and fuzzed bytes give a DecodeError or a value', () => {
  const hello = { version: 1, port: 6784, mtu: 1376, connectionId: 2n ** 63n, wantReply: true, accepts: false };
  assert.equal(decodeHello(encodeHello(hello)), hello);
  assert.equal(decodeAck(encodeAck({ connectionId: 9n, sequence: 4_000_000_000 })), { connectionId: 9n, sequence: 4_000_000_000 });
  assert.equal(decodeForget(encodeForget([1, 2 ** 48 - 1])), [1, 2 ** 48 - 1]);
  const hb = { destination: 0x02_00_00_00_00_01, source: 0x02_00_00_00_00_02, connectionId: 3n, sequence: 7 };
  assert.equal(decodeHeartbeat(encodeHeartbeat(hb, 1390)), hb);
  assert.is(decodeHeartbeat(new Uint8Array(60)), undefined, 'another ethertype is not a heartbeat');
  const valid = fc.oneof(
    fc.constant(encodeHello(hello)),
    fc.constant(encodeAck({ connectionId: 1n, sequence: 1 })),
    fc.constant(encodeForget([5, 6])),
    fc.constant(encodeHeartbeat(hb, 64)),
  );
  fc.assert(
    fc.property(mutatedBytes(valid), (bytes) => {
      for (const decode of [decodeHello, decodeAck, decodeForget, decodeHeartbeat]) assertDecodesOrRejects(decode, bytes);
    }),
    { numRuns: 1000 },
  );
});

test.run();
