// Every socket operation fails in turn (bind, connect, send, write, listen, error events) under a DNS server with an
// upstream, a mesh of routers and an agent's HTTP API on loopback: the process survives, the failures are reported
// or counted, and everything works again once the fault is gone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { DnsServer, type DnsServerStats, type NameSource } from '../../src/dns/server.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { Overlay } from '../../src/overlay.js';
import { ApiServer } from '../../src/cli/api-server.js';
import { FAST, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { dig, recordingUpstream } from '../helpers/dns.js';
import { catchProcessErrors, SOCKET_FAULTS, SocketFaults } from '../helpers/socket-faults.js';

const SOURCE: NameSource = { resolve: (name, family) => (name === 'db.weave.local.' && family === 4 ? ['10.0.0.1'] : undefined), reverse: () => [] };
const TOKEN = 'a-test-token-of-some-length';

/** The API's answer to GET /status through curl (another process: the faults stay in this one), or its failure. */
function curlStatus(port: number): Promise<string> {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: Bearer ${TOKEN}`, `http://127.0.0.1:${port}/status`], (_error, stdout) =>
      resolve(stdout.trim() || 'failed'),
    );
  });
}

function dnsFailures(s: DnsServerStats): number {
  return s.upstreamErrors + s.upstreamTimeouts + s.dropped + s.socketErrors + s.servfail;
}

async function settle(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

test('every socket operation failing in turn: DNS, mesh and API survive, report it, and recover', async () => {
  const faults = new SocketFaults().install();
  const caught = catchProcessErrors();
  const networkKey = await testNetworkKey();
  const upstream = await recordingUpstream();
  for (const s of upstream.sockets) faults.exempt(s);
  const dns = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [`127.0.0.1:${upstream.port}`], upstreamTimeoutMs: 300 });
  await dns.start();
  const routers = [0, 1].map((i) => new MeshRouter({ ...FAST, name: testName(i), networkKey }));
  await Promise.all(routers.map((r) => r.start()));
  const [a, b] = routers as [MeshRouter, MeshRouter];
  const channels = routers.map((r) => r.registerGossip('faults', { onBroadcast: () => undefined }));
  let meshFailures = 0;
  for (const r of routers) {
    r.on('connection:failed', () => meshFailures++);
    r.on('connection:down', () => meshFailures++);
  }
  b.connect(`127.0.0.1:${a.port}`);
  const linked = (): boolean => a.isReachable(b.selfName) && b.isReachable(a.selfName);
  await waitUntil(routers, linked, 10_000, () => 'a and b linked');
  const overlay = new Overlay({ listen: '127.0.0.1:0', networkKey, discovery: false, ipam: false, dns: false });
  await overlay.start();
  const api = new ApiServer(overlay, { listen: '127.0.0.1:0', token: TOKEN });
  const apiPort = Number((await api.start()).split(':').pop());
  const extra: MeshRouter[] = [];

  const report: string[] = []; // one line per fault, printed as it completes
  try {
    for (const fault of SOCKET_FAULTS) {
      const phase = Date.now();
      const before = { dns: dnsFailures(dns.stats), mesh: meshFailures };
      let startFailures = 0;
      let apiFailures = 0;
      faults.arm(fault);
      // The workload: every kind of socket use, while the fault is armed.
      const digs = await Promise.all([dig(dns.port, 'db.weave.local'), dig(dns.port, 'example.com'), dig(dns.port, 'big.example.com', '+tcp')]);
      const fresh = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [] });
      await fresh.start().then(
        () => fresh.stop(),
        () => startFailures++,
      );
      const c = new MeshRouter({ ...FAST, name: testName(10 + SOCKET_FAULTS.indexOf(fault)), networkKey });
      extra.push(c);
      await c.start().then(
        () => c.connect(`127.0.0.1:${a.port}`),
        () => startFailures++,
      );
      for (const channel of channels) channel.broadcast(Uint8Array.of(1, 2, 3));
      const freshOverlay = new Overlay({ listen: '127.0.0.1:0', networkKey, discovery: false, ipam: false, dns: false });
      await freshOverlay.start().then(
        () => freshOverlay.stop(),
        () => startFailures++,
      );
      const freshApi = new ApiServer(overlay, { listen: '127.0.0.1:0', token: TOKEN });
      await freshApi.start().then(
        () => freshApi.stop(),
        () => startFailures++,
      );
      if ((await curlStatus(apiPort)) !== '200') apiFailures++;
      await settle(300);
      faults.disarm();
      assert.equal(caught.errors, [], `${fault}: nothing escaped as an uncaught exception or unhandled rejection`);

      const reported = dnsFailures(dns.stats) - before.dns + (meshFailures - before.mesh) + startFailures + apiFailures;
      report.push(`${fault}: injected ${faults.injected[fault]}, reported ${reported} (dns ${dnsFailures(dns.stats) - before.dns}, mesh ${meshFailures - before.mesh}, starts ${startFailures}, api ${apiFailures}); digs ${digs.map((d) => d.status || 'timeout').join('/')}`);
      assert.ok(faults.injected[fault] > 0, `${fault} was injected`);
      assert.ok(reported > 0, `${fault}: the failures were reported or counted`);

      // Recovery: the same operations work again.
      assert.equal((await dig(dns.port, 'db.weave.local')).answers.map((x) => x.data), ['10.0.0.1'], `${fault}: local answers again`);
      assert.is((await dig(dns.port, `after-${fault}.example.com`)).status, 'NOERROR', `${fault}: forwards again`);
      assert.is((await dig(dns.port, 'big.example.com', '+tcp')).answers.length, 40, `${fault}: TCP to the upstream again`);
      await waitUntil(routers, linked, 10_000, () => `${fault}: a and b linked again`);
      assert.is(await curlStatus(apiPort), '200', `${fault}: the API answers again`);
      await c.stop();
      console.log(`${report.at(-1) ?? ''}; ${Date.now() - phase} ms`);
    }
  } finally {
    faults.uninstall();
    caught.stop();
    await api.stop();
    await overlay.stop();
    await Promise.all([...extra, ...routers].map((r) => r.stop()));
    await dns.stop();
    await upstream.close();
  }
});

test.run();
