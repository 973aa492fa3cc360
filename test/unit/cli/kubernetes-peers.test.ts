// KubernetesPeers against a fake API server on 127.0.0.1, with a fake clock stepping the re-reads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, DiscoveryError, OptionsError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { initialPeerCount, KubernetesPeers, kubernetesApiServer, type KubernetesPeersOptions } from '../../../src/cli/kubernetes-peers.js';
import { startFakeKubernetesApi, type FakeKubernetesApi, type FakeNode } from '../../helpers/kubernetes-api.js';
import { selfSignedCertificate } from '../../helpers/tcp-sockets.js';

interface Harness {
  api: FakeKubernetesApi;
  peers: KubernetesPeers;
  clock: FakeClock;
  dir: string;
  tokenFile: string;
  /** connect/forget calls in order, as `connect ADDRESS` / `forget ADDRESS`. */
  calls: string[];
  warnings: { message: string; error: Error }[];
  infos: string[];
  close(): Promise<void>;
}

async function harness(nodes: FakeNode[], options: Partial<KubernetesPeersOptions> = {}): Promise<Harness> {
  const api = await startFakeKubernetesApi(nodes);
  const dir = mkdtempSync(join(tmpdir(), 'wt-kube-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'token-1\n');
  api.token = 'token-1';
  const clock = new FakeClock();
  const h: Harness = {
    api,
    clock,
    dir,
    tokenFile,
    calls: [],
    warnings: [],
    infos: [],
    peers: undefined as unknown as KubernetesPeers,
    close: async () => {
      await h.peers.stop();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  h.peers = new KubernetesPeers({
    apiServer: api.url,
    env: {},
    tokenFile,
    caFile: join(dir, 'ca.crt'),
    nodeName: 'self',
    ownAddresses: () => ['192.0.2.99'],
    connect: (address) => h.calls.push(`connect ${address}`),
    forget: (address) => h.calls.push(`forget ${address}`),
    warn: (message, error) => h.warnings.push({ message, error }),
    info: (message) => h.infos.push(message),
    clock,
    ...options,
  });
  return h;
}

/** Steps the fake clock and waits for the read it started to be applied. */
async function step(h: Harness, ms: number): Promise<void> {
  h.clock.advance(ms);
  await h.peers.idle();
}

const NODES: FakeNode[] = [
  { name: 'self', internal: ['10.0.0.9'] },
  { name: 'a', internal: ['10.0.0.1'], external: ['203.0.113.1'] },
  { name: 'b', external: ['203.0.113.2'] },
  { name: 'c' },
];

test('the first list: own node excluded, InternalIP else ExternalIP at the peer port, every node counted, the token sent', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })));
  try {
    const first = await h.peers.initial();
    assert.equal([...first.peers], [['10.0.0.1:6783', 'a'], ['203.0.113.2:6783', 'b']]);
    assert.equal(first.self.map((n) => n.name), ['self']);
    assert.is(initialPeerCount(first), 4, 'consensus over all the nodes, this one included');
    assert.equal(h.api.requests, [{ url: '/api/v1/nodes?limit=500', authorization: 'Bearer token-1' }]);
    assert.equal(h.calls, [], 'nothing connects before start');
    h.peers.start(first);
    assert.equal(h.calls, ['connect 10.0.0.1:6783', 'connect 203.0.113.2:6783']);
    assert.equal([...h.peers.targets.keys()], ['10.0.0.1:6783', '203.0.113.2:6783']);
    assert.equal(h.warnings, []);
  } finally {
    await h.close();
  }
});

test('re-read every 30 s: a node added is connected to, a node removed is forgotten, an unchanged list does nothing', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })), { port: 7000 });
  try {
    h.peers.start(await h.peers.initial());
    assert.equal(h.calls.splice(0), ['connect 10.0.0.1:7000', 'connect 203.0.113.2:7000']);
    await step(h, 29_999);
    assert.is(h.api.requests.length, 1, 'not before the period');
    await step(h, 1);
    assert.is(h.api.requests.length, 2);
    assert.equal(h.calls, [], 'same list, no change');

    h.api.nodes.push({ name: 'd', internal: ['fd00::4', '10.0.0.4'] });
    await step(h, 30_000);
    assert.equal(h.calls.splice(0), ['connect 10.0.0.4:7000']);
    assert.ok(h.infos.some((m) => /node d at 10\.0\.0\.4:7000: connecting/.test(m)), h.infos.join('\n'));

    h.api.nodes = h.api.nodes.filter((n) => n.name !== 'a');
    await step(h, 30_000);
    assert.equal(h.calls.splice(0), ['forget 10.0.0.1:7000']);
    assert.ok(h.infos.some((m) => /node a at 10\.0\.0\.1:7000 is no longer listed/.test(m)));

    // A node that moves to another address: the old one is forgotten, the new one connected.
    (h.api.nodes.find((n) => n.name === 'b') as FakeNode).external = ['203.0.113.20'];
    await step(h, 30_000);
    assert.equal(h.calls.splice(0), ['connect 203.0.113.20:7000', 'forget 203.0.113.2:7000']);
    assert.equal(h.warnings, []);
  } finally {
    await h.close();
  }
});

