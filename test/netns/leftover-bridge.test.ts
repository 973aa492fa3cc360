// What an earlier agent leaves behind: its bridge with the exposed address (a second route into the range)
// is reported by the next agent; `detach` works with the agent down; `reset` removes it all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetnsLab, tapNamespaceSkipReason, waitForLine } from '../helpers/netns.js';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
const skipReason = tapNamespaceSkipReason([]);
if (skipReason !== '') console.log(`leftover bridge tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

nsTest('a leftover bridge is warned about by the next agent; detach without an agent; reset removes bridge, address and state', async () => {
  const lab = new NetnsLab('r', { namePrefix: 'wtc' });
  const root = mkdtempSync(join(tmpdir(), 'wtc-leftover-'));
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    await lab.addHost('h');
    const container = await lab.addHost('c');
    const oldBridge = `${lab.prefix}o`;
    const newBridge = `${lab.prefix}n`;
    const dirA = join(root, 'a');
    const dirB = join(root, 'b');
    const logs = new Map<ChildProcess, string[]>();
    const start = async (dataDir: string, bridge: string): Promise<ChildProcess> => {
      const agent = lab.spawn('h', [process.execPath, cliPath, 'launch', '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--data-dir', dataDir, '--bridge', bridge, '--log-level', 'warn'], { WEAVE_PASSWORD: 'leftover' });
      const log: string[] = [];
      logs.set(agent, log);
      agent.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
      await waitForLine(agent, 'weave-ts ready', 20_000);
      return agent;
    };
    const stop = async (agent: ChildProcess): Promise<void> => {
      const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
      agent.kill('SIGTERM');
      assert.is(await exited, 0);
    };
    const cli = (args: string[]) => lab.exec('h', [process.execPath, cliPath, ...args], { timeoutMs: 60_000 });
    const ok = async (args: string[]): Promise<string> => {
      const r = await cli(args);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    // Agent A exposes the host and attaches a namespace, then stops: its bridge stays with 10.32.x.x/12.
    let a = await start(dirA, oldBridge);
    const exposed = (await ok(['expose', '--data-dir', dirA])).trim();
    const attached = (await ok(['attach', '--netns', container, '--name', 'web', '--data-dir', dirA])).trim();
    await stop(a);
    assert.match((await lab.execOk('h', ['ip', '-4', 'route', 'show', 'dev', oldBridge])).stdout, /^10\.32\.0\.0\/12 /m);

    // Agent B on another bridge: the second route is a warning in status and in the log.
    const b = await start(dirB, newBridge);
    assert.match((logs.get(b) ?? []).join(''), /"level":40,.*a second route into the overlay/, 'the warning is logged at start');
    const status = JSON.parse(await ok(['status', '--json', '--data-dir', dirB])) as { warnings: string[] };
    const warning = status.warnings.find((w) => w.includes('a second route into the overlay'));
    assert.ok(warning, `warnings: ${JSON.stringify(status.warnings)}`);
    assert.match(warning as string, new RegExp(`10\\.32\\.0\\.0/12 goes through ${oldBridge}, ${exposed.replace(/\./g, '\\.')} on ${oldBridge}`));
    assert.match(warning as string, /weave-ts reset/);
    assert.match(await ok(['status', '--data-dir', dirB]), /a second route into the overlay/);
    await stop(b);

    // Detach with A down: the veth goes now, the address when A starts next.
    const detached = await ok(['detach', '--netns', container, '--data-dir', dirA]);
    assert.match(detached, new RegExp(`detached ${container} without an agent: removed veth \\S+ and its resolver file; ${attached.replace(/\./g, '\\.')} is released when the agent starts next`));
    assert.is((await lab.exec('c', ['ip', 'link', 'show', 'ethwe'])).code, 1, 'ethwe is gone from the container');
    a = await start(dirA, oldBridge);
    assert.equal(JSON.parse(await ok(['ps', '--json', '--data-dir', dirA])), []);
    // reset refuses while A runs, then --force stops it and removes everything.
    const refused = await cli(['reset', '--data-dir', dirA]);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /^reset: a weave-ts agent is running with this data dir/);
    const exitedA = new Promise<number | null>((resolve) => a.once('exit', (code) => resolve(code)));
    const reset = await ok(['reset', '--force', '--data-dir', dirA]);
    assert.is(await exitedA, 0);
    assert.match(reset, /stopped the agent/);
    assert.match(reset, new RegExp(`removed bridge ${oldBridge} with ${exposed.replace(/\./g, '\\.')} \\(the exposed address\\) and its routes and its TAP`));
    assert.match(reset, /removed .*ipam\.db/);
    assert.is((await lab.exec('h', ['ip', 'link', 'show', oldBridge])).code, 1, 'the old bridge is gone');
    assert.is((await lab.execOk('h', ['ip', '-4', 'route', 'show', '10.32.0.0/12'])).stdout.trim(), '');
    assert.equal(readdirSync(dirA), ['peer-name']);
    assert.not.ok(existsSync(`/etc/netns/${container}/resolv.conf`));

    // B starts clean now.
    const b2 = await start(dirB, newBridge);
    const after = JSON.parse(await ok(['status', '--json', '--data-dir', dirB])) as { warnings: string[] };
    assert.not.ok(after.warnings.some((w) => w.includes('second route')), JSON.stringify(after.warnings));
    await stop(b2);
    await ok(['reset', '--data-dir', dirB]);
  } finally {
    await lab.cleanup();
  }
});

test.run();
