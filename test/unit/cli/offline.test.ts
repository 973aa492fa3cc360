import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointError } from '../../../src/errors.js';
import { KernelNetwork } from '../../../src/endpoint/kernel-network.js';
import type { IpCommand } from '../../../src/endpoint/ip-command.js';
import { EndpointRegistry } from '../../../src/endpoint/registry.js';
import { detachOffline, resetDataDir } from '../../../src/cli/offline.js';

const WEB = { netns: 'web', name: 'web', ifname: 'ethwe', hostIfname: 'wtbr1v012345678', address: '10.32.0.2/12', mac: '02:00:00:00:00:01' };

/** A fake host: links that exist, addresses per link, bridge ports; `ip` calls recorded. */
function fakeHost(links: Record<string, { addresses?: string[]; master?: string; veth?: boolean }>): { ip: IpCommand; calls: string[] } {
  const calls: string[] = [];
  const missing = (name: string): never => {
    throw new EndpointError('command-failed', `ip: Device "${name}" does not exist.`);
  };
  const ip: IpCommand = async (args) => {
    const line = args.join(' ');
    calls.push(line);
    let m = /^link show dev (\S+)$/.exec(line);
    if (m) return links[m[1] as string] ? '' : missing(m[1] as string);
    m = /^-j addr show dev (\S+)$/.exec(line);
    if (m) {
      const link = links[m[1] as string] ?? missing(m[1] as string);
      return JSON.stringify([{ ifname: m[1], addr_info: (link.addresses ?? []).map((a) => ({ family: 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })) }]);
    }
    m = /^-j link show master (\S+)( type veth)?$/.exec(line);
    if (m) {
      if (!links[m[1] as string]) missing(m[1] as string);
      return JSON.stringify(Object.entries(links).filter(([, l]) => l.master === m?.[1] && (!m?.[2] || l.veth)).map(([ifname]) => ({ ifname })));
    }
    m = /^link del (\S+)$/.exec(line);
    if (m) {
      if (!links[m[1] as string]) missing(m[1] as string);
      delete links[m[1] as string];
      return '';
    }
    return '';
  };
  return { ip, calls };
}

async function inDataDir(body: (dir: string, config: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'wt-offline-'));
  try {
    await mkdir(join(root, 'data'));
    await body(join(root, 'data'), join(root, 'etc'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('reset removes the veths, resolver files, fast datapath tunnels, bridge with its TAP and address, and the state files; keeps the peer name', async () => {
  await inDataDir(async (dir, config) => {
    await new EndpointRegistry(join(dir, 'endpoints.json')).save({ bridge: 'wtbr1', exposed: '10.32.0.1/12', endpoints: [WEB], pending: [] });
    for (const f of ['ipam.db', 'api-token', 'agent.json', 'peer-name', 'ipam.db.tmp']) await writeFile(join(dir, f), 'x');
    await mkdir(join(config, 'web'), { recursive: true });
    await writeFile(join(config, 'web', 'resolv.conf'), '# written by weave-ts: removed again when the endpoint is detached\nnameserver 10.32.0.1\n');
    const host = fakeHost({
      wtbr1: { addresses: ['10.32.0.1/12'] },
      'wtbr1-tap': { master: 'wtbr1' },
      [WEB.hostIfname]: { master: 'wtbr1', veth: true },
      wtbr1v0fedcba98: { master: 'wtbr1', veth: true }, // an orphan named like ours
      wtbr1x012345678: { master: 'wtbr1' }, // a VXLAN tunnel a killed agent left
      other0: { master: 'wtbr1' }, // someone else's port: unplugged with the bridge, not deleted
    });
    const kernel = (bridge: string) => new KernelNetwork({ bridge, mtu: 1376, ip: host.ip, netnsConfigDir: config });
    const report = await resetDataDir({ dataDir: dir, kernel });
    assert.equal(report.failed, []);
    const text = report.removed.join('\n');
    assert.match(text, /veth wtbr1v012345678 of namespace web \(10\.32\.0\.2\/12\)/);
    assert.match(text, /veth wtbr1v0fedcba98 \(on wtbr1, not in endpoints\.json\)/);
    assert.match(text, /resolver file .*web\/resolv\.conf/);
    assert.match(text, /fast datapath VXLAN tunnel wtbr1x012345678 \(on wtbr1\)/);
    assert.not.ok(host.calls.includes('link del other0'));
    assert.match(text, /bridge wtbr1 with 10\.32\.0\.1\/12 \(the exposed address\) and its routes and its TAP/);
    assert.ok(host.calls.includes('link del wtbr1-tap') && host.calls.includes('link del wtbr1'));
    assert.equal(readdirSync(dir), ['peer-name']);
    assert.match(report.kept.join(), /peer-name/);
    assert.not.ok(existsSync(join(config, 'web', 'resolv.conf')));

    const again = await resetDataDir({ dataDir: dir, kernel });
    assert.equal(again.removed, [], 'nothing left to remove');
  });
});

test('reset without a record removes --bridge (else weave); a corrupt endpoints.json is removed and reported, not a stop', async () => {
  await inDataDir(async (dir) => {
    await writeFile(join(dir, 'endpoints.json'), 'garbage');
    const host = fakeHost({ wtold: { addresses: ['10.44.0.1/12'] } });
    const report = await resetDataDir({ dataDir: dir, bridge: 'wtold', kernel: (bridge) => new KernelNetwork({ bridge, mtu: 1376, ip: host.ip }) });
    assert.match(report.failed.join(), /endpoints\.json.*corrupt/);
    assert.match(report.removed.join('\n'), /bridge wtold with 10\.44\.0\.1\/12/);
    assert.match(report.removed.join('\n'), /endpoints\.json/);
    const none = fakeHost({});
    const calls = none.calls;
    await resetDataDir({ dataDir: dir, kernel: (bridge) => new KernelNetwork({ bridge, mtu: 1376, ip: none.ip }) });
    assert.ok(calls.includes('link show dev weave'), 'the default bridge is looked for');
    assert.not.ok(calls.some((c) => c.startsWith('link del')), 'nothing that is not there is deleted');
  });
});

test('offline detach journals the detach (the next start releases the address), then removes the veth and resolver file', async () => {
  await inDataDir(async (dir, config) => {
    const registry = new EndpointRegistry(join(dir, 'endpoints.json'));
    await registry.save({ bridge: 'wtbr1', endpoints: [WEB], pending: [] });
    const host = fakeHost({ [WEB.hostIfname]: { master: 'wtbr1', veth: true } });
    const kernel = (bridge: string) => new KernelNetwork({ bridge, mtu: 1376, ip: host.ip, netnsConfigDir: config });
    try {
      await detachOffline('db', { dataDir: dir, kernel });
      assert.unreachable();
    } catch (error) {
      assert.match((error as Error).message, /no agent runs, and namespace "db" is not attached according to .*endpoints\.json \(attached: web\)/);
    }
    const done = await detachOffline('web', { dataDir: dir, kernel });
    assert.equal(done, { netns: 'web', address: '10.32.0.2/12', hostIfname: WEB.hostIfname, resolver: 'none' });
    assert.ok(host.calls.includes(`link del ${WEB.hostIfname}`));
    const { state } = await registry.load();
    assert.equal(state.endpoints, []);
    assert.equal(state.pending, [{ op: 'detach', netns: 'web', name: 'web', ifname: 'ethwe', hostIfname: WEB.hostIfname, address: '10.32.0.2/12' }]);
    assert.match(await readFile(join(dir, 'endpoints.json'), 'latin1'), /"bridge": "wtbr1"/);
  });
});

test.run();
