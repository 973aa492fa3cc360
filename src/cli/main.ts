#!/usr/bin/env node
// weave-ts: the command-line agent (`launch`) and the commands that talk to a running agent's API.
import { ApiError, OptionsError, WeaveError } from '../errors.js';
import { VERSION } from '../version.js';
import type { OverlayStatus } from '../overlay.js';
import type { EndpointInfo } from '../endpoint/memory-endpoint.js';
import type { PeerSnapshot } from '../mesh/peer.js';
import { flag, parseArgs, requiredFlag, wantsHelp, type FlagSpec, type ParsedArgs } from './args.js';
import { ApiClient } from './api-client.js';
import { DEFAULT_API_ADDRESS } from './api-protocol.js';
import { defaultDataDir, launch } from './launch.js';
import { formatEndpoints, formatPeers, formatStatus } from './format.js';
import { runningAgent, type AgentRecord } from './agent-file.js';
import { detachOffline, resetDataDir } from './offline.js';
import { commandHelp, formatCommandHelp, formatGeneralHelp } from './usage.js';

const CLIENT_VALUES = { api: {}, 'data-dir': {}, 'token-file': {} } as const;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

type Command = (argv: readonly string[], io: Io) => Promise<number>;

/** The data dir a client command means: from --token-file's directory, --data-dir, or the default. */
function clientDataDir(args: ParsedArgs): string {
  const tokenFile = flag(args, 'token-file');
  return tokenFile ? dirnameOf(tokenFile) : (flag(args, 'data-dir') ?? defaultDataDir());
}

/** The API address given explicitly: --api, else a non-empty $WEAVE_TS_API. */
function explicitApi(args: ParsedArgs): string | undefined {
  const env = process.env.WEAVE_TS_API;
  return flag(args, 'api') ?? (env !== undefined && env.length > 0 ? env : undefined);
}

/** A client of the agent: at the explicit address, else the one the agent recorded in its data dir, else the default. */
async function openClient(args: ParsedArgs, agent?: AgentRecord): Promise<ApiClient> {
  const dataDir = clientDataDir(args);
  const recorded = agent ?? (await runningAgent(dataDir));
  return ApiClient.open({ api: explicitApi(args) ?? recorded?.api ?? DEFAULT_API_ADDRESS, dataDir });
}

/** A client command: its flags, then what it does with a client and the parsed arguments. */
function clientCommand(
  name: string,
  spec: FlagSpec & { required?: readonly string[] },
  run: (client: ApiClient, args: ParsedArgs, io: Io) => Promise<number | void>,
): Command {
  return async (argv, io) => {
    const args = clientArgs(name, argv, spec);
    for (const required of spec.required ?? []) requiredFlag(name, args, required); // usage errors before any agent is asked
    return (await run(await openClient(args), args, io)) ?? 0;
  };
}

/** A client command's parsed arguments, without opening a client (for commands that may work without an agent). */
function clientArgs(name: string, argv: readonly string[], spec: FlagSpec): ParsedArgs {
  return parseArgs(name, argv, { ...spec, values: { ...CLIENT_VALUES, ...spec.values } });
}

function dirnameOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

