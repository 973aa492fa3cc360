// Idle anti-entropy (issue 13): with nothing changing, periodic gossip is a digest per neighbour, not the
// whole topology; a peer whose view lost a record gets it back within one gossip interval.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, randomTopology, FakeClock } from '../../src/testing/index.js';
import type { MeshRouter } from '../../src/mesh/router.js';
import type { Topology } from '../../src/mesh/topology.js';

const GOSSIP_INTERVAL_MS = 5_000; // the test mesh's

const sent = (routers: readonly MeshRouter[], channel: string): number => routers.reduce((sum, r) => sum + (r.status().gossip[channel]?.sent ?? 0), 0);

test('an idle mesh gossips digests only, and a lost record comes back within one gossip interval', async () => {
  const clock = new FakeClock();
  const peers = 20;
  await using mesh = await createTestMesh({ peers, topology: randomTopology(peers, { seed: 9 }), clock, overlay: { ipam: false, dns: false } });
  await mesh.ready();
  await mesh.advance(1_000);
  const routers = mesh.overlays.map((o) => o.router);
  const topology0 = sent(routers, 'topology');
  const digests0 = sent(routers, 'topology-digest');
  await mesh.advance(3 * GOSSIP_INTERVAL_MS);
  assert.is(sent(routers, 'topology') - topology0, 0, 'no whole topology sent while nothing changes');
  assert.ok(sent(routers, 'topology-digest') - digests0 >= 3 * peers, 'every peer sent digests each interval');

  // Peer 0 loses peer 7's record (as if a relay had missed it): the next digest exchange restores it.
  const lost = mesh.overlay(7).router.selfName;
  const view = (mesh.overlay(0).router as unknown as { topology: Topology }).topology;
  assert.ok(view.discard(lost, view.get(lost)?.uid ?? 0n));
  assert.not.ok(view.has(lost));
  await mesh.advance(GOSSIP_INTERVAL_MS + 100);
  assert.ok(view.has(lost), "peer 7's record is back on peer 0");
});

test.run();
