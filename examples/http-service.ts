// An HTTP service on an overlay name, called by name from another peer: plain node:http on both sides, no
// root, no kernel devices. The service runs on an in-process endpoint `users` of one peer; a client on a
// second peer reads and writes it by name with a keep-alive agent, then the service's peer leaves and the
// client sees ECONNRESET.
//
// Run: npm run build && node dist/examples/http-service.js
// Across hosts, run `serve` on one and `call HOST` on another (both with the same WEAVE_PASSWORD):
//   node dist/examples/http-service.js serve            # listens on 0.0.0.0:6783
//   node dist/examples/http-service.js call 192.0.2.1   # joins that peer and calls http://users:8080/
import http from 'node:http';
import { Overlay, type MemoryEndpoint } from '../src/index.js';

const PORT = 8080;
const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** The service: a tiny user store over JSON. */
async function serveUsers(endpoint: MemoryEndpoint): Promise<void> {
  const users = new Map<string, { name: string }>([['1', { name: 'ada' }]]);
  const server = http.createServer((req, res) => {
    const id = /^\/users\/(\w+)$/.exec(req.url ?? '')?.[1];
    if (!id) return void res.writeHead(404).end();
    if (req.method === 'PUT') {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        users.set(id, JSON.parse(body) as { name: string });
        res.writeHead(201).end();
      });
      return;
    }
    const user = users.get(id);
    res.writeHead(user ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(user ?? { error: 'no such user' }));
  });
  await endpoint.serveHttp(server, PORT); // every connection to users:8080 goes to this server
  log(`serving http://${endpoint.name}:${PORT}/ (${endpoint.info.fqdn ?? 'no DNS'}) on ${endpoint.address}`);
}

/** One request through the client endpoint's agent; resolves with the status and body. */
function request(agent: http.Agent, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`http://users:${PORT}${path}`, { method, agent, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function callUsers(endpoint: MemoryEndpoint): Promise<void> {
  const agent = endpoint.httpAgent(); // keep-alive: the requests below share one TCP connection
  log(`GET /users/1 -> ${JSON.stringify(await request(agent, 'GET', '/users/1'))}`);
  log(`PUT /users/2 -> ${(await request(agent, 'PUT', '/users/2', JSON.stringify({ name: 'grace' }))).status}`);
  log(`GET /users/2 -> ${JSON.stringify(await request(agent, 'GET', '/users/2'))}`);
  log(`GET /users/9 -> ${(await request(agent, 'GET', '/users/9')).status}`);
  const tcp = endpoint.tcpStats();
  log(`client TCP: ${tcp?.activeOpens} connection(s) opened for 4 requests, ${tcp?.bytesOut} bytes out, ${tcp?.bytesIn} bytes in`);
  agent.destroy();
}

function overlay(nickname: string, listen: string, peers: string[]): Overlay {
  return new Overlay({ nickname, listen, peers, password: process.env['WEAVE_PASSWORD'] ?? 'example password: use a long random one' });
}

async function both(): Promise<void> {
  const hosts = ['127.0.0.1:16791', '127.0.0.1:16792'];
  const service = overlay('service', hosts[0]!, [hosts[1]!]);
  const client = overlay('client', hosts[1]!, [hosts[0]!]);
  try {
    await Promise.all([service.start(), client.start()]);
    await Promise.all([service.ready(), client.ready()]);
    await serveUsers(await service.attach({ name: 'users' }));
    const caller = await client.attach({ name: 'caller' });
    await callUsers(caller); // `users` is resolved by the client peer's DNS once gossip brings it

    // A connection open while the service's peer stops: its endpoint resets it, as a closing host would.
    const socket = caller.connect({ host: 'users', port: PORT });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const ended = new Promise<string>((resolve) => socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message)));
    await service.stop();
    log(`open connection when the service stopped: ${await ended}`);
  } finally {
    await Promise.all([service.stop(), client.stop()]);
  }
}

async function main(): Promise<void> {
  const [role, peer] = process.argv.slice(2);
  if (role === undefined) return both();
  if (role === 'serve') {
    const service = overlay('service', '0.0.0.0:6783', []);
    await service.start();
    await serveUsers(await service.attach({ name: 'users' }));
    log('ctrl-c to stop');
    await new Promise<void>((resolve) => process.once('SIGINT', resolve));
    await service.stop();
    return;
  }
  if (role === 'call' && peer) {
    await using client = overlay('client', '0.0.0.0:6783', [peer]);
    await client.start();
    await client.ready();
    await callUsers(await client.attach({ name: 'caller' }));
    return;
  }
  throw new Error('usage: http-service.js [serve | call PEER]');
}

main().catch((error: unknown) => {
  process.stderr.write(`http-service: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
