import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam, type IpamOptions } from '../../src/ipam/ipam.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { WeaveError } from '../../src/errors.js';
import { converged, edges, FAST, startMesh, testName, testNetworkKey, waitUntil, type Shape } from '../helpers/mesh.js';

const FAST_IPAM: IpamOptions = { tickMs: 100 };
/** Every wait in these tests is bounded: a hang fails the test instead of stalling the run. */
const bounded = () => ({ signal: AbortSignal.timeout(8000) });

async function ipamMesh(n: number, shape: Shape, options: IpamOptions | ((i: number) => IpamOptions)) {
  const mesh = await startMesh(n, shape);
  await waitUntil(mesh.routers, () => converged(mesh.routers), 10_000);
  const ipams = mesh.routers.map((r, i) => new Ipam(r, { ...FAST_IPAM, ...(typeof options === 'function' ? options(i) : options) }));
  await Promise.all(ipams.map((x) => x.start()));
  return {
    routers: mesh.routers,
    ipams,
    stop: async () => {
      await Promise.all(ipams.map((x) => x.stop()));
      await mesh.stop();
    },
  };
}

const ringKey = (ipam: Ipam) => JSON.stringify(ipam.status().owners.map((o) => [o.peer, o.ranges]));

test('one peer: lowest free address, idempotent per id, reuse after release', async () => {
  const { ipams, stop } = await ipamMesh(1, 'line', { range: '10.32.0.0/24' });
  try {
    const ipam = ipams[0] as Ipam;
    assert.is(await ipam.allocate('db', bounded()), '10.32.0.1/24');
    assert.is(await ipam.allocate('db', bounded()), '10.32.0.1/24', 'the same id gets the same address');
    assert.is(await ipam.allocate('web', bounded()), '10.32.0.2/24');
    assert.is(await ipam.release('db'), 1);
    assert.is(await ipam.allocate('cache', bounded()), '10.32.0.1/24', 'the lowest free address again');
    assert.equal(ipam.lookup('web'), ['10.32.0.2']);
    assert.is(ipam.status().state, 'ready');
  } finally {
    await stop();
  }
});

test('consensus among 3: nothing is decided by one peer alone, then every peer holds the same ring', async () => {
  const { ipams, stop } = await ipamMesh(3, 'line', { range: '10.32.0.0/16', init: { consensus: 3 } });
  try {
    const [a, b, c] = ipams as [Ipam, Ipam, Ipam];
    const addresses = await Promise.all([a.allocate('x', bounded()), b.allocate('y', bounded()), c.allocate('z', bounded())]);
    assert.is(new Set(addresses).size, 3, `unique addresses: ${addresses.join(' ')}`);
    await waitUntil([], () => ringKey(a) === ringKey(b) && ringKey(b) === ringKey(c), 5000, () => 'identical rings');
    assert.is(a.status().owners.length, 3);
  } finally {
    await stop();
  }
});

test('seed mode divides the ring at once, without consensus', async () => {
  const names = [testName(0), testName(1)];
  const { ipams, stop } = await ipamMesh(2, 'line', { range: '10.40.0.0/24', init: { seed: names } });
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    assert.is(ringKey(a), ringKey(b));
    assert.is(await a.allocate('one', bounded()), '10.40.0.1/24');
    assert.is(await b.allocate('two', bounded()), '10.40.0.128/24');
  } finally {
    await stop();
  }
});

test('an observer owns nothing until it asks, then gets space donated', async () => {
  const { ipams, stop } = await ipamMesh(3, 'full', (i) => ({ range: '10.41.0.0/24', init: i === 2 ? { observer: true } : { consensus: 2 } }));
  try {
    const [a, , observer] = ipams as [Ipam, Ipam, Ipam];
    assert.ok(await a.allocate('first', bounded()));
    const got = await observer.allocate('mine', bounded());
    assert.match(got, /^10\.41\.0\./);
    assert.ok(observer.status().owners.some((o) => o.size > 0 && o.ranges.length > 0));
  } finally {
    await stop();
  }
});

test('a peer that runs out asks a peer with free space and gets a block', async () => {
  const { ipams, stop } = await ipamMesh(2, 'line', { range: '10.42.0.0/28', init: { consensus: 2 } });
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    const mine: string[] = [];
    for (let i = 0; i < 10; i++) mine.push(await a.allocate(`c${i}`, bounded()));
    assert.is(new Set(mine).size, 10);
    const theirs = await b.allocate('b0', bounded());
    assert.not.ok(mine.includes(theirs));
  } finally {
    await stop();
  }
});

