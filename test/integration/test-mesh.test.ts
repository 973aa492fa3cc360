// weave-ts/testing: createTestMesh over the virtual wire, with faults, with real time and with a fake clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh, FakeClock } from '../../src/testing/index.js';
import type { RemoteInfo } from '../../src/stack/index.js';

test('a line of three on a lossy, slow wire: names, UDP across the relay, a partition stops it, heal restores it', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b', 'c'], topology: 'line', conditions: { latencyMs: 2, jitterMs: 1, loss: 0.02 } });
  await mesh.ready();
  const status = mesh.overlay('a').status();
  assert.ok(status.links.find((l) => l.nickname === 'c' && !l.direct && l.established), 'a reaches c through b');
  const server = await mesh.overlay('c').attach({ name: 'server' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  const socket = server.createUdpSocket();
  await socket.bind(9000);
  socket.on('message', (msg: Buffer, from: RemoteInfo) => void socket.send(msg, from.port, from.address));
  const sender = client.createUdpSocket();
  await sender.bind();
  const roundTrip = async (timeoutMs: number): Promise<boolean> => {
    const got = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      sender.once('message', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    await sender.send(Buffer.from('ping'), 9000, 'server').catch(() => undefined);
    return got;
  };
  const until = async (want: boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while ((await roundTrip(300)) !== want) if (Date.now() > deadline) throw new Error(what);
  };
  // Names are gossiped; the first round trips may also lose a datagram to the 2 % loss.
  await until(true, 'no echo before the partition');
  mesh.partition(['a'], ['b', 'c']);
  await until(false, 'echoes still crossed the partition');
  assert.ok(mesh.wire.stats.datagramsDropped.partition > 0, 'the partition dropped what crossed it');
  mesh.heal();
  await until(true, 'no echo after heal');
});

test('a partition is silent, like a real one: frames sent across it are dropped by the wire and counted as partition drops', async () => {
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: ['east', 'west'], clock, conditions: { latencyMs: 2 } });
  try {
    await mesh.ready();
    const server = await mesh.drive(mesh.overlay('west').attach({ name: 'server' }));
    const client = await mesh.drive(mesh.overlay('east').attach({ name: 'client' }));
    while (mesh.overlay('east').dns?.lookup('server').length === 0) await mesh.advance(1);
    assert.is((await mesh.drive(client.ping('server'))).address, server.address);
    mesh.partition(['east'], ['west']);
    const during = await mesh.drive(client.ping('server', { timeoutMs: 500 })).then(
      () => 'answered',
      (error: { code?: string }) => error.code,
    );
    assert.is(during, 'timeout');
    assert.ok(mesh.wire.stats.datagramsDropped.partition > 0, JSON.stringify(mesh.wire.stats.datagramsDropped));
  } finally {
    await mesh.drive(mesh.stop());
  }
});

/** One run under a fake clock: converge, attach two endpoints, ping by name; returns what it observed. */
async function fakeClockRun(): Promise<{ convergedAt: number; addresses: string[]; rttMs: number; elapsed: number }> {
  const clock = new FakeClock();
  const mesh = await createTestMesh({ peers: 2, clock, seed: 7, conditions: { latencyMs: 5 } });
  try {
    await mesh.ready();
    const convergedAt = clock.now();
    const a = await mesh.drive(mesh.overlay(0).attach({ name: 'x' }));
    const b = await mesh.drive(mesh.overlay(1).attach({ name: 'y' }));
    while (mesh.overlay(0).dns?.lookup('y').length === 0) await mesh.advance(1); // the name travels by gossip
    const started = clock.now();
    const result = await mesh.drive(a.ping('y', { timeoutMs: 1_000 }));
    return { convergedAt, addresses: [a.address, b.address], rttMs: result.rttMs, elapsed: clock.now() - started };
  } finally {
    await mesh.drive(mesh.stop());
  }
}

test('a fake clock makes the mesh deterministic: the same seed gives the same run, in virtual time only', async () => {
  const wallStart = Date.now();
  const first = await fakeClockRun();
  const second = await fakeClockRun();
  assert.equal(second, first, 'two runs with one seed are identical');
  assert.is.not(first.addresses[0], first.addresses[1]);
  // ARP there and back, then echo there and back: at least four one-way trips of 5 virtual ms.
  assert.ok(first.elapsed >= 20, `took ${first.elapsed} virtual ms`);
  assert.ok(first.rttMs >= 10 && first.rttMs <= 100, `rtt ${first.rttMs} virtual ms`);
  assert.ok(Date.now() - wallStart < 30_000);
});

test('bad options are refused with a clear message', async () => {
  for (const [options, message] of [
    [{ peers: 0 }, /1 to 256 peers/],
    [{ peers: ['a', 'a'] }, /unique/],
    [{ peers: 2, topology: [[0, 5]] as [number, number][] }, /edge \[0, 5\]/],
  ] as const) {
    try {
      await createTestMesh(options as Parameters<typeof createTestMesh>[0]);
      assert.unreachable();
    } catch (error) {
      assert.match((error as Error).message, message);
    }
  }
});

test.run();
