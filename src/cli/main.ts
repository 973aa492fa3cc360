#!/usr/bin/env node
// weave-ts: the command-line agent (`launch`) and the commands that talk to a running agent's API.
import { OptionsError } from '../errors.js';
import { VERSION } from '../version.js';
import type { OverlayStatus } from '../overlay.js';
import type { EndpointInfo } from '../endpoint/memory-endpoint.js';
import type { PeerSnapshot } from '../mesh/peer.js';
import { flag, parseArgs, requiredFlag, type FlagSpec, type ParsedArgs } from './args.js';
import { ApiClient } from './api-client.js';
import { DEFAULT_API_ADDRESS } from './api-protocol.js';
import { defaultDataDir, launch } from './launch.js';
import { formatEndpoints, formatPeers, formatStatus } from './format.js';

const CLIENT_VALUES = { api: {}, 'data-dir': {}, 'token-file': {} } as const;

const USAGE = `weave-ts ${VERSION}: a Weave-style overlay network agent

Usage: weave-ts COMMAND [OPTIONS]

Agent:
  launch [--name NAME] [--nickname NICK] [--listen HOST:PORT] [--password-file FILE]
         [--peer HOST[:PORT]]... [--ipalloc-range CIDR] [--ipalloc-default-subnet CIDR]
         [--ipalloc-init consensus=N|seed=NAME,...|observer] [--no-ipam] [--bridge NAME] [--mtu N]
         [--dns-domain DOMAIN] [--dns-listen HOST:PORT] [--no-dns] [--no-discovery] [--no-fragmentation]
         [--conn-limit N] [--data-dir DIR] [--api HOST:PORT] [--log-level debug|info|warn|error]
      Runs a peer in the foreground (password also from WEAVE_PASSWORD). Stops cleanly on SIGINT/SIGTERM.

Commands for a running agent (options: --api HOST:PORT, --data-dir DIR for its token, --json):
  status [--json]                              router, IPAM, DNS and links
  peers [--json]                               known peers
  connect ADDR | forget ADDR                   add or drop a peer to connect to
  attach --netns NS --name NAME [--ip CIDR] [--json]
                                               attach a network namespace (veth on the bridge)
  detach --netns NS                            detach it, freeing its address and name
  expose [--ip CIDR] [--json]                  give the host an overlay address (DNS listens there)
  ps [--json]                                  endpoints with MAC, IP and names
  dns-add NAME IP | dns-remove NAME [IP]       manage DNS records
  rmpeer PEER                                  give a dead peer's address ranges to a live one
  metrics                                      Prometheus metrics

Defaults: --api ${DEFAULT_API_ADDRESS}, --data-dir ${defaultDataDir()}
`;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

type Command = (argv: readonly string[], io: Io) => Promise<number>;

/** A client command: its flags, then what it does with a client and the parsed arguments. */
function clientCommand(name: string, spec: FlagSpec, run: (client: ApiClient, args: ParsedArgs, io: Io) => Promise<void>): Command {
  return async (argv, io) => {
    const args = parseArgs(name, argv, { ...spec, values: { ...CLIENT_VALUES, ...spec.values } });
    const tokenFile = flag(args, 'token-file');
    const client = await ApiClient.open({
      api: flag(args, 'api') ?? process.env.WEAVE_TS_API ?? DEFAULT_API_ADDRESS,
      dataDir: tokenFile ? dirnameOf(tokenFile) : (flag(args, 'data-dir') ?? defaultDataDir()),
    });
    await run(client, args, io);
    return 0;
  };
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
  attach: clientCommand('attach', { values: { netns: {}, name: {}, ip: {} }, booleans: ['json'] }, async (c, a, io) => {
    const ip = flag(a, 'ip');
    const info = await c.post<'POST /attach', EndpointInfo>('POST /attach', {
      netns: requiredFlag('attach', a, 'netns'),
      name: requiredFlag('attach', a, 'name'),
      ...(ip ? { ip } : {}),
    });
    io.out(a.booleans.has('json') ? json(info) : `${info.address}\n`);
  }),
  detach: clientCommand('detach', { values: { netns: {} } }, async (c, a) => {
    await c.post('POST /detach', { netns: requiredFlag('detach', a, 'netns') });
  }),
  expose: clientCommand('expose', { values: { ip: {} }, booleans: ['json'] }, async (c, a, io) => {
    const ip = flag(a, 'ip');
    const result = await c.post<'POST /expose', { address: string }>('POST /expose', ip ? { ip } : {});
    io.out(a.booleans.has('json') ? json(result) : `${result.address}\n`);
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
    if (result.removed === 0) io.err(`dns-remove: no record of ${a.positionals[0]} was registered on this peer\n`);
  }),
  rmpeer: clientCommand('rmpeer', { positionals: { names: ['peer'], min: 1, max: 1 } }, async (c, a, io) => {
    const result = await c.post<'POST /rmpeer', { moved: number }>('POST /rmpeer', { peer: a.positionals[0] as string });
    io.out(`${result.moved} addresses taken over\n`);
  }),
  metrics: clientCommand('metrics', {}, async (c, _a, io) => {
    io.out(await c.getText('/metrics'));
  }),
};

/** Runs one command line; returns the exit code (2 for usage errors, 1 for failures). */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    io.out(`${VERSION}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    io.err(`weave-ts: unknown command "${command}" (see weave-ts help)\n`);
    return 2;
  }
  try {
    return await run(rest, io);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.err(`weave-ts ${command}: ${message}\n`);
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
