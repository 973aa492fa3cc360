import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { createTestMesh } from '../../src/testing/index.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { once } from '../helpers/tcp-sockets.js';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

test('in-process endpoints on two peers of a test mesh: node:http by name, ECONNREFUSED, 10 MB both ways with SHA-256, 1000 concurrent connections, stats in status and metrics', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const api = await mesh.overlay('b').attach({ name: 'api' });
  const client = await mesh.overlay('a').attach({ name: 'client' });

  // node:http served on the endpoint, called by name through an Agent.
  const web = http.createServer((req, res) => res.end(`hello ${req.url} from ${req.socket.localAddress}`));
  const tcp = await api.serveHttp(web, 8080);
  const agent = client.httpAgent();
  const body = await new Promise<string>((resolve, reject) => {
    http.get('http://api.weave.local:8080/x', { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject);
  });
  assert.is(body, `hello /x from ${api.address}`);
  agent.destroy();

  // A closed port refuses.
  const refused = client.connect(9, 'api');
  assert.is((await once<Error & { code: string }>(refused, 'error')).code, 'ECONNREFUSED');

  // 10 MB each way on one connection, checked by SHA-256.
  const size = 10 << 20;
  const toServer = randomBytes(size);
  const toClient = randomBytes(size);
  const echoServer = api.createServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end(Buffer.concat([Buffer.from(sha256(Buffer.concat(chunks)), 'hex'), toClient]));
    });
  });
  echoServer.listen(9000);
  await once(echoServer, 'listening');
  const stream = client.connect({ port: 9000, host: 'api', allowHalfOpen: true });
  const received: Buffer[] = [];
  stream.on('data', (c: Buffer) => received.push(c));
  const ended = once(stream, 'end');
  stream.end(toServer);
  await ended;
  const answer = Buffer.concat(received);
  assert.is(answer.subarray(0, 32).toString('hex'), sha256(toServer), 'the server got every byte in order');
  assert.is(sha256(answer.subarray(32)), sha256(toClient), 'the client got every byte in order');

  // 1000 concurrent connections, each echoing its own line.
  const lineServer = api.createServer((socket) => socket.pipe(socket));
  lineServer.listen(7000);
  await once(lineServer, 'listening');
  const results = await Promise.all(
    Array.from({ length: 1000 }, (_, i) =>
      new Promise<string>((resolve, reject) => {
        const s: TcpSocket = client.connect(7000, api.address);
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString())).on('error', reject);
        s.end(`line ${i}`);
      }),
    ),
  );
  assert.ok(results.every((r, i) => r === `line ${i}`));

  const status = mesh.overlay('b').status().endpoints.find((e) => e.name === 'api');
  assert.ok(status?.tcp, 'status shows the endpoint TCP counters');
  assert.ok(status.tcp.passiveOpens >= 1002);
  assert.ok(status.tcp.bytesIn >= size);
  const metrics = mesh.overlay('b').metrics();
  assert.match(metrics, /weave_tcp_connections\{endpoint="api",state="LISTEN"\} 3/);
  assert.match(metrics, /weave_tcp_segments_total\{endpoint="api",direction="in"\} \d+/);
  tcp.close();
  echoServer.close();
  lineServer.close();
});

test('a connection whose peer overlay stops ends with ECONNRESET', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const server = await mesh.overlay('b').attach({ name: 'server' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  const listener = server.createServer((socket) => socket.on('error', () => {}).resume());
  listener.listen(80);
  await once(listener, 'listening');
  const socket = client.connect(80, 'server');
  await once(socket, 'connect');
  const failed = new Promise<Error & { code?: string }>((resolve) => socket.once('error', resolve));
  await mesh.overlay('b').stop();
  const error = await failed;
  assert.is(error.code, 'ECONNRESET');
});

test.run();
