// Peers that stop are forgotten by every survivor within a bound set by the topology timers, not by the
// gossip interval, and stale records held by other peers never bring them back (issue 13).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, randomTopology } from '../../src/testing/index.js';
import { waitUntil } from '../helpers/mesh.js';

const PEERS = 30;
/** Far longer than the test runs: periodic anti-entropy must not be what makes survivors forget. */
const GOSSIP_INTERVAL_MS = 60_000;
const FORGET_LIMIT_MS = 5_000;

test(`3 of ${PEERS} peers stop: every survivor forgets them within ${FORGET_LIMIT_MS} ms, with no peer:up for them on the way`, async () => {
  const mesh = await createTestMesh({
    peers: PEERS,
    topology: randomTopology(PEERS, { seed: 42 }),
    seed: 7,
    overlay: { ipam: false, dns: false, tuning: { gossipIntervalMs: GOSSIP_INTERVAL_MS } },
  });
  try {
    await mesh.ready({ timeoutMs: 30_000 });
    const gone = new Set([3, 10, 17]);
    const goneNames = new Set([...gone].map((i) => mesh.overlay(i).router.selfName));
    const survivors = mesh.overlays.filter((_, i) => !gone.has(i)).map((o) => o.router);
    const resurrected: string[] = [];
    for (const r of survivors) r.on('peer:up', (p) => void (goneNames.has(p.name) && resurrected.push(`${r.nickname} re-learned ${p.nickname}`)));
    const knowsNoneGone = (): boolean => survivors.every((r) => r.topologyRecords().every((rec) => !goneNames.has(rec.name)));
    const started = Date.now();
    await Promise.all([...gone].map((i) => mesh.overlay(i).stop()));
    const holding = (): string => survivors.filter((r) => r.topologyRecords().some((rec) => goneNames.has(rec.name))).map((r) => r.nickname).join(', ');
    await waitUntil(survivors, knowsNoneGone, FORGET_LIMIT_MS, () => `survivors still holding a stopped peer's record after ${Date.now() - started} ms: ${holding()}`);
    // Stale copies still in flight when the last survivor forgot must not bring them back.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.ok(knowsNoneGone(), 'still forgotten a second later');
    assert.equal(resurrected.slice(0, 5), [], `${resurrected.length} peer:up events for stopped peers`);
    for (const r of survivors) assert.is(r.topologyRecords().length, PEERS - gone.size, `${r.nickname} knows every survivor`);
  } finally {
    await mesh.stop();
  }
});

test.run();
