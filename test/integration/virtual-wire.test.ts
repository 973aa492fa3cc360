import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeshRouter, type MeshRouterOptions } from '../../src/mesh/router.js';
import { DataPlane } from '../../src/ethernet/data-plane.js';
import { MemoryNic } from '../../src/nic/memory-nic.js';
import { VirtualWire, type VirtualWireOptions } from '../../src/testing/virtual-wire.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { seededRandom } from '../../src/random.js';
import type { Clock } from '../../src/clock.js';
import { dataReady, FAST, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { BROADCAST, frameText, testFrame } from '../helpers/data-mesh.js';

interface WirePeer {
  router: MeshRouter;
  dataPlane: DataPlane;
  endpoint: MemoryNic;
  received: string[];
  address: string;
}

/**
 * `n` encrypted peers with data planes and memory NICs, each on its own virtual host; `links` are
 * dialled (i dials j) once all have started. Nothing here touches a real socket.
 */
async function startWireMesh(
  wire: VirtualWire,
  n: number,
  links: [number, number][],
  options: { clock?: Clock; router?: MeshRouterOptions; nat?: Record<number, string> } = {},
) {
  const networkKey = await testNetworkKey();
  const peers: WirePeer[] = [];
  for (let i = 0; i < n; i++) {
    const host = wire.addHost();
    const publicAddress = options.nat?.[i];
    if (publicAddress) wire.nat(host, { publicAddress });
    const router = new MeshRouter({
      ...FAST,
      listen: `${host.address}:6783`,
      transport: host,
      name: testName(i),
      nickname: `p${i}`,
      networkKey,
      ...(options.clock ? { clock: options.clock, random: seededRandom(100 + i) } : {}),
      ...options.router,
    });
    const dataPlane = new DataPlane(router, { timings: { fastHeartbeatMs: 50 }, ...(options.clock ? { clock: options.clock } : {}) });
    const [port, endpoint] = MemoryNic.pair({ name: `nic${i}` });
    dataPlane.attach(port);
    const received: string[] = [];
    endpoint.onFrames((frames) => {
      for (const f of frames) received.push(frameText(Buffer.from(f)));
    });
    peers.push({ router, dataPlane, endpoint, received, address: host.address });
  }
  await Promise.all(peers.map((p) => p.router.start()));
  for (const [i, j] of links) peers[i]?.router.connect(`${peers[j]?.address}:6783`);
  const routers = peers.map((p) => p.router);
  return { peers, routers, stop: () => Promise.all(routers.map((r) => r.stop())).then(() => undefined) };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a 3-peer encrypted mesh on a virtual wire converges and carries frames end to end', async () => {
  const wire = new VirtualWire({ defaults: { latencyMs: 2, jitterMs: 1 }, random: seededRandom(3) });
  const { peers, routers, stop } = await startWireMesh(wire, 3, [[0, 1], [1, 2], [0, 2]]);
  try {
    await waitUntil(routers, () => dataReady(routers), 10_000, () => 'data routes on the virtual wire');
    const [a, b, c] = peers as [WirePeer, WirePeer, WirePeer];
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'hello wire'));
    await waitUntil(routers, () => b.received.includes('hello wire') && c.received.includes('hello wire'), 5000, () => 'the broadcast');
    c.endpoint.send(testFrame(a.endpoint.mac, c.endpoint.mac, 'c to a'));
    await waitUntil(routers, () => a.received.includes('c to a'), 5000, () => 'the unicast');
    for (const p of peers) {
      const links = p.dataPlane.status().links;
      assert.is(links.length, 2);
      assert.ok(links.every((l) => l.established && l.encrypted && l.mode === 'fragmenting'), JSON.stringify(links));
      assert.ok(p.dataPlane.status().udpAddress?.startsWith('10.99.0.'), 'the data plane bound on the virtual host');
    }
    assert.ok(wire.stats.streamsOpened >= 3);
    assert.ok(wire.stats.datagramsDelivered > 0);
    assert.is(wire.stats.datagramsDropped.unreachable, 0);
  } finally {
    await stop();
    wire.close();
  }
});

