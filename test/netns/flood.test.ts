// Floods do not starve the data path: two CLI agents with a container each, a third host flooding one agent's
// UDP port with forged sleeve datagrams (a real peer's name in clear) or random bytes, ping and iperf3 between
// the containers measured unflooded and flooded in the same run.
//
// The flooder is test/helpers/udp-flooder.c, compiled here with `cc` (sendmmsg batches paced to the rate, 32
// source ports). Every measurement prints the rate the flooder reached, its CPU, both agents' CPU and how busy
// the machine was. WEAVE_FLOOD_RATE (default 70000) and WEAVE_FLOOD_ROUNDS (default 5) override the defaults.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason, parseIperf3, parsePing, waitForLine } from '../helpers/netns.js';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
const flooderSource = new URL('../../../test/helpers/udp-flooder.c', import.meta.url).pathname;
const skipReason = tapNamespaceSkipReason(['ping', 'iperf3', 'cc']);
if (skipReason !== '') console.log(`flood namespace tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

/** The flood rate (datagrams per second) and a datagram size like the data path's own. */
const FLOOD_RATE = Number(process.env.WEAVE_FLOOD_RATE ?? 70_000);
const FLOOD_SIZE = 1400;
/** Measurements per condition; the median is compared (the machine is shared and timing-sensitive). */
const ROUNDS = Number(process.env.WEAVE_FLOOD_ROUNDS ?? 5);
const PING_COUNT = 200;
const PING_INTERVAL_S = '0.01';
const IPERF_SECONDS = 3;

const A_NAME = '0a:00:00:00:00:0a';
const B_NAME = '0a:00:00:00:00:0b';

interface Host {
  name: string;
  dataDir: string;
  launchArgs: string[];
  agent?: ChildProcess;
}

interface Measurement {
  lossPct: number;
  mbps: number;
}

interface UdpCounters {
  inDatagrams: number;
  rcvbufErrors: number;
}

interface DataPlaneView {
  links: { peer: string; established: boolean; remote?: string; ownSocket?: boolean; authFailures?: number }[];
  sleeveDrops: Record<string, number>;
  receive?: {
    linkSockets: string;
    pauses: number;
    bufferBytes?: number;
    sources: { address: string; failures: number; reasons: Record<string, number>; blocked: boolean }[];
  };
}

async function startAgent(lab: NetnsLab, host: Host): Promise<void> {
  const agent = lab.spawn(host.name, [process.execPath, cliPath, 'launch', ...host.launchArgs, '--data-dir', host.dataDir, '--log-level', 'warn']);
  host.agent = agent;
  await waitForLine(agent, 'weave-ts ready', 30_000);
}

async function cli(lab: NetnsLab, host: Host, args: string[]): Promise<string> {
  const r = await lab.exec(host.name, [process.execPath, cliPath, ...args, '--data-dir', host.dataDir], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`weave-ts ${args.join(' ')} on ${host.name} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function dataPlane(lab: NetnsLab, host: Host): Promise<DataPlaneView> {
  return (JSON.parse(await cli(lab, host, ['status', '--json'])) as { dataPlane: DataPlaneView }).dataPlane;
}

async function pingable(lab: NetnsLab, container: string, target: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.exec(container, ['ping', '-c', '1', '-W', '1', target]);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`no ping reply from ${target} in ${container}: ${r.stdout}${r.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The UDP counters of a host's namespace (/proc/net/snmp is per namespace). */
async function udpCounters(lab: NetnsLab, host: string): Promise<UdpCounters> {
  const snmp = (await lab.execOk(host, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = (snmp[0] ?? '').split(/\s+/);
  const values = (snmp[1] ?? '').split(/\s+/).map(Number);
  const get = (name: string): number => values[names.indexOf(name)] ?? NaN;
  return { inDatagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors') };
}

let iperfPort = 5301;

/** One ping series, then one TCP transfer, container a → container b. A failed transfer counts as 0 Mbit/s. */
async function measure(lab: NetnsLab, target: string): Promise<Measurement> {
  const ping = await lab.exec('ca', ['ping', '-q', '-c', String(PING_COUNT), '-i', PING_INTERVAL_S, '-W', '1', target], { timeoutMs: 30_000 });
  const lossPct = parsePing(ping.stdout).lossPct;
  const port = iperfPort++;
  const server = lab.spawn('cb', ['iperf3', '-s', '-1', '-p', String(port)]);
  let mbps = 0;
  try {
    await lab.waitForListen('cb', port);
    const client = await lab.exec('ca', ['iperf3', '-c', target, '-p', String(port), '-t', String(IPERF_SECONDS), '--connect-timeout', '3000', '--json'], {
      timeoutMs: (IPERF_SECONDS + 20) * 1000,
    });
    if (client.code === 0) mbps = parseIperf3(client.stdout).receiverBps / 1e6;
  } finally {
    await lab.kill(server, 500);
  }
  return { lossPct, mbps };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** CPU time (user + system) of a process so far, in seconds. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Busy and total CPU time of the whole machine so far, in clock ticks (from /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

type Condition = 'unflooded' | 'forged' | 'random';

interface Sample extends Measurement {
  /** Flood datagrams the flooder got out per second (0 unflooded). */
  floodRate: number;
  /** CPU of the agents and of the flooder during the measurement, % of one core. */
  agentCpu: number;
  agentACpu: number;
  flooderCpu: number;
  /** How busy the whole machine was (everyone, other tests included), % of all cores. */
  machineBusy: number;
  /** b's kernel counters during the measurement. */
  rcvbufErrors: number;
  inDatagrams: number;
}

/** One measurement under one condition: the flooder (if any) runs in host x against b's sleeve port throughout. */
async function sample(lab: NetnsLab, flooder: string, target: string, condition: Condition, agents: [number | undefined, number | undefined]): Promise<Sample> {
  const [agentAPid, agentPid] = agents;
  const before = await udpCounters(lab, 'hb');
  const started = Date.now();
  const agentBefore = cpuSeconds(agentPid);
  const agentABefore = cpuSeconds(agentAPid);
  const machineBefore = machineTicks();
  let child: ChildProcess | undefined;
  let done: Promise<string> | undefined;
  if (condition !== 'unflooded') {
    const sender = condition === 'forged' ? A_NAME.replaceAll(':', '') : 'random';
    child = lab.spawn('hx', [flooder, '10.250.42.2', '6783', String(FLOOD_RATE), '120', String(FLOOD_SIZE), sender, '32']);
    done = waitForLine(child, 'SENT', 130_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const m = await measure(lab, target);
  const flooderCpu = cpuSeconds(child?.pid);
  const seconds = (Date.now() - started) / 1000;
  const agentCpu = ((cpuSeconds(agentPid) - agentBefore) / seconds) * 100;
  const agentACpu = ((cpuSeconds(agentAPid) - agentABefore) / seconds) * 100;
  const machineAfter = machineTicks();
  const machineBusy = ((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)) * 100;
  let floodRate = 0;
  if (child && done) {
    await lab.kill(child);
    const [, sent, elapsed] = (await done).split(' ');
    floodRate = Number(sent) / Number(elapsed);
  }
  const after = await udpCounters(lab, 'hb');
  const result: Sample = {
    ...m,
    floodRate,
    agentCpu,
    agentACpu,
    machineBusy,
    flooderCpu: child ? (flooderCpu / seconds) * 100 : 0,
    rcvbufErrors: after.rcvbufErrors - before.rcvbufErrors,
    inDatagrams: after.inDatagrams - before.inDatagrams,
  };
  console.log(
    `  ${condition.padEnd(9)} ping loss ${m.lossPct.toFixed(1).padStart(5)} %, TCP ${m.mbps.toFixed(0).padStart(4)} Mbit/s` +
      (condition === 'unflooded' ? '' : `, flood ${Math.round(floodRate)}/s (flooder CPU ${result.flooderCpu.toFixed(0)} %)`) +
      `; agents' CPU a ${agentACpu.toFixed(0)} % b ${agentCpu.toFixed(0)} %, machine ${machineBusy.toFixed(0)} % busy; b's kernel: ${result.inDatagrams} UDP datagrams queued, ${result.rcvbufErrors} receive-buffer drops`,
  );
  return result;
}

nsTest('a 70k/s flood of forged or random sleeve datagrams does not starve pings or TCP between containers', async () => {
  const lab = new NetnsLab('fl');
  const root = mkdtempSync(join(tmpdir(), 'wt-flood-'));
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    const flooder = join(root, 'udp-flooder');
    execFileSync('cc', ['-O2', '-o', flooder, flooderSource]);
    const passwordFile = join(root, 'password');
    writeFileSync(passwordFile, 'a long network password for the flood test\n', { mode: 0o600 });
    for (const h of ['ha', 'hb', 'hx', 'ca', 'cb']) await lab.addHost(h);
    for (const c of ['ca', 'cb']) lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    await lab.link('ha', 'hb', { subnet: '10.250.41.0/24' });
    await lab.link('hx', 'hb', { subnet: '10.250.42.0/24' });
    const common = ['--password-file', passwordFile, '--ipalloc-range', '10.45.0.0/16', '--ipalloc-init', 'consensus=2', '--bridge', `${lab.prefix}b`];
    const hb: Host = { name: 'hb', dataDir: join(root, 'b'), launchArgs: [...common, '--name', B_NAME, '--nickname', 'hb', '--listen', '0.0.0.0:6783'] };
    const ha: Host = {
      name: 'ha',
      dataDir: join(root, 'a'),
      launchArgs: [...common, '--name', A_NAME, '--nickname', 'ha', '--listen', '10.250.41.1:6783', '--peer', '10.250.41.2'],
    };
    await startAgent(lab, hb);
    await startAgent(lab, ha);
    await cli(lab, ha, ['attach', '--netns', lab.ns('ca'), '--name', 'ca']);
    const cb = JSON.parse(await cli(lab, hb, ['attach', '--netns', lab.ns('cb'), '--name', 'cb', '--json'])) as { address: string };
    const target = cb.address.split('/')[0] as string;
    await pingable(lab, 'ca', target);

    // Conditions interleaved round by round, so a change in the machine's load hits them alike; medians compared.
    const samples: Record<Condition, Sample[]> = { unflooded: [], forged: [], random: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`  round ${round}/${ROUNDS}`);
      for (const condition of ['unflooded', 'forged', 'random'] as const) samples[condition].push(await sample(lab, flooder, target, condition, [ha.agent?.pid, hb.agent?.pid]));
    }
    const summary = (condition: Condition) => {
      const list = samples[condition];
      return {
        lossPct: median(list.map((x) => x.lossPct)),
        mbps: median(list.map((x) => x.mbps)),
        floodRate: median(list.map((x) => x.floodRate)),
        agentCpu: median(list.map((x) => x.agentCpu)),
      };
    };
    const base = summary('unflooded');
    console.log(`  medians: unflooded ping loss ${base.lossPct.toFixed(1)} %, TCP ${base.mbps.toFixed(0)} Mbit/s, b's agent CPU ${base.agentCpu.toFixed(0)} %`);
    assert.ok(base.mbps > 20, `the unflooded overlay carries TCP (${base.mbps.toFixed(0)} Mbit/s)`);
    for (const condition of ['forged', 'random'] as const) {
      const r = summary(condition);
      console.log(
        `  medians: ${condition} flood ${Math.round(r.floodRate)}/s: ping loss ${r.lossPct.toFixed(1)} %, TCP ${r.mbps.toFixed(0)} Mbit/s ` +
          `(${((r.mbps / base.mbps) * 100).toFixed(0)} % of unflooded), b's agent CPU ${r.agentCpu.toFixed(0)} %`,
      );
      assert.ok(r.floodRate > FLOOD_RATE * 0.85, `${condition}: the flooder reached ${Math.round(r.floodRate)}/s of ${FLOOD_RATE}/s`);
      assert.ok(r.lossPct < 5, `${condition} flood: median ping loss ${r.lossPct.toFixed(1)} % (< 5 %)`);
      assert.ok(r.mbps >= base.mbps * 0.5, `${condition} flood: TCP ${r.mbps.toFixed(0)} Mbit/s, unflooded ${base.mbps.toFixed(0)} Mbit/s (≥ 50 %)`);
    }

    // The agent survived, the link stayed up on a socket of its own, and the failures are counted per source.
    const view = await dataPlane(lab, hb);
    console.log(`  b's sleeve drops: ${JSON.stringify(view.sleeveDrops)}; receive side: ${JSON.stringify(view.receive)}`);
    const link = view.links.find((l) => l.peer === A_NAME);
    assert.ok(link?.established, 'the link to a stayed established');
    assert.is(link?.ownSocket, true, "a's datagrams arrive on a socket of their own");
    assert.is(view.receive?.linkSockets, 'on');
    assert.ok((view.receive?.bufferBytes ?? 0) >= 4 * 1024 * 1024, `the receive buffer was sized (${view.receive?.bufferBytes})`);
    const floodSource = view.receive?.sources.find((s) => s.address === '10.250.42.1');
    assert.ok(
      floodSource !== undefined && (floodSource.reasons['source-blocked'] ?? 0) > 0 && (floodSource.reasons['unknown-peer'] ?? 0) > 0,
      `the flooding host's failures are counted: ${JSON.stringify(floodSource)}`,
    );
    assert.ok((view.sleeveDrops['auth-failed'] ?? 0) < 1000, `forgeries were refused before decryption (${view.sleeveDrops['auth-failed']} decrypted)`);
    const metrics = await cli(lab, hb, ['metrics']);
    assert.match(metrics, /^weave_sleeve_receive_pauses_total \d+$/m);
    assert.match(metrics, /^weave_dropped_frames_total\{where="sleeve",reason="source-blocked"\} [1-9]\d*$/m, 'blocked forgeries are in the metrics');
  } finally {
    await lab.cleanup();
  }
});

test.run();
