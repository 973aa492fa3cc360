import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointError, OptionsError, WeaveError } from '../../../src/errors.js';
import { KernelNetwork } from '../../../src/endpoint/kernel-network.js';
import type { IpCommand } from '../../../src/endpoint/ip-command.js';

/** A fake `ip` that records commands and fails those matching `failures` with iproute2's messages. */
function fakeIp(failures: [RegExp, string][] = []): { ip: IpCommand; calls: string[] } {
  const calls: string[] = [];
  const ip: IpCommand = async (args) => {
    const line = args.join(' ');
    calls.push(line);
    for (const [pattern, message] of failures) if (pattern.test(line)) throw new EndpointError('command-failed', `ip ${line}: ${message}`);
    if (line.includes('-j link show')) return JSON.stringify([{ address: '02:aa:bb:cc:dd:ee' }]);
    return '';
  };
  return { ip, calls };
}

async function withDirs(body: (dirs: { run: string; config: string }) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'wt-kernel-'));
  try {
    const run = join(root, 'run');
    await mkdir(run);
    await writeFile(join(run, 'web'), '');
    await body({ run, config: join(root, 'etc') });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('names: host ends are derived from the bridge and stable per namespace; bad names refused', () => {
  const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: fakeIp().ip });
  const a = k.hostIfnameFor('web');
  assert.ok(a.startsWith('wtbr1v') && a.length <= 15, a);
  assert.is(k.hostIfnameFor('web'), a);
  assert.is.not(k.hostIfnameFor('db'), a);
  assert.is(k.tapName, 'wtbr1-tap');
  assert.throws(() => new KernelNetwork({ bridge: 'a-very-long-bridge', mtu: 1376 }), (e: unknown) => e instanceof OptionsError);
  assert.throws(() => new KernelNetwork({ bridge: 'br', mtu: 100 }), (e: unknown) => e instanceof OptionsError);
});

test('attach: veth into the namespace, address, MTU, multicast route, MAC', async () => {
  await withDirs(async ({ run, config }) => {
    const { ip, calls } = fakeIp();
    const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip, netnsRunDir: run, netnsConfigDir: config });
    const link = await k.attach('web', 'ethwe', '10.32.0.2/12');
    const host = k.hostIfnameFor('web');
    assert.equal(link, { netns: 'web', ifname: 'ethwe', hostIfname: host, mac: '02:aa:bb:cc:dd:ee', hostMac: '02:aa:bb:cc:dd:ee' });
    assert.equal(calls, [
      `link add name ${host} mtu 1376 type veth peer name ethwe mtu 1376 netns web`,
      `link set ${host} master wtbr1 up`,
      '-n web addr add 10.32.0.2/12 dev ethwe',
      '-n web link set ethwe up',
      '-n web link set lo up',
      '-n web route add 224.0.0.0/4 dev ethwe',
      '-n web -j link show dev ethwe',
      `-j link show dev ${host}`,
    ]);
  });
});

test('attach by namespace path (as a container runtime gives it): given host end, default route through the gateway', async () => {
  await withDirs(async ({ run, config }) => {
    const { ip, calls } = fakeIp();
    const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip, netnsRunDir: run, netnsConfigDir: config });
    const path = join(run, 'cni-1234'); // any file stands for the namespace: the fake ip does the rest
    await writeFile(path, '');
    const link = await k.attach(path, 'eth0', '10.32.0.3/12', { hostIfname: 'wtbr1vabc', gateway: '10.32.0.1' });
    assert.is(link.hostIfname, 'wtbr1vabc');
    assert.equal(calls.slice(0, 3), [`link add name wtbr1vabc mtu 1376 type veth peer name eth0 mtu 1376 netns ${path}`, 'link set wtbr1vabc master wtbr1 up', `-n ${path} addr add 10.32.0.3/12 dev eth0`]);
    assert.ok(calls.includes(`-n ${path} route replace default via 10.32.0.1 dev eth0`), calls.join('\n'));
    // A relative path, "..", or a path that does not exist are refused before anything runs.
    for (const bad of ['../etc/x', '/run/../etc/passwd', join(run, 'gone')]) {
      const before = calls.length;
      try {
        await k.attach(bad, 'eth0', '10.32.0.4/12');
        assert.unreachable();
      } catch (error) {
        assert.instance(error, WeaveError);
      }
      assert.is(calls.length, before, `${bad}: nothing ran`);
    }
    // Resolver files belong to ip netns names: a path has none.
    try {
      await k.writeResolvConf(path, '10.32.0.1', 'weave.local.');
      assert.unreachable();
    } catch (error) {
      assert.instance(error, OptionsError);
    }
  });
});

