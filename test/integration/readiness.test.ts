// Readiness you can await: the README's start → attach → ping by name on the first try, overlay.ready(), dns.waitFor().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { Overlay } from '../../src/overlay.js';
import { NotReadyError } from '../../src/errors.js';
import type { MemoryEndpoint } from '../../src/endpoint/memory-endpoint.js';
import { testNetworkKey } from '../helpers/mesh.js';
import { createTestMesh, FakeClock } from '../../src/testing/index.js';

/** Ports free for both TCP and UDP on 127.0.0.1, as a user would pick them for a fixed peer list. */
async function freePorts(n: number): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < n) {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      held.push(server);
      const port = (server.address() as { port: number }).port;
      const udp = createSocket('udp4');
      const free = await new Promise<boolean>((resolve) => {
        udp.once('error', () => resolve(false));
        udp.bind(port, '127.0.0.1', () => resolve(true));
      });
      if (free) await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (free) ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** The README's mesh: overlays on 127.0.0.1 with their own ports, each listing the others as peers, default timings. */
async function readmeMesh(n: number): Promise<Overlay[]> {
  const networkKey = await testNetworkKey();
  const ports = await freePorts(n);
  return ports.map(
    (port, i) =>
      new Overlay({
        networkKey,
        nickname: `host${i + 1}`,
        listen: `127.0.0.1:${port}`,
        peers: ports.filter((p) => p !== port).map((p) => `127.0.0.1:${p}`),
      }),
  );
}

test('the README sequence with default timings: start → attach → ping by name succeeds on the first try, no polling', async () => {
  const [first, second] = (await readmeMesh(2)) as [Overlay, Overlay];
  try {
    await Promise.all([first.start(), second.start()]);
    const api = await second.attach({ name: 'api' });
    // The other host attaches its endpoint a moment later, while this one runs the README's next line.
    const db = first.attach({ name: 'db' });
    const reply = await api.ping('db');
    assert.is(reply.address, (await db).address);
    assert.is.not(api.address, reply.address);
  } finally {
    await Promise.all([second.stop(), first.stop()]);
  }
});

for (const n of [2, 3]) {
  test(`${n} overlays on 127.0.0.1 listing each other: await ready() on each, attach, and every first ping by name answers`, async () => {
    const overlays = await readmeMesh(n);
    try {
      await Promise.all(overlays.map((o) => o.start()));
      const reports = await Promise.all(overlays.map((o) => o.ready()));
      for (const report of reports) {
        assert.ok(report.ready);
        assert.is(report.peers.length, n - 1);
        assert.ok(report.peers.every((p) => p.state === 'ready'), JSON.stringify(report.peers));
        assert.is(report.ipam?.ready, true);
      }
      const endpoints: MemoryEndpoint[] = [];
      for (const [i, o] of overlays.entries()) endpoints.push(await o.attach({ name: `ep${i + 1}` }));
      for (const [i, from] of endpoints.entries()) {
        for (const [j, to] of endpoints.entries()) {
          if (i === j) continue;
          const reply = await from.ping(`ep${j + 1}`);
          assert.is(reply.address, to.address);
        }
      }
    } finally {
      await Promise.all(overlays.map((o) => o.stop()));
    }
  });
}

test('ready() times out with a typed error naming the peer that is not reachable and how far IPAM got', async () => {
  const networkKey = await testNetworkKey();
  const [closed] = await freePorts(1);
  const lonely = new Overlay({ networkKey, listen: '127.0.0.1:0', nickname: 'lonely', peers: [`127.0.0.1:${closed}`] });
  try {
    await lonely.start();
    const error = await lonely.ready({ timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(error, NotReadyError);
    const e = error as NotReadyError;
    assert.is(e.code, 'timeout');
    assert.is(e.waitingFor.length, 2, e.waitingFor.join('\n'));
    assert.match(e.waitingFor[0] as string, new RegExp(`^"127\\.0\\.0\\.1:${closed}": connecting \\(`));
    assert.match(e.waitingFor[1] as string, /^IPAM: awaiting consensus: 1 of the 2 peers needed/);
    assert.match(e.message, /not ready after 300 ms/);
    // Only IPAM's wait, and its own ring question, can be left out.
    const peersOnly = await lonely.ready({ peers: [], ipam: false, timeoutMs: 0 });
    assert.ok(peersOnly.ready);
    const aborted = await lonely.ready({ signal: AbortSignal.abort('enough'), timeoutMs: 10_000 }).catch((x: unknown) => x);
    assert.instance(aborted, NotReadyError);
    assert.is((aborted as NotReadyError).code, 'aborted');
  } finally {
    await lonely.stop();
  }
});

test('ready() names a peer known by topology whose data link is not up, and an unknown name', async () => {
  const clock = new FakeClock();
  // Heartbeats far apart: the control link is up long before the sleeve.
  const mesh = await createTestMesh({ peers: ['x-host', 'y-host'], clock, overlay: { tuning: { sleeve: { fastHeartbeatMs: 5_000 } } } });
  try {
    const x = mesh.overlay('x-host');
    await mesh.drive(x.ready({ peers: [], timeoutMs: 2_000 }));
    const report = x.readiness({ peers: ['y-host', 'nobody'], ipam: false });
    assert.not.ok(report.ready);
    assert.equal(
      report.peers.map((p) => [p.target, p.state]),
      [
        ['y-host', 'no-data-link'],
        ['nobody', 'unknown'],
      ],
    );
    const ready = await mesh.drive(x.ready({ peers: ['y-host'], timeoutMs: 20_000 }));
    assert.equal(
      ready.peers.map((p) => [p.target, p.nickname, p.state]),
      [['y-host', 'y-host', 'ready']],
    );
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test('dns.waitFor resolves when the name is gossiped, and times out or aborts with the missing name', async () => {
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: ['a', 'b'], clock });
  try {
    await mesh.ready();
    const dnsOfA = mesh.overlay('a').dns;
    assert.ok(dnsOfA);
    const waiting = dnsOfA.waitFor('later', { timeoutMs: 10_000 });
    await mesh.advance(50);
    const later = await mesh.drive(mesh.overlay('b').attach({ name: 'later' }));
    assert.equal(await mesh.drive(waiting), [later.address]);
    const missing = await mesh.drive(dnsOfA.waitFor('never', { timeoutMs: 500 }).catch((e: unknown) => e));
    assert.instance(missing, NotReadyError);
    assert.is((missing as NotReadyError).code, 'timeout');
    assert.equal((missing as NotReadyError).waitingFor, ['"never.weave.local.": no address']);
    const controller = new AbortController();
    const aborted = dnsOfA.waitFor('never', { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    assert.is(((await aborted) as NotReadyError).code, 'aborted');
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test("with Weave's default timings on a fake clock, the first ping by name right after start succeeds although the data link comes up ~1 s after the control link", async () => {
  const clock = new FakeClock();
  // Default sleeve heartbeats (500 ms) and topology coalescing (1 s), as the README's overlays have.
  const mesh = await createTestMesh({ peers: ['x-host', 'y-host'], clock, overlay: { tuning: { topologyDelayMs: 1000, sleeve: { fastHeartbeatMs: 500 } } } });
  try {
    const x = await mesh.drive(mesh.overlay(0).attach({ name: 'x' }));
    const y = await mesh.drive(mesh.overlay(1).attach({ name: 'y' }));
    const reply = await mesh.drive(x.ping('y'));
    assert.is(reply.address, y.address);
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test('once the name is known, the first ping succeeds although the data link is still coming up (ARP retries, the reply deadline starts when the request leaves)', async () => {
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: ['x-host', 'y-host'], clock, overlay: { tuning: { topologyDelayMs: 1000, sleeve: { fastHeartbeatMs: 500 } } } });
  try {
    const x = await mesh.drive(mesh.overlay(0).attach({ name: 'x' }));
    const y = await mesh.drive(mesh.overlay(1).attach({ name: 'y' }));
    // Wait for the name only (as a test of the old code could), not for the data link.
    while (mesh.overlay(0).dns?.lookup('y').length === 0) await mesh.advance(1);
    assert.not.ok(mesh.overlay(0).status().links.some((l) => l.established), 'the data link is not up yet');
    const reply = await mesh.drive(x.ping('y'));
    assert.is(reply.address, y.address);
  } finally {
    await mesh.drive(mesh.stop());
  }
});

test.run();
