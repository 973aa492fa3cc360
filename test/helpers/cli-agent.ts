// The CLI agent in namespace tests: a host namespace running `weave-ts launch` with its own data dir,
// commands against it, clean stops, and waiting for something to become true.
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { waitForLine, type NetnsLab } from './netns.js';

export const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** A host namespace running `weave-ts launch`, with its own data dir. */
export interface AgentHost {
  name: string;
  dataDir: string;
  launchArgs: string[];
  agent?: ChildProcess | undefined;
}

/** Launches the host's agent and returns its ready line. */
export async function startAgent(lab: NetnsLab, host: AgentHost, logLevel = 'warn'): Promise<string> {
  const agent = lab.spawn(host.name, [process.execPath, cliPath, 'launch', ...host.launchArgs, '--data-dir', host.dataDir, '--log-level', logLevel]);
  host.agent = agent;
  return waitForLine(agent, 'weave-ts ready', 20_000);
}

/** Stops the host's agent with SIGTERM and asserts it exits cleanly (killed after 10 s otherwise). */
export async function stopAgent(lab: NetnsLab, host: AgentHost): Promise<void> {
  const agent = host.agent;
  if (!agent) return;
  host.agent = undefined;
  const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  agent.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000))]);
  if (code === 'timeout') await lab.kill(agent);
  assert.is(code, 0, `${host.name}'s agent stops cleanly on SIGTERM`);
}

/** Runs a weave-ts command against the host's agent; returns stdout. */
export async function cli(lab: NetnsLab, host: AgentHost, args: string[]): Promise<string> {
  const r = await lab.exec(host.name, [process.execPath, cliPath, ...args, '--data-dir', host.dataDir], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`weave-ts ${args.join(' ')} on ${host.name} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Calls `attempt` every 250 ms until it returns a value (errors count as "not yet"); fails after `timeoutMs`. */
export async function retry<T>(what: string, timeoutMs: number, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const result = await attempt();
      if (result !== undefined) return result;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
