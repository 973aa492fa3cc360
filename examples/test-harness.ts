// Testing your own distributed code with weave-ts/testing: a tiny primary/replica counter runs as plain
// node:http services on in-process endpoints of a virtual mesh; the test cuts the network and checks what
// the primary and the replicas saw.
// Run: npm run build && node dist/examples/test-harness.js
import http from 'node:http';
import { createTestMesh } from '../src/testing/index.js';
import type { MemoryEndpoint } from '../src/index.js';

const PORT = 7000;

/** The code under test, part 1: a replica keeps the highest value PUT to it and serves it on GET. */
async function startReplica(endpoint: MemoryEndpoint): Promise<void> {
  let value = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (req.method === 'PUT') value = Math.max(value, Number(body));
      res.end(String(value));
    });
  });
  await endpoint.serveHttp(server, PORT);
}

/** One request with a deadline: a partition shows up as a timeout, as it would between real hosts. */
function call(agent: http.Agent, host: string, method: 'GET' | 'PUT', body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: PORT, method, agent, timeout: 500 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(Number(text)));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`${method} ${host} timed out`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

/** The code under test, part 2: the primary PUTs every value to each replica and remembers who missed one. */
function startPrimary(endpoint: MemoryEndpoint, replicas: string[]): { write: (n: number) => Promise<void>; behind: Set<string> } {
  const agent = endpoint.httpAgent(); // keep-alive: one TCP connection per replica while it answers
  const behind = new Set<string>();
  const write = async (value: number): Promise<void> => {
    await Promise.all(replicas.map(async (replica) => {
      try {
        await call(agent, replica, 'PUT', String(value));
        behind.delete(replica);
      } catch {
        behind.add(replica);
      }
    }));
  };
  return { write, behind };
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
  const reader = await mesh.overlay('middle').attach({ name: 'reader' });
  const readerAgent = reader.httpAgent();
  const primary = startPrimary(await mesh.overlay('east').attach({ name: 'primary' }), ['replica-m', 'replica-w']);
  await startReplica(await mesh.overlay('middle').attach({ name: 'replica-m' }));
  await startReplica(await mesh.overlay('west').attach({ name: 'replica-w' }));

  for (let i = 1; i <= 10; i++) await primary.write(i); // names travel by gossip: the first calls wait for them
  const [m1, w1] = await Promise.all([call(readerAgent, 'replica-m', 'GET'), call(readerAgent, 'replica-w', 'GET')]);
  check(m1 === 10 && w1 === 10, `both replicas saw 10 before the partition (${m1}, ${w1})`);

  mesh.partition(['east', 'middle'], ['west']);
  for (let i = 11; i <= 20; i++) await primary.write(i);
  check(primary.behind.has('replica-w') && !primary.behind.has('replica-m'), `the primary knows which replica missed writes (${[...primary.behind].join(', ')})`);
  check((await call(readerAgent, 'replica-m', 'GET')) === 20, 'the reachable replica kept up');
  const cutOff = await call(readerAgent, 'replica-w', 'GET').then(String, (error: NodeJS.ErrnoException) => error.code);
  check(cutOff === 'ETIMEDOUT', `a reader cannot reach the cut-off replica: ${cutOff}`);

  mesh.heal();
  await mesh.ready();
  await primary.write(21);
  check(primary.behind.size === 0, 'after heal the primary reaches every replica again');
  check((await call(readerAgent, 'replica-w', 'GET')) === 21, 'and the replica catches up on the next write');
  process.stdout.write(`wire: ${JSON.stringify(mesh.wire.stats.datagramsDropped)}\n`);
  readerAgent.destroy();
}

main().catch((error: unknown) => {
  process.stderr.write(`test-harness: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
