// The peer's FIN reaches a paused reader as net.Socket delivers it: 'end' only after a read() found the buffer empty,
// never straight after the read() that took the last bytes (undici's HTTP/1 parser asserts this when a response is
// delimited by the close and its body is backpressured).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import type { TcpImplementation } from '../../../src/stack/tcp/tcp-layer.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { createTestMesh } from '../../../src/testing/index.js';
import { fakeTcp } from '../../helpers/fake-tcp.js';
import { drive, once, tcpPair } from '../../helpers/tcp-sockets.js';

const implementations: [string, TcpImplementation | undefined][] = [
  ['built-in', undefined],
  ['fake', fakeTcp],
];

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

for (const [name, implementation] of implementations) {
  test(`${name}: data and FIN buffered for a paused reader: the read() that takes the last bytes is not followed by 'end'; the next read() is`, async () => {
    const { clock, a, b, close } = tcpPair(implementation);
    const payload = randomBytes(200_000);
    const server = b.createServer((socket) => socket.resume().end(payload));
    server.listen(7);
    await drive(clock, once(server, 'listening'));
    const client = a.connect(7, '10.32.0.2');
    let ended = false;
    client.on('end', () => (ended = true));
    client.on('readable', () => undefined); // paused mode: the consumer decides when to read, as undici does
    await drive(clock, once(client, 'connect'));
    // Let everything arrive, FIN included, without reading (the FIN follows the last bytes within a few virtual ms).
    for (let t = 0; t < 300; t++) {
      await turns(1);
      clock.advance(1);
    }
    assert.is(client.readableLength, payload.length);
    const chunk = client.read() as Buffer;
    assert.is(chunk.length, payload.length, 'read() takes everything buffered');
    assert.is(createHash('sha256').update(chunk).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    await turns(5);
    assert.is(ended, false, "no 'end' before the reader asks again (it may be paused on those bytes)");
    assert.is(client.read(), null);
    await turns(5);
    assert.is(ended, true, "'end' once a read() found nothing left");
    client.end();
    await drive(clock, new Promise<void>((resolve) => server.close(() => resolve())));
    await close();
  });
}

test('undici fetch of a response delimited by the close (HTTP/1.0, as python3 -m http.server) with a body larger than its buffers', async () => {
  await using mesh = await createTestMesh({ peers: ['a'] });
  await mesh.ready();
  const api = await mesh.overlay('a').attach({ name: 'api' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  const body = randomBytes(8 << 20);
  const server = api.createServer((socket) => {
    socket.once('data', () => {
      socket.write(`HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.end(body);
    });
    socket.on('error', () => undefined);
  });
  server.listen(8000);
  const dispatcher = new Agent({ connect: client.connector() });
  try {
    for (let i = 0; i < 3; i++) {
      const got = new Uint8Array(await (await undiciFetch('http://api:8000/blob', { dispatcher })).arrayBuffer());
      assert.is(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
    }
  } finally {
    await dispatcher.close();
    server.close();
  }
});

test.run();
