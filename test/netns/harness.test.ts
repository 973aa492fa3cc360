// The namespace harness itself, proven on raw veth only (no weave-ts code): links, forwarding, iperf3, fragment drops, cleanup.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canUseNetns, hasCommand, leftovers, NetnsLab, parseIperf3, parsePing } from '../helpers/netns.js';

const support = canUseNetns();
const missing = ['ping', 'iperf3', 'nft', 'ss', 'sysctl'].filter((c) => !hasCommand(c));
const skipReason = !support.ok ? support.reason : missing.length > 0 ? `missing ${missing.join(', ')}; run scripts/install-test-deps.sh` : '';
if (skipReason !== '') console.log(`netns harness tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

/** Prefixes of every lab this file created, for the final leftover check. */
const prefixes: string[] = [];

async function withLab(tag: string, body: (lab: NetnsLab) => Promise<void>): Promise<void> {
  const lab = new NetnsLab(tag);
  prefixes.push(lab.prefix);
  try {
    await body(lab);
  } finally {
    await lab.cleanup();
  }
}

nsTest('two hosts on one veth link ping each other', async () => {
  await withLab('p', async (lab) => {
    await lab.addHost('a');
    await lab.addHost('b');
    const link = await lab.link('a', 'b', { subnet: '10.250.1.0/24' });
    assert.equal(link.addresses, ['10.250.1.1', '10.250.1.2']);
    const r = await lab.exec('a', ['ping', '-c', '3', '-i', '0.2', '-W', '1', link.addresses[1]]);
    assert.is(r.code, 0, r.stderr);
    const ping = parsePing(r.stdout);
    assert.is(ping.received, 3);
    assert.is(ping.lossPct, 0);
    assert.is(ping.timesMs.length, 3);
    assert.ok(ping.rttMs !== undefined && ping.rttMs.min > 0);
  });
});

nsTest('a router host forwards between two subnets (A–B–C line)', async () => {
  await withLab('r', async (lab) => {
    for (const h of ['a', 'b', 'c']) await lab.addHost(h);
    const ab = await lab.link('a', 'b', { subnet: '10.250.2.0/24' });
    const bc = await lab.link('b', 'c', { subnet: '10.250.3.0/24', addresses: ['10.250.3.1', '10.250.3.9'] });
    await lab.sysctl('b', 'net.ipv4.ip_forward', 1);
    await lab.addRoute('a', '10.250.3.0/24', ab.addresses[1]);
    await lab.addRoute('c', '10.250.2.0/24', bc.addresses[0]);
    const r = await lab.exec('a', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.250.3.9']);
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.is(parsePing(r.stdout).received, 2);
    // Without forwarding the same ping fails: the route alone is not what carried it.
    await lab.sysctl('b', 'net.ipv4.ip_forward', 0);
    const blocked = await lab.exec('a', ['ping', '-c', '1', '-W', '1', '10.250.3.9']);
    assert.is.not(blocked.code, 0);
  });
});

nsTest('iperf3 TCP between two hosts measures a positive rate', async () => {
  await withLab('i', async (lab) => {
    await lab.addHost('a');
    await lab.addHost('b');
    const link = await lab.link('a', 'b', { subnet: '10.250.4.0/24' });
    lab.spawn('b', ['iperf3', '-s', '-B', link.addresses[1], '-p', '5201']);
    await lab.waitForListen('b', 5201);
    const r = await lab.exec('a', ['iperf3', '-c', link.addresses[1], '-p', '5201', '-t', '1', '--json'], { timeoutMs: 15_000 });
    assert.is(r.code, 0, r.stdout.slice(0, 500) + r.stderr);
    const result = parseIperf3(r.stdout);
    assert.is(result.protocol, 'TCP');
    assert.ok(result.receiverBps > 0, `receiver ${result.receiverBps} bit/s`);
    assert.ok(result.senderBps > 0);
  });
});

nsTest('dropFragments makes a fragmenting ping fail while an unfragmented one passes', async () => {
  await withLab('f', async (lab) => {
    await lab.addHost('a');
    await lab.addHost('b');
    const link = await lab.link('a', 'b', { subnet: '10.250.5.0/24', mtu: 1500 });
    const peer = link.addresses[1];
    // Before the rule, both sizes get through (the 3000-byte echo is fragmented and reassembled).
    assert.is((await lab.exec('a', ['ping', '-c', '1', '-W', '1', '-s', '3000', peer])).code, 0);
    await lab.dropFragments('b');
    const small = await lab.exec('a', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '-s', '1000', peer]);
    assert.is(small.code, 0, small.stdout);
    const big = await lab.exec('a', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '-s', '3000', peer]);
    assert.is.not(big.code, 0, big.stdout);
    assert.is(parsePing(big.stdout).received, 0);
    assert.ok((await lab.fragmentDrops('b')) >= 2, 'the nft counters saw the fragments');
  });
});

nsTest('cleanup leaves no wtF namespaces or links behind and kills spawned processes', async () => {
  const lab = new NetnsLab('c');
  prefixes.push(lab.prefix);
  let pid: number | undefined;
  try {
    await lab.addHost('a');
    await lab.addHost('b');
    await lab.link('a', 'b', { subnet: '10.250.6.0/24' });
    pid = lab.spawn('a', ['sleep', '600']).pid;
    assert.ok(pid !== undefined);
    assert.is(leftovers(lab.prefix).namespaces.length, 2);
  } finally {
    await lab.cleanup();
  }
  assert.equal(leftovers(lab.prefix), { namespaces: [], links: [] });
  assert.throws(() => process.kill(pid ?? 0, 0), 'the spawned process is gone');
  await lab.cleanup(); // idempotent
});

nsTest('no lab from this file left anything behind', () => {
  for (const prefix of prefixes) assert.equal(leftovers(prefix), { namespaces: [], links: [] }, prefix);
});

test.run();
