// The CLI as users meet it, without root: per-command help, one message prefix, exit codes, nothing written
// before validation, hide, reset and detach against a running agent and against a stopped one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
/** A bridge name no host has: reset in the root namespace must not find (let alone touch) anything. */
const NO_BRIDGE = `wtc${process.pid.toString(36)}x`.slice(0, 11);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { env: { ...process.env, WEAVE_TS_API: '', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Agent {
  child: ChildProcess;
  dataDir: string;
  api: string;
  peer: string;
  exited: Promise<number | null>;
}

async function launch(dataDir: string, extra: string[] = []): Promise<Agent> {
  const args = ['launch', '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'error', '--bridge', NO_BRIDGE, ...extra];
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, WEAVE_PASSWORD: 'cli usage test' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no ready line: ${err}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ready = out.split('\n').find((l) => l.startsWith('weave-ts ready'));
      if (ready) {
        clearTimeout(timer);
        resolve(ready);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    void exited.then((code) => reject(new Error(`agent exited ${code}: ${err}`)));
  });
  const match = /peer (\S+) \(.*\), listening on (\S+), API on (\S+),/.exec(line);
  assert.ok(match, line);
  return { child, dataDir, peer: match?.[1] as string, api: match?.[3] as string, exited };
}

async function stop(agent: Agent): Promise<number | null> {
  if (agent.child.exitCode === null) agent.child.kill('SIGTERM');
  return agent.exited;
}

const COMMANDS = ['launch', 'status', 'peers', 'connect', 'forget', 'attach', 'detach', 'expose', 'hide', 'ps', 'dns-add', 'dns-remove', 'rmpeer', 'metrics', 'reset', 'version'];

test('every command takes --help and -h (and help COMMAND) and prints its own usage with options and defaults', async () => {
  for (const command of COMMANDS) {
    const long = await run([command, '--help']);
    assert.is(long.code, 0, `${command} --help: ${long.stderr}`);
    assert.match(long.stdout, new RegExp(`^Usage: weave-ts ${command}\\b`), `${command} --help prints its own usage:\n${long.stdout}`);
    assert.is(long.stderr, '');
    const short = await run([command, '-h']);
    assert.is(short.code, 0, `${command} -h`);
    assert.is(short.stdout, long.stdout, `${command} -h is --help`);
    const viaHelp = await run(['help', command]);
    assert.is(viaHelp.code, 0);
    assert.is(viaHelp.stdout, long.stdout, `help ${command} is ${command} --help`);
  }
  const launchHelp = (await run(['launch', '--help'])).stdout;
  assert.match(launchHelp, /--listen HOST:PORT\s+.*\(default 0\.0\.0\.0:6783\)/);
  assert.match(launchHelp, /--bridge NAME\s+.*\(default weave\)/);
  assert.match(launchHelp, /--mtu N\s+.*\(default 1376\)/);
  assert.match(launchHelp, /--peer HOST\[:PORT\]\s+.*repeat/);
  assert.match(launchHelp, /--data-dir DIR\s+.*\(default \//);
  assert.match(launchHelp, /WEAVE_PASSWORD/);
  const attachHelp = (await run(['attach', '--help'])).stdout;
  assert.match(attachHelp, /--netns NS\s+.*\(required\)/);
  assert.match(attachHelp, /--api HOST:PORT\s+.*\(default 127\.0\.0\.1:6784\)/);
  assert.match((await run(['reset', '--help'])).stdout, /--force\s+/);
  // --help wins wherever it stands, even after other (incomplete) arguments.
  const late = await run(['attach', '--name', 'x', '--help']);
  assert.is(late.code, 0);
  assert.match(late.stdout, /^Usage: weave-ts attach/);
  const unknown = await run(['help', 'frobnicate']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /^weave-ts: unknown command "frobnicate"/);
});

test('messages carry one prefix: "attach: --netns is required", not "weave-ts attach: attach: …"', async () => {
  const missing = await run(['attach', '--name', 'x', '--api', '127.0.0.1:1']);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^attach: --netns is required/);
  assert.not.match(missing.stderr, /attach: attach:|weave-ts attach:/);
  const unknownOption = await run(['launch', '--bogus']);
  assert.is(unknownOption.code, 2);
  assert.match(unknownOption.stderr, /^launch: unknown option --bogus \(see weave-ts launch --help\)/);
  assert.not.match(unknownOption.stderr, /launch: launch:/);
  const positional = await run(['dns-add', 'x']);
  assert.match(positional.stderr, /^dns-add: missing IP/);
});

test('launch validates every option before anything is written: exit 2 and an untouched data dir', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-usage-'));
  try {
    const dataDir = join(root, 'data');
    const cases: [string[], RegExp][] = [
      [['--listen', 'nope'], /^launch: listen address "nope" is not valid: "nope" is not an IP address/],
      [['--peer', '::::'], /^launch: peers\[0\]: peer address "::::" is not valid/],
      [['--ipalloc-range', '10.32.0.1/12'], /10\.32\.0\.0\/12/],
      [['--api', '0.0.0.0:6784'], /not a loopback address/],
      [['--api', 'nope:1'], /"nope" is not an IP address/],
      [['--bridge', 'much-too-long-a-name'], /bridge name/],
      [['--dns-listen', 'nope:53'], /"nope" is not an IP address/],
    ];
    for (const [args, message] of cases) {
      const r = await run(['launch', ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...args, '--data-dir', dataDir]);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.not.ok(existsSync(dataDir), `${args.join(' ')} wrote ${existsSync(dataDir) ? readdirSync(dataDir).join(', ') : ''} before refusing`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a listen or API address in use exits 1 (a failure, not a usage error)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-usage-'));
  const busy: Server = createServer();
  try {
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
    const port = (busy.address() as { port: number }).port;
    const listen = await run(['launch', '--listen', `127.0.0.1:${port}`, '--api', '127.0.0.1:0', '--data-dir', join(root, 'a'), '--no-dns']);
    assert.is(listen.code, 1, listen.stderr);
    assert.match(listen.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n'), new RegExp(`^launch: .*127\\.0\\.0\\.1:${port}\\b.* is in use`));
    const api = await run(['launch', '--listen', '127.0.0.1:0', '--api', `127.0.0.1:${port}`, '--data-dir', join(root, 'b'), '--no-dns']);
    assert.is(api.code, 1, api.stderr);
    assert.match(api.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n'), new RegExp(`^launch: .*API.*127\\.0\\.0\\.1:${port}\\b.* is in use`));
  } finally {
    busy.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('against a running agent: dns-remove of a missing record exits 1, messages speak CLI, hide, reset refuses', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-usage-'));
  let agent: Agent | undefined;
  try {
    agent = await launch(join(root, 'data'));
    const client = (args: string[]): Promise<Result> => run([...args, '--api', (agent as Agent).api, '--data-dir', (agent as Agent).dataDir]);
    const missing = await client(['dns-remove', 'nothere']);
    assert.is(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /^dns-remove: no record of nothere/);
    assert.is((await client(['dns-add', 'here', '10.32.9.9'])).code, 0);
    assert.is((await client(['dns-remove', 'here'])).code, 0);

    const detach = await client(['detach', '--netns', 'nothere']);
    assert.is(detach.code, 1);
    assert.match(detach.stderr, /^detach: namespace "nothere" is not attached to this agent \(weave-ts ps lists what is\)/);
    assert.not.match(detach.stderr, /endpoints\(\)/);
    const self = await client(['rmpeer', agent.peer]);
    assert.is(self.code, 1);
    assert.match(self.stderr, /weave-ts reset --force/);
    assert.not.match(self.stderr, /stop\(/);

    // Not exposed: hide has nothing to do and says so.
    const hide = await client(['hide']);
    assert.is(hide.code, 0, hide.stderr);
    assert.match(hide.stderr, /^hide: the host has no overlay address/);

    // reset refuses while the agent runs, also when only the data dir is given (the agent recorded its API there).
    for (const args of [['reset', '--api', agent.api, '--data-dir', agent.dataDir], ['reset', '--data-dir', agent.dataDir]]) {
      const refused = await run(args);
      assert.is(refused.code, 1, `${args.join(' ')}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`^reset: a weave-ts agent is running with this data dir \\(API ${agent.api.replace(/\./g, '\\.')}, pid \\d+\\): stop it first, or give --force`));
      assert.ok(existsSync(join(agent.dataDir, 'api-token')), 'nothing was removed');
    }
    // The client commands find the agent through the data dir too.
    assert.is((await run(['status', '--data-dir', agent.dataDir])).code, 0);

    // --force: the agent hands over its address ranges, stops, and its state goes; the peer name stays.
    const reset = await run(['reset', '--force', '--data-dir', agent.dataDir, '--bridge', NO_BRIDGE]);
    assert.is(reset.code, 0, reset.stderr);
    assert.is(await agent.exited, 0, 'the agent stopped cleanly');
    assert.match(reset.stdout, /stopped the agent/);
    assert.match(reset.stdout, /removed .*api-token/);
    assert.equal(readdirSync(agent.dataDir), ['peer-name']);
    assert.match(reset.stdout, /kept .*peer-name/);
  } finally {
    if (agent) await stop(agent);
    rmSync(root, { recursive: true, force: true });
  }
});

test('with the agent down: detach says what is recorded, reset cleans the data dir and summarises', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cli-usage-'));
  try {
    const dataDir = join(root, 'data');
    const agent = await launch(dataDir);
    assert.is(await stop(agent), 0);
    const detach = await run(['detach', '--netns', 'nothere', '--data-dir', dataDir]);
    assert.is(detach.code, 1, detach.stderr);
    assert.match(detach.stderr, /^detach: no agent runs, and namespace "nothere" is not attached according to .*endpoints\.json|^detach: no agent runs, and nothing is attached according to/);
    // A single peer that allocated nothing wrote no IPAM state: stand in for one that did.
    writeFileSync(join(dataDir, 'ipam.db'), 'saved ring');
    const again = await run(['reset', '--data-dir', dataDir, '--bridge', NO_BRIDGE]);
    assert.is(again.code, 0, again.stderr);
    assert.match(again.stdout, /removed .*ipam\.db/);
    assert.equal(readdirSync(dataDir), ['peer-name']);
    const nothing = await run(['reset', '--data-dir', dataDir, '--bridge', NO_BRIDGE]);
    assert.is(nothing.code, 0);
    assert.match(nothing.stdout, /nothing to remove/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
