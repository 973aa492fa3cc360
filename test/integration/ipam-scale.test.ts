// IPAM consensus at scale and under slow links: it completes, deterministically (FakeClock), without a flood.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, FakeClock, type TestMesh } from '../../src/testing/index.js';

/** Advances the fake clock until every promise settles or `maxMs` virtual ms passed; returns what settled. */
async function settle<T>(mesh: TestMesh, clock: FakeClock, work: readonly Promise<T>[], maxMs: number): Promise<{ done: number; virtualMs: number }> {
  let done = 0;
  for (const w of work) w.then(() => (done += 1), () => undefined);
  const start = clock.now();
  while (done < work.length && clock.now() - start < maxMs) await mesh.advance(1);
  return { done, virtualMs: clock.now() - start };
}

test('consensus completes when a quorum is farther away than the retry period (each retry used to supersede its own proposal: live-lock)', async () => {
  // A line of 6 with 60 ms links: the promises of a quorum (4) come back after 360 ms, while the test mesh
  // retries every 200 ms. Before the fix the proposer started a new round at every tick, so no round ever
  // collected its quorum and the allocation waited forever.
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: 6, topology: 'line', clock, conditions: { latencyMs: 60 }, overlay: { dns: false } });
  try {
    await mesh.ready({ timeoutMs: 60_000 });
    const ipam = mesh.overlay(0).ipam;
    assert.ok(ipam);
    const allocation = ipam.allocate('first');
    const { done, virtualMs } = await settle(mesh, clock, [allocation], 10_000);
    assert.is(done, 1, `no address after ${virtualMs} virtual ms: ${ipam.describeState()}`);
    assert.match(await allocation, /^10\.3[2-9]\.|^10\.4[0-7]\./);
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test('every peer of a slow line asks at once: the competing proposers still agree (no duelling live-lock)', async () => {
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: 7, topology: 'line', clock, conditions: { latencyMs: 40 }, overlay: { dns: false } });
  try {
    await mesh.ready({ timeoutMs: 60_000 });
    const work = mesh.overlays.map((o, i) => (o.ipam as NonNullable<typeof o.ipam>).allocate(`c${i}`));
    const { done, virtualMs } = await settle(mesh, clock, work, 20_000);
    assert.is(done, work.length, `${done} of ${work.length} allocations after ${virtualMs} virtual ms`);
    const addresses = await Promise.all(work);
    assert.is(new Set(addresses).size, addresses.length, 'distinct addresses');
    await mesh.advance(1000); // the last ring updates cross the line
    const rings = new Set(mesh.overlays.map((o) => JSON.stringify(o.ipam?.status().owners.map((x) => [x.peer, x.ranges]))));
    assert.is(rings.size, 1, `every peer holds the same ring: ${[...rings].join('\n')}`);
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test.run();
