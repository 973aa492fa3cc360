// DNS forwarding with real agents in namespaces: an IPv6 nameserver on an IPv4-only host, and two agents whose upstream is each other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetnsLab, canUseNetns, hasCommand, waitForLine } from '../helpers/netns.js';
import type { OverlayStatus } from '../../src/status/overlay-status.js';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
const support = canUseNetns();
const skipReason = !support.ok ? support.reason : !hasCommand('dig') ? '`dig` not found; run scripts/install-test-deps.sh' : '';
if (skipReason !== '') console.log(`DNS forwarding namespace tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

/** The resolver file `ip netns exec` shows the namespace's processes as /etc/resolv.conf; removed in teardown. */
function resolvConf(lab: NetnsLab, host: string, text: string): void {
  const dir = join('/etc/netns', lab.ns(host));
  mkdirSync(dir, { recursive: true });
  lab.defer(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'resolv.conf'), text);
}

async function startAgent(lab: NetnsLab, host: string, dataDir: string, args: string[]): Promise<ChildProcess> {
  const agent = lab.spawn(host, [process.execPath, cliPath, 'launch', '--no-ipam', '--data-dir', dataDir, '--log-level', 'warn', ...args]);
  await waitForLine(agent, 'weave-ts ready', 20_000);
  return agent;
}

async function status(lab: NetnsLab, host: string, dataDir: string): Promise<OverlayStatus> {
  const r = await lab.execOk(host, [process.execPath, cliPath, 'status', '--json', '--data-dir', dataDir]);
  return JSON.parse(r.stdout) as OverlayStatus;
}

async function metrics(lab: NetnsLab, host: string, dataDir: string): Promise<string> {
  return (await lab.execOk(host, [process.execPath, cliPath, 'metrics', '--data-dir', dataDir])).stdout;
}

/** dig's status line (SERVFAIL, NOERROR…), or 'timeout' when no answer came. */
async function digStatus(lab: NetnsLab, host: string, server: string, name: string): Promise<string> {
  const r = await lab.exec(host, ['dig', `@${server}`, '+tries=1', '+time=3', name]);
  return /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? 'timeout';
}

function forwardingEvent(text: string, event: string): number {
  return Number(new RegExp(`^weave_dns_forwarding_events_total\\{event="${event}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
}

nsTest('an IPv4-only host whose resolv.conf names an IPv6 nameserver: forwarded names get SERVFAIL, counted, and the agent lives', async () => {
  const lab = new NetnsLab('dq');
  const root = mkdtempSync(join(tmpdir(), 'wtd-dns-'));
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    await lab.addHost('h');
    await lab.sysctl('h', 'net.ipv6.conf.all.disable_ipv6', 1);
    await lab.sysctl('h', 'net.ipv6.conf.default.disable_ipv6', 1);
    resolvConf(lab, 'h', 'nameserver 2001:db8::53\n');
    const passwordFile = join(root, 'password');
    writeFileSync(passwordFile, 'a long network password for the DNS test\n', { mode: 0o600 });
    const dataDir = join(root, 'h');
    const agent = await startAgent(lab, 'h', dataDir, ['--password-file', passwordFile, '--listen', '127.0.0.1:6783', '--dns-listen', '127.0.0.1:53']);
    for (let i = 0; i < 3; i++) assert.is(await digStatus(lab, 'h', '127.0.0.1', `n${i}.example.com`), 'SERVFAIL');
    assert.is(agent.exitCode, null, 'the agent is still running');
    const dns = (await status(lab, 'h', dataDir)).dns?.servers[0];
    assert.is(dns?.upstreamErrors, 3);
    assert.is(dns?.servfail, 3);
    assert.is(forwardingEvent(await metrics(lab, 'h', dataDir), 'upstream-error'), 3);
    const human = (await lab.execOk('h', [process.execPath, cliPath, 'status', '--data-dir', dataDir])).stdout;
    assert.match(human, /Forwarding: 0 relayed, 3 upstream errors, 0 timeouts, 0 loops stopped/);
  } finally {
    await lab.cleanup();
  }
});

nsTest('two agents whose upstream is each other: one query costs one forward, 100 queries/s stay 100 forwards', async () => {
  const lab = new NetnsLab('dq');
  const root = mkdtempSync(join(tmpdir(), 'wtd-dns-'));
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    await lab.addHost('a');
    await lab.addHost('b');
    await lab.link('a', 'b', { subnet: '10.250.41.0/24' });
    resolvConf(lab, 'a', 'nameserver 10.250.41.2\n');
    resolvConf(lab, 'b', 'nameserver 10.250.41.1\n');
    const passwordFile = join(root, 'password');
    writeFileSync(passwordFile, 'a long network password for the DNS test\n', { mode: 0o600 });
    const [dirA, dirB] = [join(root, 'a'), join(root, 'b')];
    await startAgent(lab, 'a', dirA, ['--password-file', passwordFile, '--listen', '10.250.41.1:6783', '--dns-listen', '10.250.41.1:53']);
    await startAgent(lab, 'b', dirB, ['--password-file', passwordFile, '--listen', '10.250.41.2:6783', '--dns-listen', '10.250.41.2:53', '--peer', '10.250.41.1']);
    const queries = async (): Promise<number> => {
      const [sa, sb] = await Promise.all([status(lab, 'a', dirA), status(lab, 'b', dirB)]);
      return (sa.dns?.servers[0]?.queries ?? NaN) + (sb.dns?.servers[0]?.queries ?? NaN);
    };

    const started = Date.now();
    assert.is(await digStatus(lab, 'a', '10.250.41.1', 'example.com'), 'SERVFAIL');
    assert.ok(Date.now() - started < 1900, `answered in ${Date.now() - started} ms`);
    assert.is(await queries(), 2, 'the client query and one forward');

    // 100 queries in about a second, from dig's batch mode, alternating between the two agents.
    const batch = join(root, 'batch');
    writeFileSync(batch, Array.from({ length: 100 }, (_, i) => `@10.250.41.${(i % 2) + 1} +tries=1 +time=2 q${i}.example.org A`).join('\n'));
    const burst = Date.now();
    const out = await lab.exec('a', ['dig', '-f', batch], { timeoutMs: 60_000 });
    const seconds = (Date.now() - burst) / 1000;
    assert.is((out.stdout.match(/status: SERVFAIL/g) ?? []).length, 100, 'every query got SERVFAIL');
    assert.ok(seconds < 10, `took ${seconds} s`);
    assert.is(await queries(), 2 + 200, '100 client queries and 100 forwards, nothing bouncing');
    const [ma, mb] = await Promise.all([metrics(lab, 'a', dirA), metrics(lab, 'b', dirB)]);
    assert.is(forwardingEvent(ma, 'loop-refused') + forwardingEvent(mb, 'loop-refused'), 101);
  } finally {
    await lab.cleanup();
  }
});

test.run();
