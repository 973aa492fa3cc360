// TCP benchmark of in-process endpoints: throughput, HTTP requests/s, connection setups/s and idle memory.
//
// Run:  npm run bench:tcp      (= npm run build && node dist/bench/tcp.js)
//
// One setup per MTU (default 1376 and 65000): two Overlay peers in one process (a child started with --expose-gc)
// linked over loopback UDP with a password, each with one in-process endpoint and, as root, one attached kernel
// namespace. Measured on it, in one run:
//   (a) in-process ↔ in-process across the two peers: one stream (Mbit/s at the receiver), node:http requests/s
//       with keep-alive (EndpointHttpAgent; 1 and 16 requests in flight), connection setups/s (connect + close,
//       8 at a time), and heap bytes per idle established connection (1 000 held, both ends, after GC);
//   (b) in-process ↔ kernel namespace: in-process sender to a kernel sink (out), kernel sender to an in-process
//       sink (in), connection setups/s to a kernel server (root only);
//   (c) kernel namespace ↔ kernel namespace through the same overlays: iperf3, one stream (root only): the reference.
// The kernel side of (b) is bench/lib/tcp-ns-tool.ts (plain node:net). As root, the overlays run inside a fresh
// namespace of their own, so their bridges and TAPs go away with it; namespaces are named wtb<tag><pid>….
// Writes bench/results/tcp.json (one row per MTU, medians) and bench/results/tcp.meta.json.
//
// Environment:
//   BENCH_SECONDS=5            duration of each throughput test
//   BENCH_REQUEST_SECONDS=3    duration of each requests/s and setups/s test
//   BENCH_REPEATS=3            repeats of every measurement (medians are reported)
//   BENCH_IDLE_CONNECTIONS=1000  connections held for the memory measurement
//   BENCH_MTUS=1376,65000      endpoint MTUs, one setup each
//   BENCH_ONLY=a.mbps,b.       only the metrics whose keys start with one of these (for profiling)
//   BENCH_NO_KERNEL=1          skip the kernel parts even as root
//   BENCH_CPU_PROF=dir         run the measuring process under --cpu-prof, profiles written to dir
//   BENCH_SMOKE=1              quick end-to-end check: 1 s tests, 1 repeat, 200 idle connections (results marked smoke)
//   BENCH_OUT_DIR=dir          where to write the results (default bench/results)
// The machine should be otherwise idle: the overlays, the TCP endpoints and the kernel tools share its cores.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canUseNetns, hasCommand, leftovers, NetnsLab } from '../test/helpers/netns.js';
import { versionOf, machineMeta } from './lib/deps.js';
import { envNumber, fmt, formatTable, median, ratio } from './lib/stats.js';
import type { TcpWorkerConfig, TcpWorkerResult } from './lib/tcp-worker.js';

/** One row of bench/results/tcp.json: medians for one MTU; null where not measured. */
export interface TcpRow {
  mtu: number;
  /** (a) one stream between in-process endpoints on two peers, Mbit/s at the receiver. */
  memMbps: number | null;
  /** (b) in-process sender → kernel sink in a namespace, Mbit/s at the receiver. */
  memToNsMbps: number | null;
  /** (b) kernel sender in a namespace → in-process sink, Mbit/s at the receiver. */
  nsToMemMbps: number | null;
  /** (c) iperf3 between two namespaces through the same overlays, Mbit/s at the receiver. */
  nsToNsMbps: number | null;
  /** (a) HTTP requests/s, keep-alive, one request in flight. */
  httpRps1: number | null;
  /** (a) HTTP requests/s, keep-alive, 16 requests in flight on up to 16 connections. */
  httpRps16: number | null;
  /** (a) connection setups/s (connect + close), 8 at a time. */
  memSetupsPerS: number | null;
  /** (b) setups/s from an in-process endpoint to a kernel server. */
  nsSetupsPerS: number | null;
  /** (a) JS heap bytes per idle established connection, both ends counted. */
  idleHeapBytes: number | null;
  /** (a) external (Buffer) bytes per idle established connection, both ends counted. */
  idleExternalBytes: number | null;
}

