// Network-namespace labs for tests and benchmarks: hosts, veth links, routes, commands inside namespaces, guaranteed cleanup.
//
// Every namespace and veth a lab creates is named `wtF<tag><pid base 36>…` (at most 15 characters), so
// leftovers are recognisable and nothing outside the lab is ever touched. Veth ends are created directly
// inside their namespaces, never in the root namespace, so deleting a lab's namespaces removes all of it.
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** Linux interface names are limited to 15 bytes (IFNAMSIZ - 1); we hold namespace names to the same. */
export const MAX_NAME_LENGTH = 15;
/** Every name a lab creates starts with this. */
export const NAME_PREFIX = 'wtF';

export type NetnsSupport = { ok: true } | { ok: false; reason: string };

export interface ExecResult {
  /** Exit code; -1 when the command was killed (timeout) or could not start. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command after this many milliseconds (default 30 000). */
  timeoutMs?: number;
}

export interface LinkOptions {
  /** IPv4 subnet for the link, e.g. '10.250.1.0/24'; the ends get .1 and .2 unless addresses are given. */
  subnet: string;
  /** Explicit addresses (inside `subnet`) for the a and b ends. */
  addresses?: [string, string];
  /** MTU of both veth ends (default: the kernel's, 1500). */
  mtu?: number;
}

export interface LinkInfo {
  /** Host names (as given to addHost) of the two ends. */
  hosts: [string, string];
  /** Interface names inside the two namespaces. */
  ifnames: [string, string];
  /** Addresses of the two ends, without prefix length. */
  addresses: [string, string];
  prefixLength: number;
  mtu: number;
}

/** Labs alive in this process, cleaned synchronously by the exit/signal backstop. */
const liveLabs = new Set<NetnsLab>();
let backstopInstalled = false;

function installBackstop(): void {
  if (backstopInstalled) return;
  backstopInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      for (const lab of liveLabs) lab.cleanupSync();
      process.exit(code);
    });
  }
}

/**
 * Whether namespace tests can run here: root, `ip` present, and a namespace can really be created.
 * Synchronous so a test file can decide between `test` and `test.skip` at load time.
 */
export function canUseNetns(): NetnsSupport {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'network namespaces need root (run as uid 0)' };
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: '`ip` (iproute2) not found; run scripts/install-test-deps.sh' };
  }
  const probe = `${NAME_PREFIX}p${process.pid.toString(36)}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (err) {
    return { ok: false, reason: `cannot create a network namespace: ${stderrOf(err)}` };
  }
  try {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch {
    // Reported by the leftover check of whoever runs the tests; nothing more to do here.
  }
  return { ok: true };
}

/** Whether `command` is on PATH (e.g. 'iperf3', 'nft'). */
/**
 * Why tests that run TAP-backed agents in namespaces cannot run here ('' when they can): no namespaces,
 * no /dev/net/tun, the native binding not built, or one of `commands` missing.
 */
export function tapNamespaceSkipReason(commands: readonly string[]): string {
  const support = canUseNetns();
  if (!support.ok) return support.reason;
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  if (!existsSync(new URL('../../../native/build/Release/weave_tap.node', import.meta.url).pathname)) {
    return 'the native TAP binding is not built (npm install builds it)';
  }
  const missing = commands.filter((c) => !hasCommand(c));
  return missing.length > 0 ? `missing ${missing.join(', ')}; run scripts/install-test-deps.sh` : '';
}

export function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v "$1"`, 'sh', command], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Namespaces (from `ip netns list`) and links (from `ip -o link`, root namespace) whose names start with `prefix`. */
export function leftovers(prefix = NAME_PREFIX): { namespaces: string[]; links: string[] } {
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '')
    .filter((name) => name.startsWith(prefix));
  return { namespaces, links };
}

/**
 * A set of network namespaces ("hosts") joined by veth links. Use with `await using` or call `cleanup()`
 * in `finally`; an exit/SIGINT/SIGTERM handler also removes everything if the process dies first.
 */
