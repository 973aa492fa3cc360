// `weave-ts launch`: options to an Overlay, the control API with its token, one ready line, clean stop on signals.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir, chmod } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OptionsError, StateFileError } from '../errors.js';
import { describeIoError } from '../persist/state-file.js';
import { jsonLineLogger } from '../logger.js';
import { Overlay, type OverlayOptions } from '../overlay.js';
import type { IpamInit } from '../ipam/ipam.js';
import { flag, parseArgs, type FlagSpec, type ParsedArgs } from './args.js';
import { ApiServer } from './api-server.js';
import { DEFAULT_API_ADDRESS, TOKEN_FILE } from './api-protocol.js';
import { AGENT_FILE, removeAgentRecord, writeAgentRecord } from './agent-file.js';
import { canonicalAddress, DEFAULT_PORT, parseListenAddress } from '../mesh/address.js';
import { initialPeerCount, kubernetesApiServer, KubernetesPeers, type NodeSnapshot } from './kubernetes-peers.js';

/** Flags of `weave-ts launch`. */
export const LAUNCH_FLAGS: FlagSpec = {
  values: {
    name: {},
    nickname: {},
    listen: {},
    'password-file': {},
    peer: { repeat: true },
    'ipalloc-range': {},
    'ipalloc-default-subnet': {},
    'ipalloc-init': {},
    bridge: {},
    mtu: {},
    'dns-domain': {},
    'dns-listen': {},
    'data-dir': {},
    api: {},
    'conn-limit': {},
    'log-level': {},
    'trusted-subnets': {},
    'kubernetes-api': {},
  },
  booleans: ['peers-from-kubernetes', 'no-dns', 'no-discovery', 'no-fragmentation', 'no-ipam', 'no-fastdp', 'no-offload'],
};

/** The data dir when none is given: system-wide for root, per user otherwise. */
export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/weave-ts' : join(homedir(), '.local', 'state', 'weave-ts');
}

/** Parses `--ipalloc-init consensus[=N] | seed=NAME,… | observer`. */
export function parseIpamInit(text: string | undefined, peerCount: number): IpamInit {
  if (text === undefined || text === 'consensus') return { consensus: peerCount + 1 };
  const consensus = /^consensus=(\d{1,4})$/.exec(text);
  if (consensus) {
    const n = Number(consensus[1]);
    if (n < 1) throw new OptionsError('--ipalloc-init consensus=N needs N ≥ 1 (the number of initial peers)');
    return { consensus: n };
  }
  if (text === 'observer') return { observer: true };
  const seed = /^seed=(.+)$/.exec(text);
  if (seed) return { seed: (seed[1] as string).split(',').map((s) => s.trim()).filter((s) => s.length > 0) };
  throw new OptionsError(`--ipalloc-init "${text}" is not understood: use consensus=N, seed=NAME,NAME,… or observer`);
}

/** Parses `--trusted-subnets CIDR,CIDR,…` (checked as CIDRs by the overlay). */
function trustedSubnets(text: string): string[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new OptionsError('--trusted-subnets needs at least one CIDR, like 10.0.0.0/8,192.168.1.0/24');
  return list;
}

/** Peer discovery from the Kubernetes API, as the launch flags ask for it. */
export interface KubernetesLaunch {
  /** The API server's base URL (`--kubernetes-api`, else the pod's environment). */
  apiServer: string;
  /** The port peers listen on: ours (every node of a DaemonSet runs the same command). */
  port: number;
  /** `--peer` targets, canonical: never forgotten by discovery. */
  keep: string[];
}

/** Parses `--peers-from-kubernetes` and `--kubernetes-api`; undefined without them. */
function kubernetesLaunch(args: ParsedArgs, env: NodeJS.ProcessEnv, listen: string, peers: readonly string[]): KubernetesLaunch | undefined {
  const explicit = flag(args, 'kubernetes-api');
  if (!args.booleans.has('peers-from-kubernetes')) {
    if (explicit !== undefined) throw new OptionsError('--kubernetes-api is the API server of --peers-from-kubernetes: give both');
    return undefined;
  }
  // Port 0 (tests) cannot be dialled: the other nodes are then expected on the default port.
  const port = parseListenAddress(listen).port || DEFAULT_PORT;
  return { apiServer: kubernetesApiServer(explicit, env).href, port, keep: peers.map((p) => canonicalAddress(p)) };
}

