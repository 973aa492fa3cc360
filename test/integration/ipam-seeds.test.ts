// IPAM seeding through Overlay as users build it: the default initial division is consensus among the
// given peers + 1, and a ring seeded by other peers is refused loudly instead of merged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { testNetworkKey } from '../helpers/mesh.js';
import { freePorts } from '../helpers/ports.js';
import { formatStatus } from '../../src/cli/format.js';

const FAST_TUNING: OverlayOptions['tuning'] = {
  topologyDelayMs: 5,
  gcDelayMs: 5,
  gossipIntervalMs: 200,
  backoff: { initialIntervalMs: 50, maxIntervalMs: 500 },
  sleeve: { fastHeartbeatMs: 50 },
  ipamTickMs: 100,
};

async function waitFor(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Overlays that each list every other one in `peers`, as the README's quick start does; no `ipam.init`. */
async function group(size: number, nickname: string, warnings: string[]): Promise<Overlay[]> {
  const networkKey = await testNetworkKey();
  const ports = await freePorts(size);
  return ports.map((port, i) => {
    const overlay = new Overlay({
      nickname: `${nickname}${i}`,
      listen: `127.0.0.1:${port}`,
      peers: ports.filter((p) => p !== port).map((p) => `127.0.0.1:${p}`),
      networkKey,
      ipam: { range: '10.40.0.0/24' },
      tuning: FAST_TUNING,
    });
    overlay.on('warning', (message) => warnings.push(`${nickname}${i}: ${message}`));
    return overlay;
  });
}

test('three peers built as the README shows (peers listed, no ipam.init) get distinct addresses', async () => {
  const warnings: string[] = [];
  const overlays = await group(3, 'p', warnings);
  try {
    await Promise.all(overlays.map((o) => o.start()));
    // Attach at once on every peer: before the links are up, nobody may divide the range alone.
    const endpoints = await Promise.all(overlays.map((o, i) => o.attach({ name: `ep${i}` })));
    const addresses = endpoints.map((e) => e.info.address);
    assert.is(new Set(addresses).size, 3, addresses.join(' '));
    await waitFor('one ring everywhere', 5_000, () => overlays.every((o) => o.ipam?.status().owners.length === 3));
    const seeds = overlays[0]?.ipam?.status().seeds ?? [];
    assert.ok(seeds.length >= 2, `a majority of the three seeded the ring: ${seeds.join(', ')}`);
    for (const o of overlays) {
      assert.equal(o.ipam?.status().conflicts, [], 'no conflicts');
      assert.equal(o.ipam?.status().seeds, seeds, 'one ring, with the same seeds everywhere');
    }
    assert.equal(warnings, []);
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test('two groups seeded apart and then joined: the rings are not merged, it is loud, and the link stays up', async () => {
  const warnings: string[] = [];
  const left = await group(2, 'l', warnings);
  const right = await group(2, 'r', warnings);
  const all = [...left, ...right];
  try {
    await Promise.all(all.map((o) => o.start()));
    await Promise.all(all.map((o, i) => o.attach({ name: `ep${i}` })));
    const [l0, l1] = left as [Overlay, Overlay];
    const [r0] = right as [Overlay, Overlay];
    const leftSeeds = l0.ipam?.status().seeds;
    const rightSeeds = r0.ipam?.status().seeds;
    assert.is(leftSeeds?.length, 2);
    assert.not.equal(leftSeeds, rightSeeds);

    l1.connect(`127.0.0.1:${r0.router.port}`);
    await waitFor('the groups are linked', 10_000, () => l0.peers().length === 4 && r0.peers().length === 4);
    await waitFor('every peer refuses the other ring', 10_000, () =>
      all.every((o) => o.status().warnings.some((w) => /seeded by different peers/.test(w))),
    );
    for (const o of all) {
      const status = o.ipam?.status();
      assert.is(status?.owners.length, 2, `${o.router.nickname} kept its own ring: ${JSON.stringify(status?.owners)}`);
      assert.equal(status?.conflicts, [], 'nothing merged, so nothing conflicts');
    }
    assert.equal(l0.ipam?.status().seeds, leftSeeds);
    assert.equal(r0.ipam?.status().seeds, rightSeeds);
    assert.ok(warnings.some((w) => /^l1: IP allocation was seeded by different peers/.test(w)), warnings.join('\n'));
    await waitFor('both peers of the other group are refused', 5_000, () => l1.ipam?.status().refusedRings.length === 2);
    assert.match(l1.metrics(), /^weave_ipam_seed_conflicts 2$/m);
    const refused = l1.ipam?.status().refusedRings ?? [];
    assert.equal(refused.map((r) => r.peer).sort(), right.map((o) => o.self.id).sort());
    for (const r of refused) assert.equal(r.seeds, rightSeeds);
    assert.is(warnings.filter((w) => w.startsWith('l1: ')).length, 1, 'one warning per foreign ring, not per peer of it');
    const report = formatStatus(l1.status()); // what `weave-ts status` prints
    assert.match(report, /RefusedRings: 2 peer\(s\) whose ring was seeded by different peers/);
    assert.match(report, new RegExp(`Seeds: ${(leftSeeds ?? []).join(', ')}`));
    assert.match(report, new RegExp(`WARNING: IP allocation was seeded by different peers: the ring of ${r0.self.id} \\(r0\\)`));

    // Everything else still crosses the link: names from the other group resolve.
    await waitFor('names cross the link', 5_000, () => (l0.dns?.lookup('ep2').length ?? 0) === 1);
    const before = warnings.length;
    await new Promise((resolve) => setTimeout(resolve, 600)); // a few gossip rounds
    assert.ok(l1.status().links.some((l) => l.peer === r0.self.id && l.direct), 'the link stays up');
    assert.is(warnings.length, before, 'one warning per peer and ring, not one per gossip round');
  } finally {
    await Promise.all(all.map((o) => o.stop()));
  }
});

test.run();
