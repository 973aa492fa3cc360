// Demo: three encrypted peers in one process (no root): endpoints with addresses from IPAM and names in
// DNS, a ping by name across the mesh, one multicast message delivered to every subscriber, an HTTP
// request by name over the in-process TCP, then the mesh as one peer sees it. Run with `npm run demo`.
import http from 'node:http';
import { deriveNetworkKey, Overlay, type MemoryEndpoint, type RemoteInfo } from '../src/index.js';
import { formatStatus } from '../src/cli/format.js';

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<void> {
  const started = performance.now();
  // Stretch the password once (Argon2id); every peer of a network derives the same key from it.
  const networkKey = await deriveNetworkKey(process.env.WEAVE_PASSWORD ?? 'demo password: use a long random one');
  const nicknames = ['alpha', 'bravo', 'charlie'];
  const overlays: Overlay[] = [];
  for (const nickname of nicknames) {
    const overlay = new Overlay({
      nickname,
      networkKey,
      listen: '127.0.0.1:0',
      ipam: { range: '10.32.0.0/24', init: { consensus: 3 } },
      tuning: { topologyDelayMs: 10, gcDelayMs: 10, sleeve: { fastHeartbeatMs: 50 }, ipamTickMs: 200 },
    });
    overlay.on('peer:up', (peer) => {
      if (!peer.isSelf) log(`  ${nickname} sees ${peer.nickname} (${peer.id})`);
    });
    overlays.push(overlay);
  }
  const [alpha, bravo, charlie] = overlays as [Overlay, Overlay, Overlay];
  await Promise.all(overlays.map((o) => o.start()));
  // Only alpha–bravo and charlie–bravo are configured; discovery adds alpha–charlie from gossip.
  alpha.connect(`127.0.0.1:${bravo.router.port}`);
  charlie.connect(`127.0.0.1:${bravo.router.port}`);
  for (const o of overlays) log(`started ${o.router.nickname} as ${o.self.id} on ${o.router.listenAddress} (${o.router.cryptoBackend})`);
  // Each peer waits until it reaches the other two over established data links and IPAM has its ring.
  await Promise.all(overlays.map((o) => o.ready({ peers: nicknames.filter((n) => n !== o.router.nickname), timeoutMs: 10_000 })));
  log(`full mesh with encrypted data links in ${Math.round(performance.now() - started)} ms, key stretching included`);

  // Endpoints: IPAM divides the range by consensus among the three, each endpoint gets an address and a name.
  const endpoints = await Promise.all([alpha.attach({ name: 'web' }), bravo.attach({ name: 'cache' }), charlie.attach({ name: 'db' })]);
  for (const [i, e] of endpoints.entries()) log(`${nicknames[i]}: endpoint ${e.name} is ${e.info.address} (${e.info.mac}, ${e.info.fqdn})`);
  const [web, cache, db] = endpoints as [MemoryEndpoint, MemoryEndpoint, MemoryEndpoint];
  // Names are gossiped; a ping by name would wait for its name anyway, this waits for all of them everywhere.
  await Promise.all(overlays.flatMap((o) => ['web', 'cache', 'db'].map((n) => o.dns?.waitFor(n, { timeoutMs: 5_000 }))));

  // Ping by name: web (on alpha) resolves db through the overlay's DNS and sends ICMP echo across the mesh.
  for (let i = 0; i < 3; i++) {
    const reply = await web.ping('db', { timeoutMs: 2_000 });
    log(`web: 64 bytes from db (${reply.address}): icmp_seq=${i + 1} ttl=${reply.ttl} time=${reply.rttMs.toFixed(2)} ms`);
  }

  // Multicast: cache and db join a group; one datagram from web reaches both.
  const got = [cache, db].map(async (endpoint) => {
    const socket = endpoint.createUdpSocket();
    await socket.bind(5999);
    socket.addMembership('239.1.2.3');
    return new Promise<string>((resolve) =>
      socket.once('message', (msg: Buffer, from: RemoteInfo) => resolve(`${endpoint.name} got "${msg.toString()}" from ${from.address}:${from.port}`)),
    );
  });
  const sender = web.createUdpSocket();
  await sender.bind();
  await sender.send(Buffer.from('tick 42.17'), 5999, '239.1.2.3');
  for (const line of await Promise.all(got)) log(line);

  // TCP: db serves node:http on its overlay address; web calls it by name through its own endpoint.
  await db.serveHttp(http.createServer((_req, res) => res.end('hello from db over TCP')), 8080);
  const agent = web.httpAgent();
  const body = await new Promise<string>((resolve, reject) => {
    http.get('http://db:8080/', { agent }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
    }).on('error', reject);
  });
  log(`web: GET http://db:8080/ -> ${body}`);
  agent.destroy();

  log('');
  log(`the mesh as ${alpha.router.nickname} sees it:`);
  log(formatStatus(alpha.status()).trimEnd());
  await Promise.all(overlays.map((o) => o.stop()));
  log('\nall peers stopped cleanly');
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