const KEYS: Record<Exclude<keyof TcpRow, 'mtu'>, string> = {
  memMbps: 'a.mbps',
  memToNsMbps: 'b.outMbps',
  nsToMemMbps: 'b.inMbps',
  nsToNsMbps: 'c.mbps',
  httpRps1: 'a.httpRps1',
  httpRps16: 'a.httpRps16',
  memSetupsPerS: 'a.setupsPerS',
  nsSetupsPerS: 'b.setupsPerS',
  idleHeapBytes: 'a.idleHeapBytes',
  idleExternalBytes: 'a.idleExternalBytes',
};

const smoke = process.env.BENCH_SMOKE === '1';
const settings = {
  seconds: envNumber('BENCH_SECONDS', smoke ? 1 : 5),
  requestSeconds: envNumber('BENCH_REQUEST_SECONDS', smoke ? 1 : 3),
  repeats: envNumber('BENCH_REPEATS', smoke ? 1 : 3),
  idleConnections: envNumber('BENCH_IDLE_CONNECTIONS', smoke ? 200 : 1000),
  mtus: (process.env.BENCH_MTUS ?? '1376,65000').split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0),
  httpConcurrency: [1, 16],
  setupConcurrency: 8,
  only: (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
  smoke,
};
const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const outDir = process.env.BENCH_OUT_DIR ?? join(repoRoot, 'bench', 'results');
const workerPath = fileURLToPath(new URL('./lib/tcp-worker.js', import.meta.url));

/** Why the kernel parts cannot run here, or undefined when they can. */
function kernelSkipReason(): string | undefined {
  if (process.env.BENCH_NO_KERNEL === '1') return 'BENCH_NO_KERNEL=1';
  const support = canUseNetns();
  if (!support.ok) return support.reason;
  if (!hasCommand('iperf3')) return 'iperf3 is not installed (scripts/install-test-deps.sh)';
  return undefined;
}

