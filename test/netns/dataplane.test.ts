// The data plane end to end: peers with kernel TAP devices in network namespaces, real ping, iperf3 and multicast.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { NetnsLab, tapNamespaceSkipReason, parseIperf3, parsePing, waitForLine } from '../helpers/netns.js';

const agentPath = new URL('../../examples/tap-agent.js', import.meta.url).pathname;
const skipReason = tapNamespaceSkipReason(['ping', 'iperf3', 'socat', 'nft']);
if (skipReason !== '') console.log(`data plane namespace tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

const PASSWORD = 'namespace test password';

interface AgentSpec {
  host: string;
  listen: string;
  peers?: string[];
  overlay: string;
  noFragmentation?: boolean;
}

/** Starts one tap-agent per spec (in order) and waits for each to say READY. */
async function startAgents(lab: NetnsLab, specs: AgentSpec[]): Promise<ChildProcess[]> {
  const agents: ChildProcess[] = [];
  for (const spec of specs) {
    const config = {
      listen: spec.listen,
      peers: spec.peers ?? [],
      tap: `${lab.prefix}t${spec.host}`,
      address: `${spec.overlay}/24`,
      nickname: spec.host,
      password: PASSWORD,
      ...(spec.noFragmentation ? { noFragmentation: true } : {}),
    };
    const agent = lab.spawn(spec.host, [process.execPath, agentPath, JSON.stringify(config)]);
    agents.push(agent);
    await waitForLine(agent, 'READY', 15_000);
  }
  return agents;
}

/** Pings until one reply arrives (links establish and MACs are learned first). */
async function waitForPing(lab: NetnsLab, host: string, address: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.exec(host, ['ping', '-c', '1', '-W', '1', address]);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`no overlay ping reply from ${address} in ${host}:\n${r.stdout}${r.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function withLab(tag: string, body: (lab: NetnsLab) => Promise<void>): Promise<void> {
  const lab = new NetnsLab(tag);
  try {
    await body(lab);
  } finally {
    await lab.cleanup();
  }
}

/**
 * A–B–C: A and C sit on different underlay networks joined only through B, which does not forward
 * IP, so every A–C frame crosses the overlay in two hops.
 */
async function line(lab: NetnsLab): Promise<ChildProcess[]> {
  for (const h of ['a', 'b', 'c']) await lab.addHost(h);
  await lab.link('a', 'b', { subnet: '10.250.11.0/24' });
  await lab.link('b', 'c', { subnet: '10.250.12.0/24' });
  await lab.sysctl('b', 'net.ipv4.ip_forward', 0);
  return startAgents(lab, [
    { host: 'b', listen: '0.0.0.0:6783', overlay: '10.40.0.2' },
    { host: 'a', listen: '10.250.11.1:6783', peers: ['10.250.11.2:6783'], overlay: '10.40.0.1' },
    { host: 'c', listen: '10.250.12.2:6783', peers: ['10.250.12.1:6783'], overlay: '10.40.0.3' },
  ]);
}

nsTest('three hosts: ping across, multi-hop through B, iperf3 TCP, multicast to the two others', async () => {
  await withLab('d', async (lab) => {
    await line(lab);
    const underlay = await lab.exec('a', ['ping', '-c', '1', '-W', '1', '10.250.12.2']);
    assert.is.not(underlay.code, 0, 'A cannot reach C on the underlay');
    await waitForPing(lab, 'a', '10.40.0.2');
    await waitForPing(lab, 'a', '10.40.0.3');
    const ping = await lab.exec('a', ['ping', '-c', '5', '-i', '0.1', '10.40.0.3']);
    assert.is(parsePing(ping.stdout).received, 5, ping.stdout);

    const server = lab.spawn('c', ['iperf3', '-s', '-1']);
    await lab.waitForListen('c', 5201);
    const client = await lab.exec('a', ['iperf3', '-c', '10.40.0.3', '-t', '2', '--json'], { timeoutMs: 20_000 });
    assert.is(client.code, 0, client.stderr);
    const tcp = parseIperf3(client.stdout);
    assert.ok(tcp.receiverBps > 10e6, `TCP across two hops carried ${Math.round(tcp.receiverBps / 1e6)} Mbit/s`);
    await lab.kill(server);

    // Multicast: a group joined on B and C, one datagram sent from A.
    for (const h of ['a', 'b', 'c']) await lab.execOk(h, ['ip', 'route', 'add', '224.0.0.0/4', 'dev', `${lab.prefix}t${h}`]);
    const receivers = ['b', 'c'].map((h) =>
      lab.exec(h, ['timeout', '8', 'socat', '-u', `UDP4-RECV:5999,ip-add-membership=239.7.7.7:${lab.prefix}t${h}`, 'STDOUT'], { timeoutMs: 10_000 }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500)); // let the receivers join
    for (let i = 0; i < 3; i++) {
      await lab.execOk('a', ['sh', '-c', `echo market-tick | socat -u STDIN UDP4-DATAGRAM:239.7.7.7:5999,ip-multicast-if=10.40.0.1,ip-multicast-ttl=2`]);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const results = await Promise.all(receivers);
    for (const [i, r] of results.entries()) assert.match(r.stdout, /market-tick/, `${['b', 'c'][i]} received the multicast`);
  });
});

nsTest('big-frame mode: an 8000-byte ping with DF crosses a 1500-byte underlay', async () => {
  await withLab('m', async (lab) => {
    await lab.addHost('x');
    await lab.addHost('y');
    await lab.link('x', 'y', { subnet: '10.250.13.0/24', mtu: 1500 });
    await startAgents(lab, [
      { host: 'y', listen: '10.250.13.2:6783', overlay: '10.40.1.2' },
      { host: 'x', listen: '10.250.13.1:6783', peers: ['10.250.13.2:6783'], overlay: '10.40.1.1' },
    ]);
    await waitForPing(lab, 'x', '10.40.1.2');
    const big = await lab.exec('x', ['ping', '-c', '3', '-i', '0.2', '-M', 'do', '-s', '8000', '10.40.1.2']);
    assert.is(big.code, 0, big.stdout + big.stderr);
    assert.is(parsePing(big.stdout).received, 3);
  });
});

/** With big frames unavailable, DF pings get "fragmentation needed", non-DF pings are fragmented, TCP flows. */
async function smallPathChecks(lab: NetnsLab): Promise<void> {
  await waitForPing(lab, 'x', '10.40.1.2', 30_000);
  const df = await lab.exec('x', ['ping', '-c', '3', '-i', '0.2', '-M', 'do', '-s', '8000', '10.40.1.2']);
  assert.is.not(df.code, 0, 'a DF packet too big for the path cannot cross');
  assert.match(df.stdout + df.stderr, /[Ff]rag needed|message too long/, 'the sender is told the path MTU');
  const fragmented = await lab.exec('x', ['ping', '-c', '3', '-i', '0.2', '-M', 'dont', '-s', '8000', '10.40.1.2']);
  assert.is(fragmented.code, 0, fragmented.stdout + fragmented.stderr);
  const server = lab.spawn('y', ['iperf3', '-s', '-1']);
  await lab.waitForListen('y', 5201);
  const client = await lab.exec('x', ['iperf3', '-c', '10.40.1.2', '-t', '2', '--json'], { timeoutMs: 20_000 });
  assert.is(client.code, 0, client.stderr);
  assert.ok(parseIperf3(client.stdout).receiverBps > 10e6, 'TCP flows at the discovered size');
  await lab.kill(server);
}

nsTest('big frames off by option: DF gets fragmentation-needed, non-DF is fragmented, TCP flows', async () => {
  await withLab('n', async (lab) => {
    await lab.addHost('x');
    await lab.addHost('y');
    await lab.link('x', 'y', { subnet: '10.250.14.0/24', mtu: 1500 });
    await startAgents(lab, [
      { host: 'y', listen: '10.250.14.2:6783', overlay: '10.40.1.2', noFragmentation: true },
      { host: 'x', listen: '10.250.14.1:6783', peers: ['10.250.14.2:6783'], overlay: '10.40.1.1', noFragmentation: true },
    ]);
    await smallPathChecks(lab);
  });
});

nsTest('fragments dropped on the underlay: the links discover the path MTU by themselves', async () => {
  await withLab('f', async (lab) => {
    await lab.addHost('x');
    await lab.addHost('y');
    const link = await lab.link('x', 'y', { subnet: '10.250.15.0/24', mtu: 1500 });
    await lab.dropFragments('x', { iifname: link.ifnames[0] });
    await lab.dropFragments('y', { iifname: link.ifnames[1] });
    await startAgents(lab, [
      { host: 'y', listen: '10.250.15.2:6783', overlay: '10.40.1.2' },
      { host: 'x', listen: '10.250.15.1:6783', peers: ['10.250.15.2:6783'], overlay: '10.40.1.1' },
    ]);
    await smallPathChecks(lab);
    assert.ok((await lab.fragmentDrops('x')) + (await lab.fragmentDrops('y')) > 0, 'the frag test really was dropped');
  });
});

/** Asks an agent for its status (SIGUSR1) and parses the STATUS line. */
async function agentStatus(agent: ChildProcess): Promise<AgentStatus> {
  const line = waitForLine(agent, 'STATUS', 5000);
  agent.kill('SIGUSR1');
  return JSON.parse((await line).slice('STATUS '.length)) as AgentStatus;
}

interface AgentStatus {
  router: { links: { established: boolean }[]; stats: { terminations: number } };
  dataPlane: { links: { established: boolean; mode: string; mtu: number }[] };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

nsTest('the control plane is not starved at full data load: pings, links and the event loop stay responsive', async () => {
  await withLab('s', async (lab) => {
    await lab.addHost('x');
    await lab.addHost('y');
    await lab.link('x', 'y', { subnet: '10.250.16.0/24', mtu: 1500 });
    const [y, x] = await startAgents(lab, [
      { host: 'y', listen: '10.250.16.2:6783', overlay: '10.40.1.2' },
      { host: 'x', listen: '10.250.16.1:6783', peers: ['10.250.16.2:6783'], overlay: '10.40.1.1' },
    ]);
    await waitForPing(lab, 'x', '10.40.1.2');
    await agentStatus(x as ChildProcess); // resets the loop-delay histogram
    const server = lab.spawn('y', ['iperf3', '-s', '-1']);
    await lab.waitForListen('y', 5201);
    const load = lab.exec('x', ['iperf3', '-c', '10.40.1.2', '-t', '4', '-P', '2', '--json'], { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ping = await lab.exec('x', ['ping', '-c', '20', '-i', '0.1', '10.40.1.2']);
    const loadResult = await load;
    await lab.kill(server);
    assert.is(loadResult.code, 0, loadResult.stderr);
    assert.ok(parseIperf3(loadResult.stdout).receiverBps > 50e6, 'the link really was loaded');
    const summary = parsePing(ping.stdout);
    assert.ok(summary.received >= 19, `pings answered under load: ${summary.received}/20`);
    assert.ok((summary.rttMs?.max ?? Infinity) < 250, `worst ping under load ${summary.rttMs?.max} ms`);
    for (const agent of [x, y] as ChildProcess[]) {
      const status = await agentStatus(agent);
      assert.is(status.router.stats.terminations, 0, 'no control link was dropped');
      assert.ok(status.dataPlane.links.every((l) => l.established), 'the data link stayed established');
      assert.ok(status.eventLoopDelayMs.p99 < 100, `event loop p99 stall ${status.eventLoopDelayMs.p99} ms`);
    }
  });
});

test.run();