test('401 is warned about once and retried; the token file is re-read, so a rotated token recovers', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })));
  try {
    h.peers.start(await h.peers.initial());
    h.calls.length = 0;
    h.api.token = 'token-2'; // the API rotated the token; our file still has the old one
    await step(h, 30_000);
    assert.is(h.warnings.length, 1);
    const warned = h.warnings[0] as { message: string; error: Error };
    assert.instance(warned.error, DiscoveryError);
    assert.is((warned.error as DiscoveryError).code, 'unauthorized');
    assert.match(warned.message, /answered HTTP 401: Unauthorized; the token in .*token was refused/);
    assert.match(warned.message, /retried in 5 s/);
    await step(h, 5_000);
    assert.is(h.api.requests.length, 3, 'retried after 5 s');
    assert.is(h.warnings.length, 1, 'the same failure is not warned about again');
    assert.equal(h.calls, [], 'a failed read keeps the targets');

    h.api.nodes.push({ name: 'e', internal: ['10.0.0.5'] });
    writeFileSync(h.tokenFile, 'token-2\n');
    await step(h, 5_000);
    assert.is(h.api.requests.at(-1)?.authorization, 'Bearer token-2');
    assert.equal(h.calls, ['connect 10.0.0.5:6783']);
    assert.ok(h.infos.some((m) => /again after 2 failed attempts/.test(m)), h.infos.join('\n'));
    await step(h, 29_999);
    assert.is(h.api.requests.length, 4, 'back to the 30 s period');
  } finally {
    await h.close();
  }
});

test('403, garbage, an empty object and an API that is down: each warned about, nothing forgotten', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })));
  try {
    h.peers.start(await h.peers.initial());
    h.calls.length = 0;
    h.api.mode = { kind: 'status', status: 403 };
    await step(h, 30_000);
    assert.match(h.warnings.at(-1)?.message ?? '', /HTTP 403: nodes is forbidden: .*bind it to a ClusterRole with get, list and watch on nodes/);
    h.api.mode = { kind: 'garbage', body: '<html>502 Bad Gateway</html>' };
    await step(h, 5_000);
    assert.instance(h.warnings.at(-1)?.error, DecodeError);
    assert.match(h.warnings.at(-1)?.message ?? '', /node list is not JSON/);
    h.api.mode = { kind: 'garbage', body: '{}' };
    await step(h, 5_000);
    assert.match(h.warnings.at(-1)?.message ?? '', /node list field items: expected an array, got nothing/);
    h.api.mode = { kind: 'garbage', body: JSON.stringify({ items: [{ metadata: { name: 'a' }, status: { addresses: [{ type: 'InternalIP', address: 'nope' }] } }] }) };
    await step(h, 5_000);
    assert.match(h.warnings.at(-1)?.message ?? '', /items\[0\]\.status\.addresses\[0\]\.address: an InternalIP must be an IP address/);
    await h.api.close();
    await step(h, 5_000);
    assert.instance(h.warnings.at(-1)?.error, DiscoveryError);
    assert.is((h.warnings.at(-1)?.error as DiscoveryError).code, 'unreachable');
    assert.match(h.warnings.at(-1)?.message ?? '', /cannot GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/nodes\?limit=500: ECONNREFUSED/);
    assert.is(h.warnings.length, 5);
    assert.equal(h.calls, [], 'no target was forgotten on a failed read');
    assert.is(h.peers.targets.size, 2);
  } finally {
    await h.close();
  }
});

test('own node excluded by name and by address; --peer targets are never connected or forgotten by discovery', async () => {
  const h = await harness(
    [
      { name: 'self', internal: ['10.0.0.9'] },
      { name: 'other-name-same-host', internal: ['192.0.2.99'] },
      { name: 'kept', internal: ['10.0.0.7'] },
      { name: 'a', internal: ['10.0.0.1'] },
    ],
    { keep: ['10.0.0.7:6783'] },
  );
  try {
    const first = await h.peers.initial();
    assert.equal(first.self.map((n) => n.name), ['self', 'other-name-same-host']);
    h.peers.start(first);
    assert.equal(h.calls.splice(0), ['connect 10.0.0.1:6783']);
    h.api.nodes = [];
    await step(h, 30_000);
    assert.equal(h.calls, ['forget 10.0.0.1:6783'], 'the kept target stays');
  } finally {
    await h.close();
  }
});

