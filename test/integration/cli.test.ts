// The CLI without root: two agents on loopback, the API with its token, commands with tables and JSON, bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;

interface Agent {
  child: ChildProcess;
  dataDir: string;
  api: string;
  listen: string;
  peer: string;
  /** What the agent wrote to stderr so far (its JSON log lines). */
  log: () => string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface LaunchOptions {
  password?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  dns?: boolean;
}

async function launch(root: string, name: string, extra: string[] = [], options: LaunchOptions = {}): Promise<Agent> {
  const dataDir = join(root, name);
  const args = ['launch', '--nickname', name, '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', options.logLevel ?? 'error'];
  const child = spawn(process.execPath, [cliPath, ...args, ...(options.dns ? [] : ['--no-dns']), ...extra], {
    env: { ...process.env, WEAVE_PASSWORD: options.password ?? 'cli test password' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const agentLog = { text: '' };
  child.stderr.on('data', (chunk: Buffer) => (agentLog.text += chunk.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no ready line: ${err}`)), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ready = out.split('\n').find((l) => l.startsWith('weave-ts ready'));
      if (ready) {
        clearTimeout(timer);
        resolve(ready);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`agent exited ${code}: ${err}`)));
  });
  const match = /peer (\S+) \(.*\), listening on (\S+), API on (\S+),/.exec(line);
  assert.ok(match, line);
  return { child, dataDir, peer: match?.[1] as string, listen: match?.[2] as string, api: match?.[3] as string, log: () => agentLog.text };
}

async function stop(agent: Agent): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => agent.child.once('exit', (code) => resolve(code)));
  agent.child.kill('SIGTERM');
  return exited;
}

const client = (agent: Agent, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => run([...args, '--api', agent.api, '--data-dir', agent.dataDir]);

test('two agents: connect, status and peers as tables and JSON, metrics, the token guards the API, clean stop', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-'));
  const agents: Agent[] = [];
  try {
    const a = await launch(root, 'one', ['--ipalloc-init', 'consensus=2']);
    agents.push(a);
    const b = await launch(root, 'two', ['--ipalloc-init', 'consensus=2']);
    agents.push(b);
    assert.is(statSync(join(a.dataDir, 'api-token')).mode & 0o777, 0o600, 'the token file is private');

    assert.is((await client(b, ['connect', a.listen])).code, 0);
    const deadline = Date.now() + 15_000;
    let peers: { nickname: string; reachable: boolean }[] = [];
    while (Date.now() < deadline) {
      peers = JSON.parse((await client(a, ['peers', '--json'])).stdout) as typeof peers;
      if (peers.length === 2 && peers.every((p) => p.reachable)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(peers.map((p) => p.nickname).sort(), ['one', 'two']);
    const table = (await client(a, ['peers'])).stdout;
    assert.match(table, /^NAME\s+NICKNAME\s+SELF\s+REACHABLE/);
    assert.match(table, new RegExp(`${b.peer}\\s+two\\s+yes`));

    const status = await client(a, ['status']);
    assert.is(status.code, 0, status.stderr);
    assert.match(status.stdout, /Encryption: enabled/);
    assert.match(status.stdout, /Service: ipam/);
    const json = JSON.parse((await client(a, ['status', '--json'])).stdout) as { router: { name: string } };
    assert.is(json.router.name, a.peer);
    assert.match((await client(a, ['metrics'])).stdout, /^weave_peers 2$/m);
    assert.match((await client(a, ['ps'])).stdout, /^NAME\s+KIND\s+NETNS/);

    // connect/forget manage targets.
    assert.is((await client(a, ['connect', '127.0.0.1:9'])).code, 0);
    const targets = (): Promise<string[]> => client(a, ['status', '--json']).then((r) => (JSON.parse(r.stdout) as { router: { targets: { address: string }[] } }).router.targets.map((t) => t.address));
    assert.ok((await targets()).includes('127.0.0.1:9'));
    assert.is((await client(a, ['forget', '127.0.0.1:9'])).code, 0);
    assert.not.ok((await targets()).includes('127.0.0.1:9'));

    // The token: wrong or missing is refused.
    const refused = await fetch(`http://${a.api}/status`, { headers: { authorization: 'Bearer nope' } });
    assert.is(refused.status, 401);
    assert.is((await fetch(`http://${a.api}/status`)).status, 401);
    const token = readFileSync(join(a.dataDir, 'api-token'), 'utf8').trim();
    const bad = await fetch(`http://${a.api}/attach`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{"netns":' });
    assert.is(bad.status, 400);
    assert.match(await bad.text(), /not JSON/);

    // Errors say what happened, with exit codes for scripts.
    const dnsOff = await client(a, ['dns-add', 'x', '10.32.0.9']);
    assert.is(dnsOff.code, 1);
    assert.match(dnsOff.stderr, /DNS is off/);
    const reachable = await client(a, ['rmpeer', 'two']);
    assert.is(reachable.code, 1);
    assert.match(reachable.stderr, /reachable/);
    const usage = await client(a, ['attach', '--name', 'x']);
    assert.is(usage.code, 2);
    assert.match(usage.stderr, /--netns is required/);
    const noAgent = await run(['status', '--api', '127.0.0.1:1', '--data-dir', a.dataDir]);
    assert.is(noAgent.code, 1);
    assert.match(noAgent.stderr, /no weave-ts agent answers at 127\.0\.0\.1:1/);
    const unknown = await run(['frobnicate']);
    assert.is(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const help = await run(['help']);
    assert.match(help.stdout, /Usage: weave-ts COMMAND/);

    assert.is(await stop(b), 0);
    assert.is(await stop(a), 0);
    agents.length = 0;
  } finally {
    for (const agent of agents) agent.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

test('a peer with another password shows in the warn log and in status; the API answers 413 and states its limits', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-'));
  const agents: Agent[] = [];
  try {
    // DNS on, so dns-add validation is reachable; warn level, so the refusal is logged.
    const a = await launch(root, 'one', [], { logLevel: 'warn', dns: true });
    agents.push(a);
    const b = await launch(root, 'other', [], { password: 'another password' });
    agents.push(b);
    assert.is((await client(b, ['connect', a.listen])).code, 0);

    interface Failure { source: string; code: string; reason: string; count: number }
    const deadline = Date.now() + 15_000;
    let recent: Failure[] = [];
    while (Date.now() < deadline) {
      recent = (JSON.parse((await client(a, ['status', '--json'])).stdout) as { handshakeFailures?: Failure[] }).handshakeFailures ?? [];
      if (recent.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.is(recent[0]?.source, '127.0.0.1', JSON.stringify(recent));
    assert.is(recent[0]?.code, 'bad-password');
    const status = await client(a, ['status']);
    assert.match(status.stdout, /^SOURCE\s+PEER\s+ERROR\s+COUNT\s+LAST\s+REASON$/m);
    assert.match(status.stdout, /^127\.0\.0\.1\s+-\s+bad-password\s+\d+\s+\d+s ago\s+.*network password differs/m);
    const warned = a.log().split('\n').filter((l) => l.includes('"level":40') && l.includes('bad-password'));
    assert.is(warned.length, 1, a.log());
    assert.match(warned[0] as string, /"source":"127\.0\.0\.1"/);

    const token = readFileSync(join(a.dataDir, 'api-token'), 'utf8').trim();
    const post = (path: string, body: string): Promise<Response> =>
      fetch(`http://${a.api}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });

    // One byte over 64 KiB: 413 with a JSON error that states the limit, not a reset connection.
    const big = `{"address":"${'x'.repeat(64 * 1024 - 13)}"}`;
    assert.is(Buffer.byteLength(big), 64 * 1024 + 1);
    const tooLarge = await post('/connect', big);
    assert.is(tooLarge.status, 413);
    const tooLargeBody = (await tooLarge.json()) as { error: { code: string; message: string } };
    assert.is(tooLargeBody.error.code, 'too-large');
    assert.match(tooLargeBody.error.message, /65536 bytes/);
    // The agent still answers afterwards.
    assert.is((await fetch(`http://${a.api}/status`, { headers: { authorization: `Bearer ${token}` } })).status, 200);

    // A name over the field limit, and one over the DNS name limit: each message states the limit.
    const longField = await post('/attach', JSON.stringify({ netns: 'x', name: 'a'.repeat(1025) }));
    assert.is(longField.status, 400);
    assert.match(await longField.text(), /1025 characters.*at most 1024/);
    const longName = await client(a, ['attach', '--netns', 'ns', '--name', `${'a.'.repeat(150)}x`]);
    assert.is(longName.code, 1);
    assert.match(longName.stderr, /is 301 characters long, and a DNS name has at most 253/);
    const longLabel = await client(a, ['attach', '--netns', 'ns', '--name', 'b'.repeat(64)]);
    assert.match(longLabel.stderr, /is 64 characters long, and a label has at most 63/);
    const longNetns = await client(a, ['attach', '--netns', 'n'.repeat(65), '--name', 'web']);
    assert.is(longNetns.code, 1);
    assert.match(longNetns.stderr, /is 65 characters long, and at most 64 are accepted/);
    // A record name DNS refuses is bad input (400) with the limit, not an internal error.
    const badRecord = await post('/dns/add', JSON.stringify({ name: `${'a.'.repeat(150)}x`, ip: '10.32.0.9' }));
    assert.is(badRecord.status, 400);
    assert.match(await badRecord.text(), /at most 253 characters/);
    // Container attachments (the CNI plugin's): a bad container id or namespace path is 400 before anything
    // is touched; detach takes exactly one of netns and container; an unknown container is `detached: false`.
    const badId = await post('/attach', JSON.stringify({ netns: '/proc/1/ns/net', name: 'web', container: '-bad' }));
    assert.is(badId.status, 400);
    const badIdText = await badId.text();
    assert.match(badIdText, /container id \\"-bad\\" is not valid/, badIdText);
    const badPath = await post('/attach', JSON.stringify({ netns: '/proc/../etc/x', name: 'web', container: 'c1' }));
    assert.is(badPath.status, 400);
    assert.match(await badPath.text(), /without \\"\.\.\\"/);
    const both = await post('/detach', JSON.stringify({ netns: 'x', container: 'c1' }));
    assert.is(both.status, 400);
    assert.match(await both.text(), /exactly one of \\"netns\\" and \\"container\\"/);
    const unknown = await post('/detach', JSON.stringify({ container: 'c1' }));
    assert.is(unknown.status, 200);
    assert.equal(await unknown.json(), { ok: true, detached: false });
    const check = await fetch(`http://${a.api}/endpoints/check?container=c1`, { headers: { authorization: `Bearer ${token}` } });
    assert.is(check.status, 404);
  } finally {
    for (const agent of agents) agent.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

test('a second agent started with a running peer\'s --name is refused by the mesh, says so, and the owner keeps its links', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-'));
  const agents: Agent[] = [];
  try {
    const owner = await launch(root, 'owner');
    agents.push(owner);
    const other = await launch(root, 'other', ['--peer', owner.listen]);
    agents.push(other);
    const linked = async (agent: Agent): Promise<number> =>
      (JSON.parse((await client(agent, ['status', '--json'])).stdout) as { router: { links: unknown[] } }).router.links.length;
    for (let i = 0; i < 100 && (await linked(other)) < 1; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    // Same password, the owner's name, dialling the other peer only.
    const impostor = await launch(root, 'impostor', ['--name', owner.peer, '--peer', other.listen], { logLevel: 'error' });
    agents.push(impostor);
    let report = '';
    for (let i = 0; i < 100 && !/in use by a live peer/.test(report); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      report = (await client(impostor, ['status'])).stdout;
    }
    assert.match(report, /WARNING: peer name \S+ is in use by a live peer .* Restart it with a unique name/);
    assert.match(impostor.log(), /"level":50,.*in use by a live peer/, 'the refused agent logs it as an error');
    const impostorStatus = JSON.parse((await client(impostor, ['status', '--json'])).stdout) as { router: { refused?: string; links: unknown[] } };
    assert.ok(impostorStatus.router.refused, 'status --json says it is refused');
    assert.equal(impostorStatus.router.links, []);
    const ownerReport = (await client(owner, ['status'])).stdout;
    assert.match(ownerReport, /WARNING: another peer started with our name/);
    assert.is(await linked(owner), 1, 'the owner keeps its link');
    const otherStatus = JSON.parse((await client(other, ['status', '--json'])).stdout) as { router: { links: { peer: string; nickname: string }[] } };
    assert.equal(otherStatus.router.links.map((l) => l.nickname), ['owner'], 'the other peer still links to the real owner');
  } finally {
    for (const agent of agents) await stop(agent);
    rmSync(root, { recursive: true, force: true });
  }
});

test('launch refuses bad options with exit code 2 and a message', async () => {
  const cases: [string[], RegExp][] = [
    [['launch', '--ipalloc-range', '10.32.0.1/12'], /10\.32\.0\.0\/12/],
    [['launch', '--api', '0.0.0.0:6784'], /not a loopback address/],
    [['launch', '--mtu', 'big'], /--mtu big/],
    [['launch', '--bogus'], /unknown option --bogus/],
  ];
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-'));
  try {
    for (const [args, message] of cases) {
      const r = await run([...args, '--listen', '127.0.0.1:0', '--data-dir', join(root, 'd')]);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
