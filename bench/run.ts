// Control-plane benchmarks: AEAD cost per backend, handshakes per second and mesh convergence time on loopback.
// Run with `npm run bench`. Prints a table and writes bench/results/control-plane.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { loadSodium, type SodiumBackend } from '../src/crypto/sodium.js';
import { StreamOpener, StreamSealer } from '../src/crypto/aead.js';
import { deriveNetworkKey } from '../src/crypto/network-key.js';
import { MeshRouter } from '../src/mesh/router.js';

interface Result {
  name: string;
  value: number;
  unit: string;
}

const REPEATS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Microseconds per seal+open of a 1400-byte message, median of several runs. */
function aeadMicros(sodium: SodiumBackend): number {
  const key = sodium.randomBytes(32);
  const plaintext = new Uint8Array(1400);
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const sealer = new StreamSealer(sodium, key);
    const opener = new StreamOpener(sodium, key);
    const n = 20_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) opener.open(sealer.seal(plaintext));
    runs.push(Number(process.hrtime.bigint() - start) / 1000 / n);
  }
  return median(runs);
}

async function handshakesPerSecond(): Promise<number> {
  const networkKey = await deriveNetworkKey('bench');
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const hub = new MeshRouter({ listen: '127.0.0.1:0', networkKey, acceptRate: { burst: 10_000, refillMs: 1 }, connectionLimit: 0 });
    await hub.start();
    const n = 50;
    const dialers = Array.from({ length: n }, () => new MeshRouter({ listen: false, networkKey }));
    await Promise.all(dialers.map((d) => d.start()));
    const start = performance.now();
    await new Promise<void>((resolve) => {
      hub.on('connection:up', () => {
        if (hub.linkInfos().length === n) resolve();
      });
      for (const d of dialers) d.connect(`127.0.0.1:${hub.port}`);
    });
    runs.push((n / (performance.now() - start)) * 1000);
    await Promise.all([hub.stop(), ...dialers.map((d) => d.stop())]);
  }
  return median(runs);
}

async function convergenceMs(peers: number): Promise<number> {
  const networkKey = await deriveNetworkKey('bench');
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const routers = Array.from(
      { length: peers },
      () => new MeshRouter({ listen: '127.0.0.1:0', networkKey, discovery: false, topologyDelayMs: 10, gcDelayMs: 10 }),
    );
    await Promise.all(routers.map((x) => x.start()));
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const fingerprint = (x: MeshRouter): string =>
        JSON.stringify(x.topologyRecords().map((rec) => [rec.name, String(rec.version)]).sort());
      const check = (): void => {
        if (!routers.every((x) => x.peers().length === peers)) return;
        const first = fingerprint(routers[0] as MeshRouter);
        if (routers.every((x) => fingerprint(x) === first)) resolve();
      };
      for (const x of routers) x.on('topology:changed', check);
      for (let i = 1; i < peers; i++) routers[i]?.connect(`127.0.0.1:${routers[i - 1]?.port}`);
    });
    runs.push(performance.now() - start);
    await Promise.all(routers.map((x) => x.stop()));
  }
  return median(runs);
}

async function main(): Promise<void> {
  const results: Result[] = [];
  for (const prefer of ['native', 'wasm'] as const) {
    const sodium = await loadSodium({ prefer });
    results.push({ name: `seal+open 1400 B (${sodium.name})`, value: aeadMicros(sodium), unit: 'µs' });
  }
  results.push({ name: 'encrypted handshakes on loopback', value: await handshakesPerSecond(), unit: '/s' });
  results.push({ name: '25-peer line converges', value: await convergenceMs(25), unit: 'ms' });

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(`weave-ts control-plane benchmark, ${new Date().toISOString().slice(0, 10)}, ${cpus().length}× ${cpu}, Node ${process.version}\n`);
  process.stdout.write(`medians of ${REPEATS} runs\n\n`);
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(r.value < 100 ? 2 : 0).padStart(10)} ${r.unit}\n`);
  const dir = new URL('../../bench/results/', import.meta.url); // from dist/bench/ back to the source tree
  mkdirSync(dir, { recursive: true });
  const out = new URL('control-plane.json', dir);
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), cpu, node: process.version, results }, null, 2)}\n`);
  process.stdout.write(`\nwritten to bench/results/control-plane.json\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${String(error)}\n`);
  process.exit(1);
});
