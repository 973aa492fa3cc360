// TCP between in-process endpoints of two test-mesh peers under bad networks: loss, bursts, reordering,
// duplication, latency, partitions, a restarted peer. Every byte must arrive once, in order (SHA-256).
// The fake clock makes the runs deterministic and fast; the 100 MB transfer runs on the real clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCipheriv, createHash } from 'node:crypto';
import { createTestMesh, FakeClock, type LinkConditions, type TestMesh, type TestMeshOptions } from '../../src/testing/index.js';
import type { MemoryEndpoint } from '../../src/endpoint/memory-endpoint.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { TcpStackStats } from '../../src/stack/tcp/tcp-layer.js';

const MB = 1 << 20;

/** `n` reproducible pseudo-random bytes (AES-CTR keyed by `seed`: fast, and a failure replays). */
function bytesOf(n: number, seed: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** What one direction of an exchange delivered. */
interface Received {
  hash: string;
  bytes: number;
}

/** Reads a socket to its end, hashing as it goes; rejects on 'error'. */
function readAll(socket: TcpSocket): Promise<Received> {
  const hash = createHash('sha256');
  let bytes = 0;
  const result = new Promise<Received>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.byteLength;
    });
    socket.once('end', () => resolve({ hash: hash.digest('hex'), bytes }));
    socket.once('error', reject);
  });
  // A test that fails earlier stops the mesh, which errors the socket: not an unhandled rejection.
  result.catch(() => {});
  return result;
}

/** Resolves once `socket` has delivered `n` bytes in total. */
function received(socket: TcpSocket, n: number): Promise<void> {
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes >= n) resolve();
    });
    socket.once('error', reject);
  });
}

/** The first 'error' of a socket (its code), or a rejection if it closes cleanly instead. */
function failure(socket: TcpSocket): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    socket.once('error', (error: Error & { code?: string }) => resolve(error.code));
    socket.once('close', () => reject(new Error('closed without an error')));
  });
}

/**
 * Sends `toServer` from `client` to a server on `server` and `toClient` back, both at once on one
 * connection, each side half-closing after its data; resolves with what each side read.
 */
async function exchange(mesh: TestMesh, client: MemoryEndpoint, server: MemoryEndpoint, toServer: Buffer, toClient: Buffer, port = 5000): Promise<{ atServer: Received; atClient: Received }> {
  let atServer!: Promise<Received>;
  const accepted = new Promise<void>((resolve) => {
    const listener = server.createServer({ allowHalfOpen: true }, (socket) => {
      atServer = readAll(socket);
      socket.end(toClient);
      listener.close();
      resolve();
    });
    listener.listen(port);
  });
  const socket = client.connect({ port, host: server.address, allowHalfOpen: true });
  const atClient = readAll(socket);
  socket.end(toServer);
  await mesh.drive(accepted, { maxMs: 60_000 });
  return { atServer: await mesh.drive(atServer, { maxMs: 600_000 }), atClient: await mesh.drive(atClient, { maxMs: 600_000 }) };
}

/** Two peers `a` and `b` with an endpoint each (`a1`, `b1`). */
async function twoPeers(options: Partial<TestMeshOptions> = {}): Promise<{ mesh: TestMesh; a: MemoryEndpoint; b: MemoryEndpoint; clock: FakeClock }> {
  const clock = new FakeClock(1_000_000);
  const mesh = await createTestMesh({ peers: ['a', 'b'], clock, seed: 3, ...options });
  await mesh.ready({ timeoutMs: 60_000 });
  const a = await mesh.drive(mesh.overlay('a').attach({ name: 'a1' }));
  const b = await mesh.drive(mesh.overlay('b').attach({ name: 'b1' }));
  return { mesh, a, b, clock };
}

