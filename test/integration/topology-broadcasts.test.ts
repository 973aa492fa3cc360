// How many topology broadcasts a new link costs: its coming up and its data path being established go out
// together, and a data path that never works is still published, after a bounded wait.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, FakeClock, type TestMesh } from '../../src/testing/index.js';

/** Topology messages `peer` sent: one whole state down its one link, plus one per broadcast of its record. */
const topologySent = (mesh: TestMesh, peer: string): number => mesh.overlay(peer).router.status().gossip['topology']?.sent ?? 0;

test('a link that comes up and is established moments later costs one broadcast, not two', async () => {
  const clock = new FakeClock();
  // 20 ms each way: heartbeat, answer, fragmentation test and answer take the data path ~80 ms to establish.
  const mesh = await createTestMesh({ peers: ['a', 'b'], clock, conditions: { latencyMs: 20 } });
  try {
    await mesh.ready();
    await mesh.advance(200);
    const link = mesh.overlay('a').router.linkInfos()[0];
    assert.ok(link?.established, 'the link is established');
    assert.is(topologySent(mesh, 'a'), 2, 'the whole state to the new neighbour, then one broadcast of our record');
    assert.is(topologySent(mesh, 'b'), 2);
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test('a link whose data path never works is published as not established after at most 2 s', async () => {
  const clock = new FakeClock();
  // Every datagram lost: heartbeats are never answered, the streams still work.
  const mesh = await createTestMesh({ peers: ['a', 'b'], clock, conditions: { loss: 1 } });
  try {
    let waited = 0;
    while (mesh.overlay('a').router.linkInfos().length === 0 && waited < 1000) {
      await mesh.advance(1);
      waited += 1;
    }
    assert.is(mesh.overlay('a').router.linkInfos().length, 1, 'the link came up');
    await mesh.advance(1500);
    assert.is(topologySent(mesh, 'a'), 1, 'only the whole state to the neighbour while the data path may still come up');
    await mesh.advance(700);
    assert.is(topologySent(mesh, 'a'), 2, 'then our record, with the link not established');
    const record = mesh.overlay('b').router.topologyRecords().find((r) => r.name === mesh.overlay('a').router.selfName);
    assert.equal(
      record?.connections.map((c) => c.established),
      [false],
    );
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test.run();
