// HTTPS between in-process endpoints on two peers: an https server served on an endpoint, called by name through
// endpoint.httpsAgent(), with the certificate checked as over any network.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as https from 'node:https';
import { createTestMesh } from '../../src/testing/index.js';
import type { EndpointHttpsAgent } from '../../src/endpoint/https.js';
import { selfSignedCertificate } from '../helpers/tcp-sockets.js';

function get(url: string, agent: EndpointHttpsAgent): Promise<string> {
  return new Promise((resolve, reject) => {
    https.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject);
  });
}

test('https by name across peers: a self-signed certificate trusted with ca, keep-alive, and refused without it or for another name', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const api = await mesh.overlay('b').attach({ name: 'api' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  const { key, cert } = selfSignedCertificate(['api.weave.local', api.address]);
  const server = https.createServer({ key, cert }, (req, res) => res.end(`secure ${req.url} via ${req.socket.constructor.name}`));
  await api.serveHttp(server, 8443);

  const agent = client.httpsAgent({ ca: cert });
  assert.is(await get('https://api.weave.local:8443/one', agent), 'secure /one via TLSSocket');
  assert.is(await get('https://api.weave.local:8443/two', agent), 'secure /two via TLSSocket');
  assert.is(client.tcpStats()?.activeOpens, 1, 'the second request reused the kept-alive TLS connection');
  assert.is(await get(`https://${api.address}:8443/by-address`, agent), 'secure /by-address via TLSSocket');
  agent.destroy();

  const untrusting = client.httpsAgent();
  const unverified = await get('https://api.weave.local:8443/', untrusting).then(() => 'accepted', (error: NodeJS.ErrnoException) => error.code);
  assert.is(unverified, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  untrusting.destroy();

  const other = await mesh.overlay('b').attach({ name: 'other' });
  await other.serveHttp(https.createServer({ key, cert }, (_req, res) => res.end('wrong host')), 8443);
  const mismatch = client.httpsAgent({ ca: cert });
  const wrongName = await get('https://other.weave.local:8443/', mismatch).then(() => 'accepted', (error: NodeJS.ErrnoException) => error.code);
  assert.is(wrongName, 'ERR_TLS_CERT_ALTNAME_INVALID');
  mismatch.destroy();

  const refused = client.httpsAgent({ ca: cert });
  const closedPort = await get('https://api.weave.local:9443/', refused).then(() => 'accepted', (error: NodeJS.ErrnoException) => error.code);
  assert.is(closedPort, 'ECONNREFUSED');
  refused.destroy();
  server.close();
});

test.run();