/** Builds overlay options from launch flags (reads the password file); throws OptionsError on bad input. */
export async function launchOptions(
  args: ParsedArgs,
  env: NodeJS.ProcessEnv,
): Promise<{ overlay: OverlayOptions; api: string; dataDir: string; kubernetes?: KubernetesLaunch | undefined }> {
  const peers = args.values.get('peer') ?? [];
  const dataDir = flag(args, 'data-dir') ?? defaultDataDir();
  let password: string | undefined;
  const passwordFile = flag(args, 'password-file');
  if (passwordFile) {
    password = await readFile(passwordFile, 'utf8').then(
      (t) => t.replace(/\r?\n$/, ''),
      (cause: unknown) => {
        throw new OptionsError(`cannot read --password-file ${passwordFile}: ${(cause as Error).message}`, { cause });
      },
    );
    if (password.length === 0) throw new OptionsError(`--password-file ${passwordFile} is empty`);
  } else if (env.WEAVE_PASSWORD !== undefined && env.WEAVE_PASSWORD.length > 0) {
    password = env.WEAVE_PASSWORD;
  }
  const integer = (name: string, min: number, max: number): number | undefined => {
    const text = flag(args, name);
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new OptionsError(`--${name} ${text} is not an integer from ${min} to ${max}`);
    return Number(text);
  };
  const mtu = integer('mtu', 576, 65_000);
  const connectionLimit = integer('conn-limit', 0, 100_000);
  const logLevel = flag(args, 'log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new OptionsError(`--log-level ${logLevel}: use debug, info, warn or error`);
  const noIpam = args.booleans.has('no-ipam');
  const listen = flag(args, 'listen') ?? '0.0.0.0:6783';
  const kubernetes = kubernetesLaunch(args, env, listen, peers);
  const overlay: OverlayOptions = {
    listen,
    peers,
    dataDir,
    ...(password !== undefined ? { password } : {}),
    ...(flag(args, 'name') ? { name: flag(args, 'name') as string } : {}),
    ...(flag(args, 'nickname') ? { nickname: flag(args, 'nickname') as string } : {}),
    ...(flag(args, 'bridge') ? { bridge: flag(args, 'bridge') as string } : {}),
    ...(mtu !== undefined ? { mtu } : {}),
    ...(connectionLimit !== undefined ? { connectionLimit } : {}),
    ...(args.booleans.has('no-discovery') ? { discovery: false } : {}),
    ...(args.booleans.has('no-fragmentation') ? { noFragmentation: true } : {}),
    ...(args.booleans.has('no-fastdp') ? { fastdp: false } : {}),
    ...(args.booleans.has('no-offload') ? { offload: false } : {}),
    ...(flag(args, 'trusted-subnets') !== undefined ? { trustedSubnets: trustedSubnets(flag(args, 'trusted-subnets') as string) } : {}),
    ipam: noIpam
      ? false
      : {
          ...(flag(args, 'ipalloc-range') ? { range: flag(args, 'ipalloc-range') as string } : {}),
          ...(flag(args, 'ipalloc-default-subnet') ? { defaultSubnet: flag(args, 'ipalloc-default-subnet') as string } : {}),
          init: parseIpamInit(flag(args, 'ipalloc-init'), peers.length),
        },
    dns: args.booleans.has('no-dns')
      ? false
      : {
          ...(flag(args, 'dns-domain') ? { domain: flag(args, 'dns-domain') as string } : {}),
          ...(flag(args, 'dns-listen') ? { listen: flag(args, 'dns-listen') as string } : {}),
        },
    logger: jsonLineLogger(process.stderr, logLevel as 'info'),
  };
  return { overlay, api: flag(args, 'api') ?? DEFAULT_API_ADDRESS, dataDir, kubernetes };
}

/**
 * The number of initial peers other than this one when the nodes come from Kubernetes: the other nodes,
 * and `--peer` targets that are none of them (for `--ipalloc-init consensus`).
 */
export function kubernetesPeerCount(snapshot: NodeSnapshot, keep: readonly string[]): number {
  return initialPeerCount(snapshot) - 1 + keep.filter((address) => !snapshot.peers.has(address)).length;
}

/** Runs the agent until SIGINT/SIGTERM (or `POST /stop`). Resolves with the exit code. */
export async function launch(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseArgs('launch', argv, LAUNCH_FLAGS);
  const { overlay: options, api, dataDir, kubernetes } = await launchOptions(args, env);
  const logger = options.logger ?? jsonLineLogger(process.stderr);
  // Discovery's callbacks reach the overlay once it is built; no target is added before start(first).
  const targets: { overlay?: Overlay } = {};
  let discovery: KubernetesPeers | undefined;
  let first: NodeSnapshot | undefined;
  if (kubernetes) {
    discovery = new KubernetesPeers({
      apiServer: kubernetes.apiServer,
      env,
      port: kubernetes.port,
      keep: kubernetes.keep,
      connect: (address) => targets.overlay?.connect(address),
      forget: (address) => targets.overlay?.forget(address),
      warn: (message, error) => logger.warn({ error }, message),
      info: (message) => logger.info({}, message),
    });
    // Before the overlay exists: the ring's initial division waits for a majority of all the nodes.
    first = await discovery.initial();
    if (options.ipam !== false) {
      options.ipam = { ...options.ipam, init: parseIpamInit(flag(args, 'ipalloc-init'), kubernetesPeerCount(first, kubernetes.keep)) };
    }
    logger.info({ nodes: first.nodes.length, peers: [...first.peers.keys()] }, `peers from Kubernetes: ${first.nodes.length} nodes listed by ${kubernetes.apiServer}`);
  }
  // Every component checks its options at construction and writes nothing: a bad option leaves no trace.
  const overlay = new Overlay(options);
  targets.overlay = overlay;
  const token = randomBytes(32).toString('hex');
  let stop: (reason: string, transfer?: boolean) => void = () => undefined;
  const server = new ApiServer(overlay, { listen: api, token, onStop: ({ transfer }) => stop('stop requested over the API', transfer) });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await overlay.start();
  const tokenPath = join(dataDir, TOKEN_FILE);
  let apiAddress: string;
  try {
    await writeFile(tokenPath, `${token}\n`, { mode: 0o600 }).catch((cause: unknown) => {
      throw new StateFileError('write-failed', `cannot write the API token ${tokenPath}: ${describeIoError(cause)}`, { cause });
    });
    await chmod(tokenPath, 0o600); // an older file keeps its mode on overwrite
    apiAddress = await server.start();
    await writeAgentRecord(dataDir, { pid: process.pid, api: apiAddress }).catch(async (cause: unknown) => {
      await server.stop();
      throw new StateFileError('write-failed', `cannot write ${join(dataDir, AGENT_FILE)}: ${describeIoError(cause)}`, { cause });
    });
  } catch (error) {
    await overlay.stop();
    throw error;
  }
  discovery?.start(first);
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    stop = (reason: string, transfer = false): void => {
      if (stopping) {
        process.stderr.write(`weave-ts: ${reason} again: exiting without a clean stop\n`);
        process.exit(1);
      }
      stopping = true;
      void (async () => {
        await server.stop().catch(() => undefined);
        await discovery?.stop();
        await overlay.stop({ transfer });
        await removeAgentRecord(dataDir).catch(() => undefined);
        process.stderr.write(`weave-ts: stopped (${reason})\n`);
        resolve(0);
      })().catch((error: unknown) => {
        process.stderr.write(`weave-ts: stop failed: ${(error as Error).message}\n`);
        resolve(1);
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  // Only now: whoever reads the ready line may signal at once, and the handlers must be in place.
  const status = overlay.status();
  process.stdout.write(
    `weave-ts ready: peer ${status.router.name} (${status.router.nickname}), listening on ${status.router.listenAddress ?? 'nothing'}, ` +
      `API on ${apiAddress}, data dir ${dataDir}, encryption ${status.router.encryption ? 'on' : 'OFF (no password)'}\n`,
  );
  return stopped;
}
