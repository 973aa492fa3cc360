// Overlay in one process: three encrypted peers, in-process endpoints with IPAM addresses and DNS names, ping and UDP by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { EndpointError, OptionsError } from '../../src/errors.js';
import type { MemoryEndpoint } from '../../src/endpoint/memory-endpoint.js';
import type { RemoteInfo } from '../../src/stack/index.js';
import { testNetworkKey } from '../helpers/mesh.js';

const FAST_TUNING: OverlayOptions['tuning'] = {
  topologyDelayMs: 5,
  gcDelayMs: 5,
  gossipIntervalMs: 60_000,
  backoff: { initialIntervalMs: 50, maxIntervalMs: 500 },
  sleeve: { fastHeartbeatMs: 50 },
  ipamTickMs: 200,
};

/** What the overlays reported through their events and logger while starting. */
interface Observed {
  events: string[];
  logs: string[];
}

async function startOverlays(n: number, extra: Partial<OverlayOptions> = {}, observed: Observed = { events: [], logs: [] }): Promise<Overlay[]> {
  const networkKey = await testNetworkKey();
  const overlays: Overlay[] = [];
  const log = (level: string) => (_fields: object, message?: string): void => {
    observed.logs.push(`${level}:${message ?? ''}`);
  };
  for (let i = 0; i < n; i++) {
    const overlay = new Overlay({
      nickname: `p${i}`,
      listen: '127.0.0.1:0',
      networkKey,
      discovery: false,
      ipam: { range: '10.40.0.0/24', init: { consensus: n } },
      dns: {},
      tuning: FAST_TUNING,
      logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
      ...extra,
      // A line: each peer dials the previous one, so p0–p2 traffic is relayed by p1.
      peers: i === 0 ? [] : [`127.0.0.1:${overlays[i - 1]?.router.port}`],
    });
    overlay.on('peer:up', (p) => observed.events.push(`p${i} peer:up ${p.nickname}`));
    overlay.on('link:up', (l) => observed.events.push(`p${i} link:up ${l.nickname}`));
    overlay.on('link:changed', (l) => observed.events.push(`p${i} link:changed ${l.nickname} ${l.established ? 'established' : 'pending'} ${l.direct ? 'direct' : 'relayed'}`));
    overlay.on('ipam:allocated', (id) => observed.events.push(`p${i} ipam:allocated ${id}`));
    overlay.on('dns:changed', (added) => added.forEach((r) => observed.events.push(`p${i} dns:changed +${r.name}`)));
    await overlay.start();
    overlays.push(overlay);
  }
  await waitFor('every peer routes to every other', 15_000, () =>
    overlays.every((o) => o.status().links.length === n - 1 && o.status().links.every((l) => l.established)),
  );
  return overlays;
}

