// What the runtime hands a CNI plugin: the network configuration on stdin and the CNI_* environment.
// Pure: bytes and an environment in, a checked request or a CniError with the specification's code out.
import { CniCode, CniError } from './errors.js';
import { isValidContainerId } from '../endpoint/container-id.js';

/** CNI versions this plugin speaks (`VERSION` lists them). */
export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const;
/** The configuration's `type`: the plugin's file name in CNI_PATH. */
export const PLUGIN_TYPE = 'weave-ts-cni';
/** Where the agent keeps its token and `agent.json` unless the configuration says otherwise. */
export const DEFAULT_CNI_DATA_DIR = '/var/lib/weave-ts';
/** Largest configuration read from stdin. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** The commands of the specification (1.1.0 adds STATUS and GC). */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

/** The network configuration fields weave-ts reads (others are carried, not used). */
export interface CniNetworkConfig {
  cniVersion: string;
  name: string;
  type: string;
  /** The agent's data dir: its API token and `agent.json` (where its API listens). */
  dataDir: string;
  /** The agent's API (`host:port`), instead of the one `agent.json` names. */
  api?: string | undefined;
  /** The result of the plugin before this one (CHECK; ADD refuses it: weave-ts must come first). */
  prevResult?: Record<string, unknown> | undefined;
  /** GC: the attachments the runtime still has (`cni.dev/valid-attachments`). */
  validAttachments?: { containerId: string; ifname: string }[] | undefined;
}

/** One invocation: the command, its environment and the configuration. */
export interface CniRequest {
  command: CniCommand;
  config: CniNetworkConfig | undefined;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs (`K8S_POD_NAME`, `K8S_POD_NAMESPACE`, …). */
  args: ReadonlyMap<string, string>;
  /** The version the runtime speaks: the configuration's, or for VERSION what its stdin says (if anything). */
  cniVersion: string;
}

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** Reads the command and the configuration; VERSION needs neither a valid configuration nor the other variables. */
export function parseCniRequest(env: Readonly<Record<string, string | undefined>>, stdin: Uint8Array): CniRequest {
  const command = env.CNI_COMMAND;
  if (command === undefined || command === '') throw new CniError(CniCode.invalidEnvironment, 'CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime');
  if (!(COMMANDS as readonly string[]).includes(command)) throw new CniError(CniCode.invalidEnvironment, `CNI_COMMAND ${JSON.stringify(command.slice(0, 40))} is not ADD, DEL, CHECK, VERSION, STATUS or GC`);
  const cmd = command as CniCommand;
  if (cmd === 'VERSION') return { command: cmd, config: undefined, containerId: '', netns: '', ifname: '', args: new Map(), cniVersion: requestedVersion(stdin) ?? '1.0.0' };
  const config = parseNetworkConfig(stdin, cmd);
  const need = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') throw new CniError(CniCode.invalidEnvironment, `${name} is not set (${cmd} needs it)`);
    return value;
  };
  const cniVersion = config.cniVersion;
  if (cmd === 'STATUS' || cmd === 'GC') return { command: cmd, config, containerId: '', netns: '', ifname: '', args: new Map(), cniVersion };
  const containerId = need('CNI_CONTAINERID');
  if (!isValidContainerId(containerId)) throw new CniError(CniCode.invalidEnvironment, `CNI_CONTAINERID ${JSON.stringify(containerId.slice(0, 80))} is not a container id`);
  const ifname = need('CNI_IFNAME');
  if (!/^[^\s/:]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') throw new CniError(CniCode.invalidEnvironment, `CNI_IFNAME ${JSON.stringify(ifname.slice(0, 40))} is not an interface name (1 to 15 characters without spaces, "/" or ":")`);
  // DEL must work when the namespace is already gone, so the runtime may leave CNI_NETNS out.
  const netns = cmd === 'DEL' ? (env.CNI_NETNS ?? '') : need('CNI_NETNS');
  if (netns !== '' && (!netns.startsWith('/') || netns.length > 1024)) throw new CniError(CniCode.invalidEnvironment, `CNI_NETNS ${JSON.stringify(netns.slice(0, 80))} is not the absolute path of a network namespace`);
  return { command: cmd, config, containerId, netns, ifname, args: parseCniArgs(env.CNI_ARGS ?? ''), cniVersion };
}

/**
 * The `cniVersion` of a configuration when it can be read and is one we speak (for VERSION's answer and
 * for error objects); undefined otherwise. Never throws.
 */
