// Two incarnations of one peer name alive at once: the newer is refused mesh-wide from any vantage point,
// the owner's links never flap, and a genuine restart is still admitted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeshRouter, type LinkFailure } from '../../src/mesh/router.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { formatPeerName } from '../../src/wire/peer-name.js';
import type { WeaveError } from '../../src/errors.js';
import { FAST, startMesh, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { formatStatus } from '../../src/cli/format.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Watch {
  down: string[];
  restarted: string[];
  collisions: string[];
}

function watch(router: MeshRouter, out: Watch): void {
  router.on('connection:down', (l, e) => out.down.push(`${router.nickname}: ${l.nickname} ${e?.code ?? 'clean'}`));
  router.on('peer:restarted', (p) => out.restarted.push(`${router.nickname}: ${p.nickname}`));
  router.on('name:collision', (c) => out.collisions.push(`${router.nickname}: ${c.refused === router.uid ? 'refused' : 'kept'} ${c.message}`));
}

test('an impostor using a live peer name dials other peers: it is refused everywhere, the owner never flaps', async () => {
  // Owner p0 linked to p1 and p2 (a full triangle).
  const mesh = await startMesh(3, 'full');
  const networkKey = await testNetworkKey();
  const [owner, c, d] = mesh.routers as [MeshRouter, MeshRouter, MeshRouter];
  const seen: Watch = { down: [], restarted: [], collisions: [] };
  for (const r of mesh.routers) watch(r, seen);
  const impostor = new MeshRouter({ ...FAST, name: owner.selfName, nickname: 'impostor', networkKey });
  const failures: LinkFailure[] = [];
  impostor.on('connection:failed', (f) => failures.push(f));
  watch(impostor, seen);
  const ipam = new Ipam(impostor, { range: '10.44.0.0/24', init: { consensus: 1 } });
  try {
    await waitUntil(mesh.routers, () => mesh.routers.every((r) => r.linkInfos().length === 2), 5_000, () => 'the triangle');
    await impostor.start();
    await ipam.start();
    // The impostor dials the owner's neighbours, never the owner.
    impostor.connect(`127.0.0.1:${c.port}`);
    impostor.connect(`127.0.0.1:${d.port}`);
    await waitUntil([impostor], () => impostor.refusal !== undefined, 5_000, () => 'the impostor refused');
    await sleep(1_500); // backoff would have re-dialled several times by now
    assert.is(impostor.refusal?.code, 'name-collision');
    assert.match(impostor.refusal?.message ?? '', new RegExp(`peer name ${formatPeerName(owner.selfName)} is in use by a live peer`));
    assert.ok(failures.some((f) => f.error.code === 'name-collision'), 'the impostor saw why');
    assert.equal(impostor.linkInfos(), [], 'the impostor holds no link');
    assert.equal(seen.down.filter((x) => !x.startsWith('impostor:')), [], 'no link of the owner or its neighbours went down');
    assert.ok(seen.down.some((x) => /^impostor: .* name-collision$/.test(x)), `the impostor's link ended with the reason: ${seen.down.join(' | ')}`);
    assert.equal(seen.restarted, [], 'nobody took the impostor for a restart of the owner');
    for (const r of [c, d]) {
      assert.is(r.link(owner.selfName)?.nickname, 'p0', `${r.nickname} keeps its link to the real owner`);
      assert.is(r.peerRecord(owner.selfName)?.uid, owner.uid);
    }
    assert.ok(seen.collisions.some((x) => x.startsWith('p0: kept')), `the owner is told: ${seen.collisions.join(' | ')}`);
    assert.ok(seen.collisions.some((x) => x.startsWith('impostor: refused')), 'and so is the impostor');
    // Every peer refuses it from now on, without asking anyone again.
    for (const r of mesh.routers) assert.ok(r.isRefused(owner.selfName, impostor.uid), `${r.nickname} refuses the impostor's incarnation`);
    // The impostor allocates nothing.
    try {
      await ipam.allocate('x');
      assert.unreachable('a refused peer must not allocate');
    } catch (error) {
      assert.is((error as WeaveError).code, 'name-collision', String(error));
    }
  } finally {
    await ipam.stop();
    await impostor.stop();
    await mesh.stop();
  }
});

