import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Dns, type DnsOptions } from '../../src/dns/dns.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { converged, edges, FAST, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { PartitionableNetwork } from '../helpers/partition.js';

const run = promisify(execFile);
const OPTIONS: DnsOptions = { server: { listen: '127.0.0.1:0', upstream: ['127.0.0.1:9'] } };

async function dnsMesh(n: number, net: PartitionableNetwork, options: DnsOptions = OPTIONS) {
  const networkKey = await testNetworkKey();
  const routers = Array.from(
    { length: n },
    (_, i) => new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, networkKey, connectSocket: net.connector(testName(i)) }),
  );
  const dnses = routers.map((r) => new Dns(r, options));
  await Promise.all(routers.map((r) => r.start()));
  for (const r of routers) net.register(r.selfName, r.port);
  for (const [i, j] of edges('ring', n)) routers[i]?.connect(`127.0.0.1:${routers[j]?.port}`);
  await waitUntil(routers, () => converged(routers), 10_000);
  await Promise.all(dnses.map((d) => d.start()));
  return {
    routers,
    dnses,
    stop: async () => {
      await Promise.all(dnses.map((d) => d.stop()));
      await Promise.all(routers.map((r) => r.stop()));
    },
  };
}

test('5 peers: a name added on one resolves on every other within 1 s (real dig too), and removal is seen everywhere', async () => {
  const net = new PartitionableNetwork();
  const { routers, dnses, stop } = await dnsMesh(5, net);
  try {
    const started = Date.now();
    dnses[0]?.add('db', '10.32.0.7', { id: 'c1' });
    await waitUntil(routers, () => dnses.every((d) => d.lookup('db.weave.local.').includes('10.32.0.7')), 1000, () => 'the name everywhere');
    assert.ok(Date.now() - started < 1000);
    const port = dnses[3]?.port as number;
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), 'DB.Weave.Local', 'A', '+short', '+tries=1', '+time=2']);
    assert.is(stdout.trim(), '10.32.0.7');
    dnses[0]?.remove('db');
    await waitUntil(routers, () => dnses.every((d) => d.lookup('db').length === 0), 1000, () => 'the removal everywhere');
  } finally {
    await stop();
  }
});

test('partition: the far side keeps serving the names (marked stale) within the grace period; heal converges', async () => {
  const net = new PartitionableNetwork();
  const { routers, dnses, stop } = await dnsMesh(5, net, { ...OPTIONS, staleGraceMs: 60_000 });
  try {
    dnses[0]?.add('api', '10.32.0.8', { id: 'a' });
    await waitUntil(routers, () => dnses.every((d) => d.lookup('api').length === 1), 2000);
    net.partition(
      routers.slice(0, 2).map((r) => r.selfName),
      routers.slice(2).map((r) => r.selfName),
    );
    await waitUntil(routers, () => routers[3]?.peer(routers[0]?.selfName as number) === undefined || !routers[3]?.isReachable(routers[0]?.selfName as number), 5000);
    assert.equal(dnses[3]?.lookup('api'), ['10.32.0.8'], 'still served across the partition');
    // DNS learns of reachability with `topology:changed`, which comes once per burst of changes (≤ 100 ms).
    await waitUntil(routers, () => dnses[3]?.status().records.some((r) => r.name === 'api.weave.local.' && r.stale) ?? false, 1000, () => 'api marked stale');
    assert.equal(dnses[3]?.lookup('api'), ['10.32.0.8'], 'and still served');
    dnses[4]?.add('late', '10.32.0.9', { id: 'l' });
    net.heal();
    await waitUntil(routers, () => converged(routers) && dnses.every((d) => d.lookup('late').length === 1 && d.lookup('api').length === 1), 15_000, () => 'convergence after heal');
    await waitUntil(routers, () => !dnses[3]?.status().records.some((r) => r.stale), 5000, () => 'stale flags cleared');
  } finally {
    await stop();
  }
});

test('a restarted peer cleans up the records of its previous incarnation', async () => {
  const net = new PartitionableNetwork();
  const { routers, dnses, stop } = await dnsMesh(3, net);
  let fresh: { router: MeshRouter; dns: Dns } | undefined;
  try {
    dnses[2]?.add('old-service', '10.32.0.10', { id: 'o' });
    await waitUntil(routers, () => dnses.every((d) => d.lookup('old-service').length === 1), 2000);
    await dnses[2]?.stop();
    await routers[2]?.stop();
    const networkKey = await testNetworkKey();
    const router = new MeshRouter({ ...FAST, name: testName(2), nickname: 'p2-again', networkKey });
    const dns = new Dns(router, OPTIONS);
    fresh = { router, dns };
    await router.start();
    await dns.start();
    router.connect(`127.0.0.1:${routers[0]?.port}`);
    const all = [routers[0] as MeshRouter, routers[1] as MeshRouter, router];
    await waitUntil(all, () => [dnses[0], dnses[1], dns].every((d) => d?.lookup('old-service').length === 0), 5000, () => 'the old records gone');
  } finally {
    await fresh?.dns.stop();
    await fresh?.router.stop();
    await stop();
  }
});

test('names of a peer dropped after its grace period come back when it is reachable again', async () => {
  const net = new PartitionableNetwork();
  const { routers, dnses, stop } = await dnsMesh(3, net, { ...OPTIONS, staleGraceMs: 100 });
  try {
    dnses[0]?.add('svc', '10.32.0.11', { id: 's' });
    await waitUntil(routers, () => dnses.every((d) => d.lookup('svc').length === 1), 2000);
    net.partition([routers[0]?.selfName as number], routers.slice(1).map((r) => r.selfName));
    await waitUntil(routers, () => dnses[2]?.lookup('svc').length === 0, 5000, () => 'the names to go after the grace');
    net.heal();
    await waitUntil(routers, () => dnses[2]?.lookup('svc').length === 1, 15_000, () => 'the names to come back');
  } finally {
    await stop();
  }
});

test.run();