/** Both endpoints' counters added up. */
function total(a: MemoryEndpoint, b: MemoryEndpoint): TcpStackStats {
  const x = a.tcpStats() as TcpStackStats;
  const y = b.tcpStats() as TcpStackStats;
  return {
    ...x,
    segmentsIn: x.segmentsIn + y.segmentsIn,
    segmentsOut: x.segmentsOut + y.segmentsOut,
    retransmits: x.retransmits + y.retransmits,
    fastRetransmits: x.fastRetransmits + y.fastRetransmits,
    timeouts: x.timeouts + y.timeouts,
  };
}

/** A path of 1500-byte datagrams (the sleeve carries one frame per datagram, so a loss is one segment's). */
const ETHERNET = 1500;

interface FaultCase {
  name: string;
  conditions: LinkConditions;
  /** No password: no replay window, so duplicated datagrams reach TCP. */
  plain?: boolean;
  congestionControl?: 'newreno' | 'cubic';
  /** Why the case is skipped for now (an open finding). */
  skip?: string;
  check(stats: TcpStackStats, mesh: TestMesh): void;
}

const CASES: FaultCase[] = [
  {
    name: '1 % loss',
    conditions: { loss: 0.01, maxDatagramBytes: ETHERNET },
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDropped.loss > 0);
      assert.ok(stats.retransmits > 0, 'lost segments were retransmitted');
      assert.ok(stats.fastRetransmits > 0, 'some by fast retransmit');
    },
  },
  {
    name: '1 % loss, CUBIC',
    conditions: { loss: 0.01, maxDatagramBytes: ETHERNET },
    congestionControl: 'cubic',
    // Found a bug here: data segments carrying SACK blocks were a full MSS, too big for the MTU; each
    // retransmission was refused by the NIC, so both directions stalled at ~10 virtual s.
    check(stats) {
      assert.ok(stats.retransmits > 0 && stats.fastRetransmits > 0);
    },
  },
  {
    name: '5 % loss',
    conditions: { loss: 0.05, maxDatagramBytes: ETHERNET },
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDropped.loss > 100);
      assert.ok(stats.retransmits > 100, 'lost segments were retransmitted');
      assert.ok(stats.fastRetransmits > 0 && stats.timeouts > 0, 'by fast retransmit and by timeout');
    },
  },
  {
    // Big datagrams carry dozens of frames each: one loss takes a burst of consecutive segments.
    name: 'burst loss (1 % of 64 KB datagrams)',
    conditions: { loss: 0.01 },
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDropped.loss > 0);
      assert.ok(stats.retransmits > 0);
    },
  },
  {
    name: '10 % reordering',
    conditions: { reorder: 0.1, reorderDelayMs: 3, maxDatagramBytes: ETHERNET },
    check(_stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsReordered > 100);
    },
  },
  {
    name: '5 % duplication (unencrypted: duplicates reach TCP)',
    conditions: { duplicate: 0.05, maxDatagramBytes: ETHERNET },
    plain: true,
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDuplicated > 100);
      assert.ok(stats.segmentsIn > stats.segmentsOut, `TCP saw the duplicates (${stats.segmentsIn} segments in, ${stats.segmentsOut} out)`);
    },
  },
  {
    name: '5 % duplication (encrypted: the replay window drops them before TCP)',
    conditions: { duplicate: 0.05, maxDatagramBytes: ETHERNET },
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDuplicated > 100);
      assert.ok(stats.segmentsIn <= stats.segmentsOut);
    },
  },
  {
    name: '50 ms latency',
    conditions: { latencyMs: 50 },
    check(stats) {
      assert.is(stats.retransmits, 0, 'no spurious retransmission on a long clean path');
    },
  },
  {
    name: 'all at once: 20 ms ± 5 ms, 2 % loss, 5 % reordering, 2 % duplication',
    conditions: { latencyMs: 20, jitterMs: 5, loss: 0.02, reorder: 0.05, duplicate: 0.02, maxDatagramBytes: ETHERNET },
    plain: true,
    check(stats, mesh) {
      assert.ok(mesh.wire.stats.datagramsDropped.loss > 0 && mesh.wire.stats.datagramsReordered > 0 && mesh.wire.stats.datagramsDuplicated > 0);
      assert.ok(stats.retransmits > 0);
    },
  },
];

