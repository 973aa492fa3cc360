// DNS servers under test for bench:dns: dnsmasq (the reference ceiling) and weave-ts, each in its own process on loopback.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { waitForLine } from '../../test/helpers/netns.js';

/** A running server: where to query it and the process that answers. */
export interface DnsEndpoint {
  host: string;
  port: number;
  pid: number;
}

export interface DnsSystem {
  name: string;
  /** Why the system cannot run here, or undefined when it can. */
  unavailable(): string | undefined;
  /** Starts the server serving the names of `hostsPath` (dnsmasq) or the same table from memory (weave-ts). */
  start(files: { dir: string; hostsPath: string; names: number }): Promise<DnsEndpoint>;
  /** Stops the server by its PID (SIGTERM, SIGKILL after 3 s); safe to call when it never started. */
  stop(): Promise<void>;
}

/** Every process bench:dns started (servers, dnsperf) and has not yet seen exit, killed by the exit/signal backstop. */
const live = new Set<ChildProcess>();
let backstopInstalled = false;

/** Kills `child` (by its PID) if bench:dns exits or is interrupted before the child exits. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (backstopInstalled) return;
  backstopInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      for (const c of live) c.kill('SIGKILL');
      process.exit(code);
    });
  }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** A port free for both UDP and TCP on `host` right now (bound to 0, then released). */
export async function freePort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: host, port: 0 }, () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const tcp = createServer();
      tcp.once('error', () => resolve(false));
      tcp.listen({ host, port, exclusive: true }, () => tcp.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
  throw new Error(`no port free for both UDP and TCP on ${host}`);
}

/**
 * dnsmasq in the foreground, answering from an additional hosts file only: no resolv.conf, no /etc/hosts, no
 * upstream, bound to one loopback address. `--local-ttl` matches weave-ts's TTL; the cache is the largest allowed.
 */
export function dnsmasq(host = '127.0.0.1'): DnsSystem {
  let child: ChildProcess | undefined;
  return {
    name: 'dnsmasq',
    unavailable() {
      return spawnSync('dnsmasq', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'dnsmasq not installed (apt-get install dnsmasq)';
    },
    async start({ hostsPath }) {
      const port = await freePort(host);
      const argv = [
        '--keep-in-foreground',
        '--no-resolv',
        '--no-hosts',
        `--addn-hosts=${hostsPath}`,
        `--listen-address=${host}`,
        `--port=${port}`,
        '--bind-interfaces',
        '--cache-size=10000',
        '--local-ttl=5',
        '--pid-file=',
        '--log-facility=-',
      ];
      const proc = spawn('dnsmasq', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      track(proc);
      // dnsmasq logs to stderr with --log-facility=-; `read FILE - N names` means the hosts file is loaded and sockets are bound.
      await waitForStderr(proc, /read .* - \d+ names/, 10_000);
      if (proc.pid === undefined) throw new Error('dnsmasq did not start');
      return { host, port, pid: proc.pid };
    },
    async stop() {
      await stopChild(child);
      child = undefined;
    },
  };
}

/** weave-ts's DnsServer in a child Node process (bench/lib/dns-server-runner.ts), so it has an event loop to itself. */
export function weaveTs(host = '127.0.0.1'): DnsSystem {
  let child: ChildProcess | undefined;
  const runner = new URL('./dns-server-runner.js', import.meta.url).pathname;
  return {
    name: 'weave-ts',
    unavailable() {
      return existsSync(runner) ? undefined : `${runner} is missing (run npm run build)`;
    },
    async start({ names }) {
      const proc = spawn(process.execPath, [runner, host, String(names)], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      track(proc);
      const line = await waitForLine(proc, 'READY', 15_000);
      const port = Number(line.split(' ')[1]);
      if (!Number.isInteger(port) || port <= 0 || proc.pid === undefined) throw new Error(`weave-ts runner: bad READY line '${line}'`);
      return { host, port, pid: proc.pid };
    },
    async stop() {
      await stopChild(child);
      child = undefined;
    },
  };
}

/** Every system, in report order: the ceiling first, then ours. */
export function allDnsSystems(): DnsSystem[] {
  return [dnsmasq(), weaveTs()];
}

function waitForStderr(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => finish(new Error(`no ${pattern.source} on stderr within ${timeoutMs} ms:\n${text}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (pattern.test(text)) finish();
    };
    const onExit = (code: number | null): void => finish(new Error(`exited (${code}) before starting:\n${text}`));
    function finish(error?: Error): void {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining so a chatty server never blocks on a full pipe.
      child.stderr?.resume();
      if (error) reject(error);
      else resolve();
    }
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}
