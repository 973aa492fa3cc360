// Scale benchmark: N peers of a test mesh in one process, real clock, seeded random graph of degree ~5.
//
// Run:  npm run bench:scale      (= npm run build && node dist/bench/scale.js)
//
// For each N, a fresh child process (bench/lib/scale-worker.ts) measures, in order: topology (every peer
// reaches every other over established links), a DNS name added on peer 0 resolvable on the farthest peer,
// the bytes and messages one added link costs the whole mesh, idle control-plane bytes/s per peer and CPU,
// an IPAM address on the farthest peer (consensus among all N peers), and last how long survivors take to
// forget 10 % of the peers that stop (and whether any comes back); a second process times the same mesh
// under a FakeClock until it is ready. Steps that do not finish
// within SCALE_LIMIT_MS are reported as null with a note. Writes bench/results/scale.json (one row per N)
// and bench/results/scale.meta.json. Weave Net documents meshes "of the order of 100 peers".
//
// Environment:
//   SCALE_PEERS=25,50,100,200   the sizes
//   SCALE_LIMIT_MS=120000       limit of each step
//   SCALE_IDLE_MS=10000         idle measurement
//   SCALE_RUNS=3                runs per size; each figure is the median of the runs that finished it
//   BENCH_OUT_DIR=dir           where to write the results (default bench/results)
// The machine should be otherwise idle: every peer shares this process's event loop.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineMeta } from './lib/deps.js';
import { fmt, formatTable, median } from './lib/stats.js';
import type { ScaleRow } from './lib/scale-worker.js';

const sizes = (process.env.SCALE_PEERS ?? '25,50,100,200').split(',').map(Number);
const worker = fileURLToPath(new URL('./lib/scale-worker.js', import.meta.url));
const outDir = resolve(process.env.BENCH_OUT_DIR ?? fileURLToPath(new URL('../../bench/results', import.meta.url)));

const runs = Math.max(1, Number(process.env.SCALE_RUNS ?? 3));

function runWorker(args: string[]): string {
  const out = execFileSync(process.execPath, [worker, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 30 * 60_000 });
  return out.trim().split('\n').pop() ?? '{}';
}

/** Per field, the median of the runs that measured it; null when fewer than half did. */
function medianRow(all: readonly ScaleRow[]): ScaleRow & { runs: number } {
  const first = all[0] as ScaleRow;
  const pick = (field: keyof ScaleRow): number | null => {
    const values = all.map((r) => r[field]).filter((v): v is number => typeof v === 'number');
    return values.length * 2 >= all.length ? Math.round(median(values) * 1000) / 1000 : null;
  };
  return {
    peers: first.peers,
    links: first.links,
    topologyMs: pick('topologyMs'),
    dnsMs: pick('dnsMs'),
    bytesPerChange: pick('bytesPerChange'),
    messagesPerChange: pick('messagesPerChange'),
    idleBytesPerSec: pick('idleBytesPerSec'),
    idleCpu: pick('idleCpu'),
    idleTopologyMessages: pick('idleTopologyMessages'),
    ipamMs: pick('ipamMs'),
    forgetMs: pick('forgetMs'),
    // The worst run: one revival is one too many.
    resurrections: all.some((r) => r.resurrections !== null) ? Math.max(...all.map((r) => r.resurrections ?? 0)) : null,
    fakeClockMs: pick('fakeClockMs'),
    rssMB: pick('rssMB') ?? 0,
    // Summed over the runs: any is worth a look.
    linksDropped: all.reduce<Record<string, number>>((sum, r) => {
      for (const [code, count] of Object.entries(r.linksDropped ?? {})) sum[code] = (sum[code] ?? 0) + count;
      return sum;
    }, {}),
    notes: [...new Set(all.flatMap((r) => r.notes))],
    runs: all.length,
  };
}

const rows: ScaleRow[] = [];
for (const peers of sizes) {
  const measured: ScaleRow[] = [];
  for (let run = 1; run <= runs; run++) {
    process.stderr.write(`scale: ${peers} peers, run ${run} of ${runs}…\n`);
    const row = JSON.parse(runWorker([String(peers)])) as ScaleRow;
    row.fakeClockMs = (JSON.parse(runWorker([String(peers), 'fake'])) as { fakeClockMs: number | null }).fakeClockMs;
    process.stderr.write(`${JSON.stringify(row)}\n`);
    measured.push(row);
  }
  rows.push(medianRow(measured));
}
mkdirSync(outDir, { recursive: true });
writeFileSync(resolve(outDir, 'scale.json'), `${JSON.stringify(rows, null, 2)}\n`);
writeFileSync(resolve(outDir, 'scale.meta.json'), `${JSON.stringify({ ...machineMeta(false), graph: 'ring + seeded random chords, average degree 5', clock: 'real', tuning: 'createTestMesh' }, null, 2)}\n`);
const s = (ms: number | null): string => (ms === null ? '—' : fmt(ms / 1000, 1));
console.log(
  formatTable(
    ['peers', 'topology s', 'DNS s', 'IPAM s', 'FakeClock s', 'forget s', 'revived', 'KB per link added', 'idle B/s per peer', 'idle CPU', 'RSS MB'],
    rows.map((r) => [
      String(r.peers),
      s(r.topologyMs),
      s(r.dnsMs),
      s(r.ipamMs),
      s(r.fakeClockMs),
      s(r.forgetMs),
      r.resurrections === null ? '—' : String(r.resurrections),
      r.bytesPerChange === null ? '—' : fmt(r.bytesPerChange / 1000),
      fmt(r.idleBytesPerSec),
      fmt(r.idleCpu, 2),
      String(r.rssMB),
    ]),
  ),
);
