// Demo: three encrypted peers in one process form a mesh on loopback, broadcast a message, and print the mesh.
// Run with `npm run demo` (no root needed).
import { deriveNetworkKey, formatPeerName, MeshRouter, type GossipChannel } from '../src/index.js';

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Resolves when `ready()` holds, re-checking on every topology change; rejects after `ms`. */
function when(peers: MeshRouter[], ready: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    const check = (): void => {
      if (!ready()) return;
      clearTimeout(timer);
      for (const p of peers) p.off('topology:changed', check);
      resolve();
    };
    for (const p of peers) p.on('topology:changed', check);
    check();
  });
}

async function main(): Promise<void> {
  const started = performance.now();
  // Stretch the password once (Argon2id); every peer of a network derives the same key from it.
  const networkKey = await deriveNetworkKey(process.env.WEAVE_PASSWORD ?? 'demo password: use a long random one');
  const peers = ['alpha', 'bravo', 'charlie'].map(
    (nickname) => new MeshRouter({ nickname, networkKey, listen: '127.0.0.1:0', topologyDelayMs: 10, gcDelayMs: 10 }),
  );
  await Promise.all(peers.map((p) => p.start()));
  const [alpha, bravo, charlie] = peers as [MeshRouter, MeshRouter, MeshRouter];
  for (const p of peers) log(`started ${p.nickname} as ${p.self.id} on ${p.listenAddress} (${p.cryptoBackend})`);

  // Only alpha—bravo and charlie—bravo are configured; discovery adds alpha—charlie from gossip.
  alpha.connect(`127.0.0.1:${bravo.port}`);
  charlie.connect(`127.0.0.1:${bravo.port}`);
  await when(peers, () => peers.every((p) => p.linkInfos().length === 2), 10_000, 'a full mesh');
  log(`full mesh in ${Math.round(performance.now() - started)} ms, key stretching included`);

  // An application channel: a broadcast reaches every other peer exactly once.
  const received: string[] = [];
  const channels = new Map<MeshRouter, GossipChannel>();
  for (const p of peers) {
    channels.set(
      p,
      p.registerGossip('chat', {
        onBroadcast(payload, source) {
          received.push(`${p.nickname} got "${Buffer.from(payload).toString()}" from ${formatPeerName(source)}`);
          return payload;
        },
      }),
    );
  }
  channels.get(alpha)?.broadcast(Buffer.from('hello, mesh'));
  await when(peers, () => received.length === 2, 5_000, 'delivery of the broadcast');
  for (const line of received) log(line);

  log('');
  log(table(bravo));
  await Promise.all(peers.map((p) => p.stop()));
  log('\nall peers stopped cleanly');
}

function table(router: MeshRouter): string {
  const status = router.status();
  const rows = [['PEER', 'NICKNAME', 'LINK ADDRESS', 'ENCRYPTED', 'ITS LINKS']];
  for (const p of status.peers) {
    rows.push([
      p.name + (p.self ? ' (self)' : ''),
      p.nickname,
      p.self ? status.listenAddress ?? '-' : (p.address ?? '-'),
      p.self ? '-' : String(p.encrypted ?? false),
      p.connections.map((c) => c.name).join(' '),
    ]);
  }
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  return [`the mesh as ${status.nickname} sees it:`, ...lines].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
