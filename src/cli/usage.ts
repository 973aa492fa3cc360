// Usage text of every command: one synopsis, what it does, and each option with its default (pure).
import { VERSION } from '../version.js';
import { DEFAULT_API_ADDRESS } from './api-protocol.js';

/** The help of one command. */
export interface CommandHelp {
  /** Arguments after `weave-ts COMMAND`. */
  synopsis: string;
  /** One line for the general help. */
  summary: string;
  /** What it does, in a few lines. */
  description: string;
  /** `[option, meaning]`; defaults in the meaning as `(default …)`. */
  options: readonly (readonly [string, string])[];
}

/** Options every command that talks to an agent takes. */
function clientOptions(dataDir: string, json: boolean): [string, string][] {
  return [
    ...(json ? [['--json', 'print JSON instead of a table'] as [string, string]] : []),
    ['--api HOST:PORT', `the agent's control API: $WEAVE_TS_API, else the address the agent recorded in its data dir (default ${DEFAULT_API_ADDRESS})`],
    ['--data-dir DIR', `the agent's data dir, where its API token is (default ${dataDir})`],
    ['--token-file FILE', 'read the API token from FILE instead (default DIR/api-token)'],
  ];
}

/** The help of every command, in the order of the general help. */
export function commandHelp(dataDir: string): Record<string, CommandHelp> {
  const client = (json: boolean): [string, string][] => clientOptions(dataDir, json);
  return {
    launch: {
      synopsis: '[OPTIONS]',
      summary: 'run a peer in the foreground',
      description:
        'Runs a peer in the foreground until SIGINT or SIGTERM and prints one ready line on stdout; logs are JSON\n' +
        'lines on stderr. The network password comes from --password-file or the environment variable\n' +
        'WEAVE_PASSWORD; without one, links are neither encrypted nor authenticated (loudly reported).\n' +
        'Every option is checked before anything is written to the data dir.',
      options: [
        ['--name NAME', 'permanent peer name, MAC form (default: the one in the data dir, else random)'],
        ['--nickname NICK', 'display name (default: the host name)'],
        ['--listen HOST:PORT', 'control (TCP) and data (UDP) address (default 0.0.0.0:6783)'],
        ['--password-file FILE', 'network password (default: $WEAVE_PASSWORD, else none)'],
        ['--peer HOST[:PORT]', 'a peer to connect to; repeat for several (default: none)'],
        ['--peers-from-kubernetes', 'every other node of the Kubernetes cluster is a peer: listed with the pod\'s service account, re-read every 30 s (default: off)'],
        ['--kubernetes-api URL', 'API server for --peers-from-kubernetes (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)'],
        ['--ipalloc-range CIDR', 'address range, the same on every peer (default 10.32.0.0/12)'],
        ['--ipalloc-default-subnet CIDR', 'subnet endpoints get addresses from (default: the range)'],
        ['--ipalloc-init MODE', 'first division of the range: consensus=N, seed=NAME,... or observer (default consensus=peers+1; with --peers-from-kubernetes, the number of nodes)'],
        ['--no-ipam', 'no address allocation: addresses only given with --ip'],
        ['--bridge NAME', 'bridge namespaces attach to, at most 11 characters; its TAP is NAME-tap (default weave)'],
        ['--mtu N', 'IP MTU of endpoints, 576 to 65000 (default 1376)'],
        ['--dns-domain DOMAIN', 'domain of endpoint names (default weave.local.)'],
        ['--dns-listen HOST:PORT', 'serve names here too (default: only on the exposed host address)'],
        ['--no-dns', 'no names'],
        ['--no-discovery', 'only connect to the peers given'],
        ['--no-fragmentation', 'never send fragmented UDP (path-MTU discovery instead)'],
        ['--no-fastdp', 'keep every frame on the sleeve (no kernel VXLAN tunnels between bridges)'],
        ['--no-offload', 'no checksum/TCP segmentation offload on the bridge TAP (one frame per MTU instead of per 64 KiB)'],
        ['--trusted-subnets CIDR,...', 'with a password, links to peers in these underlay subnets skip encryption and take the fast path'],
        ['--conn-limit N', 'most links (default 200)'],
        ['--data-dir DIR', `peer name, IPAM state, endpoints, API token (default ${dataDir})`],
        ['--api HOST:PORT', `control API, loopback only (default ${DEFAULT_API_ADDRESS})`],
        ['--log-level LEVEL', 'debug, info, warn or error (default info)'],
      ],
    },
    status: { synopsis: '[--json]', summary: 'router, IPAM, DNS, links and warnings', description: 'Shows the agent: router, IPAM, DNS, links, recent handshake failures and warnings.', options: client(true) },
    peers: { synopsis: '[--json]', summary: 'known peers', description: 'Lists every known peer: name, nickname, reachable, direct, address.', options: client(true) },
    connect: { synopsis: 'HOST[:PORT]', summary: 'add a peer to connect to', description: 'Adds a peer to connect to; it is retried with backoff until the link is up.', options: client(false) },
    forget: { synopsis: 'HOST[:PORT]', summary: 'stop connecting to a peer', description: 'Stops connecting to an address (an established link stays until it breaks).', options: client(false) },
    attach: {
      synopsis: '--netns NS --name NAME [--ip CIDR] [--json]',
      summary: 'attach a network namespace (veth on the bridge)',
      description:
        'Attaches a network namespace: a veth from the bridge (interface ethwe inside), an address from IPAM,\n' +
        'the name in DNS and /etc/netns/NS/resolv.conf. Prints the address.',
      options: [
        ['--netns NS', 'the namespace, as `ip netns` names it (required)'],
        ['--name NAME', 'its DNS name (required)'],
        ['--ip CIDR', 'claim this address instead of allocating one (default: allocated)'],
        ...client(true),
      ],
    },
    detach: {
      synopsis: '--netns NS',
      summary: 'detach a namespace, freeing its address and name',
      description:
        'Detaches a namespace: removes the veth, the name and the resolver file, and releases the address.\n' +
        'With no agent running, works from the data dir: the veth and the resolver file go at once, the\n' +
        'address is released when the agent starts next.',
      options: [['--netns NS', 'the namespace (required)'], ...client(false)],
    },
    expose: {
      synopsis: '[--ip CIDR] [--json]',
      summary: 'give the host an overlay address (DNS listens there)',
      description: 'Gives the host an overlay address on the bridge, so host processes reach endpoints; the DNS server listens there. Prints it.',
      options: [['--ip CIDR', 'claim this address (default: allocated)'], ...client(true)],
    },
    hide: { synopsis: '', summary: 'undo expose', description: 'Removes the host\'s overlay address (undoes expose) and releases it.', options: client(false) },
    ps: { synopsis: '[--json]', summary: 'endpoints with MAC, IP and names', description: 'Lists the attached endpoints with MAC, IP and DNS name.', options: client(true) },
    'dns-add': { synopsis: 'NAME IP', summary: 'add a DNS record', description: 'Adds a record NAME -> IP (owned by weave:manual).', options: client(false) },
    'dns-remove': {
      synopsis: 'NAME [IP]',
      summary: 'remove DNS records',
      description: 'Removes the records of NAME added on this peer (only the one with IP, if given). Exits 1 when there was none.',
      options: client(false),
    },
    rmpeer: {
      synopsis: 'PEER',
      summary: "give a dead peer's address ranges to this one",
      description: "Gives a dead peer's address ranges (by name or nickname) to this peer; refused while the peer is reachable. Prints how many addresses moved.",
      options: client(false),
    },
    metrics: { synopsis: '', summary: 'Prometheus metrics', description: 'Prints the metrics in the Prometheus text format.', options: client(false) },
    reset: {
      synopsis: '[--force] [--bridge NAME] [--data-dir DIR]',
      summary: 'remove what an agent left on the host and in its data dir',
      description:
        "Removes what this data dir's agent put on the host and on disk: the bridge and its TAP (with the\n" +
        'exposed address and the routes on it), the veths of attached namespaces and their resolver files, and\n' +
        'the saved state (endpoints.json, ipam.db, api-token). The peer name is kept. Prints what it removed.\n' +
        'Refused while the agent runs, unless --force: then the agent hands its address ranges to a live peer\n' +
        'and stops first.',
      options: [
        ['--force', 'stop a running agent first (default: refuse while it runs)'],
        ['--bridge NAME', 'also remove this bridge (default: the one recorded in the data dir, else weave)'],
        ['--data-dir DIR', `the agent's data dir (default ${dataDir})`],
        ['--api HOST:PORT', 'the running agent to stop with --force (default: the address it recorded in its data dir)'],
      ],
    },
    version: { synopsis: '', summary: 'print the version', description: 'Prints the version of weave-ts.', options: [] },
  };
}