const SIZE = 3 * MB;

for (const c of CASES) {
  (c.skip ? test.skip : test)(`${c.name}: ${SIZE / MB} MB each way on one connection arrive whole and in order (SHA-256)`, async () => {
    const { mesh, a, b } = await twoPeers({
      conditions: c.conditions,
      ...(c.plain ? { password: false as const } : {}),
      ...(c.congestionControl ? { overlay: { tcp: { congestionControl: c.congestionControl } } } : {}),
    });
    try {
      const toServer = bytesOf(SIZE, 1);
      const toClient = bytesOf(SIZE, 2);
      const { atServer, atClient } = await exchange(mesh, a, b, toServer, toClient);
      assert.equal(atServer, { hash: sha256(toServer), bytes: SIZE });
      assert.equal(atClient, { hash: sha256(toClient), bytes: SIZE });
      c.check(total(a, b), mesh);
    } finally {
      await mesh.stop();
    }
  });
}

test('100 MB between two peers, checked by SHA-256 (real clock)', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const a = await mesh.overlay('a').attach({ name: 'a1' });
  const b = await mesh.overlay('b').attach({ name: 'b1' });
  const size = 100 * MB;
  const data = bytesOf(size, 7);
  const { atServer, atClient } = await exchange(mesh, a, b, data, Buffer.alloc(0));
  assert.equal(atServer, { hash: sha256(data), bytes: size });
  assert.is(atClient.bytes, 0);
  assert.ok((b.tcpStats() as TcpStackStats).bytesIn >= size);
});

/** A connection from a1 to a server on b1 (port 7000), established; the server side and its received count. */
async function openConnection(mesh: TestMesh, a: MemoryEndpoint, b: MemoryEndpoint): Promise<{ client: TcpSocket; server: TcpSocket }> {
  const accepted = new Promise<TcpSocket>((resolve) => {
    const listener = b.createServer((socket) => {
      listener.close();
      resolve(socket);
    });
    listener.listen(7000);
  });
  const client = a.connect(7000, b.address);
  const server = await mesh.drive(accepted, { maxMs: 30_000 });
  await mesh.drive(new Promise((resolve) => (client.readyState === 'open' ? resolve(undefined) : client.once('connect', resolve))));
  return { client, server };
}

test('a 5-second partition: the open connection survives, and what was written during it arrives once it heals', async () => {
  const { mesh, a, b } = await twoPeers();
  try {
    const { client, server } = await openConnection(mesh, a, b);
    const hash = createHash('sha256');
    let bytes = 0;
    server.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.byteLength;
    });
    const before = bytesOf(10_000, 11);
    const during = bytesOf(256 * 1024, 12);
    const first = received(server, before.length);
    client.write(before);
    await mesh.drive(first);

    mesh.partition(['a'], ['b']);
    client.write(during);
    const all = received(server, during.length);
    await mesh.advance(5_000);
    assert.is(bytes, before.length, 'nothing crossed the partition');
    assert.ok((a.tcpStats() as TcpStackStats).timeouts >= 3, 'the sender kept retransmitting, backing off');

    mesh.heal();
    await mesh.drive(all, { maxMs: 60_000 });
    assert.is(bytes, before.length + during.length);
    assert.is(hash.digest('hex'), sha256(Buffer.concat([before, during])));
    assert.is(client.readyState, 'open');
    assert.is(server.readyState, 'open');
    client.destroy();
    server.destroy();
  } finally {
    await mesh.stop();
  }
});

