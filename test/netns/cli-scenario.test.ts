// The CLI agent as a user runs it: three hosts in a line, containers attached by name, ping/iperf3/multicast, restarts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason, parseIperf3, parsePing } from '../helpers/netns.js';
import { cli, cliPath, retry, startAgent as startCliAgent, stopAgent, type AgentHost } from '../helpers/cli-agent.js';

const skipReason = tapNamespaceSkipReason(['ping', 'iperf3', 'socat', 'getent']);
if (skipReason !== '') console.log(`CLI scenario tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

interface Endpoint {
  name: string;
  netns: string;
  address: string;
  mac: string;
}

type Host = AgentHost;

async function startAgent(lab: NetnsLab, host: Host): Promise<void> {
  assert.match(await startCliAgent(lab, host), /encryption on/);
}

/** Pings `target` from a container namespace until a reply comes. */
function pingable(lab: NetnsLab, container: string, target: string, timeoutMs = 30_000): Promise<true> {
  return retry(`ping ${target} from ${container}`, timeoutMs, async () => {
    const r = await lab.exec(container, ['ping', '-c', '1', '-W', '1', target]);
    if (r.code !== 0) throw new Error(r.stdout + r.stderr);
    return true as const;
  });
}

nsTest('three hosts in a line: containers reach each other by name, multicast, agent restarts heal and keep addresses', async () => {
  const lab = new NetnsLab('c');
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-'));
  const passwordFile = join(root, 'password');
  writeFileSync(passwordFile, 'a long network password for the namespace scenario\n', { mode: 0o600 });
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    for (const h of ['ha', 'hb', 'hc', 'ca1', 'ca2', 'cb1', 'cc1']) await lab.addHost(h);
    // Resolver files the agents write for the containers live outside the namespaces: remove them even on failure.
    for (const c of ['ca1', 'ca2', 'cb1', 'cc1']) lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    await lab.link('ha', 'hb', { subnet: '10.250.31.0/24' });
    await lab.link('hb', 'hc', { subnet: '10.250.32.0/24' });
    await lab.sysctl('hb', 'net.ipv4.ip_forward', 0);
    const common = ['--password-file', passwordFile, '--ipalloc-range', '10.44.0.0/16', '--ipalloc-init', 'consensus=3', '--bridge', `${lab.prefix}b`];
    const hosts: Record<'a' | 'b' | 'c', Host> = {
      b: { name: 'hb', dataDir: join(root, 'b'), launchArgs: [...common, '--nickname', 'hb', '--listen', '0.0.0.0:6783'] },
      a: { name: 'ha', dataDir: join(root, 'a'), launchArgs: [...common, '--nickname', 'ha', '--listen', '10.250.31.1:6783', '--peer', '10.250.31.2'] },
      c: { name: 'hc', dataDir: join(root, 'c'), launchArgs: [...common, '--nickname', 'hc', '--listen', '10.250.32.2:6783', '--peer', '10.250.32.1'] },
    };
    for (const host of [hosts.b, hosts.a, hosts.c]) await startAgent(lab, host);
    const underlay = await lab.exec('ha', ['ping', '-c', '1', '-W', '1', '10.250.32.2']);
    assert.is.not(underlay.code, 0, 'A cannot reach C on the underlay');

    // Bad options fail fast with a clear message and a usage exit code.
    const bad = await lab.exec('ha', [process.execPath, cliPath, 'launch', '--ipalloc-init', 'sometimes', '--data-dir', join(root, 'bad')]);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /--ipalloc-init "sometimes" is not understood/);

    const attach = async (host: Host, netns: string, name: string): Promise<Endpoint> =>
      JSON.parse(await cli(lab, host, ['attach', '--netns', lab.ns(netns), '--name', name, '--json'])) as Endpoint;
    const web = await attach(hosts.a, 'ca1', 'web');
    const worker = await attach(hosts.a, 'ca2', 'worker');
    const feed = await attach(hosts.b, 'cb1', 'feed');
    const db = await attach(hosts.c, 'cc1', 'db');
    const addresses = [web, worker, feed, db].map((e) => e.address);
    assert.is(new Set(addresses).size, 4, `addresses are unique: ${addresses.join(', ')}`);
    for (const a of addresses) assert.match(a, /^10\.44\.\d+\.\d+\/16$/);

    // Inside the namespace: the address, Weave's MTU, a multicast route, the resolver file.
    const inside = await lab.execOk('ca1', ['ip', '-o', 'addr', 'show', 'dev', 'ethwe']);
    assert.match(inside.stdout, new RegExp(`inet ${web.address.replace('/', '\\/')}`));
    assert.match((await lab.execOk('ca1', ['ip', 'link', 'show', 'dev', 'ethwe'])).stdout, /mtu 1376/);
    assert.match((await lab.execOk('ca1', ['ip', 'route'])).stdout, /224\.0\.0\.0\/4 dev ethwe/);
    // The host was exposed for DNS on the first attach; `expose` returns that address, and the host reaches containers.
    const exposed = (await cli(lab, hosts.a, ['expose'])).trim();
    assert.match(exposed, /^10\.44\.\d+\.\d+\/16$/);
    assert.match(readFileSync(join('/etc/netns', lab.ns('ca1'), 'resolv.conf'), 'utf8'), new RegExp(`nameserver ${exposed.split('/')[0]?.replace(/\./g, '\\.')}`));
    await lab.execOk('ha', ['ping', '-c', '1', '-W', '2', web.address.split('/')[0] as string]);

    const ps = JSON.parse(await cli(lab, hosts.a, ['ps', '--json'])) as Endpoint[];
    assert.equal(ps.map((e) => e.name).sort(), ['web', 'worker']);
    const table = await cli(lab, hosts.a, ['ps']);
    assert.match(table, /NAME\s+KIND\s+NETNS\s+MAC\s+IP\s+DNS/);
    assert.match(table, new RegExp(`web\\s+netns\\s+${lab.ns('ca1')}\\s+${web.mac}\\s+${web.address.replace('/', '\\/')}`));

    // By name, across two overlay hops (B relays: A and C have no direct underlay path).
    await pingable(lab, 'ca1', 'db');
    const ping = await lab.exec('ca1', ['ping', '-c', '5', '-i', '0.2', 'db.weave.local']);
    assert.is(parsePing(ping.stdout).received, 5, ping.stdout + ping.stderr);
    const server = lab.spawn('cc1', ['iperf3', '-s', '-1']);
    await lab.waitForListen('cc1', 5201);
    const client = await lab.exec('ca1', ['iperf3', '-c', 'db', '-t', '2', '--json'], { timeoutMs: 30_000 });
    assert.is(client.code, 0, client.stderr + client.stdout);
    assert.ok(parseIperf3(client.stdout).receiverBps > 5e6, 'TCP by name across the overlay');
    await lab.kill(server);

    // Multicast from a container on A reaches the containers on B and C.
    const receivers = (['cb1', 'cc1'] as const).map((c) =>
      lab.exec(c, ['timeout', '8', 'socat', '-u', 'UDP4-RECV:5999,ip-add-membership=239.7.7.7:ethwe', 'STDOUT'], { timeoutMs: 10_000 }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (let i = 0; i < 3; i++) {
      await lab.execOk('ca1', ['sh', '-c', 'echo market-tick | socat -u STDIN UDP4-DATAGRAM:239.7.7.7:5999,ip-multicast-ttl=2']);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    for (const [i, r] of (await Promise.all(receivers)).entries()) assert.match(r.stdout, /market-tick/, `${['cb1', 'cc1'][i]} received the multicast`);

    // Status, peers, DNS and metrics through the API.
    const status = JSON.parse(await cli(lab, hosts.a, ['status', '--json'])) as { router: { peers: unknown[] }; ipam: { state: string }; links: { nickname: string; direct: boolean; established: boolean }[] };
    assert.is(status.router.peers.length, 3);
    assert.is(status.ipam.state, 'ready');
    assert.ok(status.links.some((l) => l.nickname === 'hc' && !l.direct && l.established), 'C is reached through a relay');
    assert.match(await cli(lab, hosts.a, ['status']), /Service: ipam/);
    assert.match(await cli(lab, hosts.a, ['peers']), /hb/);
    assert.match(await cli(lab, hosts.a, ['metrics']), /weave_connections\{state="established",type="sleeve",encryption="yes"\} 1/);
    await cli(lab, hosts.c, ['dns-add', 'cache', '10.44.200.1']);
    const digged = await retry('dns-add visible on A', 10_000, async () => {
      const r = await lab.exec('ca1', ['getent', 'hosts', 'cache.weave.local']);
      return r.code === 0 ? r.stdout : undefined;
    });
    assert.match(digged, /10\.44\.200\.1/);
    await cli(lab, hosts.c, ['dns-remove', 'cache']);
    await retry('dns-remove visible on A', 10_000, async () => ((await lab.exec('ca1', ['getent', 'hosts', 'cache.weave.local'])).code !== 0 ? true : undefined));

    // Stopping B cuts A from C; restarting it heals.
    await stopAgent(lab, hosts.b);
    await retry('A losing C', 90_000, async () => ((await lab.exec('ca1', ['ping', '-c', '1', '-W', '1', db.address.split('/')[0] as string])).code !== 0 ? true : undefined));
    await startAgent(lab, hosts.b);
    await pingable(lab, 'ca1', 'db', 60_000);

    // Restarting A keeps its containers' addresses, names and connectivity.
    await stopAgent(lab, hosts.a);
    await startAgent(lab, hosts.a);
    const after = JSON.parse(await cli(lab, hosts.a, ['ps', '--json'])) as Endpoint[];
    assert.equal(after.map((e) => `${e.name}=${e.address}`).sort(), [`web=${web.address}`, `worker=${worker.address}`].sort());
    await pingable(lab, 'cc1', web.address.split('/')[0] as string, 60_000);
    await pingable(lab, 'ca1', 'db', 60_000);

    // Detach frees the name and the interface.
    await cli(lab, hosts.a, ['detach', '--netns', lab.ns('ca2')]);
    const gone = await lab.exec('ca2', ['ip', 'link', 'show', 'ethwe']);
    assert.is.not(gone.code, 0, 'the interface is gone after detach');
    assert.not.ok(existsSync(join('/etc/netns', lab.ns('ca2'), 'resolv.conf')), 'the resolver file is removed');
    for (const host of Object.values(hosts)) await stopAgent(lab, host);
  } finally {
    await lab.cleanup();
  }
});

test.run();
