// Testing your own distributed code with weave-ts/testing: a tiny primary/replica counter runs on
// in-process endpoints of a virtual mesh; the test cuts the network and checks what the replicas saw.
// Run: npm run build && node dist/examples/test-harness.js
import { createTestMesh } from '../src/testing/index.js';
import type { MemoryEndpoint, RemoteInfo } from '../src/index.js';

/** The code under test: the primary sends every increment to its replicas over UDP, by name. */
async function startPrimary(endpoint: MemoryEndpoint, replicas: string[]): Promise<(n: number) => Promise<void>> {
  const socket = endpoint.createUdpSocket();
  await socket.bind();
  return async (value) => {
    for (const replica of replicas) await socket.send(Buffer.from(String(value)), 7000, replica).catch(() => undefined);
  };
}

async function startReplica(endpoint: MemoryEndpoint): Promise<{ value: () => number }> {
  let value = 0;
  const socket = endpoint.createUdpSocket();
  await socket.bind(7000);
  socket.on('message', (msg: Buffer, _from: RemoteInfo) => {
    value = Math.max(value, Number(msg.toString()));
  });
  return { value: () => value };
}

const check = (ok: boolean, what: string): void => {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}\n`);
  if (!ok) process.exitCode = 1;
};

async function main(): Promise<void> {
  // Three peers in a line with 2 ms links; the last one sits behind a NAT.
  await using mesh = await createTestMesh({ peers: ['east', 'middle', 'west'], topology: 'line', conditions: { latencyMs: 2 } });
  mesh.nat('west', '192.0.2.10');
  await mesh.ready();
  const primary = await startPrimary(await mesh.overlay('east').attach({ name: 'primary' }), ['replica-m', 'replica-w']);
  const m = await startReplica(await mesh.overlay('middle').attach({ name: 'replica-m' }));
  const w = await startReplica(await mesh.overlay('west').attach({ name: 'replica-w' }));
  await new Promise((r) => setTimeout(r, 200)); // names travel by gossip

  for (let i = 1; i <= 10; i++) await primary(i);
  await new Promise((r) => setTimeout(r, 100));
  check(m.value() === 10 && w.value() === 10, `both replicas saw 10 before the partition (${m.value()}, ${w.value()})`);

  mesh.partition(['east', 'middle'], ['west']);
  for (let i = 11; i <= 20; i++) await primary(i);
  await new Promise((r) => setTimeout(r, 100));
  check(m.value() === 20, `the reachable replica kept up (${m.value()})`);
  check(w.value() === 10, `the cut-off replica is stale, as the code under test must tolerate (${w.value()})`);

  mesh.heal();
  await mesh.ready();
  await primary(21);
  await new Promise((r) => setTimeout(r, 100));
  check(w.value() === 21, `after heal the replica catches up on the next write (${w.value()})`);
  process.stdout.write(`wire: ${JSON.stringify(mesh.wire.stats.datagramsDropped)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`test-harness: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