test('concurrent rmpeer of the same dead peer on two peers converges without conflict or dropped links', async () => {
  const { routers, ipams, stop } = await ipamMesh(3, 'full', { range: '10.43.0.0/16', init: { consensus: 3 } });
  try {
    const [a, b, c] = ipams as [Ipam, Ipam, Ipam];
    await Promise.all([a.allocate('a', bounded()), b.allocate('b', bounded()), c.allocate('c', bounded())]);
    const dead = routers[2] as MeshRouter;
    await c.stop();
    await dead.stop();
    await waitUntil(routers.slice(0, 2), () => !routers[0]?.isReachable(dead.selfName) && !routers[1]?.isReachable(dead.selfName), 5000);
    const conflicts: unknown[] = [];
    a.on('conflict', (x) => conflicts.push(x));
    b.on('conflict', (x) => conflicts.push(x));
    const movedA = a.rmpeer(dead.selfName);
    const movedB = b.rmpeer(dead.selfName);
    assert.ok(movedA > 0 && movedA === movedB);
    await waitUntil(routers.slice(0, 2), () => ringKey(a) === ringKey(b), 5000, () => 'the rings to agree');
    assert.equal(conflicts, []);
    assert.not.ok(a.status().owners.some((o) => o.peer === dead.self.id));
    assert.is(routers[0]?.status().stats.terminations, 1, 'only the link to the dead peer went down');
  } finally {
    await stop();
  }
});

test('rmpeer refuses a reachable peer', async () => {
  const { routers, ipams, stop } = await ipamMesh(2, 'line', { range: '10.44.0.0/24', init: { consensus: 2 } });
  try {
    await ipams[0]?.allocate('x', bounded());
    assert.throws(() => ipams[0]?.rmpeer((routers[1] as MeshRouter).selfName), (e: unknown) => e instanceof WeaveError && e.code === 'peer-reachable');
  } finally {
    await stop();
  }
});

test('a restart with the data directory keeps every allocation; a corrupt file is a typed error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wt-ipam-'));
  const networkKey = await testNetworkKey();
  const make = () => new MeshRouter({ ...FAST, name: testName(0), networkKey });
  try {
    let router = make();
    await router.start();
    let ipam = new Ipam(router, { ...FAST_IPAM, range: '10.45.0.0/24', dataDir: dir });
    await ipam.start();
    const first = await ipam.allocate('keep-me', bounded());
    await ipam.allocate('and-me', bounded());
    await ipam.stop();
    await router.stop();

    router = make();
    await router.start();
    ipam = new Ipam(router, { ...FAST_IPAM, range: '10.45.0.0/24', dataDir: dir });
    await ipam.start();
    assert.equal(ipam.lookup('keep-me'), [first.split('/')[0]]);
    assert.is(await ipam.allocate('new', bounded()), '10.45.0.3/24', 'restored addresses stay taken');
    await ipam.stop();
    await router.stop();

    await writeFile(join(dir, 'ipam.db'), Buffer.from('WTIP garbage'));
    router = make();
    await router.start();
    ipam = new Ipam(router, { ...FAST_IPAM, range: '10.45.0.0/24', dataDir: dir });
    try {
      await ipam.start();
      assert.unreachable('a corrupt file must not be ignored');
    } catch (e) {
      assert.instance(e, WeaveError);
      assert.is((e as WeaveError).code, 'corrupt-state');
    }
    await router.stop();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('consensus among 5 with one peer late: the early four decide, the late one adopts the ring', async () => {
  const networkKey = await testNetworkKey();
  const routers = Array.from({ length: 5 }, (_, i) => new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, networkKey }));
  const ipams = routers.map((r) => new Ipam(r, { ...FAST_IPAM, range: '10.46.0.0/16', init: { consensus: 5 } }));
  try {
    await Promise.all(routers.slice(0, 4).map((r) => r.start()));
    for (let i = 1; i < 4; i++) routers[i]?.connect(`127.0.0.1:${routers[0]?.port}`);
    await Promise.all(ipams.slice(0, 4).map((x) => x.start()));
    const early = await Promise.all(ipams.slice(0, 4).map((x, i) => x.allocate(`early${i}`, bounded())));
    assert.is(new Set(early).size, 4);
    assert.is(ipams[0]?.status().owners.length, 4, 'the quorum of 3 decided on the four peers it knew');
    await routers[4]?.start();
    await ipams[4]?.start();
    routers[4]?.connect(`127.0.0.1:${routers[0]?.port}`);
    const late = await ipams[4]?.allocate('late', bounded());
    assert.ok(late && !early.includes(late));
    await waitUntil(routers, () => new Set(ipams.map(ringKey)).size === 1, 5000, () => 'one ring everywhere');
  } finally {
    await Promise.all(ipams.map((x) => x.stop()));
    await Promise.all(routers.map((r) => r.stop()));
  }
});

