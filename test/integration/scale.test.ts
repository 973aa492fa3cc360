// A 100-peer mesh in one process (issue 13): it converges, routes are loop-free and agree, every broadcast
// tree reaches each peer once, names spread, and peers that leave are forgotten everywhere without coming back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, randomTopology, type TestMesh } from '../../src/testing/index.js';
import type { MeshRouter } from '../../src/mesh/router.js';
import { simulateBroadcast, walkUnicast } from '../helpers/mesh.js';

const PEERS = 100;

async function until(what: string, check: () => boolean, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const routersOf = (mesh: TestMesh, except: ReadonlySet<number> = new Set()): MeshRouter[] => mesh.overlays.filter((_, i) => !except.has(i)).map((o) => o.router);

test(`${PEERS} peers on a random graph converge: loop-free routes, broadcast once to each, a name resolvable on every peer`, async () => {
  const mesh = await createTestMesh({ peers: PEERS, topology: randomTopology(PEERS, { seed: 42 }), seed: 3, overlay: { ipam: false } });
  try {
    await mesh.ready({ timeoutMs: 60_000 });
    const routers = routersOf(mesh);
    walkUnicast(routers);
    for (const source of [routers[0], routers[37], routers[99]] as MeshRouter[]) {
      const receipts = simulateBroadcast(routers, source);
      assert.is(receipts.size, PEERS, `a broadcast from ${source.nickname} reaches every peer`);
      for (const [, count] of receipts) assert.is(count, 1, `a broadcast from ${source.nickname} arrives once`);
    }
    await mesh.overlay(0).attach({ name: 'probe', ip: '10.32.0.200/12' });
    await Promise.all(mesh.overlays.map((o) => o.dns?.waitFor('probe', { timeoutMs: 20_000 })));
  } finally {
    await mesh.stop();
  }
});

test(`churn in ${PEERS} peers: 10 stopped peers are forgotten by every survivor and stay forgotten`, async () => {
  const mesh = await createTestMesh({ peers: PEERS, topology: randomTopology(PEERS, { seed: 43 }), seed: 4, overlay: { ipam: false, dns: false } });
  try {
    await mesh.ready({ timeoutMs: 60_000 });
    const gone = new Set([5, 15, 25, 35, 45, 55, 65, 75, 85, 95]);
    const goneNames = new Set([...gone].map((i) => mesh.overlay(i).router.selfName));
    await Promise.all([...gone].map((i) => mesh.overlay(i).stop()));
    const survivors = routersOf(mesh, gone);
    const forgotten = (): boolean => survivors.every((r) => r.topologyRecords().every((rec) => !goneNames.has(rec.name)) && r.topologyRecords().length === PEERS - gone.size);
    await until('every survivor forgets the stopped peers', forgotten, 30_000);
    // Longer than a gossip interval of the test mesh (5 s): stale records must not bring them back.
    const resurrected: string[] = [];
    for (const r of survivors) r.on('peer:up', (p) => void (goneNames.has(p.name) && resurrected.push(`${r.nickname} re-learned ${p.nickname}`)));
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    assert.equal(resurrected, []);
    assert.ok(forgotten(), 'still forgotten after a gossip interval');
    walkUnicast(survivors);
  } finally {
    await mesh.stop();
  }
});

test.run();
