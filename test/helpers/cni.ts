// Running CNI plugins the way a container runtime does (libcni): CNI_* in the environment, the network
// configuration on stdin, inside the host's namespace; and a conflist's chain, ADD forward, DEL backward.
import { spawn } from 'node:child_process';
import type { NetnsLab } from './netns.js';

export const cniPluginPath = new URL('../../src/cni/main.js', import.meta.url).pathname;
/** Debian's reference plugins (containernetworking-plugins). */
export const REFERENCE_PLUGIN_DIR = '/usr/lib/cni';

/** One invocation's environment. */
export interface CniInvocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS, `K=V;K=V`. */
  args?: string;
}

/** What a plugin printed and how it exited. */
export interface CniOutput {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Runs a plugin binary (argv) in a host namespace with the CNI environment and `config` on stdin. */
export function invoke(lab: NetnsLab, host: string, argv: readonly string[], call: CniInvocation, config: unknown): Promise<CniOutput> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: call.command,
    CNI_PATH: REFERENCE_PLUGIN_DIR,
    ...(call.containerId !== undefined ? { CNI_CONTAINERID: call.containerId } : {}),
    ...(call.netns !== undefined ? { CNI_NETNS: call.netns } : {}),
    ...(call.ifname !== undefined ? { CNI_IFNAME: call.ifname } : {}),
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
  };
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', lab.ns(host), ...argv], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
    child.stdin.end(typeof config === 'string' ? config : JSON.stringify(config));
  });
}

/** Runs weave-ts-cni. */
export function weaveCni(lab: NetnsLab, host: string, call: CniInvocation, config: unknown): Promise<CniOutput> {
  return invoke(lab, host, [process.execPath, cniPluginPath], call, config);
}

/** A network configuration list (what /etc/cni/net.d holds). */
export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: ({ type: string; capabilities?: Record<string, boolean> } & Record<string, unknown>)[];
}

function pluginArgv(type: string): string[] {
  return type === 'weave-ts-cni' ? [process.execPath, cniPluginPath] : [`${REFERENCE_PLUGIN_DIR}/${type}`];
}

/** One plugin's configuration as libcni builds it: name and version from the list, the runtime's capability args it asked for. */
function pluginConfig(list: Conflist, index: number, runtime: Record<string, unknown>, prevResult: unknown): Record<string, unknown> {
  const plugin = list.plugins[index] as Conflist['plugins'][number];
  const runtimeConfig = Object.fromEntries(Object.entries(runtime).filter(([key]) => plugin.capabilities?.[key] === true));
  return {
    ...plugin,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
    ...(prevResult !== undefined ? { prevResult } : {}),
  };
}

/** ADD through the whole chain; returns the last plugin's result (or the first failure). */
export async function chainAdd(lab: NetnsLab, host: string, list: Conflist, call: Omit<CniInvocation, 'command'>, runtime: Record<string, unknown> = {}): Promise<CniOutput> {
  let prev: unknown;
  let last: CniOutput | undefined;
  for (let i = 0; i < list.plugins.length; i++) {
    last = await invoke(lab, host, pluginArgv((list.plugins[i] as { type: string }).type), { ...call, command: 'ADD' }, pluginConfig(list, i, runtime, prev));
    if (last.code !== 0) return last;
    prev = last.json;
  }
  return last as CniOutput;
}

/** CHECK or DEL through the chain with the ADD's result: DEL from the last plugin to the first, CHECK from the first. */
export async function chainRun(lab: NetnsLab, host: string, command: 'DEL' | 'CHECK', list: Conflist, call: Omit<CniInvocation, 'command'>, result: unknown, runtime: Record<string, unknown> = {}): Promise<CniOutput[]> {
  const order = list.plugins.map((_, i) => i);
  if (command === 'DEL') order.reverse();
  const outputs: CniOutput[] = [];
  for (const i of order) {
    outputs.push(await invoke(lab, host, pluginArgv((list.plugins[i] as { type: string }).type), { ...call, command }, pluginConfig(list, i, runtime, result)));
  }
  return outputs;
}