/** Runs the worker (in `hostNs` when given) and resolves with its results; its output is passed through. */
function runWorker(config: TcpWorkerConfig, hostNs: string | undefined, lab: NetnsLab | undefined): Promise<TcpWorkerResult> {
  const profDir = process.env.BENCH_CPU_PROF;
  const nodeArgs = ['--expose-gc', ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(profDir)] : []), workerPath, JSON.stringify(config)];
  const child = hostNs !== undefined && lab !== undefined
    ? lab.spawn('h', [process.execPath, ...nodeArgs])
    : spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => process.stdout.write(c));
  child.stderr?.on('data', (c: Buffer) => process.stderr.write(c));
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return new Promise((resolvePromise, reject) => {
    child.once('exit', (code, signal) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (code !== 0) {
        reject(new Error(`the measuring process exited with ${signal ?? code}`));
        return;
      }
      try {
        resolvePromise(JSON.parse(readFileSync(config.out, 'utf8')) as TcpWorkerResult);
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** Kills what is still running in the lab's namespaces (the worker's kernel tools, if it died), by PID. */
function killNamespacePids(lab: NetnsLab): void {
  for (const ns of Object.values(lab.describe().hosts)) {
    let pids: number[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').map(Number).filter((p) => p > 0);
    } catch {
      continue;
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function report(rows: readonly TcpRow[]): string {
  const columns = [
    ['(a) Mbit/s', 'memMbps', 0],
    ['(b) out', 'memToNsMbps', 0],
    ['(b) in', 'nsToMemMbps', 0],
    ['(c) Mbit/s', 'nsToNsMbps', 0],
    ['HTTP/s c=1', 'httpRps1', 0],
    ['HTTP/s c=16', 'httpRps16', 0],
    ['(a) setups/s', 'memSetupsPerS', 0],
    ['(b) setups/s', 'nsSetupsPerS', 0],
    ['heap B/conn', 'idleHeapBytes', 0],
    ['ext B/conn', 'idleExternalBytes', 0],
  ] as const;
  const table = formatTable(
    ['MTU', ...columns.map(([label]) => label)],
    rows.map((row) => [String(row.mtu), ...columns.map(([, key, digits]) => fmt(row[key], digits))]),
  );
  const targets = formatTable(
    ['MTU', '(a) ≥ 1000 Mbit/s', '(b) out / (c)', '(b) in / (c)'],
    rows.map((row) => [
      String(row.mtu),
      row.memMbps === null ? '-' : `${fmt(row.memMbps)} ${row.memMbps >= 1000 ? 'met' : 'NOT met'}`,
      ratio(row.memToNsMbps, row.nsToNsMbps),
      ratio(row.nsToMemMbps, row.nsToNsMbps),
    ]),
  );
  return `${table}\n\nTargets ((b) ≥ 0.50× of (c) at the same MTU):\n${targets}\n` +
    '(a)/(b)/(c): see bench/tcp.ts; heap/ext B/conn count both ends of each idle connection.';
}

async function main(): Promise<void> {
  const kernelSkip = kernelSkipReason();
  const scratch = mkdtempSync(join(tmpdir(), 'wtb-tcp-'));
  // Also when a signal ends the run before `finally` (the lab's backstop exits the process).
  process.once('exit', () => rmSync(scratch, { recursive: true, force: true }));
  const load = loadavg();
  process.stdout.write(
    `bench:tcp${smoke ? ' (SMOKE run: numbers only show the script works)' : ''}: ` +
      `throughput ${settings.seconds} s, requests/setups ${settings.requestSeconds} s, ${settings.repeats} repeat(s), ` +
      `${settings.idleConnections} idle connections, MTUs ${settings.mtus.join(', ')}; load average ${load.map((l) => l.toFixed(2)).join(' ')}\n`,
  );
  if (kernelSkip !== undefined) process.stdout.write(`  kernel parts (b) and (c) skipped: ${kernelSkip}\n`);

  let lab: NetnsLab | undefined;
  let result: TcpWorkerResult | undefined;
  let failure: string | undefined;
  try {
    let netns: TcpWorkerConfig['netns'];
    let prefix = `wtbt${process.pid.toString(36)}`;
    if (kernelSkip === undefined) {
      lab = new NetnsLab('t', { namePrefix: 'wtb' });
      prefix = lab.prefix;
      await lab.addHost('h');
      netns = { a: await lab.addHost('a'), b: await lab.addHost('b') };
    }
    const config: TcpWorkerConfig = {
      mtus: settings.mtus,
      seconds: settings.seconds,
      requestSeconds: settings.requestSeconds,
      repeats: settings.repeats,
      idleConnections: settings.idleConnections,
      httpConcurrency: settings.httpConcurrency,
      setupConcurrency: settings.setupConcurrency,
      prefix,
      netns,
      kernelSkip,
      only: settings.only,
      out: join(scratch, 'result.json'),
    };
    result = await runWorker(config, lab === undefined ? undefined : lab.ns('h'), lab);
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
    process.stdout.write(`bench:tcp failed: ${failure}\n`);
    process.exitCode = 1;
  } finally {
    if (lab !== undefined) {
      killNamespacePids(lab);
      await lab.cleanup();
      const left = leftovers(lab.prefix);
      if (left.namespaces.length + left.links.length > 0) process.stdout.write(`WARNING: left behind: ${JSON.stringify(left)}\n`);
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  if (result === undefined) return;

  const rows: TcpRow[] = result.results.map((r) => {
    const row = { mtu: r.mtu } as TcpRow;
    for (const [field, key] of Object.entries(KEYS) as [Exclude<keyof TcpRow, 'mtu'>, string][]) {
      const values = r.runs[key] ?? [];
      row[field] = values.length === 0 ? null : median(values) + 0; // + 0: no '-0' in the table
    }
    return row;
  });
  const errors = result.results.flatMap((r) => Object.entries(r.errors).map(([key, message]) => ({ mtu: r.mtu, key, message })));
  process.stdout.write(`\n${smoke ? 'SMOKE ' : ''}results (medians of ${settings.repeats}):\n${report(rows)}\n`);
  for (const e of errors) process.stdout.write(`  failed: mtu ${e.mtu} ${e.key}: ${e.message}\n`);
  if (kernelSkip !== undefined) process.stdout.write(`  not measured: (b) and (c): ${kernelSkip}\n`);

  const meta = {
    ...machineMeta(smoke),
    loadAverageAtStart: load,
    loadAverageAtEnd: loadavg(),
    node: result.node,
    iperf3: versionOf(['iperf3', '--version']),
    settings,
    kernelSkipped: kernelSkip ?? null,
    errors,
    details: result.results,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tcp.json'), `${JSON.stringify(rows, null, 2)}\n`);
  writeFileSync(join(outDir, 'tcp.meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  process.stdout.write(`wrote ${join(outDir, 'tcp.json')} and tcp.meta.json\n`);
}

await main();