test('through Overlay: the impostor attaches nothing and says why; the owner reports it', async () => {
  const networkKey = await testNetworkKey();
  const tuning: OverlayOptions['tuning'] = { topologyDelayMs: 5, gcDelayMs: 5, backoff: { initialIntervalMs: 50, maxIntervalMs: 500 }, ipamTickMs: 100 };
  const base = { listen: '127.0.0.1:0', networkKey, tuning, ipam: { range: '10.45.0.0/24', init: { consensus: 1 } } } as const;
  const owner = new Overlay({ ...base, nickname: 'owner' });
  const other = new Overlay({ ...base, nickname: 'other' });
  let impostor: Overlay | undefined;
  const ownerWarnings: string[] = [];
  owner.on('warning', (w) => ownerWarnings.push(w));
  try {
    await owner.start();
    await other.start();
    other.connect(`127.0.0.1:${owner.router.port}`);
    await waitUntil([owner.router, other.router], () => other.router.link(owner.router.selfName) !== undefined, 5_000);
    await owner.attach({ name: 'db' });
    impostor = new Overlay({ ...base, nickname: 'impostor', name: owner.self.id, peers: [`127.0.0.1:${other.router.port}`] });
    await impostor.start();
    await waitUntil([impostor.router], () => impostor?.router.refusal !== undefined, 5_000, () => 'the impostor refused');
    try {
      await impostor.attach({ name: 'db2' });
      assert.unreachable('a refused peer attaches nothing');
    } catch (error) {
      assert.is((error as WeaveError).code, 'name-collision');
      assert.match((error as Error).message, /is in use by a live peer/);
    }
    assert.ok(impostor.status().warnings.some((w) => /Restart it with a unique name/.test(w)), impostor.status().warnings.join('\n'));
    assert.match(formatStatus(impostor.status()), /WARNING: peer name .* is in use by a live peer/);
    await waitUntil([owner.router], () => owner.status().warnings.some((w) => /another peer started with our name/.test(w)), 5_000);
    assert.ok(ownerWarnings.some((w) => /another peer started with our name/.test(w)));
    assert.is(owner.status().router.refusals.length, 1);
    assert.is(other.status().router.refusals[0]?.refused, String(impostor.router.uid));
  } finally {
    await impostor?.stop();
    await other.stop();
    await owner.stop();
  }
});

test('a peer that restarts with its name is admitted as a restart, also while a neighbour still holds the dead link', async () => {
  const networkKey = await testNetworkKey();
  const mesh = await startMesh(2, 'line');
  const [a, b] = mesh.routers as [MeshRouter, MeshRouter];
  const name = testName(9);
  // The first incarnation reaches a through a proxy that can freeze: a frozen host closes nothing.
  const proxy = await startProxy(a.port);
  const first = new MeshRouter({ ...FAST, name, nickname: 'first', networkKey });
  let second: MeshRouter | undefined;
  try {
    await first.start();
    first.connect(`127.0.0.1:${proxy.port}`);
    await waitUntil([a, b], () => a.isReachable(name) && b.isReachable(name), 5_000, () => 'first incarnation reachable');
    proxy.freeze();
    second = new MeshRouter({ ...FAST, name, nickname: 'second', networkKey, incarnationProbeMs: 300 });
    await second.start();
    second.connect(`127.0.0.1:${b.port}`);
    await waitUntil([b], () => b.link(name)?.nickname === 'second', 5_000, () => 'b links to the new incarnation');
    assert.is(second.refusal, undefined, 'a restart is not a collision');
    assert.not.ok(b.isRefused(name, second.uid));
    assert.ok(a.link(name) !== undefined, 'a still holds the frozen link: the probe through it went unanswered');
  } finally {
    await second?.stop();
    await first.stop();
    await proxy.close();
    await mesh.stop();
  }
});

test.run();
