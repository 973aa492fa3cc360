// A service that joins the overlay itself: the host gets an overlay address on a kernel bridge (TAP, root),
// an HTTP server listens there, and its name is in the overlay's DNS, so every endpoint on every peer
// reaches it as http://status.weave.local:8080/. Run as root:
//   WEAVE_PASSWORD=… node dist/examples/tap-service.js [PEER_HOST[:PORT] …]
import { createServer } from 'node:http';
import { Overlay, jsonLineLogger } from '../src/index.js';

async function main(): Promise<void> {
  const overlay = new Overlay({
    peers: process.argv.slice(2),
    ...(process.env.WEAVE_PASSWORD ? { password: process.env.WEAVE_PASSWORD } : {}),
    bridge: process.env.WEAVE_BRIDGE ?? 'weave',
    dataDir: process.env.WEAVE_DATA_DIR ?? '/var/lib/weave-ts-service',
    logger: jsonLineLogger(process.stderr, 'warn'),
  });
  await overlay.start();
  // The host's overlay address: a bridge with the overlay's TAP on it; the DNS server listens there too.
  const cidr = await overlay.expose();
  const address = cidr.split('/')[0] as string;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ peer: overlay.self.id, peers: overlay.peers().length, links: overlay.status().links }));
  });
  await new Promise<void>((resolve) => server.listen(8080, address, resolve));
  overlay.dns?.add('status', address, { id: 'service:status' });
  process.stdout.write(`serving http://status.weave.local:8080/ on ${address} (peer ${overlay.self.id})\n`);

  const stop = async (): Promise<void> => {
    server.close();
    await overlay.stop({ detach: true }); // removes the bridge and the host address again
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`tap-service: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