test('attach: a missing namespace or a taken interface is a clear error; a failed step is undone', async () => {
  await withDirs(async ({ run, config }) => {
    const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: fakeIp().ip, netnsRunDir: run, netnsConfigDir: config });
    try {
      await k.attach('nowhere', 'ethwe', '10.32.0.2/12');
      assert.unreachable();
    } catch (error) {
      assert.is((error as EndpointError).code, 'not-found');
      assert.match((error as Error).message, /ip netns add nowhere/);
    }
    const taken = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: fakeIp([[/veth/, 'RTNETLINK answers: File exists']]).ip, netnsRunDir: run, netnsConfigDir: config });
    try {
      await taken.attach('web', 'ethwe', '10.32.0.2/12');
      assert.unreachable();
    } catch (error) {
      assert.is((error as EndpointError).code, 'already-exists');
    }
    const failing = fakeIp([[/addr add/, 'RTNETLINK answers: Permission denied']]);
    const k2 = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: failing.ip, netnsRunDir: run, netnsConfigDir: config });
    try {
      await k2.attach('web', 'ethwe', '10.32.0.2/12');
      assert.unreachable();
    } catch (error) {
      assert.match((error as Error).message, /Permission denied/);
    }
    assert.is(failing.calls.at(-1), `link del ${k2.hostIfnameFor('web')}`, 'the veth is removed again');
  });
});

test('bridge: created without multicast snooping, or reused when it exists; deleting what is gone is fine', async () => {
  const fresh = fakeIp();
  await new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: fresh.ip }).ensureBridge();
  assert.equal(fresh.calls, ['link add name wtbr1 mtu 1376 type bridge mcast_snooping 0', 'link set wtbr1 mtu 1376 up']);
  const existing = fakeIp([[/link add/, 'RTNETLINK answers: File exists']]);
  await new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: existing.ip }).ensureBridge();
  assert.equal(existing.calls.slice(1), ['link set wtbr1 type bridge mcast_snooping 0', 'link set wtbr1 mtu 1376 up']);
  const gone = fakeIp([[/del/, 'Cannot find device "wtbr1"']]);
  const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: gone.ip });
  await k.removeBridge();
  await k.detach('wtbr1v123');
});

test('resolver files: written with a marker, a foreign file set aside and restored', async () => {
  await withDirs(async ({ run, config }) => {
    const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: fakeIp().ip, netnsRunDir: run, netnsConfigDir: config });
    await k.writeResolvConf('web', '10.32.0.1', 'weave.local.');
    const path = join(config, 'web', 'resolv.conf');
    assert.match(await readFile(path, 'utf8'), /nameserver 10\.32\.0\.1\nsearch weave\.local\n/);
    await k.removeResolvConf('web');
    assert.not.ok(existsSync(join(config, 'web')), 'our directory is removed');

    await mkdir(join(config, 'db'), { recursive: true });
    await writeFile(join(config, 'db', 'resolv.conf'), 'nameserver 192.0.2.53\n');
    await k.writeResolvConf('db', '10.32.0.1', 'weave.local.');
    await k.writeResolvConf('db', '10.32.0.1', 'weave.local.'); // again: the backup is not overwritten by ours
    await k.removeResolvConf('db');
    assert.is(await readFile(join(config, 'db', 'resolv.conf'), 'utf8'), 'nameserver 192.0.2.53\n');
  });
});

test('routes into the range through another interface are found; ours, the default route and other ranges are not', async () => {
  const routes = [
    { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
    { dst: '192.0.2.0/24', dev: 'eth0' },
    { dst: '10.32.0.0/12', dev: 'wtbr1' },
    { dst: '10.32.0.0/12', dev: 'weave' }, // the leftover bridge of an earlier agent
    { dst: '10.40.1.7', dev: 'tun0' }, // a host route inside the range
    { dst: '10.0.0.0/8', dev: 'eth1' }, // wider than the range: it takes the range's traffic only without ours, still a second path
    { dst: '172.16.0.0/12', dev: 'docker0' },
    { type: 'multicast', dst: '224.0.0.0/4', dev: 'eth0' },
  ];
  const ip: IpCommand = async (args) => (args.join(' ') === '-j -4 route show table main' ? JSON.stringify(routes) : '');
  const k = new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip });
  assert.equal(await k.foreignRoutesInto('10.32.0.0/12'), [
    { dst: '10.32.0.0/12', dev: 'weave' },
    { dst: '10.40.1.7/32', dev: 'tun0' },
    { dst: '10.0.0.0/8', dev: 'eth1' },
  ]);
  assert.equal(await k.foreignRoutesInto('10.32.5.1/24'), [
    { dst: '10.32.0.0/12', dev: 'weave' },
    { dst: '10.0.0.0/8', dev: 'eth1' },
  ]);
  assert.equal(await new KernelNetwork({ bridge: 'wtbr1', mtu: 1376, ip: async () => '[]' }).foreignRoutesInto('10.32.0.0/12'), []);
});

test.run();
