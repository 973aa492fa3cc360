// Demo: three encrypted peers in one process: a mesh on loopback, a virtual Ethernet segment with
// in-process NICs, addresses from IPAM, names in DNS. Run with `npm run demo` (no root needed).
import { DataPlane, deriveNetworkKey, Dns, formatPeerName, Ipam, MemoryNic, MeshRouter } from '../src/index.js';

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Resolves when `ready()` holds, re-checking on every topology change and every 20 ms; rejects after `ms`. */
function when(peers: MeshRouter[], ready: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!ready()) return;
      clearTimeout(timer);
      clearInterval(poll);
      for (const p of peers) p.off('topology:changed', check);
      resolve();
    };
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`${what} did not happen within ${ms} ms`));
    }, ms);
    const poll = setInterval(check, 20);
    for (const p of peers) p.on('topology:changed', check);
    check();
  });
}

interface DemoPeer {
  router: MeshRouter;
  dataPlane: DataPlane;
  ipam: Ipam;
  dns: Dns;
  /** The application's end of the peer's in-process NIC. */
  endpoint: MemoryNic;
  received: string[];
}

async function main(): Promise<void> {
  const started = performance.now();
  // Stretch the password once (Argon2id); every peer of a network derives the same key from it.
  const networkKey = await deriveNetworkKey(process.env.WEAVE_PASSWORD ?? 'demo password: use a long random one');
  const peers: DemoPeer[] = ['alpha', 'bravo', 'charlie'].map((nickname) => {
    const router = new MeshRouter({ nickname, networkKey, listen: '127.0.0.1:0', topologyDelayMs: 10, gcDelayMs: 10 });
    const dataPlane = new DataPlane(router, { timings: { fastHeartbeatMs: 50 } });
    const [port, endpoint] = MemoryNic.pair({ name: `${nickname}0` });
    dataPlane.attach(port);
    const received: string[] = [];
    endpoint.onFrames((frames) => {
      for (const f of frames) received.push(Buffer.from(f.subarray(14)).toString().replace(/\0+$/, ''));
    });
    const ipam = new Ipam(router, { range: '10.32.0.0/24', init: { consensus: 3 }, tickMs: 200 });
    const dns = new Dns(router, { server: { listen: '127.0.0.1:0', upstream: [] } });
    return { router, dataPlane, ipam, dns, endpoint, received };
  });
  const routers = peers.map((p) => p.router);
  await Promise.all(routers.map((r) => r.start()));
  await Promise.all(peers.map((p) => Promise.all([p.ipam.start(), p.dns.start()])));
  const [alpha, bravo, charlie] = peers as [DemoPeer, DemoPeer, DemoPeer];
  for (const p of peers) log(`started ${p.router.nickname} as ${p.router.self.id} on ${p.router.listenAddress} (${p.router.cryptoBackend})`);

  // Only alpha—bravo and charlie—bravo are configured; discovery adds alpha—charlie from gossip.
  alpha.router.connect(`127.0.0.1:${bravo.router.port}`);
  charlie.router.connect(`127.0.0.1:${bravo.router.port}`);
  await when(routers, () => routers.every((r) => r.linkInfos().length === 2 && routers.every((o) => o === r || r.routes.unicast(o.selfName) !== undefined)), 10_000, 'a full mesh with working data links');
  log(`full mesh with encrypted data links in ${Math.round(performance.now() - started)} ms, key stretching included`);

  // Addresses: the three peers agree on the ring by consensus, then each allocates for its endpoint.
  const addresses = await Promise.all(peers.map((p) => p.ipam.allocate(`${p.router.nickname}-endpoint`, { signal: AbortSignal.timeout(10_000) })));
  peers.forEach((p, i) => log(`${p.router.nickname}'s endpoint got ${addresses[i]} from IPAM`));

  // Names: each peer registers its endpoint; every peer can resolve every name.
  peers.forEach((p, i) => p.dns.add(p.router.nickname, (addresses[i] as string).split('/')[0] as string, { id: `${p.router.nickname}-endpoint` }));
  await when(routers, () => peers.every((p) => ['alpha', 'bravo', 'charlie'].every((n) => p.dns.lookup(n).length === 1)), 5_000, 'names everywhere');
  log(`charlie resolves alpha.weave.local → ${charlie.dns.lookup('alpha').join(', ')} (its DNS server: 127.0.0.1:${charlie.dns.port})`);

  // A broadcast frame from alpha's endpoint reaches the other endpoints once each.
  const frame = Buffer.alloc(64);
  frame.fill(0xff, 0, 6);
  frame.set(alpha.endpoint.mac, 6);
  frame.writeUInt16BE(0x88b5, 12);
  frame.write('hello, segment', 14);
  alpha.endpoint.send(frame);
  await when(routers, () => bravo.received.length > 0 && charlie.received.length > 0, 5_000, 'delivery of the broadcast frame');
  log(`bravo got "${bravo.received[0]}", charlie got "${charlie.received[0]}" (sent by ${formatPeerName(alpha.router.selfName)})`);

  log('');
  log(table(bravo));
  await Promise.all(peers.map((p) => Promise.all([p.ipam.stop(), p.dns.stop()])));
  await Promise.all(routers.map((r) => r.stop()));
  log('\nall peers stopped cleanly');
}

function table(peer: DemoPeer): string {
  const status = peer.router.status();
  const links = peer.dataPlane.status().links;
  const rows = [['PEER', 'NICKNAME', 'LINK ADDRESS', 'ENCRYPTED', 'DATA LINK', 'IPAM RANGES']];
  const owners = peer.ipam.status().owners;
  for (const p of status.peers) {
    const link = links.find((l) => l.peer === p.name);
    rows.push([
      p.name + (p.self ? ' (self)' : ''),
      p.nickname,
      p.self ? (status.listenAddress ?? '-') : (p.address ?? '-'),
      p.self ? '-' : String(p.encrypted ?? false),
      link ? `${link.mode}, mtu ${link.mtu}` : '-',
      owners.find((o) => o.peer === p.name)?.ranges.join(' ') ?? '-',
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
