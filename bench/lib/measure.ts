// Data-plane measurements between two namespace hosts: iperf3 TCP and UDP, ping RTT, CPU time of given PIDs.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { parseIperf3, parsePing, type Iperf3Summary, type NetnsLab } from '../../test/helpers/netns.js';
import { median } from './stats.js';

/** Where the client runs and what it targets. */
export interface Path {
  lab: NetnsLab;
  /** Host running the clients (iperf3 -c, ping). */
  client: string;
  /** Host running the iperf3 server. */
  server: string;
  /** Address the server binds and the client targets. */
  serverAddr: string;
}

export const IPERF_PORT = 5201;

/** Runs one iperf3 client test against a fresh one-shot server bound to the target address. */
export async function iperf3(path: Path, clientArgs: readonly string[], seconds: number): Promise<Iperf3Summary> {
  const { lab } = path;
  const server = lab.spawn(path.server, ['iperf3', '-s', '-1', '-B', path.serverAddr, '-p', String(IPERF_PORT)]);
  try {
    await lab.waitForListen(path.server, IPERF_PORT, 'tcp');
    const argv = ['iperf3', '-c', path.serverAddr, '-p', String(IPERF_PORT), '-t', String(seconds), '--json', ...clientArgs];
    const r = await lab.exec(path.client, argv, { timeoutMs: (seconds + 20) * 1000 });
    if (r.stdout.trim() === '') throw new Error(`iperf3 client failed (exit ${r.code}): ${r.stderr.trim()}`);
    return parseIperf3(r.stdout);
  } finally {
    await lab.kill(server, 1_000);
  }
}

/** TCP goodput in Mbit/s as counted by the receiver, with `streams` parallel streams. */
export async function tcpMbps(path: Path, streams: number, seconds: number): Promise<number> {
  const result = await iperf3(path, streams > 1 ? ['-P', String(streams)] : [], seconds);
  return result.receiverBps / 1e6;
}

export interface UdpSearchResult {
  /** Best delivered datagrams/s among offered rates whose loss stayed under the limit; 0 if none did. */
  pps: number;
  /** Every probe: offered rate (bit/s, 0 = unlimited), delivered pps, loss %. */
  probes: { offeredBps: number; deliveredPps: number; lossPct: number }[];
}

/**
 * Highest UDP rate (datagrams of `size` bytes) carried with loss under `maxLossPct`: one unlimited probe gives the
 * sender's ceiling, then `steps` rounds of binary search on the offered rate below it.
 */
export async function udpSearch(path: Path, options: { size: number; seconds: number; steps: number; maxLossPct: number }): Promise<UdpSearchResult> {
  const probes: UdpSearchResult['probes'] = [];
  const probe = async (offeredBps: number) => {
    const r = await iperf3(path, ['-u', '-l', String(options.size), '-b', String(Math.round(offeredBps))], options.seconds);
    const entry = { offeredBps, deliveredPps: r.udp?.receivedPps ?? 0, lossPct: r.udp?.lostPct ?? 100 };
    probes.push(entry);
    return { ...entry, sentBps: r.senderBps };
  };
  let best = 0;
  const ceiling = await probe(0);
  if (ceiling.lossPct < options.maxLossPct) return { pps: ceiling.deliveredPps, probes };
  let lo = 0;
  let hi = ceiling.sentBps;
  for (let i = 0; i < options.steps; i++) {
    const mid = (lo + hi) / 2;
    const p = await probe(mid);
    if (p.lossPct < options.maxLossPct) {
      best = Math.max(best, p.deliveredPps);
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return { pps: best, probes };
}

/** Median round-trip time in microseconds over `count` pings sent every `intervalS` seconds (root allows < 0.2 s). */
export async function pingMedianUs(path: Path, target: string, count: number, intervalS = 0.01): Promise<number> {
  const r = await path.lab.exec(path.client, ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', target], {
    timeoutMs: count * intervalS * 1000 + 15_000,
  });
  const ping = parsePing(r.stdout);
  if (ping.timesMs.length === 0) throw new Error(`ping ${target}: no replies\n${r.stdout}${r.stderr}`);
  return median(ping.timesMs) * 1000;
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads) in seconds, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may itself contain spaces: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
}

/** Starts a CPU sample over `pids`; the returned function gives their CPU use in percent of one core since the start. */
export function sampleCpu(pids: readonly number[]): () => number {
  const start = performance.now();
  const before = pids.map(cpuSeconds);
  return () => {
    const wall = (performance.now() - start) / 1000;
    const used = pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - (before[i] ?? 0), 0);
    return (used / wall) * 100;
  };
}
