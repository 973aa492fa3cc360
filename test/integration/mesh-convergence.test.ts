import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { converged, edges, simulateBroadcast, startMesh, waitUntil, walkUnicast, type Shape } from '../helpers/mesh.js';
import type { MeshRouter } from '../../src/mesh/router.js';
import type { PeerName } from '../../src/wire/peer-name.js';

const convergence = suite('convergence');

const cases: [number, Shape][] = [
  [2, 'line'],
  [5, 'line'],
  [5, 'ring'],
  [5, 'star'],
  [5, 'random'],
  [25, 'line'],
  [25, 'ring'],
  [25, 'star'],
  [25, 'random'],
];

for (const [n, shape] of cases) {
  convergence(`${n} peers in a ${shape}: same topology, loop-free routes, broadcast reaches each peer once`, async () => {
    const mesh = await startMesh(n, shape);
    try {
      await waitUntil(mesh.routers, () => converged(mesh.routers), 20_000, () => `${n}-peer ${shape} to converge`);
      const links = mesh.routers.reduce((sum, r) => sum + r.linkInfos().length, 0);
      assert.is(links, 2 * edges(shape, n).length, 'each edge is exactly one link seen from both ends');
      walkUnicast(mesh.routers);
      for (const source of mesh.routers) {
        const receipts = simulateBroadcast(mesh.routers, source);
        assert.is(receipts.size, n, `broadcast from ${source.nickname} reaches every peer`);
        for (const [, count] of receipts) assert.is(count, 1, `broadcast from ${source.nickname} arrives once`);
      }
    } finally {
      await mesh.stop();
    }
  });
}
convergence.run();

const gossip = suite('gossip over real links');

/** Registers a channel on every router that records what arrives. */
function recordingChannel(routers: MeshRouter[], name: string) {
  const broadcasts = new Map<PeerName, string[]>();
  const unicasts = new Map<PeerName, string[]>();
  const channels = routers.map((r) => {
    broadcasts.set(r.selfName, []);
    unicasts.set(r.selfName, []);
    return r.registerGossip(name, {
      onBroadcast: (payload, source) => {
        broadcasts.get(r.selfName)?.push(`${source}:${Buffer.from(payload).toString()}`);
        return payload;
      },
      onUnicast: (payload, source) => {
        unicasts.get(r.selfName)?.push(`${source}:${Buffer.from(payload).toString()}`);
      },
    });
  });
  return { broadcasts, unicasts, channels };
}

gossip('unicast crosses a 5-peer line hop by hop', async () => {
  const mesh = await startMesh(5, 'line');
  try {
    await waitUntil(mesh.routers, () => converged(mesh.routers), 10_000, () => 'line to converge');
    const { unicasts, channels } = recordingChannel(mesh.routers, 'test');
    const first = mesh.routers[0] as MeshRouter;
    const last = mesh.routers[4] as MeshRouter;
    assert.ok(channels[0]?.unicast(last.selfName, Buffer.from('hello end')));
    await waitUntil(mesh.routers, () => (unicasts.get(last.selfName)?.length ?? 0) > 0, 5000, () => 'the unicast');
    assert.equal(unicasts.get(last.selfName), [`${first.selfName}:hello end`]);
    for (const r of mesh.routers.slice(0, 4)) assert.equal(unicasts.get(r.selfName), [], 'intermediate peers only relay');
  } finally {
    await mesh.stop();
  }
});

for (const shape of ['line', 'ring', 'star', 'random'] as Shape[]) {
  gossip(`broadcast in a 9-peer ${shape} reaches every peer exactly once`, async () => {
    const mesh = await startMesh(9, shape);
    try {
      await waitUntil(mesh.routers, () => converged(mesh.routers), 10_000, () => `${shape} to converge`);
      const { broadcasts, channels } = recordingChannel(mesh.routers, 'test');
      const sources = [0, 4, 8];
      for (const i of sources) channels[i]?.broadcast(Buffer.from(`from ${i}`));
      const expected = sources.length;
      const delivered = () =>
        mesh.routers.every((r, i) => (broadcasts.get(r.selfName)?.length ?? 0) === expected - (sources.includes(i) ? 1 : 0));
      await waitUntil(mesh.routers, delivered, 5000, () => 'all broadcasts');
      // Give stray duplicates a chance to show up before counting.
      await new Promise((resolve) => setTimeout(resolve, 100));
      mesh.routers.forEach((r, i) => {
        const got = broadcasts.get(r.selfName) ?? [];
        assert.is(got.length, expected - (sources.includes(i) ? 1 : 0), `${r.nickname} got each broadcast once`);
        assert.is(new Set(got).size, got.length, `${r.nickname} got no duplicates`);
      });
    } finally {
      await mesh.stop();
    }
  });
}

gossip.run();