export function requestedVersion(stdin: Uint8Array): string | undefined {
  try {
    const v = (JSON.parse(new TextDecoder().decode(stdin.subarray(0, MAX_CONFIG_BYTES))) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `K=V;K=V` (CNI_ARGS); a pair without `=` is an invalid environment. */
export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (text.length > 64 * 1024) throw new CniError(CniCode.invalidEnvironment, 'CNI_ARGS is longer than 64 KiB');
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.invalidEnvironment, `CNI_ARGS: ${JSON.stringify(pair.slice(0, 40))} is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/** Decodes and checks the network configuration (one plugin's entry of a conflist, as libcni passes it). */
export function parseNetworkConfig(stdin: Uint8Array, command: CniCommand): CniNetworkConfig {
  if (stdin.byteLength > MAX_CONFIG_BYTES) throw new CniError(CniCode.decodeFailure, `the network configuration is over ${MAX_CONFIG_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(stdin));
  } catch (cause) {
    throw new CniError(CniCode.decodeFailure, 'the network configuration on stdin is not JSON', (cause as Error).message, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CniError(CniCode.decodeFailure, 'the network configuration is not a JSON object');
  const c = value as Record<string, unknown>;
  const text = (key: string, required: boolean): string | undefined => {
    const v = c[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new CniError(CniCode.invalidNetworkConfig, `network configuration: "${key}" must be a non-empty string`);
    return v;
  };
  const cniVersion = text('cniVersion', true) as string;
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(CniCode.incompatibleVersion, `CNI version ${cniVersion} is not supported: weave-ts-cni speaks ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if ((command === 'STATUS' || command === 'GC') && cniVersion === '1.0.0') throw new CniError(CniCode.incompatibleVersion, `${command} needs CNI version 1.1.0, the configuration says ${cniVersion}`);
  const name = text('name', true) as string;
  const type = text('type', true) as string;
  if (type !== PLUGIN_TYPE) throw new CniError(CniCode.invalidNetworkConfig, `network configuration: "type" is ${JSON.stringify(type)}, not "${PLUGIN_TYPE}"`);
  for (const key of ['ipMasq', 'isGateway', 'isDefaultGateway'] as const) {
    if (c[key] === true) throw new CniError(CniCode.unsupportedField, `network configuration: "${key}" is not supported: weave-ts routes containers through the host's overlay address and does no NAT`);
  }
  if (c.ipam !== undefined && !(typeof c.ipam === 'object' && c.ipam !== null && Object.keys(c.ipam).length === 0)) {
    throw new CniError(CniCode.unsupportedField, 'network configuration: "ipam" is not supported: the weave-ts agent allocates addresses itself (gossiped IPAM); remove it');
  }
  const dataDir = text('dataDir', false) ?? DEFAULT_CNI_DATA_DIR;
  if (!dataDir.startsWith('/')) throw new CniError(CniCode.invalidNetworkConfig, `network configuration: "dataDir" ${JSON.stringify(dataDir)} is not an absolute path`);
  const api = text('api', false);
  if (api !== undefined && !/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(api)) throw new CniError(CniCode.invalidNetworkConfig, `network configuration: "api" ${JSON.stringify(api)} is not host:port`);
  let prevResult: Record<string, unknown> | undefined;
  if (c.prevResult !== undefined) {
    if (typeof c.prevResult !== 'object' || c.prevResult === null || Array.isArray(c.prevResult)) throw new CniError(CniCode.invalidNetworkConfig, 'network configuration: "prevResult" is not an object');
    prevResult = c.prevResult as Record<string, unknown>;
  }
  return { cniVersion, name, type, dataDir, ...(api ? { api } : {}), ...(prevResult ? { prevResult } : {}), ...validAttachments(c) };
}

/** GC's `cni.dev/valid-attachments`: a list of `{containerID, ifname}`. */
function validAttachments(c: Record<string, unknown>): { validAttachments?: { containerId: string; ifname: string }[] } {
  const list = c['cni.dev/valid-attachments'];
  if (list === undefined) return {};
  if (!Array.isArray(list) || list.length > 1_000_000) throw new CniError(CniCode.invalidNetworkConfig, 'network configuration: "cni.dev/valid-attachments" is not a list');
  return {
    validAttachments: list.map((item: unknown, i) => {
      const a = (typeof item === 'object' && item !== null ? item : {}) as { containerID?: unknown; ifname?: unknown };
      if (typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw new CniError(CniCode.invalidNetworkConfig, `network configuration: "cni.dev/valid-attachments"[${i}] needs "containerID" and "ifname"`);
      }
      return { containerId: a.containerID, ifname: a.ifname };
    }),
  };
}

/**
 * The DNS name a container gets: `POD.NAMESPACE` from Kubernetes' CNI_ARGS, else its container id when
 * that is a DNS label, else the id's first 12 characters (Docker's short id).
 */
export function endpointName(request: Pick<CniRequest, 'containerId' | 'args'>): string {
  const pod = request.args.get('K8S_POD_NAME');
  const namespace = request.args.get('K8S_POD_NAMESPACE');
  if (pod && namespace) return `${pod}.${namespace}`.toLowerCase();
  const id = request.containerId.toLowerCase();
  if (/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(id)) return id;
  return id.replace(/[^a-z0-9-]/g, '-').slice(0, 12).replace(/^-+|-+$/g, '') || 'container';
}