test('a partition stops frames across it; after heal() the mesh reconnects and frames flow again', async () => {
  const wire = new VirtualWire({ defaults: { latencyMs: 1 } });
  const { peers, routers, stop } = await startWireMesh(wire, 3, [[0, 1], [1, 2], [0, 2]]);
  try {
    await waitUntil(routers, () => dataReady(routers), 10_000, () => 'data routes');
    const [a, b, c] = peers as [WirePeer, WirePeer, WirePeer];
    wire.partition([a.address], [b.address, c.address]);
    await waitUntil(
      routers,
      () => a.router.linkInfos().length === 0 && b.router.routes.unicast(a.router.selfName) === undefined && c.router.routes.unicast(a.router.selfName) === undefined,
      5000,
      () => 'the partition to cut a off',
    );
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'into the void'));
    b.endpoint.send(testFrame(BROADCAST, b.endpoint.mac, 'b side only'));
    await waitUntil(routers, () => c.received.includes('b side only'), 5000, () => 'a frame within one side');
    await delay(100);
    assert.not.ok(b.received.includes('into the void') || c.received.includes('into the void'), 'nothing crosses the partition');
    assert.not.ok(a.received.includes('b side only'));
    assert.ok(wire.stats.streamsReset >= 2, 'both links of a were reset');

    wire.heal();
    await waitUntil(routers, () => dataReady(routers), 10_000, () => 'data routes after heal');
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'back again'));
    await waitUntil(routers, () => b.received.includes('back again') && c.received.includes('back again'), 5000, () => 'frames after heal');
  } finally {
    await stop();
    wire.close();
  }
});

test('with 20% datagram loss most frames still arrive and the control plane stays up', async () => {
  const wire = new VirtualWire({ defaults: { latencyMs: 1, loss: 0.2 }, random: seededRandom(11) });
  const { peers, routers, stop } = await startWireMesh(wire, 3, [[0, 1], [1, 2], [0, 2]]);
  try {
    const [a, b, c] = peers as [WirePeer, WirePeer, WirePeer];
    // Lost fragmentation tests can send a link through the slower MTU search, so wait for every
    // direct link: then a's broadcasts cross one lossy link to each peer, not two.
    await waitUntil(
      routers,
      () => dataReady(routers) && peers.every((p) => p.dataPlane.status().links.filter((l) => l.established).length === 2) && a.router.routes.broadcast(a.router.selfName).length === 2,
      15_000,
      () => 'every direct data link despite loss',
    );
    const downs: string[] = [];
    for (const r of routers) r.on('connection:down', (link) => downs.push(`${r.nickname}-${String(link.peer)}`));
    const n = 200;
    for (let i = 0; i < n; i++) {
      a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, `lossy ${i}`));
      // One frame per turn, so each goes in its own datagram and is lost on its own.
      await delay(1);
    }
    await delay(100);
    const atB = b.received.filter((t) => t.startsWith('lossy')).length;
    const atC = c.received.filter((t) => t.startsWith('lossy')).length;
    assert.ok(atB >= n * 0.7 && atB < n, `b got ${atB} of ${n}`);
    assert.ok(atC >= n * 0.7 && atC < n, `c got ${atC} of ${n}`);
    assert.ok(wire.stats.datagramsDropped.loss > 0);
    assert.equal(downs, [], 'no control link went down');
    assert.ok(routers.every((r) => r.linkInfos().length === 2 && dataReady(routers)));
  } finally {
    await stop();
    wire.close();
  }
});

test('a peer behind a NAT dials out and still carries data both ways', async () => {
  const wire = new VirtualWire({ defaults: { latencyMs: 1 } });
  // c (index 2) is behind a NAT: it dials a and b; nobody can dial it.
  const { peers, routers, stop } = await startWireMesh(wire, 3, [[0, 1], [2, 0], [2, 1]], { nat: { 2: '192.0.2.9' } });
  try {
    await waitUntil(routers, () => dataReady(routers), 10_000, () => 'data routes with a NATed peer');
    const [a, b, c] = peers as [WirePeer, WirePeer, WirePeer];
    c.endpoint.send(testFrame(BROADCAST, c.endpoint.mac, 'from behind the NAT'));
    await waitUntil(routers, () => a.received.includes('from behind the NAT') && b.received.includes('from behind the NAT'), 5000, () => 'the NATed broadcast');
    a.endpoint.send(testFrame(c.endpoint.mac, a.endpoint.mac, 'a answers c'));
    await waitUntil(routers, () => c.received.includes('a answers c'), 5000, () => 'the answer through the NAT');
    const cName = c.router.selfName.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
    const linkAtA = a.dataPlane.status().links.find((l) => l.peer === cName);
    assert.ok(linkAtA?.remote?.startsWith('192.0.2.9:'), `a learned c's public address from its packets: ${JSON.stringify(linkAtA)}`);
    assert.is.not(linkAtA?.remote, '192.0.2.9:6783', 'and the NAT-mapped port, not the one c bound');
    assert.ok(a.router.linkInfos().some((l) => l.remoteAddress.startsWith('192.0.2.9:')), 'the control link also shows the public address');
  } finally {
    await stop();
    wire.close();
  }
});

