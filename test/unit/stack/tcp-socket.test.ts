import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as tls from 'node:tls';
import type { TcpImplementation } from '../../../src/stack/tcp/tcp-layer.js';
import type { TcpSocket } from '../../../src/stack/tcp/socket.js';
import { EndpointHttpAgent, serveHttp } from '../../../src/endpoint/http.js';
import { fakeTcp } from '../../helpers/fake-tcp.js';
import { drive, once, readAll, selfSignedCertificate, tcpPair } from '../../helpers/tcp-sockets.js';

// Every behaviour of the sockets and servers runs over the built-in machine and over the small lossless fake
// (which pins down what the sockets themselves do, independently of the machine).
const implementations: [string, TcpImplementation | undefined][] = [
  ['built-in', undefined],
  ['fake', fakeTcp],
];

for (const [name, implementation] of implementations) {
  test(`${name}: echo: connect, write, half-close, 'end' and 'close' on both sides, addresses and byte counts`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const server = b.createServer((socket) => socket.pipe(socket));
    server.listen(7);
    await drive(clock, once(server, 'listening'));
    assert.equal(server.address(), { address: '10.32.0.2', family: 'IPv4', port: 7 });
    const client = a.connect({ port: 7, host: '10.32.0.2' });
    assert.is(client.connecting, true);
    assert.is(client.pending, true);
    assert.is(client.readyState, 'opening');
    await drive(clock, once(client, 'connect'));
    assert.is(client.readyState, 'open');
    assert.is(client.remoteAddress, '10.32.0.2');
    assert.is(client.remotePort, 7);
    assert.is(client.remoteFamily, 'IPv4');
    assert.is(client.localAddress, '10.32.0.1');
    assert.ok(client.localPort! >= 49152);
    assert.equal(client.address(), { address: '10.32.0.1', family: 'IPv4', port: client.localPort });
    const received = readAll(client);
    const closed = once(client, 'close');
    client.write('hello ');
    client.end('world');
    assert.is((await drive(clock, received)).toString(), 'hello world');
    await drive(clock, closed);
    assert.is(client.bytesRead, 11);
    assert.is(client.bytesWritten, 11);
    assert.is(client.readyState, 'closed');
    await drive(clock, new Promise<void>((resolve) => server.close(() => resolve())));
    await close();
  });

  test(`${name}: a connect to a port nobody listens on fails with ECONNREFUSED like net.Socket`, async () => {
    const { clock, a, close } = tcpPair(implementation);
    const client = a.connect(9, '10.32.0.2');
    const error = await drive(clock, once<Error & { code: string; errno: number; syscall: string; address: string; port: number }>(client, 'error'));
    assert.is(error.code, 'ECONNREFUSED');
    assert.is(error.errno, -111);
    assert.is(error.syscall, 'connect');
    assert.is(error.address, '10.32.0.2');
    assert.is(error.port, 9);
    assert.is(error.message, 'connect ECONNREFUSED 10.32.0.2:9');
    assert.ok(client.destroyed);
    await close();
  });

  test(`${name}: resetAndDestroy on one side is ECONNRESET on the other`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const server = b.createServer((socket) => {
      socket.once('data', () => socket.resetAndDestroy());
    });
    server.listen(80);
    const client = a.connect(80, '10.32.0.2');
    await drive(clock, once(client, 'connect'));
    client.write('x');
    const error = await drive(clock, once<Error & { code: string; syscall: string }>(client, 'error'));
    assert.is(error.code, 'ECONNRESET');
    assert.is(error.syscall, 'read');
    server.close();
    await close();
  });

  test(`${name}: half-close: with allowHalfOpen the server reads the client's end and still answers`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const server = b.createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes`));
    });
    server.listen(80);
    const client = a.connect({ port: 80, host: '10.32.0.2', allowHalfOpen: true });
    const answer = readAll(client);
    const closed = once(client, 'close');
    client.end(Buffer.alloc(5000, 1));
    assert.is((await drive(clock, answer)).toString(), 'got 5000 bytes');
    await drive(clock, closed);
    server.close();
    await close();
  });

  test(`${name}: backpressure: a paused reader closes the window, write() returns false, then every byte arrives`, async () => {
    const { clock, a, b, close } = tcpPair(implementation, { sendBufferBytes: 64 * 1024, receiveBufferBytes: 64 * 1024 });
    let accepted: TcpSocket | undefined;
    const server = b.createServer({ pauseOnConnect: true }, (socket) => (accepted = socket));
    server.listen(80);
    const client = a.connect(80, '10.32.0.2');
    const clientClosed = once(client, 'close');
    await drive(clock, once(client, 'connect'));
    const payload = randomBytes(1 << 20);
    let refusedAt = -1;
    for (let offset = 0; offset < payload.length; offset += 16 * 1024) {
      if (!client.write(payload.subarray(offset, offset + 16 * 1024)) && refusedAt < 0) refusedAt = offset;
    }
    client.end();
    client.resume();
    assert.ok(refusedAt >= 0 && refusedAt < 256 * 1024, `write() returned false early (at ${refusedAt})`);
    await drive(clock, new Promise((resolve) => setTimeout(resolve, 0)).then(() => undefined));
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      clock.advance(1);
    }
    assert.ok(accepted, 'the server accepted');
    // Nothing was read: at most the receive buffer plus the stream's own buffer sits at the server.
    assert.ok(accepted!.bytesRead <= 64 * 1024 + 64 * 1024, `bytes at the paused reader: ${accepted!.bytesRead}`);
    assert.ok(client.writableLength > 0, 'the client is still holding bytes back');
    const all = readAll(accepted!);
    accepted!.resume();
    const got = await drive(clock, all);
    assert.is(got.length, payload.length);
    assert.is(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    await drive(clock, clientClosed);
    server.close();
    await close();
  });

  test(`${name}: setTimeout emits 'timeout' after idle time, activity postpones it`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const server = b.createServer(() => {});
    server.listen(80);
    const client = a.connect(80, '10.32.0.2');
    await drive(clock, once(client, 'connect'));
    let timeouts = 0;
    client.setTimeout(1000, () => timeouts++);
    clock.advance(600);
    client.write('x');
    clock.advance(600);
    assert.is(timeouts, 0, 'the write postponed it');
    clock.advance(500);
    assert.is(timeouts, 1);
    client.setTimeout(0);
    clock.advance(5000);
    assert.is(timeouts, 1);
    client.destroy();
    server.close();
    await close();
  });

  test(`${name}: server: getConnections, maxConnections resets the excess, close waits for open connections`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const sockets: TcpSocket[] = [];
    const server = b.createServer((socket) => sockets.push(socket.resume()));
    server.maxConnections = 2;
    server.listen(80);
    const clients = [0, 1, 2].map(() => a.connect(80, '10.32.0.2').on('error', () => {}));
    const thirdClosed = new Promise<void>((resolve) => clients[2]!.once('close', () => resolve()));
    await drive(clock, Promise.all(clients.slice(0, 2).map((c) => once(c, 'connect'))));
    await drive(clock, thirdClosed);
    assert.is(await new Promise((resolve) => server.getConnections((_e, n) => resolve(n))), 2);
    let closed = false;
    server.close(() => (closed = true));
    assert.is(server.address(), null);
    // A new connection is refused once the server stopped listening.
    const late = a.connect(80, '10.32.0.2');
    assert.is((await drive(clock, once<Error & { code: string }>(late, 'error'))).code, 'ECONNREFUSED');
    assert.is(closed, false, 'two connections are still open');
    for (const c of clients.slice(0, 2)) c.end();
    await drive(clock, new Promise<void>((resolve) => (closed ? resolve() : server.once('close', () => resolve()))));
    assert.is(sockets.length, 2);
    await close();
  });

  test(`${name}: node:http over an endpoint: serveHttp and an Agent with keep-alive reuse one connection`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const web = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method} ${req.url} from ${req.socket.remoteAddress}`);
    });
    let connections = 0;
    web.on('connection', () => connections++);
    const tcp = await drive(clock, serveHttp(b, web, 8080));
    const agent = new EndpointHttpAgent(a);
    const get = (path: string) =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host: '10.32.0.2', port: 8080, path, agent }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks).toString()));
          })
          .on('error', reject);
      });
    assert.is(await drive(clock, get('/one')), 'GET /one from 10.32.0.1');
    assert.is(await drive(clock, get('/two')), 'GET /two from 10.32.0.1');
    assert.is(connections, 1, 'the second request reused the kept-alive connection');
    agent.destroy();
    web.close();
    web.closeAllConnections();
    await drive(clock, once(tcp, 'close'));
    await close();
  });

  test(`${name}: TLS with a self-signed certificate over an endpoint stream, both directions`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const { key, cert } = selfSignedCertificate(['secure.weave.local']);
    const secure = tls.createServer({ key, cert }, (socket) => socket.pipe(socket));
    const tcp = b.createServer((socket) => secure.emit('connection', socket));
    tcp.listen(443);
    const raw = a.connect(443, '10.32.0.2');
    const client = tls.connect({ socket: raw, servername: 'secure.weave.local', ca: cert });
    await drive(clock, once(client, 'secureConnect'));
    assert.ok(client.authorized, String(client.authorizationError));
    const payload = randomBytes(100_000);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    client.write(payload);
    await drive(clock, new Promise<void>((resolve) => {
      const check = (): void => {
        if (chunks.reduce((n, c) => n + c.length, 0) >= payload.length) resolve();
        else setImmediate(check);
      };
      check();
    }));
    assert.ok(Buffer.concat(chunks).equals(payload));
    client.end();
    await drive(clock, once(raw, 'close'));
    tcp.close();
    await close();
  });
}

test("a ref'd socket and a listening server hold the process open like real ones; unref'd they do not", async () => {
  const { clock, a, b, close } = tcpPair(undefined);
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const base = timers();
  const server = b.createServer().listen(80);
  const accepted = once(server, 'connection');
  const socket = a.connect(80, '10.32.0.2');
  await drive(clock, Promise.all([once(socket, 'connect'), accepted]));
  const held = timers();
  assert.ok(held >= base + 3, `socket, accepted socket and server hold the process (${base} → ${held})`);
  socket.unref();
  server.unref();
  assert.is(timers(), held - 2, 'as in Node, the accepted socket stays ref\'d: it is its own handle');
  socket.ref();
  assert.is(timers(), held - 1);
  socket.destroy();
  server.close();
  await close();
});

test.run();