for (const [label, tcp] of [
  ['the user timeout (userTimeoutMs 3 s)', { userTimeoutMs: 3_000 }],
  ['the retry limit (dataRetries 4, maxRtoMs 1 s)', { dataRetries: 4, maxRtoMs: 1_000 }],
] as const) {
  test(`a partition longer than ${label} ends the connection with ETIMEDOUT on the writer`, async () => {
    const { mesh, a, b } = await twoPeers({ overlay: { tcp } });
    try {
      const { client, server } = await openConnection(mesh, a, b);
      server.on('error', () => {});
      const ended = failure(client);
      mesh.partition(['a'], ['b']);
      const start = mesh.clock.now();
      client.write(bytesOf(50_000, 13));
      assert.is(await mesh.drive(ended, { maxMs: 20_000 }), 'ETIMEDOUT');
      const elapsed = mesh.clock.now() - start;
      if ('userTimeoutMs' in tcp) assert.ok(elapsed >= 3_000 && elapsed < 4_000, `ETIMEDOUT after ${elapsed} ms`);
      else assert.ok(elapsed >= 0.2 + 0.4 + 0.8 + 1 && elapsed < 8_000, `ETIMEDOUT after ${elapsed} ms`);
      assert.is((a.tcpStats() as TcpStackStats).connections.ESTABLISHED, undefined, 'the connection is gone from the stack');
      mesh.heal();
    } finally {
      await mesh.stop();
    }
  });
}

/**
 * A connection from a1 to b1, then b1 "crashes" (partitioned, so its RSTs never leave, and detached) and
 * its address comes back on a new endpoint, with b1's MAC or a new one; resolves with the client's error
 * code, the virtual ms from its next write to that error, and the new endpoint.
 */
async function restart(mesh: TestMesh, a: MemoryEndpoint, b: MemoryEndpoint, sameMac: boolean): Promise<{ code: string | undefined; afterMs: number; successor: MemoryEndpoint }> {
  const { client } = await openConnection(mesh, a, b);
  const ended = failure(client);
  mesh.partition(['a'], ['b']);
  const { address, mac } = b.info;
  await mesh.drive(mesh.overlay('b').detach('b1'));
  mesh.heal();
  await mesh.ready({ timeoutMs: 30_000 });
  const successor = await mesh.drive(mesh.overlay('b').attach({ name: 'b2', ip: address, ...(sameMac ? { mac } : {}) }));
  assert.is(successor.info.address, address);
  assert.is(successor.info.mac === mac, sameMac);
  client.write('are you there?');
  const start = mesh.clock.now();
  const code = await mesh.drive(ended, { maxMs: 30_000 });
  return { code, afterMs: mesh.clock.now() - start, successor };
}

// This found a bug: attach({ mac }) gave the MAC to the switch's end of the NIC pair, so the re-attached
// endpoint had a new MAC and dropped the client's frames (sent to the old one) as not for it.
test('a peer restart ends connections with ECONNRESET: the new incarnation answers a segment for a connection it never knew with RST', async () => {
  const { mesh, a, b } = await twoPeers();
  try {
    const { code, successor } = await restart(mesh, a, b, true);
    assert.is(code, 'ECONNRESET');
    const stats = successor.tcpStats() as TcpStackStats;
    assert.ok(stats.resetsOut >= 1, 'the restarted endpoint sent the RST');
    assert.is(stats.passiveOpens + stats.activeOpens, 0, 'it never had a connection');
  } finally {
    await mesh.stop();
  }
});

test('an address taken over by a new endpoint with another MAC: its gratuitous ARP updates the peers, so an old connection gets its RST at once, not after the ARP entry expires', async () => {
  const { mesh, a, b } = await twoPeers();
  try {
    const { code, afterMs } = await restart(mesh, a, b, false);
    assert.is(code, 'ECONNRESET');
    assert.ok(afterMs < 5_000, `ECONNRESET after ${afterMs} ms (the ARP entry would have lasted 60 s)`);
  } finally {
    await mesh.stop();
  }
});

test.run();