test('under a FakeClock two peers converge and carry a frame with no real timer involved', async () => {
  const clock = new FakeClock();
  const wire = new VirtualWire({ clock, random: seededRandom(8), defaults: { latencyMs: 5, jitterMs: 2 } } satisfies VirtualWireOptions);
  const { peers, routers, stop } = await startWireMesh(wire, 2, [[0, 1]], { clock });
  const [a, b] = peers as [WirePeer, WirePeer];
  /** Steps virtual time 1 ms at a time, letting promises and setImmediate work run in between. */
  const runUntil = async (check: () => boolean, maxMs: number, what: string): Promise<number> => {
    const start = clock.now();
    while (!check()) {
      if (clock.now() - start > maxMs) throw new Error(`no ${what} within ${maxMs} virtual ms`);
      clock.advance(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return clock.now() - start;
  };
  try {
    const took = await runUntil(() => dataReady(routers), 5000, 'data routes');
    // Handshake, heartbeats and the fragmentation test take a few round trips of ~10-14 virtual ms.
    assert.ok(took >= 20 && took < 2000, `converged after ${took} virtual ms`);
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'fake time'));
    const travel = await runUntil(() => b.received.includes('fake time'), 100, 'frame');
    assert.ok(travel >= 5 && travel <= 8, `the frame took ${travel} virtual ms (latency 5, jitter 2)`);
  } finally {
    const stopping = stop();
    // Stopping closes links, which waits on nothing timed; a few turns settle it.
    for (let i = 0; i < 10; i++) {
      clock.advance(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await stopping;
    wire.close();
  }
});

test('a NAT rebinding moves the link to the new port, while forged datagrams carrying the peer\'s name are refused and counted per source', async () => {
  const wire = new VirtualWire({ defaults: { latencyMs: 1 } });
  // b (index 1) is behind a NAT and dials a.
  const { peers, routers, stop } = await startWireMesh(wire, 2, [[1, 0]], { nat: { 1: '192.0.2.9' } });
  const attackerHost = wire.addHost();
  const attacker = await attackerHost.bindDatagram('0.0.0.0', 0);
  try {
    await waitUntil(routers, () => dataReady(routers), 10_000, () => 'data routes with a NATed peer');
    const [a, b] = peers as [WirePeer, WirePeer];
    const bName = b.router.selfName.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
    const linkAtA = () => a.dataPlane.status().links.find((l) => l.peer === bName);
    b.endpoint.send(testFrame(BROADCAST, b.endpoint.mac, 'before'));
    await waitUntil(routers, () => a.received.includes('before'), 5000, () => 'a frame before the rebinding');
    const oldRemote = linkAtA()?.remote;
    assert.ok(oldRemote?.startsWith('192.0.2.9:'), String(oldRemote));

    // Forgeries: b's name in clear, fresh counters, garbage for a body, from another host.
    const forged = Buffer.alloc(300, 0x5a);
    forged.writeUIntBE(b.router.selfName, 0, 6);
    for (let i = 0; i < 2000; i++) {
      forged.writeBigUInt64BE(BigInt(1e9 + i), 6);
      attacker.send(forged, 0, forged.length, 6783, a.address);
    }
    wire.rebindNat('192.0.2.9');
    for (let i = 0; i < 5 && !a.received.includes('after'); i++) {
      b.endpoint.send(testFrame(BROADCAST, b.endpoint.mac, 'after'));
      await delay(100);
    }
    await waitUntil(routers, () => a.received.includes('after'), 5000, () => 'a frame from the new NAT port');
    const moved = linkAtA();
    assert.ok(moved?.remote?.startsWith('192.0.2.9:') && moved.remote !== oldRemote, `a follows b to its new port: ${oldRemote} -> ${moved?.remote}`);
    a.endpoint.send(testFrame(b.endpoint.mac, a.endpoint.mac, 'reply'));
    await waitUntil(routers, () => b.received.includes('reply'), 5000, () => 'the reply to the new port');

    const status = a.dataPlane.status();
    const source = status.receive.sources.find((s) => s.address === attackerHost.address);
    assert.ok(source !== undefined && source.failures >= 2000 && source.blocked, JSON.stringify(status.receive.sources));
    assert.ok((status.sleeveDrops['auth-failed'] ?? 0) <= 10, `forgeries were decrypted at most to the source's budget: ${JSON.stringify(status.sleeveDrops)}`);
    assert.is(status.receive.linkSockets.startsWith('off'), true, 'the virtual wire has one socket per port');
  } finally {
    attacker.close();
    await stop();
    wire.close();
  }
});

test.run();