test('paged lists are followed with continue; duplicate names across pages are refused', async () => {
  const nodes = Array.from({ length: 7 }, (_, i) => ({ name: `n${i}`, internal: [`10.1.0.${i + 1}`] }));
  const h = await harness(nodes);
  try {
    h.api.pageSize = 3;
    const first = await h.peers.initial();
    assert.is(first.peers.size, 7);
    assert.equal(h.api.requests.map((r) => r.url), ['/api/v1/nodes?limit=500', '/api/v1/nodes?limit=500&continue=3', '/api/v1/nodes?limit=500&continue=6']);
    h.api.nodes.push({ name: 'n0', internal: ['10.1.0.99'] });
    try {
      await h.peers.read();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DecodeError);
      assert.match((error as Error).message, /"n0" is listed (twice|on two pages)/);
    }
  } finally {
    await h.close();
  }
});

test('the first read retries until the API answers, and fails with the last error after its deadline', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })));
  try {
    h.api.mode = { kind: 'status', status: 500 };
    const pending = h.peers.initial({ timeoutMs: 20_000 });
    const drive = async (until: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !until(); i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (h.clock.pending > 0) h.clock.advance(5_000);
      }
    };
    await drive(() => h.api.requests.length >= 3);
    h.api.mode = { kind: 'ok' };
    let done = false;
    void pending.then(() => (done = true));
    await drive(() => done);
    const first = await pending;
    assert.is(first.peers.size, 2);
    assert.is(h.warnings.length, 1, 'HTTP 500 warned about once');
    assert.match(h.warnings[0]?.message ?? '', /answered HTTP 500/);

    h.api.mode = { kind: 'status', status: 403 };
    let failed: unknown;
    const late = h.peers.initial({ timeoutMs: 12_000 }).catch((error: unknown) => (failed = error));
    await drive(() => failed !== undefined);
    await late;
    assert.instance(failed, DiscoveryError);
    assert.match((failed as Error).message, /HTTP 403/);
    assert.is(h.clock.now() <= 25_000, true, 'gave up after its deadline');
  } finally {
    await h.close();
  }
});

test('https with the cluster CA from the CA file; a CA that did not sign the server is refused', async () => {
  const { key, cert } = selfSignedCertificate(['127.0.0.1']);
  const api = await startFakeKubernetesApi([{ name: 'a', internal: ['10.0.0.1'] }], { key, cert });
  const dir = mkdtempSync(join(tmpdir(), 'wt-kube-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), cert);
    const options = {
      apiServer: api.url,
      env: {},
      tokenFile: join(dir, 'no-token'),
      caFile: join(dir, 'ca.crt'),
      nodeName: 'self',
      ownAddresses: () => [],
      connect: () => undefined,
      forget: () => undefined,
      warn: () => undefined,
    };
    const first = await new KubernetesPeers(options).read();
    assert.equal([...first.peers.keys()], ['10.0.0.1:6783']);
    assert.is(api.requests[0]?.authorization, undefined, 'no token file: no token sent');
    writeFileSync(join(dir, 'ca.crt'), selfSignedCertificate(['127.0.0.1']).cert);
    try {
      await new KubernetesPeers(options).read();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DiscoveryError);
      assert.is((error as DiscoveryError).code, 'unreachable');
    }
    if (process.getuid?.() !== 0) {
      chmodSync(join(dir, 'ca.crt'), 0);
      try {
        await new KubernetesPeers(options).read();
        assert.unreachable();
      } catch (error) {
        assert.is((error as DiscoveryError).code, 'read-failed');
        assert.match((error as Error).message, /cannot read the cluster CA/);
      }
    }
  } finally {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the API server: from the pod environment, explicit, or an OptionsError that says what to set', () => {
  assert.is(kubernetesApiServer(undefined, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }).href, 'https://10.96.0.1/');
  assert.is(kubernetesApiServer(undefined, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }).href, 'https://[fd00::1]:6443/');
  assert.is(kubernetesApiServer('http://127.0.0.1:8001', {}).href, 'http://127.0.0.1:8001/');
  const refused = (explicit: string | undefined, env: Record<string, string>, message: RegExp): void => {
    try {
      kubernetesApiServer(explicit, env);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, OptionsError);
      assert.match((error as Error).message, message);
    }
  };
  refused(undefined, {}, /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set .* give --kubernetes-api URL/);
  refused('127.0.0.1:8001', {}, /not an http: or https: URL|is not a URL/);
  refused('ftp://x', {}, /not an http: or https: URL/);
  refused('nope', {}, /is not a URL/);
  refused('http://x/?a=1', {}, /must not have a query/);
});

test('stop cancels the re-reads; start after stop does nothing', async () => {
  const h = await harness(NODES.map((n) => ({ ...n })));
  try {
    h.peers.start();
    await step(h, 0);
    assert.is(h.calls.length, 2, 'start without a first list reads at once');
    await h.peers.stop();
    assert.is(h.clock.pending, 0);
    h.peers.start();
    await step(h, 60_000);
    assert.is(h.api.requests.length, 1);
  } finally {
    await h.close();
  }
});

test.run();
