// The CLI agent with --peers-from-kubernetes against a fake Kubernetes API on 127.0.0.1: the listed node's
// agent is dialled and the two agents link; the agent's own node is not. Loopback only, no root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import { startFakeKubernetesApi } from '../helpers/kubernetes-api.js';

const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;

interface Agent {
  child: ChildProcess;
  dataDir: string;
  api: string;
  log: () => string;
}

/** Environment of every agent: no pod around it, whatever the machine running the tests has set. */
const ENV = { ...process.env, WEAVE_PASSWORD: 'kubernetes test password', WEAVE_TS_API: '', KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '' };

function run(args: string[], env: NodeJS.ProcessEnv = ENV): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function launch(dataDir: string, args: string[], env: NodeJS.ProcessEnv = ENV): Promise<Agent> {
  const child = spawn(process.execPath, [cliPath, 'launch', '--api', '127.0.0.1:0', '--data-dir', dataDir, '--no-dns', '--log-level', 'info', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = { text: '' };
  child.stderr.on('data', (chunk: Buffer) => (log.text += chunk.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line: ${log.text}`)), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ready = out.split('\n').find((l) => l.startsWith('weave-ts ready'));
      if (ready) {
        clearTimeout(timer);
        resolve(ready);
      }
    });
    child.once('exit', (code) => reject(new Error(`agent exited ${code}: ${log.text}`)));
  });
  const api = /API on (\S+),/.exec(line)?.[1];
  assert.ok(api, line);
  return { child, dataDir, api: api as string, log: () => log.text };
}

async function stop(agent: Agent): Promise<number | null> {
  if (agent.child.exitCode !== null) return agent.child.exitCode;
  const exited = new Promise<number | null>((resolve) => agent.child.once('exit', (code) => resolve(code)));
  agent.child.kill('SIGTERM');
  return exited;
}

const client = (agent: Agent, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => run([...args, '--api', agent.api, '--data-dir', agent.dataDir]);

test('launch --peers-from-kubernetes dials the other listed node and the two agents link; its own node is skipped', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-kube-cli-'));
  // Every node's agent listens on the same port, as in a DaemonSet; the nodes differ by loopback address.
  const port = await freePort();
  const kube = await startFakeKubernetesApi([
    { name: 'node-a', internal: ['127.0.0.2'] },
    { name: 'node-b', internal: ['127.0.0.1'] },
    { name: 'node-c', internal: ['127.0.0.3'] }, // listed, but no agent runs there
  ]);
  const agents: Agent[] = [];
  try {
    const b = await launch(join(root, 'b'), ['--nickname', 'node-b', '--listen', `127.0.0.1:${port}`]);
    agents.push(b);
    const a = await launch(join(root, 'a'), ['--nickname', 'node-a', '--listen', `127.0.0.2:${port}`, '--peers-from-kubernetes', '--kubernetes-api', kube.url], { ...ENV, NODE_NAME: 'node-a' });
    agents.push(a);
    assert.ok(kube.requests.length >= 1, 'the node list was read');
    assert.is(kube.requests[0]?.url, '/api/v1/nodes?limit=500');
    assert.match(a.log(), /"msg":"peers from Kubernetes: 3 nodes listed by http:\/\/127\.0\.0\.1:\d+\/","nodes":3,"peers":\["127\.0\.0\.1:\d+","127\.0\.0\.3:\d+"\]/);

    let peers: { nickname: string; reachable: boolean }[] = [];
    for (let i = 0; i < 150; i++) {
      peers = JSON.parse((await client(a, ['peers', '--json'])).stdout) as typeof peers;
      if (peers.length === 2 && peers.every((p) => p.reachable)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(peers.map((p) => p.nickname).sort(), ['node-a', 'node-b'], JSON.stringify(peers));
    assert.ok(peers.every((p) => p.reachable));
    const fromB = JSON.parse((await client(b, ['peers', '--json'])).stdout) as { nickname: string; reachable: boolean }[];
    assert.equal(fromB.map((p) => p.nickname).sort(), ['node-a', 'node-b'], 'node-b sees node-a too');

    const targets = (JSON.parse((await client(a, ['status', '--json'])).stdout) as { router: { targets: { address: string }[] } }).router.targets.map((t) => t.address).sort();
    assert.equal(targets, [`127.0.0.1:${port}`, `127.0.0.3:${port}`], 'the other nodes, never its own 127.0.0.2');

    assert.is(await stop(a), 0);
    assert.is(await stop(b), 0);
    assert.match(a.log(), /stopped \(SIGTERM\)/);
    agents.length = 0;
  } finally {
    for (const agent of agents) agent.child.kill('SIGKILL');
    await kube.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('launch refuses --peers-from-kubernetes outside a pod without --kubernetes-api, and --kubernetes-api alone (exit 2)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-kube-cli-'));
  try {
    const noPod = await run(['launch', '--peers-from-kubernetes', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'd')]);
    assert.is(noPod.code, 2, noPod.stderr);
    assert.match(noPod.stderr, /^launch: peers from Kubernetes need the API server: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/);
    const alone = await run(['launch', '--kubernetes-api', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'd')]);
    assert.is(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /--kubernetes-api is the API server of --peers-from-kubernetes: give both/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