/** `weave-ts COMMAND --help`. */
export function formatCommandHelp(command: string, help: CommandHelp): string {
  const options: (readonly [string, string])[] = [...help.options, ['-h, --help', 'print this help']];
  const width = Math.max(...options.map(([o]) => o.length));
  return (
    `Usage: weave-ts ${command}${help.synopsis ? ` ${help.synopsis}` : ''}\n\n${help.description}\n\nOptions:\n` +
    options.map(([o, meaning]) => `  ${o.padEnd(width)}  ${meaning}`).join('\n') +
    '\n'
  );
}

/** `weave-ts help`: every command with its summary. */
export function formatGeneralHelp(helps: Record<string, CommandHelp>): string {
  const entries = Object.entries(helps);
  const width = Math.max(...entries.map(([c]) => c.length));
  return (
    `weave-ts ${VERSION}: a Weave-style overlay network agent\n\nUsage: weave-ts COMMAND [OPTIONS]\n\nCommands:\n` +
    entries.map(([c, h]) => `  ${c.padEnd(width)}  ${h.summary}`).join('\n') +
    '\n\n"weave-ts COMMAND --help" (or "weave-ts help COMMAND") shows a command\'s options and defaults.\n' +
    'Exit codes: 0 success, 1 failure (the message says why), 2 bad arguments or options.\n'
  );
}
