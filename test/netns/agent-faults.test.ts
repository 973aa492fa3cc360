// The CLI agent under faults, as issue 10 found them: kill -9 during a burst of attaches, a full disk under the data dir.
// After every fault and restart, `ps`, the kernel (veths, addresses, bridge ports) and IPAM must agree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason, waitForLine } from '../helpers/netns.js';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
const skipReason = tapNamespaceSkipReason(['mount', 'umount']);
if (skipReason !== '') console.log(`agent fault tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

const CONTAINERS = 30;

interface EndpointView {
  name: string;
  netns: string;
  address: string;
  hostIfname: string;
}

interface StatusView {
  exposed?: string;
  ipam: { allocated: { id: string; addresses: string[] }[] };
}

/** One agent in a host namespace, with its data dir and bridge. */
class Agent {
  child: ChildProcess | undefined;
  constructor(
    readonly lab: NetnsLab,
    readonly dataDir: string,
    readonly bridge: string,
  ) {}

  args(): string[] {
    return [cliPath, 'launch', '--listen', '127.0.0.1:6783', '--ipalloc-range', '10.47.0.0/24', '--ipalloc-init', 'consensus=1', '--bridge', this.bridge, '--data-dir', this.dataDir, '--log-level', 'warn'];
  }

  async start(): Promise<void> {
    const child = this.lab.spawn('h', [process.execPath, ...this.args()]);
    this.child = child;
    await waitForLine(child, 'weave-ts ready', 30_000);
  }

  /** Launches expecting a failure; returns the exit code and stderr. */
  async launchFails(): Promise<{ code: number; stderr: string }> {
    const r = await this.lab.exec('h', [process.execPath, ...this.args()], { timeoutMs: 30_000 });
    return { code: r.code, stderr: r.stderr + r.stdout };
  }

  kill9(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.pid === undefined || child.exitCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGKILL');
    return exited;
  }

  async cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.lab.exec('h', [process.execPath, cliPath, ...args, '--data-dir', this.dataDir], { timeoutMs: 60_000 });
  }

  async json<T>(args: string[]): Promise<T> {
    const r = await this.cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`weave-ts ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }
}

function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8' }, (error, stdout, stderr) => (error ? reject(new Error(`ip ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
  });
}