test('claims: an address owned elsewhere is handed over; one in use elsewhere is refused', async () => {
  const { ipams, stop } = await ipamMesh(2, 'line', { range: '10.47.0.0/24', init: { consensus: 2 } });
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    await a.allocate('a0', bounded());
    const inUse = await b.allocate('b0', bounded()); // b owns the upper half
    await a.claim('manual', '10.47.0.200', bounded());
    assert.equal(a.lookup('manual'), ['10.47.0.200']);
    await waitUntil([], () => b.status().owners.find((o) => o.peer === a.status().owners[0]?.peer) !== undefined, 2000);
    try {
      await a.claim('thief', inUse.split('/')[0] as string, bounded());
      assert.unreachable('an address in use on another peer cannot be claimed');
    } catch (e) {
      assert.is((e as WeaveError).code, 'address-in-use');
    }
  } finally {
    await stop();
  }
});

test('a graceful stop with transfer hands our ranges to a live peer', async () => {
  const { routers, ipams, stop } = await ipamMesh(2, 'line', { range: '10.48.0.0/24', init: { consensus: 2 } });
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    await Promise.all([a.allocate('x', bounded()), b.allocate('y', bounded())]);
    await b.stop({ transfer: true });
    await waitUntil(routers, () => a.status().owners.length === 1, 5000, () => 'a to own the whole range');
    assert.is(a.status().owners[0]?.peer, routers[0]?.self.id);
    assert.is(a.status().owners[0]?.size, 256);
  } finally {
    await stop();
  }
});

test('two waiting allocations for one id get one address', async () => {
  const { ipams, stop } = await ipamMesh(2, 'line', { range: '10.49.0.0/24', init: { consensus: 2 } });
  try {
    const [a] = ipams as [Ipam, Ipam];
    const [x1, x2] = await Promise.all([a.allocate('x', bounded()), a.allocate('x', bounded())]);
    assert.is(x1, x2);
    assert.is(a.lookup('x').length, 1);
  } finally {
    await stop();
  }
});

test('rmpeer of a dead peer that owned the whole ring, on two peers at once, agrees on one heir', async () => {
  const dead = testName(9);
  const { ipams, stop } = await ipamMesh(2, 'line', { range: '10.50.0.0/24', init: { seed: [dead] } });
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    const conflicts: unknown[] = [];
    a.on('conflict', (c) => conflicts.push(c));
    b.on('conflict', (c) => conflicts.push(c));
    assert.is(a.rmpeer(dead), 256);
    assert.is(b.rmpeer(dead), 256);
    await waitUntil([], () => ringKey(a) === ringKey(b), 5000);
    assert.is(a.status().owners.length, 1, 'one heir');
    const [x, y] = await Promise.all([a.allocate('x', bounded()), b.allocate('y', bounded())]);
    assert.is.not(x, y);
    assert.equal(conflicts, []);
  } finally {
    await stop();
  }
});

test('automatic reclaim (opt-in) takes over a peer unreachable for the configured time', async () => {
  const { routers, ipams, stop } = await ipamMesh(2, 'line', (i) => ({
    range: '10.51.0.0/24',
    init: { consensus: 2 },
    ...(i === 0 ? { autoReclaimAfterMs: 300 } : {}),
  }));
  try {
    const [a, b] = ipams as [Ipam, Ipam];
    await Promise.all([a.allocate('x', bounded()), b.allocate('y', bounded())]);
    const warnings: string[] = [];
    a.on('warning', (w) => warnings.push(w));
    await b.stop();
    await routers[1]?.stop();
    await waitUntil([routers[0] as MeshRouter], () => a.status().owners.length === 1, 5000, () => 'the reclaim');
    assert.is(a.status().owners[0]?.size, 256);
    assert.match(warnings.join('\n'), /reclaimed 128 addresses/);
  } finally {
    await stop();
  }
});

test.run();
void edges;