const COMMANDS: Record<string, Command> = {
  launch: (argv) => launch(argv),
  status: clientCommand('status', { booleans: ['json'] }, async (c, a, io) => {
    const status = await c.get<OverlayStatus>('/status');
    io.out(a.booleans.has('json') ? json(status) : formatStatus(status));
  }),
  peers: clientCommand('peers', { booleans: ['json'] }, async (c, a, io) => {
    const peers = await c.get<PeerSnapshot[]>('/peers');
    io.out(a.booleans.has('json') ? json(peers) : formatPeers(peers));
  }),
  connect: clientCommand('connect', { positionals: { names: ['addr'], min: 1, max: 1 } }, async (c, a) => {
    await c.post('POST /connect', { address: a.positionals[0] as string });
  }),
  forget: clientCommand('forget', { positionals: { names: ['addr'], min: 1, max: 1 } }, async (c, a) => {
    await c.post('POST /forget', { address: a.positionals[0] as string });
  }),
  attach: clientCommand('attach', { values: { netns: {}, name: {}, ip: {} }, booleans: ['json'], required: ['netns', 'name'] }, async (c, a, io) => {
    const ip = flag(a, 'ip');
    const info = await c.post<'POST /attach', EndpointInfo>('POST /attach', {
      netns: requiredFlag('attach', a, 'netns'),
      name: requiredFlag('attach', a, 'name'),
      ...(ip ? { ip } : {}),
    });
    io.out(a.booleans.has('json') ? json(info) : `${info.address}\n`);
  }),
  detach: async (argv, io) => {
    const args = clientArgs('detach', argv, { values: { netns: {}, bridge: {} } });
    const netns = requiredFlag('detach', args, 'netns');
    const dataDir = clientDataDir(args);
    const agent = await runningAgent(dataDir);
    if (agent || explicitApi(args)) {
      const client = await openClient(args, agent);
      await client.post('POST /detach', { netns }).catch((error: unknown) => {
        if (error instanceof WeaveError && error.code === 'not-found') {
          throw new ApiError('not-found', `namespace "${netns}" is not attached to this agent (weave-ts ps lists what is)`, { cause: error });
        }
        throw error;
      });
      return 0;
    }
    // No agent runs for this data dir: work from its endpoints.json.
    if (process.getuid?.() !== 0) {
      throw new ApiError('not-running', `no weave-ts agent runs with --data-dir ${dataDir}: start it (weave-ts launch --data-dir ${dataDir}) and detach again, or run this as root to detach without it`);
    }
    const bridge = flag(args, 'bridge');
    const done = await detachOffline(netns, { dataDir, ...(bridge ? { bridge } : {}) });
    const resolver = done.resolver === 'none' ? '' : done.resolver === 'removed' ? ' and its resolver file' : ' and restored its earlier resolver file';
    io.out(
      `detached ${netns} without an agent: removed veth ${done.hostIfname}${resolver}; ` +
        `${done.address} is released when the agent starts next (weave-ts launch --data-dir ${dataDir})\n`,
    );
    return 0;
  },
  expose: clientCommand('expose', { values: { ip: {} }, booleans: ['json'] }, async (c, a, io) => {
    const ip = flag(a, 'ip');
    const result = await c.post<'POST /expose', { address: string }>('POST /expose', ip ? { ip } : {});
    io.out(a.booleans.has('json') ? json(result) : `${result.address}\n`);
  }),
  hide: clientCommand('hide', {}, async (c, _a, io) => {
    const result = await c.post<'POST /hide', { address?: string }>('POST /hide', {});
    if (result.address) io.out(`${result.address}\n`);
    else io.err('hide: the host has no overlay address (nothing to hide)\n');
  }),
  ps: clientCommand('ps', { booleans: ['json'] }, async (c, a, io) => {
    const endpoints = await c.get<EndpointInfo[]>('/endpoints');
    io.out(a.booleans.has('json') ? json(endpoints) : formatEndpoints(endpoints));
  }),
  'dns-add': clientCommand('dns-add', { positionals: { names: ['name', 'ip'], min: 2, max: 2 } }, async (c, a) => {
    await c.post('POST /dns/add', { name: a.positionals[0] as string, ip: a.positionals[1] as string });
  }),
  'dns-remove': clientCommand('dns-remove', { positionals: { names: ['name', 'ip'], min: 1, max: 2 } }, async (c, a, io) => {
    const ip = a.positionals[1];
    const result = await c.post<'POST /dns/remove', { removed: number }>('POST /dns/remove', { name: a.positionals[0] as string, ...(ip ? { ip } : {}) });
    if (result.removed === 0) {
      throw new ApiError('not-found', `no record of ${a.positionals[0]}${ip ? ` with ${ip}` : ''} was added on this peer (records of attached endpoints go with weave-ts detach)`);
    }
  }),
  rmpeer: clientCommand('rmpeer', { positionals: { names: ['peer'], min: 1, max: 1 } }, async (c, a, io) => {
    const peer = a.positionals[0] as string;
    const result = await c.post<'POST /rmpeer', { moved: number }>('POST /rmpeer', { peer }).catch((error: unknown) => {
      if (error instanceof WeaveError && /^rmpeer of this peer itself/.test(error.message)) {
        throw new ApiError(error.code, `${peer} is this agent's own peer: to hand its address ranges to the others and stop it, run weave-ts reset --force`, { cause: error });
      }
      throw error;
    });
    io.out(`${result.moved} addresses taken over\n`);
  }),
  metrics: clientCommand('metrics', {}, async (c, _a, io) => {
    io.out(await c.getText('/metrics'));
  }),
  reset: (argv, io) => reset(argv, io),
  version: async (argv, io) => {
    parseArgs('version', argv, {});
    io.out(`${VERSION}\n`);
    return 0;
  },
};