/** The kernel's view: the address on `ethwe` in each container, the veths in the host namespace and their master, the bridge's addresses. */
async function kernelView(lab: NetnsLab, agent: Agent, containers: string[]) {
  const inside = new Map<string, string[]>();
  for (const c of containers) {
    const text = await ip(['-n', lab.ns(c), '-j', 'addr', 'show']);
    const links = JSON.parse(text) as { ifname: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    const ethwe = links.find((l) => l.ifname === 'ethwe');
    if (ethwe) inside.set(lab.ns(c), (ethwe.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`));
  }
  const veths = (JSON.parse(await ip(['-n', lab.ns('h'), '-j', 'link', 'show', 'type', 'veth'])) as { ifname: string; master?: string }[]).map((l) => ({ name: l.ifname, master: l.master }));
  let bridgeAddresses: string[] = [];
  try {
    const bridge = JSON.parse(await ip(['-n', lab.ns('h'), '-j', 'addr', 'show', 'dev', agent.bridge])) as { addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    bridgeAddresses = (bridge[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  } catch {
    // no bridge yet
  }
  return { inside, veths, bridgeAddresses };
}

/** ps, the kernel and IPAM agree: every endpoint is complete in the kernel, nothing else is there, every allocation has its endpoint. */
async function checkAgreement(lab: NetnsLab, agent: Agent, containers: string[], when: string): Promise<EndpointView[]> {
  const ps = await agent.json<EndpointView[]>(['ps']);
  const status = await agent.json<StatusView>(['status']);
  const kernel = await kernelView(lab, agent, containers);
  const where = `(${when})`;
  const byNetns = new Map(ps.map((e) => [e.netns, e]));
  assert.is(byNetns.size, ps.length, `ps lists each namespace once ${where}`);
  for (const e of ps) {
    assert.equal(kernel.inside.get(e.netns), [e.address], `${e.netns} in ps with ${e.address}: the kernel has ${JSON.stringify(kernel.inside.get(e.netns))} ${where}`);
    const veth = kernel.veths.find((v) => v.name === e.hostIfname);
    assert.ok(veth, `${e.netns}'s host end ${e.hostIfname} exists ${where}`);
    assert.is(veth?.master, agent.bridge, `${e.hostIfname} is on the bridge ${where}`);
  }
  for (const [netns, addresses] of kernel.inside) assert.ok(byNetns.has(netns), `${netns} has ethwe ${addresses.join(',')} but is not in ps ${where}`);
  const known = new Set(ps.map((e) => e.hostIfname));
  const orphans = kernel.veths.filter((v) => !known.has(v.name));
  assert.equal(orphans, [], `no veth outside ps ${where}`);
  assert.equal(kernel.bridgeAddresses, status.exposed ? [status.exposed] : [], `the bridge holds exactly the exposed address ${where}`);
  const expected = new Map<string, string[]>(ps.map((e) => [`netns:${e.netns}`, [e.address.split('/')[0] as string]]));
  if (status.exposed) expected.set('weave:expose', [status.exposed.split('/')[0] as string]);
  const allocated = new Map(status.ipam.allocated.map((a) => [a.id, a.addresses]));
  assert.equal([...allocated].sort(), [...expected].sort(), `every allocation belongs to a live endpoint and every endpoint has its allocation ${where}`);
  const addresses = [...expected.values()].flat();
  assert.is(new Set(addresses).size, addresses.length, `no address is held twice ${where}: ${addresses.join(' ')}`);
  return ps;
}

/** A node script run in the host namespace: fires every request at once, like 30 parallel `weave-ts attach`. */
const BURST = `
import { readFileSync } from 'node:fs';
const [api, tokenPath, ...requests] = process.argv.slice(2);
const token = readFileSync(tokenPath, 'utf8').trim();
console.log('fired');
await Promise.all(requests.map(async (r) => {
  const [route, netns, name] = r.split(':');
  try {
    const res = await fetch('http://' + api + '/' + route, { method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify(route === 'attach' ? { netns, name } : { netns }) });
    console.log(route, netns, res.status);
  } catch (error) {
    console.log(route, netns, 'no answer');
  }
}));
`;

nsTest('kill -9 during 30 parallel attaches and detaches, 4 rounds: after each restart ps, kernel and IPAM agree, and everything can attach again', async () => {
  const lab = new NetnsLab('k', { namePrefix: 'wtj' });
  const root = mkdtempSync(join(tmpdir(), 'wtj-crash-'));
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  const burstPath = join(root, 'burst.mjs');
  writeFileSync(burstPath, BURST);
  try {
    await lab.addHost('h');
    const containers = Array.from({ length: CONTAINERS }, (_, i) => `c${i}`);
    for (const c of containers) {
      await lab.addHost(c);
      lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    }
    const agent = new Agent(lab, join(root, 'data'), `${lab.prefix}b`);
    await agent.start();
    let attached = new Set<string>();
    const delays = [800, 650, 950, 800];
    for (const [round, delay] of delays.entries()) {
      // Attach what is detached and detach what is attached, all at once; kill the agent in the middle.
      const requests = containers.map((c) => (attached.has(lab.ns(c)) ? `detach:${lab.ns(c)}:` : `attach:${lab.ns(c)}:${c}`));
      const burst = lab.spawn('h', [process.execPath, burstPath, '127.0.0.1:6784', join(agent.dataDir, 'api-token'), ...requests]);
      let answers = '';
      burst.stdout?.on('data', (chunk: Buffer) => (answers += chunk.toString()));
      await waitForLine(burst, 'fired', 10_000);
      await new Promise((resolve) => setTimeout(resolve, delay));
      await agent.kill9();
      await new Promise<void>((resolve) => (burst.exitCode !== null ? resolve() : burst.once('exit', () => resolve())));
      const done = answers.split('\n').filter((l) => / 200$/.test(l)).length;
      console.log(`round ${round + 1}: killed after ${delay} ms with ${done} of ${CONTAINERS} requests answered`);
      await agent.start();
      const ps = await checkAgreement(lab, agent, containers, `round ${round + 1}, after restart`);
      attached = new Set(ps.map((e) => e.netns));
    }
    // Everything not attached attaches now, with unique addresses; a detached namespace can come back.
    for (const c of containers) {
      if (attached.has(lab.ns(c))) continue;
      const r = await agent.cli(['attach', '--netns', lab.ns(c), '--name', c]);
      assert.is(r.code, 0, `re-attach of ${c} after the crashes: ${r.stderr}`);
    }
    const all = await checkAgreement(lab, agent, containers, 'all attached');
    assert.is(all.length, CONTAINERS);
    const first = lab.ns('c0');
    assert.is((await agent.cli(['detach', '--netns', first])).code, 0);
    assert.is((await agent.cli(['attach', '--netns', first, '--name', 'c0'])).code, 0);
    await checkAgreement(lab, agent, containers, 'detach and attach again');
    await agent.kill9();
  } finally {
    await lab.cleanup();
  }
});

/** Fills a file system until it refuses more (ENOSPC). */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1024, 0x55);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

nsTest('disk full under the data dir: attach fails cleanly with the path, nothing is half-applied, launch names the path, restart keeps every invariant', async () => {
  const lab = new NetnsLab('d', { namePrefix: 'wtj' });
  const root = mkdtempSync(join(tmpdir(), 'wtj-full-'));
  const dataDir = join(root, 'data');
  mkdirSync(dataDir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dataDir]);
  // Deferred actions run after the agent is killed: unmount, then remove the directory.
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  lab.defer(() => execFileSync('umount', [dataDir]));
  try {
    await lab.addHost('h');
    const containers = ['c0', 'c1', 'c2'];
    for (const c of containers) {
      await lab.addHost(c);
      lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    }
    const agent = new Agent(lab, dataDir, `${lab.prefix}b`);
    await agent.start();
    const first = await agent.cli(['attach', '--netns', lab.ns('c0'), '--name', 'c0']);
    assert.is(first.code, 0, first.stderr);
    const before = await checkAgreement(lab, agent, containers, 'before the disk fills');

    fill(join(dataDir, 'filler'));
    const refused = await agent.cli(['attach', '--netns', lab.ns('c1'), '--name', 'c1']);
    console.log(`attach on a full disk: exit ${refused.code}: ${refused.stderr.trim()}`);
    assert.is(refused.code, 1, `attach on a full disk fails: ${refused.stdout}`);
    assert.match(refused.stderr, new RegExp(`${dataDir}/`), 'the error names the file it could not write');
    assert.match(refused.stderr, /ENOSPC|no space/i);
    const after = await checkAgreement(lab, agent, containers, 'after the refused attach');
    assert.equal(after, before, 'the refused attach left nothing behind');
    const detach = await agent.cli(['detach', '--netns', lab.ns('c0')]);
    assert.is(detach.code, 1, 'a detach that cannot be recorded is refused');
    assert.match(detach.stderr, new RegExp(`${dataDir}/`));
    assert.equal(await checkAgreement(lab, agent, containers, 'after the refused detach'), before);

    await agent.kill9();
    const launch = await agent.launchFails();
    assert.is(launch.code, 1, `launch on a full disk fails: ${launch.stderr}`);
    assert.match(launch.stderr, new RegExp(`${dataDir}/`), `launch names the path: ${launch.stderr}`);

    rmSync(join(dataDir, 'filler'));
    await agent.start();
    const resumed = await checkAgreement(lab, agent, containers, 'after the restart with space');
    assert.equal(resumed.map((e) => `${e.netns}=${e.address}`), before.map((e) => `${e.netns}=${e.address}`));
    const next = await agent.json<EndpointView>(['attach', '--netns', lab.ns('c2'), '--name', 'c2']);
    assert.is.not(next.address, before[0]?.address, 'the kept address is not handed out again');
    await checkAgreement(lab, agent, containers, 'after attaching again');
    await agent.kill9();
  } finally {
    await lab.cleanup();
  }
});

test.run();
