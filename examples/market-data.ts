// A multicast market-data feed: one publisher, several subscribers on other peers, all in one process
// (no root). Each subscriber checks sequence numbers, so a gap or a duplicate would show.
// Run: npm run build && node dist/examples/market-data.js [TICKS] [SUBSCRIBERS_PER_PEER]
import { deriveNetworkKey, Overlay, type MemoryEndpoint } from '../src/index.js';

const GROUP = '239.10.0.1';
const PORT = 31000;

async function main(): Promise<void> {
  const ticks = Number(process.argv[2] ?? 2000);
  const perPeer = Number(process.argv[3] ?? 2);
  const networkKey = await deriveNetworkKey(process.env.WEAVE_PASSWORD ?? 'market data demo password');
  const overlays = ['exchange', 'desk-1', 'desk-2'].map(
    (nickname) => new Overlay({ nickname, networkKey, listen: '127.0.0.1:0', ipam: { range: '10.33.0.0/24', init: { consensus: 3 } }, tuning: { sleeve: { fastHeartbeatMs: 50 } } }),
  );
  await Promise.all(overlays.map((o) => o.start()));
  const [exchange, ...desks] = overlays as [Overlay, ...Overlay[]];
  for (const desk of desks) desk.connect(`127.0.0.1:${exchange.router.port}`);
  while (!overlays.every((o) => o.status().links.length === 2 && o.status().links.every((l) => l.established))) await new Promise((r) => setTimeout(r, 20));

  const publisher = await exchange.attach({ name: 'feed' });
  const subscribers: { endpoint: MemoryEndpoint; next: number; received: number; gaps: number; done: Promise<void> }[] = [];
  for (const [d, desk] of desks.entries()) {
    for (let i = 0; i < perPeer; i++) {
      const endpoint = await desk.attach({ name: `trader-${d + 1}-${i + 1}` });
      const socket = endpoint.createUdpSocket();
      await socket.bind(PORT);
      socket.addMembership(GROUP);
      const sub = { endpoint, next: 0, received: 0, gaps: 0, done: Promise.resolve() };
      sub.done = new Promise<void>((resolve) => {
        socket.on('message', (msg: Buffer) => {
          const seq = msg.readUInt32BE(0);
          if (seq !== sub.next) sub.gaps += 1;
          sub.next = seq + 1;
          sub.received += 1;
          if (seq === ticks - 1) resolve();
        });
      });
      subscribers.push(sub);
    }
  }

  const socket = publisher.createUdpSocket();
  await socket.bind();
  const tick = Buffer.alloc(64);
  const started = performance.now();
  for (let seq = 0; seq < ticks; seq++) {
    tick.writeUInt32BE(seq, 0);
    tick.writeDoubleBE(100 + Math.sin(seq / 50), 4); // a price
    await socket.send(tick, PORT, GROUP);
    if (seq % 50 === 49) await new Promise((r) => setImmediate(r)); // pace: dgram has no backpressure
  }
  await Promise.race([Promise.all(subscribers.map((s) => s.done)), new Promise((r) => setTimeout(r, 10_000))]);
  const seconds = (performance.now() - started) / 1000;
  for (const s of subscribers) {
    process.stdout.write(`${s.endpoint.name.padEnd(12)} ${s.received}/${ticks} ticks, ${s.gaps} gaps\n`);
  }
  process.stdout.write(`${ticks} ticks to ${subscribers.length} subscribers on ${desks.length} peers in ${seconds.toFixed(2)} s (${Math.round(ticks / seconds)} ticks/s)\n`);
  await Promise.all(overlays.map((o) => o.stop()));
}

main().catch((error: unknown) => {
  process.stderr.write(`market-data: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
