// Data-plane benchmark: raw veth, kernel VXLAN, wireguard-go, tinc and weave-ts between two network namespaces, measured in one run.
//
// Run (root only):  npm run bench:dataplane      (= npm run build && node dist/bench/dataplane.js)
//
// Builds two namespaces joined by a veth (MTU 1500); for each system: iperf3 TCP with 1 and 4 streams (Mbit/s at the
// receiver), the highest UDP rate of 1200-byte datagrams with < 1 % loss (datagrams/s, binary search on the offered
// rate), median ping RTT (µs), and CPU of the tunnel processes during the TCP-1 run (% of one core, both sides summed;
// null for raw veth). Each measurement is repeated and the medians are reported, with ratios to raw veth and to
// wireguard-go. Writes bench/results/dataplane.json (array of rows) and bench/results/dataplane.meta.json.
//
// Environment:
//   BENCH_SECONDS=5        duration of each TCP test
//   BENCH_UDP_SECONDS=3    duration of each UDP probe
//   BENCH_UDP_STEPS=6      binary-search steps below the unlimited probe
//   BENCH_REPEATS=3        repeats of every measurement (medians are reported)
//   BENCH_PING_COUNT=50    pings per RTT measurement (every 10 ms)
//   BENCH_SYSTEMS=...      comma-separated name filter, e.g. 'raw,wireguard'
//   BENCH_SMOKE=1          quick end-to-end check: 1 s tests, 1 repeat, 3 UDP steps, 20 pings (results marked smoke)
//   BENCH_OUT_DIR=dir      where to write the results (default bench/results)
// The machine should be otherwise idle: iperf3, the tunnels and the kernel share its cores.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canUseNetns, hasCommand, leftovers, NetnsLab } from '../test/helpers/netns.js';
import { ensurePackages, versionOf, machineMeta } from './lib/deps.js';
import { pingMedianUs, sampleCpu, tcpMbps, udpSearch, type Path } from './lib/measure.js';
import { fmt, formatTable, median, ratio, envNumber } from './lib/stats.js';
import { allSystems, type BenchHost, type System } from './lib/systems.js';

/** One row of bench/results/dataplane.json. */
export interface DataplaneRow {
  system: string;
  tcp1Mbps: number | null;
  tcp4Mbps: number | null;
  udpPps: number | null;
  rttUs: number | null;
  /** CPU of the tunnel processes during TCP-1, % of one core summed over both sides; null when there are none. */
  cpuPct: number | null;
}

const smoke = process.env.BENCH_SMOKE === '1';
const settings = {
  tcpSeconds: envNumber('BENCH_SECONDS', smoke ? 1 : 5),
  udpSeconds: envNumber('BENCH_UDP_SECONDS', smoke ? 1 : 3),
  udpSteps: envNumber('BENCH_UDP_STEPS', smoke ? 3 : 6),
  repeats: envNumber('BENCH_REPEATS', smoke ? 1 : 3),
  pingCount: envNumber('BENCH_PING_COUNT', smoke ? 20 : 50),
  udpSize: 1200,
  udpMaxLossPct: 1,
  mtu: 1500,
  smoke,
};
/** Every repeat's raw numbers and UDP probes, kept in the meta file for inspection. */
const details: { system: string; runs: Record<string, unknown[]> }[] = [];
const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const outDir = process.env.BENCH_OUT_DIR ?? join(repoRoot, 'bench', 'results');

async function measure(system: System, lab: NetnsLab, a: BenchHost, b: BenchHost): Promise<DataplaneRow> {
  const ends = await system.setup(lab, a, b);
  const path: Path = { lab, client: a.host, server: b.host, serverAddr: ends.addrB };
  const runs = { tcp1: [] as number[], tcp4: [] as number[], udp: [] as number[], rtt: [] as number[], cpu: [] as number[], udpProbes: [] as unknown[] };
  for (let r = 0; r < settings.repeats; r++) {
    const note = settings.repeats > 1 ? ` (${r + 1}/${settings.repeats})` : '';
    process.stdout.write(`  ${system.name}${note}: tcp1 `);
    const cpu = ends.pids.length > 0 ? sampleCpu(ends.pids) : undefined;
    runs.tcp1.push(await tcpMbps(path, 1, settings.tcpSeconds));
    if (cpu !== undefined) runs.cpu.push(cpu());
    process.stdout.write(`${fmt(runs.tcp1.at(-1) ?? NaN)} Mbit/s, tcp4 `);
    runs.tcp4.push(await tcpMbps(path, 4, settings.tcpSeconds));
    process.stdout.write(`${fmt(runs.tcp4.at(-1) ?? NaN)} Mbit/s, udp `);
    const udp = await udpSearch(path, { size: settings.udpSize, seconds: settings.udpSeconds, steps: settings.udpSteps, maxLossPct: settings.udpMaxLossPct });
    runs.udp.push(udp.pps);
    runs.udpProbes.push(udp.probes);
    process.stdout.write(`${fmt(udp.pps)} pps, rtt `);
    runs.rtt.push(await pingMedianUs(path, ends.addrB, settings.pingCount));
    process.stdout.write(`${fmt(runs.rtt.at(-1) ?? NaN)} µs\n`);
  }
  const med = (values: number[]) => (values.length === 0 ? null : median(values));
  details.push({ system: system.name, runs });
  return { system: system.name, tcp1Mbps: med(runs.tcp1), tcp4Mbps: med(runs.tcp4), udpPps: med(runs.udp), rttUs: med(runs.rtt), cpuPct: med(runs.cpu) };
}

