// fetch through an in-process endpoint: undici's fetch and Node's global fetch with an undici Agent whose `connect`
// is endpoint.connector(), over http and https, between two peers of a test mesh.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import * as http from 'node:http';
import * as https from 'node:https';
import { Agent, fetch as undiciFetch } from 'undici';
import { createTestMesh } from '../../src/testing/index.js';
import { endpointConnector } from '../../src/endpoint/http.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { OptionsError } from '../../src/errors.js';
import { selfSignedCertificate } from '../helpers/tcp-sockets.js';

const { key, cert } = selfSignedCertificate(['api.weave.local']);

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Echoes the request's method, path and a SHA-256 of its body; `/blob` returns `blob`. */
function handler(blob: Buffer): http.RequestListener {
  return (req, res) => {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.on('end', () => {
      if (req.url === '/blob') {
        res.setHeader('content-type', 'application/octet-stream');
        res.end(blob);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, body: hash.digest('hex'), from: req.socket.remoteAddress }));
    });
  };
}

test('undici fetch and Node’s global fetch reach an overlay name through endpoint.connector(), over http and https', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const api = await mesh.overlay('b').attach({ name: 'api' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  const blob = randomBytes(3 << 20);
  await api.serveHttp(http.createServer(handler(blob)), 8080);
  await api.serveHttp(https.createServer({ key, cert }, handler(blob)), 8443);

  const dispatcher = new Agent({ connect: client.connector({ tls: { ca: cert } }) });
  try {
    // GET by name and a POST with a body, over one keep-alive connection.
    const got = (await (await undiciFetch('http://api.weave.local:8080/x?y=1', { dispatcher })).json()) as Record<string, string>;
    assert.equal(got, { method: 'GET', url: '/x?y=1', body: sha256(new Uint8Array()), from: client.address });
    const payload = randomBytes(1 << 20);
    const posted = (await (await undiciFetch('http://api:8080/upload', { method: 'POST', body: payload, dispatcher })).json()) as Record<string, string>;
    assert.is(posted['body'], sha256(payload), 'the server hashed exactly the bytes posted');
    const downloaded = new Uint8Array(await (await undiciFetch(`http://${api.address}:8080/blob`, { dispatcher })).arrayBuffer());
    assert.is(sha256(downloaded), sha256(blob), '3 MB download by address, checked by SHA-256');

    // https: TLS over the endpoint's TCP, the certificate checked against its name.
    const secure = (await (await undiciFetch('https://api.weave.local:8443/tls', { dispatcher })).json()) as Record<string, string>;
    assert.is(secure['url'], '/tls');
    // https by address: checked against the certificate's IP SAN (it was checked against "localhost").
    const byIp = selfSignedCertificate([api.address]);
    await api.serveHttp(https.createServer({ key: byIp.key, cert: byIp.cert }, handler(blob)), 9443);
    const ipDispatcher = new Agent({ connect: client.connector({ tls: { ca: byIp.cert } }) });
    const secureByIp = (await (await undiciFetch(`https://${api.address}:9443/by-ip`, { dispatcher: ipDispatcher })).json()) as Record<string, string>;
    assert.is(secureByIp['url'], '/by-ip');
    await ipDispatcher.close();

    // Node's own fetch takes the same dispatcher (Node 20's bundled undici accepts an undici 6 Agent). Its types come
    // from @types/node's copy of undici's (undici-types), which TypeScript does not take as the same Dispatcher: cast.
    const globalDispatcher = dispatcher as unknown as NonNullable<RequestInit['dispatcher']>;
    const viaGlobal = await fetch('http://api.weave.local:8080/global', { dispatcher: globalDispatcher });
    assert.is(((await viaGlobal.json()) as Record<string, string>)['url'], '/global');
    const viaGlobalTls = await fetch('https://api.weave.local:8443/global-tls', { dispatcher: globalDispatcher });
    assert.is(((await viaGlobalTls.json()) as Record<string, string>)['url'], '/global-tls');

    // Failures reach fetch as its cause, with Node's codes.
    const refused = await undiciFetch('http://api.weave.local:8081/', { dispatcher }).catch((error: unknown) => error);
    assert.instance(refused, TypeError);
    assert.is(((refused as Error).cause as { code?: string }).code, 'ECONNREFUSED');
    const badCert = new Agent({ connect: client.connector() });
    const untrusted = await undiciFetch('https://api.weave.local:8443/', { dispatcher: badCert }).catch((error: unknown) => error);
    assert.match(String(((untrusted as Error).cause as { code?: string }).code), /SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/);
    await badCert.close();
  } finally {
    await dispatcher.close();
  }
});

test('the connector gives up after timeoutMs with ETIMEDOUT, and rejects a port that is not one', async () => {
  const clock = new FakeClock();
  const never = {
    connect: () => new Duplex({ read() {} }),
    createServer: () => {
      throw new Error('unused');
    },
  };
  const connect = endpointConnector(never as never, { timeoutMs: 500, clock });
  const result = new Promise<[Error | null, unknown]>((resolve) => connect({ hostname: 'db', protocol: 'http:', port: '80' }, (error, socket) => resolve([error, socket])));
  clock.advance(499);
  await Promise.resolve();
  clock.advance(1);
  const [error, socket] = await result;
  assert.is((error as { code?: string } | null)?.code, 'ETIMEDOUT');
  assert.is(socket, null);
  const bad = await new Promise<Error | null>((resolve) => connect({ hostname: 'db', protocol: 'http:', port: '70000' }, (...args) => resolve(args[0])));
  assert.instance(bad, OptionsError);
  assert.throws(() => endpointConnector(never as never, { timeoutMs: 0 }), (e: unknown) => e instanceof OptionsError);
});

test.run();