/** How long `reset --force` waits for the agent to stop. */
const STOP_WAIT_MS = 60_000;

async function reset(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs('reset', argv, { values: { 'data-dir': {}, bridge: {}, api: {} }, booleans: ['force'] });
  const dataDir = flag(args, 'data-dir') ?? defaultDataDir();
  const bridge = flag(args, 'bridge');
  const agent = await runningAgent(dataDir);
  const lines: string[] = [];
  if (agent) {
    if (!args.booleans.has('force')) {
      throw new ApiError('already-exists', `a weave-ts agent is running with this data dir (API ${agent.api}, pid ${agent.pid}): stop it first, or give --force to stop it (its address ranges go to a live peer)`);
    }
    const client = await ApiClient.open({ api: flag(args, 'api') ?? agent.api, dataDir });
    await client.post('POST /stop', { transfer: 'true' });
    if (!(await exited(agent.pid, STOP_WAIT_MS))) throw new ApiError('timeout', `the agent (pid ${agent.pid}) did not stop within ${STOP_WAIT_MS / 1000} s: nothing was removed`);
    lines.push(`stopped the agent (pid ${agent.pid}, API ${agent.api}); it handed its address ranges to a live peer, if one was reachable`);
  }
  const report = await resetDataDir({ dataDir, ...(bridge ? { bridge } : {}) });
  lines.push(...report.removed.map((r) => `removed ${r}`));
  if (report.removed.length === 0) lines.push(`nothing to remove for ${dataDir}`);
  lines.push(...report.kept.map((k) => `kept ${k}`));
  io.out(`${lines.join('\n')}\n`);
  for (const failure of report.failed) io.err(`reset: could not ${failure}\n`);
  return report.failed.length > 0 ? 1 : 0;
}

/** Waits until `pid` is gone; false on timeout. */
async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

/** Runs one command line; returns the exit code (2 for usage errors, 1 for failures). */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const helps = commandHelp(defaultDataDir());
  const [command, ...rest] = argv;
  if (command === undefined) {
    io.err(formatGeneralHelp(helps));
    return 2;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (topic === undefined) {
      io.out(formatGeneralHelp(helps));
      return 0;
    }
    const help = helps[topic];
    if (!help) {
      io.err(`weave-ts: unknown command "${topic}" (see weave-ts help)\n`);
      return 2;
    }
    io.out(formatCommandHelp(topic, help));
    return 0;
  }
  if (command === '--version') return COMMANDS.version?.([], io) ?? 0;
  const run = COMMANDS[command];
  const help = helps[command];
  if (!run || !help) {
    io.err(`weave-ts: unknown command "${command}" (see weave-ts help)\n`);
    return 2;
  }
  if (wantsHelp(rest)) {
    io.out(formatCommandHelp(command, help));
    return 0;
  }
  try {
    return await run(rest, io);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.err(`${command}: ${message}\n`);
    return error instanceof OptionsError ? 2 : 1; // bad arguments or options here; failures reported by the agent are 1
  }
}

main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`weave-ts: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