function report(rows: readonly DataplaneRow[]): string {
  const raw = rows.find((r) => r.system === 'raw veth');
  const wg = rows.find((r) => r.system === 'wireguard-go');
  const metrics = [
    ['TCP-1 Mbit/s', 'tcp1Mbps', 0],
    ['TCP-4 Mbit/s', 'tcp4Mbps', 0],
    ['UDP pps', 'udpPps', 0],
    ['RTT µs', 'rttUs', 0],
    ['CPU %', 'cpuPct', 0],
  ] as const;
  // CPU per gigabit: the tunnel processes' CPU during TCP-1 over its throughput (what a gigabit costs in cores).
  const perGbit = (row: DataplaneRow): string =>
    row.cpuPct === null || row.tcp1Mbps === null || row.tcp1Mbps <= 0 ? '-' : fmt((row.cpuPct * 1000) / row.tcp1Mbps, 0);
  const values = formatTable(
    ['system', ...metrics.map(([label]) => label), 'CPU %/Gbit'],
    rows.map((row) => [row.system, ...metrics.map(([, key, digits]) => fmt(row[key], digits)), perGbit(row)]),
  );
  const ratioMetrics = metrics.filter(([, key]) => key !== 'cpuPct');
  const ratios = formatTable(
    ['system', ...ratioMetrics.flatMap(([label]) => [`${label.split(' ')[0]} /raw`, `/wg`])],
    rows.map((row) => [
      row.system,
      ...ratioMetrics.flatMap(([, key]) => [ratio(row[key], raw?.[key] ?? null), ratio(row[key], wg?.[key] ?? null)]),
    ]),
  );
  return `${values}\n\nRatios (throughput: higher is better; RTT: lower is better; CPU is % of one core, both sides):\n${ratios}`;
}

async function main(): Promise<void> {
  const support = canUseNetns();
  if (!support.ok) {
    process.stdout.write(`bench:dataplane needs network namespaces: ${support.reason}\n`);
    process.exitCode = 1;
    return;
  }
  try {
    ensurePackages(['iperf3', 'iputils-ping', 'wireguard-go', 'wireguard-tools', 'tinc']);
  } catch (err) {
    process.stdout.write(`could not install benchmark packages (${(err as Error).message}); systems that need them will be skipped\n`);
  }
  for (const cmd of ['iperf3', 'ping']) {
    if (!hasCommand(cmd)) throw new Error(`${cmd} is required (scripts/install-test-deps.sh)`);
  }

  const filter = (process.env.BENCH_SYSTEMS ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  const systems = allSystems().filter((s) => filter.length === 0 || filter.some((f) => s.name.toLowerCase().includes(f)));
  process.stdout.write(
    `bench:dataplane${smoke ? ' (SMOKE run: numbers only show the script works)' : ''}: ` +
      `tcp ${settings.tcpSeconds} s, udp ${settings.udpSeconds} s × ${settings.udpSteps + 1} probes, ` +
      `${settings.pingCount} pings, ${settings.repeats} repeat(s), MTU ${settings.mtu}\n`,
  );

  const rows: DataplaneRow[] = [];
  const skipped: { system: string; reason: string }[] = [];
  const lab = new NetnsLab('b');
  try {
    await lab.addHost('a');
    await lab.addHost('b');
    const link = await lab.link('a', 'b', { subnet: '10.250.10.0/24', mtu: settings.mtu });
    const a: BenchHost = { host: 'a', address: link.addresses[0], ifname: link.ifnames[0] };
    const b: BenchHost = { host: 'b', address: link.addresses[1], ifname: link.ifnames[1] };
    for (const system of systems) {
      const reason = await system.unavailable?.();
      if (reason !== undefined) {
        process.stdout.write(`  ${system.name}: skipped: ${reason}\n`);
        skipped.push({ system: system.name, reason });
        continue;
      }
      try {
        rows.push(await measure(system, lab, a, b));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        process.stdout.write(`\n  ${system.name}: failed: ${message}\n`);
        skipped.push({ system: system.name, reason: `failed: ${message}` });
      } finally {
        await system.teardown();
      }
    }
  } finally {
    await lab.cleanup();
  }
  const left = leftovers(lab.prefix);
  if (left.namespaces.length + left.links.length > 0) process.stdout.write(`WARNING: left behind: ${JSON.stringify(left)}\n`);

  process.stdout.write(`\n${smoke ? 'SMOKE ' : ''}results (medians of ${settings.repeats}):\n${report(rows)}\n`);
  for (const s of skipped) process.stdout.write(`  not measured: ${s.system}: ${s.reason}\n`);

  const meta = {
    ...machineMeta(smoke),
    node: process.version,
    iperf3: versionOf(['iperf3', '--version']),
    wireguardGo: versionOf(['wireguard-go', '--version']),
    tinc: versionOf(['tincd', '--version']),
    settings,
    skipped,
    details,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'dataplane.json'), `${JSON.stringify(rows, null, 2)}\n`);
  writeFileSync(join(outDir, 'dataplane.meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  process.stdout.write(`wrote ${join(outDir, 'dataplane.json')} and dataplane.meta.json\n`);
}

await main();