async function waitFor(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('endpoints get unique addresses and names, ping by name across a relay, UDP request/response, multicast to all', async () => {
  const observed: Observed = { events: [], logs: [] };
  const overlays = await startOverlays(3, {}, observed);
  try {
    const [a, b, c] = overlays as [Overlay, Overlay, Overlay];
    // Typed events and the injected logger saw the mesh form (`link:changed` comes once per burst, ≤ 50 ms on).
    const expected = ['p0 peer:up p1', 'p0 link:up p1', 'p0 link:changed p1 established direct', 'p0 link:changed p2 established relayed'];
    await waitFor(`events ${expected.join(', ')} in ${observed.events.join(', ')}`, 2_000, () => expected.every((event) => observed.events.includes(event)));
    assert.ok(observed.logs.includes('info:overlay running'), observed.logs.join(', '));
    const attached: string[] = [];
    a.on('endpoint:attached', (e) => attached.push(e.name));
    const web = await a.attach({ name: 'web' });
    const cache = await b.attach({ name: 'cache' });
    const db = await c.attach({ name: 'db' });
    assert.equal(attached, ['web']);
    const addresses = [web, cache, db].map((e) => e.info.address);
    assert.is(new Set(addresses).size, 3, addresses.join(' '));
    for (const address of addresses) assert.match(address, /^10\.40\.0\.\d+\/24$/);
    assert.is(web.info.fqdn, 'web.weave.local.');
    assert.ok(observed.events.includes('p0 ipam:allocated mem:web'));

    await waitFor('names everywhere', 5_000, () => a.dns?.lookup('db').length === 1 && c.dns?.lookup('web').length === 1);
    assert.ok(observed.events.includes('p0 dns:changed +db.weave.local.'), 'remote names arrive as dns:changed events');
    const reply = await web.ping('db', { timeoutMs: 2_000 });
    assert.is(reply.address, db.address);
    assert.ok(reply.rttMs >= 0);
    assert.is((await db.ping('web.weave.local')).address, web.address);

    // UDP request/response by name.
    const server = db.createUdpSocket();
    await server.bind(7000);
    server.on('message', (msg: Buffer, from: RemoteInfo) => void server.send(Buffer.from(`echo:${msg.toString()}`), from.port, from.address));
    const client = web.createUdpSocket();
    await client.bind();
    const answer = new Promise<string>((resolve) => client.once('message', (msg: Buffer) => resolve(msg.toString())));
    await client.send(Buffer.from('hello'), 7000, 'db');
    assert.is(await answer, 'echo:hello');

    // One multicast datagram reaches subscribers on every other peer.
    const subscribers = [cache, db].map((e: MemoryEndpoint) => {
      const s = e.createUdpSocket();
      return { s, got: new Promise<string>((resolve) => s.once('message', (msg: Buffer) => resolve(msg.toString()))) };
    });
    for (const { s } of subscribers) {
      await s.bind(5999);
      s.addMembership('239.7.7.7');
    }
    const sender = web.createUdpSocket();
    await sender.bind();
    await sender.send(Buffer.from('tick'), 5999, '239.7.7.7');
    assert.equal(await Promise.all(subscribers.map((x) => x.got)), ['tick', 'tick']);

    // Status is JSON-serialisable and says how each peer is reached.
    const status = JSON.parse(JSON.stringify(a.status())) as ReturnType<Overlay['status']>;
    assert.is(status.state, 'running');
    assert.is(status.router.peers.length, 3);
    const toC = status.links.find((l) => l.nickname === 'p2');
    assert.ok(toC && !toC.direct && toC.established && toC.via === b.self.id, 'p2 is reached through p1');
    assert.equal(status.endpoints.map((e) => e.name), ['web']);
    assert.is(status.ipam?.state, 'ready');

    // Metrics: Weave's names, per-peer traffic, gauges.
    const metrics = a.metrics();
    assert.match(metrics, /^# TYPE weave_connections gauge$/m);
    assert.match(metrics, /^weave_connections\{state="established",type="sleeve",encryption="yes"\} 1$/m);
    assert.match(metrics, /^weave_ips\{state="local-used"\} 1$/m);
    assert.match(metrics, /^weave_max_ips 256$/m);
    assert.match(metrics, /^weave_endpoints 1$/m);
    assert.match(metrics, new RegExp(`^weave_sleeve_frames_total\\{peer="${b.self.id}",nickname="p1",direction="out"\\} [1-9]\\d*$`, 'm'));
    assert.match(metrics, /^weave_dns_entries 1$/m);
    for (const line of metrics.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+]+|NaN)$/, line);

    // Detach frees the address and the name everywhere.
    await c.detach('db');
    await waitFor('db gone on a', 5_000, () => a.dns?.lookup('db').length === 0);
    assert.equal(c.ipam?.lookup('mem:db'), []);
    try {
      await web.ping('db', { timeoutMs: 500 });
      assert.unreachable('db should not resolve');
    } catch (error) {
      assert.is.not((error as { code?: string }).code, undefined);
    }
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test('explicit addresses: network, broadcast and out-of-range ones are refused; one in use on another peer too; a free one is claimed', async () => {
  const overlays = await startOverlays(2);
  try {
    const [a, b] = overlays as [Overlay, Overlay];
    const refused: [string, RegExp][] = [
      ['10.40.0.255', /10\.40\.0\.255 is the broadcast address of 10\.40\.0\.0\/24/],
      ['10.40.0.0/24', /10\.40\.0\.0 is the network address of 10\.40\.0\.0\/24/],
      ['10.40.0.127/25', /broadcast address of 10\.40\.0\.0\/25/],
      ['1.2.3.4/8', /1\.2\.3\.4 is outside the IPAM range 10\.40\.0\.0\/24/],
      ['10.41.0.1', /outside the IPAM range/],
    ];
    for (const [ip, message] of refused) {
      try {
        await a.attach({ name: 'manual', ip });
        assert.unreachable(`${ip} should be refused`);
      } catch (error) {
        assert.instance(error, OptionsError, `${ip}: ${String(error)}`);
        assert.match((error as Error).message, message);
      }
    }
    assert.equal(a.ipam?.status().allocated, [], 'nothing was recorded for refused addresses');
    // An address in use on the other peer is refused by its owner.
    const taken = await b.attach({ name: 'taken' });
    try {
      await a.attach({ name: 'thief', ip: taken.info.address });
      assert.unreachable('an address in use elsewhere must be refused');
    } catch (error) {
      assert.is((error as { code?: string }).code, 'address-in-use', String(error));
    }
    // A free address in the other peer's range is claimed through IPAM: its owner hands it over.
    const [bRange] = b.ipam?.status().owners.find((o) => o.peer === b.self.id)?.ranges ?? [];
    assert.ok(bRange, 'b owns part of the range');
    const free = `10.40.0.${Number((bRange as string).split('/')[0]?.split('.')[3]) + 9}`;
    const manual = await a.attach({ name: 'manual', ip: free });
    assert.is(manual.info.address, `${free}/24`);
    await waitFor('the ring gives the claimed address to a', 5_000, () =>
      b.ipam?.status().owners.find((o) => o.peer === a.self.id)?.ranges.some((r) => r === `${free}/32` || r.startsWith(free)) === true,
    );
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test('options are validated at construction with messages that say what to fix', () => {
  const cases: [OverlayOptions, RegExp][] = [
    [{ mtu: 20 }, /mtu 20 is out of range/],
    [{ password: '' }, /password is empty/],
    [{ peers: [''] as string[] }, /peers must be a list/],
    [{ ipam: { range: '10.32.0.1/12' } }, /10\.32\.0\.0\/12/],
    [{ bridge: 'much-too-long-name' }, /bridge name/],
  ];
  for (const [options, message] of cases) {
    try {
      new Overlay({ listen: false, ...options });
      assert.unreachable(JSON.stringify(options));
    } catch (error) {
      assert.instance(error, OptionsError);
      assert.match((error as Error).message, message);
    }
  }
});

test('lifecycle: start and stop are idempotent, attach needs a running overlay, a stopped overlay stays stopped', async () => {
  const overlay = new Overlay({ listen: '127.0.0.1:0', ipam: { range: '10.41.0.0/24' } });
  assert.ok(overlay.status().warnings.some((w) => /no password/.test(w)), 'an unencrypted overlay is reported loudly');
  try {
    await overlay.attach({ name: 'early' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, EndpointError);
    assert.is((error as EndpointError).code, 'not-running');
  }
  await Promise.all([overlay.start(), overlay.start()]);
  const ep = await overlay.attach({ name: 'one', ip: '10.41.0.77' });
  assert.is(ep.info.address, '10.41.0.77/24');
  try {
    await overlay.attach({ name: 'one' });
    assert.unreachable();
  } catch (error) {
    assert.is((error as EndpointError).code, 'already-exists');
  }
  const both = await Promise.allSettled([overlay.attach({ name: 'twice' }), overlay.attach({ name: 'twice' })]);
  assert.equal(both.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'one of two concurrent attaches of a name wins');
  assert.equal(overlay.ipam?.lookup('mem:twice').length, 1, 'and only one address is allocated');
  try {
    await overlay.attach({ name: 'bad name!' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, OptionsError);
  }
  await Promise.all([overlay.stop(), overlay.stop()]);
  assert.is(overlay.state, 'stopped');
  try {
    await overlay.start();
    assert.unreachable();
  } catch (error) {
    assert.is((error as EndpointError).code, 'not-running');
  }
});

test('start honours an aborted signal; asyncDispose stops', async () => {
  const controller = new AbortController();
  controller.abort();
  const overlay = new Overlay({ listen: '127.0.0.1:0' });
  try {
    await overlay.start({ signal: controller.signal });
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).name, 'AbortError', String(error));
  }
  assert.is(overlay.state, 'stopped', 'a start that was aborted leaves nothing running');
  {
    await using disposable = new Overlay({ listen: '127.0.0.1:0' });
    await disposable.start();
    assert.is(disposable.state, 'running');
  }
});

test('the peer name persists in the data dir', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wt-overlay-'));
  try {
    const first = new Overlay({ listen: false, dataDir: dir, ipam: false, dns: false });
    assert.not.ok(existsSync(join(dir, 'peer-name')), 'nothing is written before start()');
    await first.start();
    await first.stop();
    assert.is((await readFile(join(dir, 'peer-name'), 'utf8')).trim(), first.self.id);
    const second = new Overlay({ listen: false, dataDir: dir });
    assert.is(second.self.id, first.self.id, 'a restart keeps the name');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