export class NetnsLab implements AsyncDisposable {
  /** Prefix of every name this lab creates: `wtF` + tag + pid in base 36. */
  readonly prefix: string;
  private readonly hosts = new Map<string, string>();
  private readonly links: LinkInfo[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly deferred: (() => void)[] = [];
  private cleaned = false;

  /**
   * @param tag 1–2 lowercase letters/digits that tell labs apart within one process (default 'n').
   * @param options.namePrefix replaces `wtF` at the start of every name (a `wt…` prefix of 3–4 characters),
   *   for suites whose names must carry their own tag.
   */
  constructor(tag = 'n', options: { namePrefix?: string } = {}) {
    if (!/^[a-z0-9]{1,2}$/.test(tag)) throw new Error(`NetnsLab tag must be 1–2 of [a-z0-9], got '${tag}'`);
    const namePrefix = options.namePrefix ?? NAME_PREFIX;
    if (!/^wt[A-Za-z0-9]{1,2}$/.test(namePrefix)) throw new Error(`NetnsLab namePrefix must be "wt" and 1–2 letters/digits, got '${namePrefix}'`);
    this.prefix = `${namePrefix}${tag}${process.pid.toString(36)}`;
    installBackstop();
    liveLabs.add(this);
  }

  /** Namespace name of a host created with addHost. */
  ns(host: string): string {
    const ns = this.hosts.get(host);
    if (ns === undefined) throw new Error(`NetnsLab: no host '${host}' (known: ${[...this.hosts.keys()].join(', ') || 'none'})`);
    return ns;
  }

  /** Creates namespace `<prefix><name>` with `lo` up. */
  async addHost(name: string): Promise<string> {
    this.assertLive();
    if (this.hosts.has(name)) throw new Error(`NetnsLab: host '${name}' already exists`);
    const ns = this.name(name);
    await this.run(['ip', 'netns', 'add', ns]);
    this.hosts.set(name, ns);
    await this.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Creates a veth pair between two hosts, assigns addresses and brings both ends up. */
  async link(a: string, b: string, options: LinkOptions): Promise<LinkInfo> {
    this.assertLive();
    const nsA = this.ns(a);
    const nsB = this.ns(b);
    const { network, prefixLength } = parseCidr(options.subnet);
    const addresses = options.addresses ?? [intToIp(network + 1), intToIp(network + 2)];
    const index = this.links.length.toString(36);
    const ifnames: [string, string] = [this.name(`v${index}a`), this.name(`v${index}b`)];
    await this.run(['ip', 'link', 'add', ifnames[0], 'netns', nsA, 'type', 'veth', 'peer', 'name', ifnames[1], 'netns', nsB]);
    const ends = [
      [nsA, ifnames[0], addresses[0]],
      [nsB, ifnames[1], addresses[1]],
    ] as const;
    for (const [ns, ifname, address] of ends) {
      if (options.mtu !== undefined) await this.run(['ip', '-n', ns, 'link', 'set', ifname, 'mtu', String(options.mtu)]);
      await this.run(['ip', '-n', ns, 'addr', 'add', `${address}/${prefixLength}`, 'dev', ifname]);
      await this.run(['ip', '-n', ns, 'link', 'set', ifname, 'up']);
    }
    const info: LinkInfo = { hosts: [a, b], ifnames, addresses, prefixLength, mtu: options.mtu ?? 1500 };
    this.links.push(info);
    return info;
  }

  /** Runs a command inside a host's namespace; never throws for a non-zero exit (see `code`). */
  exec(host: string, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    this.assertLive();
    return execResult(['ip', 'netns', 'exec', this.ns(host), ...argv], options.timeoutMs ?? 30_000, (child) => this.track(child));
  }

  /** Like exec, but throws with the command's stderr when it exits non-zero. */
  async execOk(host: string, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(host, argv, options);
    if (result.code !== 0) throw new Error(`in ${host}: \`${argv.join(' ')}\` exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    return result;
  }

  /**
   * Starts a long-running process inside a host's namespace. `ip netns exec` execs the command, so the
   * returned child's PID is the command's own; it is killed by that PID in cleanup.
   */
  spawn(host: string, argv: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
    this.assertLive();
    const child = spawnChild('ip', ['netns', 'exec', this.ns(host), ...argv], {
      env: env === undefined ? process.env : { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.track(child);
    // Keep pipes drained so a chatty child never blocks; callers may still attach their own listeners.
    child.stdout?.resume();
    child.stderr?.resume();
    return child;
  }

  /**
   * Registers a synchronous action to run at cleanup, after tracked processes are gone and before namespaces are
   * deleted, also from the exit/signal backstop: for things a system makes outside the namespaces (temp files, sockets).
   */
  defer(action: () => void): void {
    this.deferred.push(action);
  }

  /** Stops a process started with spawn: SIGTERM, then SIGKILL after `graceMs`. Resolves once it has exited. */
  async kill(child: ChildProcess, graceMs = 2_000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    killPid(child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.pid !== undefined && killPid(child.pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Adds a route in a host: `ip route add <cidr> via <via>`. */
  async addRoute(host: string, cidr: string, via: string): Promise<void> {
    await this.run(['ip', '-n', this.ns(host), 'route', 'add', cidr, 'via', via]);
  }

  /** Sets a sysctl inside a host's namespace, e.g. sysctl('b', 'net.ipv4.ip_forward', '1'). */
  async sysctl(host: string, key: string, value: string | number): Promise<void> {
    await this.execOk(host, ['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /**
   * Drops every IPv4 fragment arriving at a host (non-first fragments by offset, first fragments by MF),
   * before reassembly, with counting rules. Checks that the rules are in place; `fragmentDrops` reads the counters.
   */
  async dropFragments(host: string, options: { iifname?: string } = {}): Promise<void> {
    // Priority -450 runs before conntrack's defragmentation (-400), so fragments are seen individually.
    // `iifname` limits the drop to one interface (the underlay), leaving e.g. an overlay TAP alone.
    const match = options.iifname === undefined ? '' : `iifname "${options.iifname}" `;
    const script = [
      'add table ip wtfrag',
      'add chain ip wtfrag in { type filter hook prerouting priority -450; policy accept; }',
      `add rule ip wtfrag in ${match}ip frag-off & 0x1fff != 0 counter drop`,
      `add rule ip wtfrag in ${match}ip frag-off & 0x2000 != 0 counter drop`,
    ].join('\n');
    await this.execOk(host, ['nft', script.replaceAll('\n', '; ')]);
    const listing = await this.execOk(host, ['nft', 'list', 'chain', 'ip', 'wtfrag', 'in']);
    const rules = listing.stdout.match(/ip frag-off & (0x1fff|8191|0x2000|8192) != 0 counter packets \d+ bytes \d+ drop/g) ?? [];
    if (rules.length !== 2) throw new Error(`dropFragments(${host}): rules not in place:\n${listing.stdout}`);
  }

  /** Packets dropped so far by the dropFragments rules in a host. */
  async fragmentDrops(host: string): Promise<number> {
    const listing = await this.execOk(host, ['nft', 'list', 'chain', 'ip', 'wtfrag', 'in']);
    let total = 0;
    for (const m of listing.stdout.matchAll(/counter packets (\d+)/g)) total += Number(m[1]);
    return total;
  }

  /** Waits until something listens on `port` inside a host (tcp or udp, via `ss`). */
  async waitForListen(host: string, port: number, proto: 'tcp' | 'udp' = 'tcp', timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const flag = proto === 'tcp' ? '-t' : '-u';
    for (;;) {
      const r = await this.exec(host, ['ss', '-Hln', flag, `sport = :${port}`]);
      if (r.code === 0 && r.stdout.trim() !== '') return;
      if (Date.now() > deadline) throw new Error(`nothing listens on ${proto} port ${port} in ${host} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Hosts and links created so far. */
  describe(): { hosts: Record<string, string>; links: readonly LinkInfo[] } {
    return { hosts: Object.fromEntries(this.hosts), links: this.links };
  }

  /** Kills tracked processes (by PID), then deletes every namespace (which removes their veth ends). Idempotent. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await Promise.all([...this.children].map((child) => this.kill(child, 1_000)));
    const errors: string[] = this.runDeferred();
    for (const ns of this.hosts.values()) {
      const r = await execResult(['ip', 'netns', 'del', ns], 10_000);
      if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`${ns}: ${r.stderr.trim()}`);
    }
    this.hosts.clear();
    liveLabs.delete(this);
    if (errors.length > 0) throw new Error(`NetnsLab cleanup left namespaces behind: ${errors.join('; ')}`);
  }

  /** Synchronous best-effort cleanup for exit and signal handlers. */
  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    // SIGTERM first so daemons can remove what they made outside the namespace (wireguard-go's UAPI socket),
    // then SIGKILL whatever has not exited within a second. Exited children stay zombies until we return.
    const pids = [...this.children].map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
    for (const pid of pids) killPid(pid, 'SIGTERM');
    const deadline = Date.now() + 1_000;
    let running = pids.filter(isRunning);
    while (running.length > 0 && Date.now() < deadline) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      running = running.filter(isRunning);
    }
    for (const pid of running) killPid(pid, 'SIGKILL');
    this.runDeferred();
    for (const ns of this.hosts.values()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Best effort: the process is going away.
      }
    }
    this.hosts.clear();
    liveLabs.delete(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup();
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  private runDeferred(): string[] {
    const errors: string[] = [];
    for (const action of this.deferred.splice(0).reverse()) {
      try {
        action();
      } catch (err) {
        errors.push(`deferred cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return errors;
  }

  private name(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    if (name.length > MAX_NAME_LENGTH) {
      throw new Error(`NetnsLab: '${name}' is longer than ${MAX_NAME_LENGTH} characters; use a shorter host name or tag`);
    }
    return name;
  }

  private assertLive(): void {
    if (this.cleaned) throw new Error('NetnsLab: used after cleanup');
  }

  private async run(argv: readonly string[]): Promise<void> {
    const r = await execResult(argv, 30_000);
    if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` exited ${r.code}: ${r.stderr.trim()}`);
  }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Whether a process exists and is not a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function execResult(argv: readonly string[], timeoutMs: number, onStart?: (child: ChildProcess) => void): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.resolve({ code: -1, stdout: '', stderr: 'empty argv' });
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr: stderr || err.message });
    });
    onStart?.(child);
  });
}

function stderrOf(err: unknown): string {
  const stderr = (err as { stderr?: Buffer | string }).stderr;
  const text = stderr === undefined ? '' : String(stderr).trim();
  return text || (err instanceof Error ? err.message : String(err));
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** Parses an IPv4 CIDR into its network address (as a 32-bit integer) and prefix length. */
export function parseCidr(cidr: string): { network: number; prefixLength: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  const prefixLength = Number(m?.[2]);
  if (m?.[1] === undefined || !(prefixLength >= 0 && prefixLength <= 30)) throw new Error(`not an IPv4 CIDR with prefix ≤ 30: '${cidr}'`);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return { network: (ipToInt(m[1]) & mask) >>> 0, prefixLength };
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: '${ip}'`);
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}

// ---------------------------------------------------------------------------------------------
// Output parsers

export interface PingSummary {
  transmitted: number;
  received: number;
  /** Packet loss in percent, 0–100. */
  lossPct: number;
  /** Summary line (absent when nothing came back). */
  rttMs?: { min: number; avg: number; max: number; mdev: number };
  /** Per-reply round-trip times in milliseconds, in arrival order. */
  timesMs: number[];
}

/** Parses iputils `ping` output. */
export function parsePing(output: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (counts === null) throw new Error(`not ping output:\n${output.slice(0, 500)}`);
  const transmitted = Number(counts[1]);
  const received = Number(counts[2]);
  const loss = /([\d.]+)% packet loss/.exec(output);
  const lossPct = loss !== null ? Number(loss[1]) : transmitted === 0 ? 0 : ((transmitted - received) / transmitted) * 100;
  const rtt = /(?:rtt|round-trip) min\/avg\/max\/(?:mdev|stddev) = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(output);
  const timesMs = [...output.matchAll(/time[=<]([\d.]+) ms/g)].map((m) => Number(m[1]));
  const summary: PingSummary = { transmitted, received, lossPct, timesMs };
  if (rtt !== null) summary.rttMs = { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]), mdev: Number(rtt[4]) };
  return summary;
}

export interface Iperf3Summary {
  protocol: 'TCP' | 'UDP';
  /** Bits per second as counted by the sender. */
  senderBps: number;
  /** Bits per second as counted by the receiver (what arrived). */
  receiverBps: number;
  /** TCP retransmits (sender side); undefined for UDP. */
  retransmits?: number;
  /** UDP only: datagrams sent, lost, loss percent and jitter (receiver's view), datagrams/s delivered. */
  udp?: { packets: number; lostPackets: number; lostPct: number; jitterMs: number; receivedPps: number };
  /** CPU use of the iperf3 processes in percent (host = the client, remote = the server). */
  cpu: { hostTotal: number; remoteTotal: number };
}

/** Parses `iperf3 --json` client output; throws with iperf3's own message when the test failed. */
export function parseIperf3(json: string): Iperf3Summary {
  let doc: Iperf3Json;
  try {
    doc = JSON.parse(json) as Iperf3Json;
  } catch {
    throw new Error(`iperf3 output is not JSON:\n${json.slice(0, 500)}`);
  }
  if (doc.error !== undefined) throw new Error(`iperf3: ${doc.error}`);
  const end = doc.end;
  if (end === undefined) throw new Error('iperf3 JSON has no "end" section');
  const protocol = doc.start?.test_start?.protocol === 'UDP' ? 'UDP' : 'TCP';
  const cpu = { hostTotal: end.cpu_utilization_percent?.host_total ?? NaN, remoteTotal: end.cpu_utilization_percent?.remote_total ?? NaN };
  if (protocol === 'TCP') {
    const sent = end.sum_sent;
    const received = end.sum_received;
    if (sent === undefined || received === undefined) throw new Error('iperf3 TCP JSON lacks sum_sent/sum_received');
    return { protocol, senderBps: sent.bits_per_second, receiverBps: received.bits_per_second, retransmits: sent.retransmits ?? 0, cpu };
  }
  // UDP: loss is the server's count, reported back to the client (`sum_received` in iperf3 ≥ 3.11, else `sum`).
  // The received rate is derived from it: iperf3 3.12 fills sum_received's byte count from the sender's side.
  const sum = end.sum_received ?? end.sum;
  const sent = end.sum_sent ?? end.sum;
  if (sum === undefined || sent === undefined) throw new Error('iperf3 UDP JSON lacks "sum"');
  const packets = sum.packets ?? 0;
  const lostPackets = Math.max(0, sum.lost_packets ?? 0);
  const delivered = packets > 0 ? (packets - lostPackets) / packets : 0;
  const seconds = sum.seconds ?? NaN;
  return {
    protocol,
    senderBps: sent.bits_per_second,
    receiverBps: sent.bits_per_second * delivered,
    udp: {
      packets,
      lostPackets,
      lostPct: packets > 0 ? (lostPackets / packets) * 100 : 100,
      jitterMs: sum.jitter_ms ?? NaN,
      receivedPps: seconds > 0 ? (packets - lostPackets) / seconds : 0,
    },
    cpu,
  };
}

interface Iperf3Sum {
  bits_per_second: number;
  seconds?: number;
  retransmits?: number;
  packets?: number;
  lost_packets?: number;
  lost_percent?: number;
  jitter_ms?: number;
}

interface Iperf3Json {
  error?: string;
  start?: { test_start?: { protocol?: string } };
  end?: {
    sum?: Iperf3Sum;
    sum_sent?: Iperf3Sum;
    sum_received?: Iperf3Sum;
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

/** Resolves when the child prints a line starting with `prefix`; rejects if it exits first or time runs out. */
export function waitForLine(child: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let errors = '';
    const timer = setTimeout(() => finish(new Error(`no "${prefix}" line within ${timeoutMs} ms; stderr: ${errors}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      const line = buffer.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) finish(undefined, line);
    };
    const onErr = (chunk: Buffer): void => {
      errors += chunk.toString();
    };
    const onExit = (code: number | null): void => finish(new Error(`exited (${code}) before "${prefix}"; stderr: ${errors}`));
    function finish(error: Error | undefined, line?: string): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(line as string);
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
