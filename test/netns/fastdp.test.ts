// The fast datapath end to end: three host namespaces in a line running the CLI agent, containers attached
// by name. A–B may go plain (trusted subnet): unicast between their containers takes the kernel VXLAN
// tunnel. B–C may not (a password, C outside B's trusted subnets, C trusts nothing): sleeve. A–C is relayed
// through B on the sleeve. Multicast and broadcast reach each container exactly once; a firewall on the
// VXLAN port sends A–B back to the sleeve during an iperf3 run and lifting it brings the tunnel back;
// restarts, detach and stop leave no stale entries and no devices.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason, parseIperf3 } from '../helpers/netns.js';
import { cli, retry, startAgent as startCliAgent, stopAgent, type AgentHost as Host } from '../helpers/cli-agent.js';

const skipReason = tapNamespaceSkipReason(['ping', 'iperf3', 'socat', 'nft', 'bridge']);
if (skipReason !== '') console.log(`fast datapath namespace tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

interface Endpoint {
  name: string;
  address: string;
  mac: string;
}

interface LinkView {
  nickname: string;
  direct: boolean;
  established: boolean;
  datapath: 'fastdp' | 'sleeve';
  datapathReason?: string;
}

interface Status {
  links: LinkView[];
  dataPlane: {
    links: { peer: string; bytesOut: number; bytesIn: number }[];
    fastPath: { enabled: boolean; reason?: string; links: { peer: string; mode: string; device?: string }[] };
  };
}

const startAgent = (lab: NetnsLab, host: Host): Promise<string> => startCliAgent(lab, host, 'error');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

nsTest('fast and sleeve links side by side: VXLAN carries A–B, exactly-once floods, fallback and return, no leftovers', async () => {
  const lab = new NetnsLab('f');
  const root = mkdtempSync(join(tmpdir(), 'wt-fastdp-'));
  const passwordFile = join(root, 'password');
  writeFileSync(passwordFile, 'a long network password for the fast datapath scenario\n', { mode: 0o600 });
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    for (const h of ['ha', 'hb', 'hc', 'ca1', 'cb1', 'cb2', 'cc1']) await lab.addHost(h);
    for (const c of ['ca1', 'cb1', 'cb2', 'cc1']) lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    await lab.link('ha', 'hb', { subnet: '10.250.41.0/24' });
    await lab.link('hb', 'hc', { subnet: '10.250.42.0/24' });
    await lab.sysctl('hb', 'net.ipv4.ip_forward', 0);
    const bridge = `${lab.prefix}b`;
    const common = ['--password-file', passwordFile, '--ipalloc-range', '10.45.0.0/16', '--ipalloc-init', 'consensus=3', '--bridge', bridge];
    const trusted = ['--trusted-subnets', '10.250.41.0/24'];
    const hosts: Record<'a' | 'b' | 'c', Host> = {
      b: { name: 'hb', dataDir: join(root, 'b'), launchArgs: [...common, ...trusted, '--nickname', 'hb', '--listen', '0.0.0.0:6783'] },
      a: { name: 'ha', dataDir: join(root, 'a'), launchArgs: [...common, ...trusted, '--nickname', 'ha', '--listen', '10.250.41.1:6783', '--peer', '10.250.41.2'] },
      c: { name: 'hc', dataDir: join(root, 'c'), launchArgs: [...common, '--nickname', 'hc', '--listen', '10.250.42.2:6783', '--peer', '10.250.42.1'] },
    };
    for (const host of [hosts.b, hosts.a, hosts.c]) await startAgent(lab, host);
    const attach = async (host: Host, netns: string, name: string): Promise<Endpoint> =>
      JSON.parse(await cli(lab, host, ['attach', '--netns', lab.ns(netns), '--name', name, '--json'])) as Endpoint;
    const web = await attach(hosts.a, 'ca1', 'web');
    const feed = await attach(hosts.b, 'cb1', 'feed');
    const spare = await attach(hosts.b, 'cb2', 'spare');
    await attach(hosts.c, 'cc1', 'db');
    const ip = (e: Endpoint): string => e.address.split('/')[0] as string;
    const status = async (host: Host): Promise<Status> => JSON.parse(await cli(lab, host, ['status', '--json'])) as Status;
    const view = async (host: Host, nickname: string): Promise<LinkView | undefined> => (await status(host)).links.find((l) => l.nickname === nickname);

    // Modes and reasons: A–B fast both ways; B–C and A–C on the sleeve, each saying why.
    for (const [host, peer] of [[hosts.a, 'hb'], [hosts.b, 'ha']] as const) {
      await retry(`${host.name} → ${peer} fastdp`, 20_000, async () => ((await view(host, peer))?.datapath === 'fastdp' ? true : undefined));
    }
    assert.match((await view(hosts.b, 'hc'))?.datapathReason ?? '', /not in trustedSubnets/);
    assert.match((await view(hosts.a, 'hc'))?.datapathReason ?? '', /relayed through/);
    const c = await status(hosts.c);
    assert.is(c.dataPlane.fastPath.enabled, false);
    assert.match(c.dataPlane.fastPath.reason ?? '', /password.*IPsec ESP/);
    assert.match(await cli(lab, hosts.a, ['status']), /FastDatapath: on \(VXLAN UDP port 6784, 1 of 1 direct links fast\)/);
    const bText = await cli(lab, hosts.b, ['status']);
    assert.match(bText, /FastDatapath: on \(VXLAN UDP port 6784, 1 of 2 direct links fast\)/);
    assert.match(bText, /sleeve to hc: the network has a password and the peer is not in trustedSubnets/);
    assert.match(bText, /DATAPATH/);
    assert.match(await cli(lab, hosts.c, ['status']), /FastDatapath: off \(the network has a password/);
    assert.match(await cli(lab, hosts.a, ['metrics']), /weave_connections\{state="established",type="fastdp",encryption=""\} 1/);

    // Unicast A–B takes the tunnel: the kernel's VXLAN counters carry the iperf3 bytes, the sleeve's stay flat.
    await retry('ping feed from web', 20_000, async () => ((await lab.exec('ca1', ['ping', '-c', '1', '-W', '1', 'feed'])).code === 0 ? true : undefined));
    const vxlanTx = async (): Promise<number> => {
      const links = JSON.parse((await lab.execOk('ha', ['ip', '-j', '-s', 'link', 'show', 'type', 'vxlan'])).stdout) as { stats64: { tx: { bytes: number } } }[];
      return links.reduce((n, l) => n + l.stats64.tx.bytes, 0);
    };
    const sleeveOut = async (): Promise<number> => (await status(hosts.a)).dataPlane.links.reduce((n, l) => n + l.bytesOut, 0);
    const [tx0, sleeve0] = [await vxlanTx(), await sleeveOut()];
    const server = lab.spawn('cb1', ['iperf3', '-s']);
    await lab.waitForListen('cb1', 5201);
    const run = await lab.exec('ca1', ['iperf3', '-c', 'feed', '-t', '2', '--json'], { timeoutMs: 30_000 });
    assert.is(run.code, 0, run.stderr + run.stdout);
    assert.ok(parseIperf3(run.stdout).receiverBps > 0);
    const sent = (JSON.parse(run.stdout) as { end: { sum_sent: { bytes: number } } }).end.sum_sent.bytes;
    const [tx1, sleeve1] = [await vxlanTx(), await sleeveOut()];
    assert.ok(tx1 - tx0 >= sent, `the tunnel carried the stream (${tx1 - tx0} bytes for ${sent})`);
    assert.ok(sleeve1 - sleeve0 < sent / 20, `the sleeve stayed flat (${sleeve1 - sleeve0} bytes)`);

    // Multi-hop unicast A → C (relayed by B on the sleeve) works beside the tunnel.
    await retry('ping db from web (relayed)', 20_000, async () => ((await lab.exec('ca1', ['ping', '-c', '1', '-W', '1', 'db'])).code === 0 ? true : undefined));

    // Multicast and broadcast from A: each container gets each datagram once, whether its peer is fast or relayed.
    const receive = (c: string, address: string): Promise<{ stdout: string }> =>
      lab.exec(c, ['timeout', '6', 'socat', '-u', `UDP4-RECV:6000${address === 'broadcast' ? '' : `,ip-add-membership=${address}:ethwe`}`, 'STDOUT'], { timeoutMs: 10_000 });
    for (const [target, membership] of [['239.8.8.8', '239.8.8.8'], ['10.45.255.255', 'broadcast']] as const) {
      const receivers = ['cb1', 'cb2', 'cc1'].map((c) => receive(c, membership));
      await sleep(700);
      for (let i = 0; i < 4; i++) {
        await lab.execOk('ca1', ['sh', '-c', `echo tick-${i} | socat -u STDIN UDP4-DATAGRAM:${target}:6000,broadcast,ip-multicast-ttl=2`]);
        await sleep(100);
      }
      for (const [i, r] of (await Promise.all(receivers)).entries()) {
        const ticks = r.stdout.split('\n').filter((l) => l.startsWith('tick-'));
        assert.equal(ticks, ['tick-0', 'tick-1', 'tick-2', 'tick-3'], `${['cb1', 'cb2', 'cc1'][i]} got each ${membership} datagram once`);
      }
    }

    // A firewall drops the VXLAN port on B during a transfer: A falls back to the sleeve and the stream goes on.
    const long = lab.exec('ca1', ['iperf3', '-c', 'feed', '-t', '14', '--json'], { timeoutMs: 40_000 });
    await sleep(1000);
    await lab.execOk('hb', ['nft', 'add', 'table', 'inet', `${lab.prefix}fw`]);
    // (the table goes with the namespace if the test fails before it is deleted)
    await lab.execOk('hb', ['nft', 'add', 'chain', 'inet', `${lab.prefix}fw`, 'in', '{ type filter hook input priority 0; }']);
    await lab.execOk('hb', ['nft', 'add', 'rule', 'inet', `${lab.prefix}fw`, 'in', 'udp', 'dport', '6784', 'drop']);
    const blockedAt = Date.now();
    const fell = await retry('A → B back on the sleeve', 12_000, async () => {
      const v = await view(hosts.a, 'hb');
      return v?.datapath === 'sleeve' ? v : undefined;
    });
    assert.match(fell.datapathReason ?? '', /unhealthy/);
    assert.ok(Date.now() - blockedAt < 10_000, 'within the health timeout (6 s) and a status round');
    await sleep(2000);
    await lab.execOk('hb', ['nft', 'delete', 'table', 'inet', `${lab.prefix}fw`]);
    await retry('A → B fast again', 10_000, async () => ((await view(hosts.a, 'hb'))?.datapath === 'fastdp' ? true : undefined));
    const longRun = await long;
    assert.is(longRun.code, 0, longRun.stderr + longRun.stdout);
    const summary = parseIperf3(longRun.stdout);
    assert.ok(summary.receiverBps > 1e6, `the stream kept going through the fallback and back (${summary.receiverBps} bit/s)`);

    // Entries: A's bridge sends feed's MAC into the tunnel; after detach it no longer does; after B restarts,
    // its old tunnel is gone and a new one comes up.
    const fdb = async (host: string): Promise<{ mac: string; ifname?: string; master?: string }[]> =>
      JSON.parse((await lab.execOk(host, ['bridge', '-j', 'fdb', 'show', 'br', bridge])).stdout) as { mac: string }[];
    const aTunnel = (await status(hosts.a)).dataPlane.fastPath.links.find((l) => l.mode === 'fastdp')?.device as string;
    assert.ok((await fdb('ha')).some((e) => e.mac === feed.mac && e.ifname === aTunnel), `feed's MAC points at ${aTunnel}`);
    await lab.execOk('ca1', ['ping', '-c', '1', '-W', '1', ip(spare)]);
    await cli(lab, hosts.b, ['detach', '--netns', lab.ns('cb2')]);
    await retry('A dropping the detached MAC', 5000, async () => ((await fdb('ha')).some((e) => e.mac === spare.mac) ? undefined : true));
    await stopAgent(lab, hosts.b);
    await retry('A removing the tunnel of the stopped peer', 90_000, async () =>
      (await lab.execOk('ha', ['ip', '-j', 'link', 'show', 'type', 'vxlan'])).stdout.includes(aTunnel) ? undefined : true,
    );
    assert.not.ok((await fdb('ha')).some((e) => e.mac === feed.mac && e.ifname === aTunnel), 'no entry towards the old tunnel');
    const bLeft = await lab.execOk('hb', ['ip', '-j', 'link', 'show', 'type', 'vxlan']);
    assert.equal(JSON.parse(bLeft.stdout || '[]'), [], 'a stopped agent leaves no tunnel');
    await startAgent(lab, hosts.b);
    await retry('A → B fast after the restart', 30_000, async () => ((await view(hosts.a, 'hb'))?.datapath === 'fastdp' ? true : undefined));
    await retry('ping feed again', 20_000, async () => ((await lab.exec('ca1', ['ping', '-c', '1', '-W', '1', ip(feed)])).code === 0 ? true : undefined));
    assert.ok(ip(web).startsWith('10.45.'));

    await lab.kill(server);
    for (const host of [hosts.a, hosts.b, hosts.c]) await stopAgent(lab, host);
    for (const h of ['ha', 'hb', 'hc']) {
      const left = await lab.execOk(h, ['ip', '-j', 'link', 'show', 'type', 'vxlan']);
      assert.equal(JSON.parse(left.stdout || '[]'), [], `no VXLAN device left on ${h}`);
      const probe = await lab.exec(h, ['ip', 'link', 'show', `${bridge}-fdp`]);
      assert.is.not(probe.code, 0, `no probe TAP left on ${h}`);
    }
  } finally {
    await lab.cleanup();
  }
});

test.run();
