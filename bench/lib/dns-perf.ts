// dnsperf runs for bench:dns: one timed run against a server, its summary parsed and latency percentiles computed.
//
// dnsperf 2.10 reports only the average and standard deviation of latency (no histogram option), so runs use `-v`,
// which prints one `> RCODE name type seconds` line per completed query; its stdout goes straight to a file and the
// percentiles are computed from every line. `-v` costs the client roughly 10 % of its rate, the same for every server.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { track } from './dns-systems.js';
import { cpuSeconds } from './measure.js';

export interface DnsperfOptions {
  server: string;
  port: number;
  /** Query file (`name type` per line). */
  queryFile: string;
  seconds: number;
  /** Simulated clients (-c). */
  clients: number;
  /** Client threads (-T). */
  threads: number;
  /** Queries outstanding at most (-q). */
  outstanding: number;
  /** Rate limit in queries/s (-Q); 0 = unlimited. */
  maxQps: number;
  /** Where the per-query output goes (deleted after parsing). */
  verboseFile: string;
}

/** What one dnsperf run measured. */
export interface DnsperfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  /** Response codes and their counts, e.g. { NOERROR: 225990 }. */
  rcodes: Record<string, number>;
  avgMs: number;
  /** Percentiles from the per-query latencies; NaN when no query completed. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU of the dnsperf process, % of one core (sampled from /proc; shows whether the client was the bottleneck). */
  clientCpuPct: number;
  argv: string[];
}

/** Runs dnsperf once and parses its output; throws with dnsperf's messages when it fails or completes nothing. */
export async function runDnsperf(options: DnsperfOptions): Promise<DnsperfResult> {
  const argv = [
    '-s', options.server,
    '-p', String(options.port),
    '-d', options.queryFile,
    '-l', String(options.seconds),
    '-c', String(options.clients),
    '-T', String(options.threads),
    '-q', String(options.outstanding),
    ...(options.maxQps > 0 ? ['-Q', String(options.maxQps)] : []),
    '-v',
  ];
  const out = openSync(options.verboseFile, 'w');
  let stderr = '';
  let clientCpuPct = NaN;
  try {
    const child = spawn('dnsperf', argv, { stdio: ['ignore', out, 'pipe'] });
    track(child);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const started = performance.now();
    // Poll the client's CPU time while it runs: /proc/PID is gone once it exits.
    const poll = setInterval(() => {
      try {
        if (child.pid !== undefined) clientCpuPct = (cpuSeconds(child.pid) / ((performance.now() - started) / 1000)) * 100;
      } catch {
        // exited between polls
      }
    }, 250);
    const killer = setTimeout(() => child.kill('SIGKILL'), (options.seconds + 20) * 1000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    }).finally(() => {
      clearInterval(poll);
      clearTimeout(killer);
    });
    closeSync(out);
    const text = readFileSync(options.verboseFile, 'utf8');
    if (code !== 0) throw new Error(`dnsperf exited with ${code}: ${stderr.trim()}\n${tail(text)}`);
    return { ...parseDnsperf(text), clientCpuPct, argv: ['dnsperf', ...argv] };
  } finally {
    try {
      closeSync(out);
    } catch {
      // already closed
    }
    rmSync(options.verboseFile, { force: true });
  }
}

/** Parses dnsperf's statistics block and, when present, its `-v` per-query lines. */
export function parseDnsperf(text: string): Omit<DnsperfResult, 'clientCpuPct' | 'argv'> {
  const number = (label: RegExp): number => {
    const m = label.exec(text);
    if (m?.[1] === undefined) throw new Error(`dnsperf output has no ${label.source}:\n${tail(text)}`);
    return Number(m[1]);
  };
  const qps = number(/Queries per second:\s+([\d.]+)/);
  const sent = number(/Queries sent:\s+(\d+)/);
  const completed = number(/Queries completed:\s+(\d+)/);
  const lost = number(/Queries lost:\s+(\d+)/);
  const avgMs = microseconds(number(/Average Latency \(s\):\s+([\d.]+)/));
  const rcodes: Record<string, number> = {};
  const codes = /Response codes:\s+(.*)/.exec(text)?.[1] ?? '';
  for (const m of codes.matchAll(/([A-Z]+) (\d+) \(/g)) rcodes[m[1] as string] = Number(m[2]);

  const latencies = new Float64Array(completed);
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('> ')) continue;
    const seconds = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(seconds) || n >= latencies.length) continue;
    latencies[n++] = microseconds(seconds);
  }
  const sorted = latencies.subarray(0, n).sort();
  return {
    qps,
    sent,
    completed,
    lost,
    rcodes,
    avgMs,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: n === 0 ? NaN : (sorted[n - 1] ?? NaN),
  };
}

/** Nearest-rank percentile of ascending values; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? NaN;
}

/** dnsperf's version (it prints it with -h, on stdout or stderr depending on the build). */
export function dnsperfVersion(output: string): string {
  return /Version (\S+)/.exec(output)?.[1] ?? 'unknown';
}

/** Seconds as milliseconds, rounded to dnsperf's resolution (1 µs) so no float noise reaches the results. */
function microseconds(seconds: number): number {
  return Math.round(seconds * 1e6) / 1000;
}

function tail(text: string, lines = 15): string {
  return text.split('\n').filter((l) => !l.startsWith('> ')).slice(-lines).join('\n');
}
