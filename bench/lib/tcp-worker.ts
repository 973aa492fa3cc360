// The measuring process of bench:tcp (started by bench/tcp.ts, with --expose-gc, inside the lab's host namespace
// when it runs as root). For each MTU it builds one setup: two Overlay peers in this process linked over loopback
// UDP with a password, each with an in-process endpoint and, when namespaces were given, one attached kernel
// namespace; then measures (a) in-process ↔ in-process, (b) in-process ↔ kernel namespace, (c) namespace ↔ namespace
// (iperf3). Writes a TcpWorkerResult as JSON to the path in its config and exits; every child it starts is killed
// on the way out, also on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { Overlay } from '../../src/overlay.js';
import type { MemoryEndpoint } from '../../src/endpoint/memory-endpoint.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { parseIperf3 } from '../../test/helpers/netns.js';

/** What bench/tcp.ts asks of the worker. */
export interface TcpWorkerConfig {
  mtus: number[];
  seconds: number;
  requestSeconds: number;
  repeats: number;
  idleConnections: number;
  httpConcurrency: number[];
  setupConcurrency: number;
  /** Prefix for the bridges (`<prefix>a`, `<prefix>b`). */
  prefix: string;
  /** Namespaces to attach (one per overlay), or undefined to skip the kernel parts. */
  netns?: { a: string; b: string } | undefined;
  /** Why the kernel parts are skipped, when they are. */
  kernelSkip?: string | undefined;
  /** Only these metric keys (empty: all), e.g. for profiling one path. */
  only: string[];
  out: string;
}

/** Raw repeats of each metric for one MTU, keyed like 'a.mbps'. */
export interface TcpWorkerMtuResult {
  mtu: number;
  runs: Record<string, number[]>;
  errors: Record<string, string>;
}

export interface TcpWorkerResult {
  results: TcpWorkerMtuResult[];
  node: string;
}

const ADDR = { memA: '10.251.9.1', memB: '10.251.9.2', nsA: '10.251.9.11', nsB: '10.251.9.12', prefixLength: 24 } as const;
const PASSWORD = 'weave-ts tcp benchmark password';
const toolPath = new URL('./tcp-ns-tool.js', import.meta.url).pathname;

const children = new Set<ChildProcess>();

/** UDP receive-buffer overflows in this namespace (/proc/net/snmp), to tell sleeve drops from TCP trouble. */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = lines.map((l) => l.trim().split(/\s+/));
    const i = names?.indexOf('RcvbufErrors') ?? -1;
    return i < 0 ? NaN : Number(values?.[i]);
  } catch {
    return NaN;
  }
}

/** What a throughput test saw besides its rate: the sending endpoint's retransmissions and the sleeve's drops. */
interface Diagnostics {
  value: number;
  extra: Record<string, number>;
}

function diagnose(sender: MemoryEndpoint | undefined): (mbps: number, seconds: number) => Record<string, number> {
  const before = sender?.tcpStats();
  const drops = udpRcvbufErrors();
  const cpu = process.cpuUsage();
  return (mbps: number, seconds: number) => {
    const after = sender?.tcpStats();
    const used = process.cpuUsage(cpu);
    // CPU of this process (both overlays, the in-process endpoints) per MB delivered: less sensitive than Mbit/s
    // to other load on the machine, so optimisations compare on a busy one.
    const megabytes = (mbps * seconds) / 8;
    const extra: Record<string, number> = {
      cpuMsPerMB: Math.round(((used.user + used.system) / 1000 / megabytes) * 100) / 100,
      udpRcvbufErrors: udpRcvbufErrors() - drops,
    };
    if (before && after) {
      extra.segmentsOut = after.segmentsOut - before.segmentsOut;
      extra.retransmits = after.retransmits - before.retransmits;
      extra.timeouts = after.timeouts - before.timeouts;
      extra.fastRetransmits = after.fastRetransmits - before.fastRetransmits;
    }
    return extra;
  };
}

function nsSpawn(ns: string, argv: readonly string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killChildren(): void {
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
}

/** Collects a child's stdout; resolves with it when the child exits, rejects on a non-zero exit. */
function output(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child timed out after ${timeoutMs} ms: ${err.trim()}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0 || out.trim() !== '') resolve(out);
      else reject(new Error(`child exited ${code}: ${err.trim()}`));
    });
  });
}

function waitReady(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no READY within ${timeoutMs} ms`)), timeoutMs);
    const onData = (c: Buffer): void => {
      buffer += c.toString();
      if (buffer.includes('READY')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before READY`));
    });
  });
}

function lastJson(text: string): Record<string, number> {
  const line = text.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (line === undefined) throw new Error(`no JSON in output: ${text.slice(0, 200)}`);
  return JSON.parse(line) as Record<string, number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      emitter.off(event, onEvent);
      reject(error);
    };
    const onEvent = (value: T) => {
      emitter.off('error', onError);
      resolve(value);
    };
    emitter.once(event, onEvent);
    if (event !== 'error') emitter.once('error', onError);
  });
}

/** Sends zeros for `seconds` in 64 KiB writes as fast as the socket drains, then half-closes. */
function pump(socket: TcpSocket, seconds: number): void {
  const chunk = Buffer.alloc(64 * 1024);
  const until = performance.now() + seconds * 1000;
  const write = (): void => {
    while (performance.now() < until) {
      if (!socket.write(chunk)) {
        socket.once('drain', write);
        return;
      }
    }
    socket.end();
  };
  write();
}

let nextPort = 10_000;
const freshPort = () => nextPort++;

/** One stream between in-process endpoints: Mbit/s counted by the receiver from its accept to the sender's FIN. */

/** Reads `socket` to its end and resolves with the rate it delivered, in Mbit/s from its first moment; then ends it. */
function sinkMbps(socket: TcpSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let bytes = 0;
    socket.on('data', (c: Buffer) => (bytes += c.length));
    socket.on('end', () => {
      resolve((bytes * 8) / ((performance.now() - start) / 1000) / 1e6);
      socket.end();
    });
    socket.on('error', reject);
  });
}
async function memToMem(from: MemoryEndpoint, to: MemoryEndpoint, seconds: number): Promise<number> {
  const port = freshPort();
  let result: Promise<number> | undefined;
  const server = to.createServer((socket) => {
    result = sinkMbps(socket);
  });
  server.listen(port);
  await once(server, 'listening');
  try {
    const socket = from.connect(port, to.address);
    socket.resume();
    await once(socket, 'connect');
    pump(socket, seconds);
    await once(socket, 'close');
    if (result === undefined) throw new Error('the server saw no connection');
    return await result;
  } finally {
    server.close();
  }
}

/** In-process sender to the kernel sink in `ns`. */
async function memToNs(from: MemoryEndpoint, ns: string, nsAddress: string, seconds: number): Promise<number> {
  const port = freshPort();
  const sink = nsSpawn(ns, [process.execPath, toolPath, 'sink', String(port)]);
  const result = output(sink, (seconds + 30) * 1000);
  await waitReady(sink);
  const socket = from.connect(port, nsAddress);
  socket.resume();
  await once(socket, 'connect');
  pump(socket, seconds);
  await once(socket, 'close');
  const { bytes, ms } = lastJson(await result);
  return ((bytes ?? 0) * 8) / ((ms ?? NaN) / 1000) / 1e6;
}

/** Kernel source in `ns` to an in-process sink. */
async function nsToMem(ns: string, to: MemoryEndpoint, seconds: number): Promise<number> {
  const port = freshPort();
  let result: Promise<number> | undefined;
  const server = to.createServer({ allowHalfOpen: true }, (socket) => {
    result = sinkMbps(socket);
  });
  server.listen(port);
  await once(server, 'listening');
  try {
    const source = nsSpawn(ns, [process.execPath, toolPath, 'source', to.address, String(port), String(seconds)]);
    await output(source, (seconds + 30) * 1000);
    if (result === undefined) throw new Error('the in-process sink saw no connection');
    return await result;
  } finally {
    server.close();
  }
}

/** iperf3 between two namespaces (receiver's Mbit/s). */
async function nsToNs(client: string, server: string, serverAddress: string, seconds: number): Promise<number> {
  const port = 5201;
  const iperfServer = nsSpawn(server, ['iperf3', '-s', '-1', '-B', serverAddress, '-p', String(port)]);
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ss = await output(nsSpawn(server, ['ss', '-Hlnt', `sport = :${port}`]), 5_000).catch(() => '');
      if (ss.trim() !== '') break;
      if (Date.now() > deadline) throw new Error('iperf3 -s did not start listening');
      await sleep(50);
    }
    const out = await output(nsSpawn(client, ['iperf3', '-c', serverAddress, '-p', String(port), '-t', String(seconds), '--json']), (seconds + 30) * 1000);
    return parseIperf3(out).receiverBps / 1e6;
  } finally {
    if (iperfServer.exitCode === null) iperfServer.kill('SIGKILL');
  }
}

/** node:http on `to` (small body), EndpointHttpAgent with keep-alive on `from`: requests/s with `concurrency` in flight. */
async function httpRate(from: MemoryEndpoint, to: MemoryEndpoint, seconds: number, concurrency: number): Promise<number> {
  const port = freshPort();
  const web = http.createServer((_req, res) => res.end('ok'));
  const tcp = await to.serveHttp(web, port);
  const agent = from.httpAgent({ keepAlive: true, maxSockets: concurrency });
  try {
    const get = () =>
      new Promise<void>((resolve, reject) => {
        http
          .get({ host: to.address, port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
    // Warm the connections up first.
    await Promise.all(Array.from({ length: concurrency }, get));
    let count = 0;
    const start = performance.now();
    const until = start + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          await get();
          count++;
        }
      }),
    );
    return count / ((performance.now() - start) / 1000);
  } finally {
    agent.destroy();
    tcp.close();
    web.close();
  }
}

/**
 * Connect + close (client closes first, server answers the FIN), `concurrency` at a time: completed setups/s.
 * Each of the concurrent loops dials its own server port: the client keeps every connection in TIME-WAIT for 60 s,
 * and one destination has only 16 384 ephemeral ports (as on Linux), which a few seconds at thousands/s would use up.
 */
async function setupRate(from: MemoryEndpoint, target: { address: string; ports: number[] }, seconds: number, concurrency: number): Promise<number> {
  const one = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = from.connect(port, target.address);
      socket.on('connect', () => socket.end());
      socket.resume();
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
  let count = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      const port = target.ports[i % target.ports.length] as number;
      while (performance.now() < until) {
        await one(port);
        count++;
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}

async function memSetupRate(from: MemoryEndpoint, to: MemoryEndpoint, seconds: number, concurrency: number): Promise<number> {
  const ports = Array.from({ length: concurrency }, freshPort);
  const servers = ports.map((port) => {
    const server = to.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.resume();
      socket.on('end', () => socket.end());
    });
    server.listen(port, 1024);
    return server;
  });
  try {
    await Promise.all(servers.map((server) => once(server, 'listening')));
    return await setupRate(from, { address: to.address, ports }, seconds, concurrency);
  } finally {
    for (const server of servers) server.close();
  }
}

async function nsSetupRate(from: MemoryEndpoint, ns: string, nsAddress: string, seconds: number, concurrency: number): Promise<number> {
  const ports = Array.from({ length: concurrency }, freshPort);
  const closer = nsSpawn(ns, [process.execPath, toolPath, 'closer', ...ports.map(String)]);
  try {
    await waitReady(closer);
    return await setupRate(from, { address: nsAddress, ports }, seconds, concurrency);
  } finally {
    closer.kill('SIGKILL');
  }
}

/** Heap (and external/ArrayBuffer) bytes per idle established connection, both ends counted, after full GCs. */
async function idleMemory(from: MemoryEndpoint, to: MemoryEndpoint, count: number): Promise<{ heap: number; external: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run node with --expose-gc');
  const port = freshPort();
  const accepted: TcpSocket[] = [];
  const server = to.createServer((socket) => {
    socket.on('error', () => undefined);
    accepted.push(socket);
  });
  server.listen(port, 1024);
  await once(server, 'listening');
  const clients: TcpSocket[] = [];
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await sleep(100);
      gc();
    }
  };
  try {
    await settle();
    const before = process.memoryUsage();
    for (let done = 0; done < count; ) {
      const batch = Math.min(100, count - done);
      await Promise.all(
        Array.from({ length: batch }, () => {
          const socket = from.connect(port, to.address);
          socket.on('error', () => undefined);
          clients.push(socket);
          return once(socket, 'connect');
        }),
      );
      done += batch;
    }
    while (accepted.length < count) await sleep(20);
    await settle();
    const after = process.memoryUsage();
    return { heap: (after.heapUsed - before.heapUsed) / count, external: (after.external - before.external) / count };
  } finally {
    for (const s of clients) s.destroy();
    for (const s of accepted) s.destroy();
    server.close();
  }
}

async function withSetup(config: TcpWorkerConfig, mtu: number, body: (s: Setup) => Promise<void>): Promise<void> {
  const kernel = config.netns !== undefined;
  const common = { password: PASSWORD, listen: '127.0.0.1:0', ipam: false as const, dns: false as const, mtu };
  const a = new Overlay({ ...common, nickname: 'bench-a', bridge: `${config.prefix}a` });
  const b = new Overlay({ ...common, nickname: 'bench-b', bridge: `${config.prefix}b` });
  try {
    await a.start();
    const target = a.router.listenAddress;
    if (target === undefined) throw new Error('overlay a has no listen address');
    await b.start();
    b.connect(target);
    await b.ready({ timeoutMs: 20_000 });
    await a.ready({ timeoutMs: 20_000 });
    const memA = await a.attach({ name: 'mem-a', ip: `${ADDR.memA}/${ADDR.prefixLength}` });
    const memB = await b.attach({ name: 'mem-b', ip: `${ADDR.memB}/${ADDR.prefixLength}` });
    if (kernel && config.netns) {
      await a.attach({ name: 'ns-a', netns: config.netns.a, ip: `${ADDR.nsA}/${ADDR.prefixLength}` });
      await b.attach({ name: 'ns-b', netns: config.netns.b, ip: `${ADDR.nsB}/${ADDR.prefixLength}` });
    }
    // The first exchange over the data path (and ARP) before measuring.
    await memA.ping(ADDR.memB, { timeoutMs: 5_000 }).catch(() => undefined);
    await body({ memA, memB });
  } finally {
    await b.stop().catch(() => undefined);
    await a.stop().catch(() => undefined);
  }
}

interface Setup {
  memA: MemoryEndpoint;
  memB: MemoryEndpoint;
}

async function measureMtu(config: TcpWorkerConfig, mtu: number): Promise<TcpWorkerMtuResult> {
  const runs: Record<string, number[]> = {};
  const errors: Record<string, string> = {};
  const wanted = (key: string) => config.only.length === 0 || config.only.some((o) => key.startsWith(o));
  const record = async (key: string, measure: () => Promise<number | Diagnostics>): Promise<void> => {
    if (!wanted(key) || errors[key] !== undefined) return;
    try {
      const measured = await measure();
      const value = typeof measured === 'number' ? measured : measured.value;
      (runs[key] ??= []).push(value);
      const extra = typeof measured === 'number' ? {} : measured.extra;
      for (const [name, v] of Object.entries(extra)) (runs[`${key}:${name}`] ??= []).push(v);
      const notes = Object.entries(extra).map(([name, v]) => `${name} ${v}`).join(', ');
      process.stdout.write(`    mtu ${mtu} ${key}: ${value.toFixed(key.includes('Bytes') ? 0 : 1)}${notes ? ` (${notes})` : ''}\n`);
    } catch (error) {
      errors[key] = error instanceof Error ? error.message : String(error);
      process.stdout.write(`    mtu ${mtu} ${key}: failed: ${errors[key]}\n`);
    }
  };
  await withSetup(config, mtu, async ({ memA, memB }) => {
    const ns = config.netns;
    for (let r = 0; r < config.repeats; r++) {
      process.stdout.write(`  mtu ${mtu}, repeat ${r + 1}/${config.repeats}\n`);
      const withDiagnostics = (sender: MemoryEndpoint | undefined, run: () => Promise<number>) => async (): Promise<Diagnostics> => {
        const start = performance.now();
        const done = diagnose(sender);
        const value = await run();
        return { value, extra: done(value, (performance.now() - start) / 1000) };
      };
      await record('a.mbps', withDiagnostics(memA, () => memToMem(memA, memB, config.seconds)));
      if (ns) {
        await record('b.outMbps', withDiagnostics(memA, () => memToNs(memA, ns.b, ADDR.nsB, config.seconds)));
        await record('b.inMbps', withDiagnostics(undefined, () => nsToMem(ns.a, memB, config.seconds)));
        await record('c.mbps', withDiagnostics(undefined, () => nsToNs(ns.a, ns.b, ADDR.nsB, config.seconds)));
      }
      for (const c of config.httpConcurrency) await record(`a.httpRps${c}`, () => httpRate(memA, memB, config.requestSeconds, c));
      await record('a.setupsPerS', () => memSetupRate(memA, memB, config.requestSeconds, config.setupConcurrency));
      if (ns) await record('b.setupsPerS', () => nsSetupRate(memA, ns.b, ADDR.nsB, config.requestSeconds, config.setupConcurrency));
    }
    // Memory once per MTU: it hardly varies, and 1 000 connections take a while to open and close.
    let memory: Promise<{ heap: number; external: number }> | undefined;
    const idle = () => (memory ??= idleMemory(memA, memB, config.idleConnections));
    await record('a.idleHeapBytes', async () => (await idle()).heap);
    await record('a.idleExternalBytes', async () => (await idle()).external);
  });
  return { mtu, runs, errors };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as TcpWorkerConfig;
  process.on('SIGTERM', () => {
    killChildren();
    process.exit(143);
  });
  process.on('exit', killChildren);
  const results: TcpWorkerMtuResult[] = [];
  for (const mtu of config.mtus) results.push(await measureMtu(config, mtu));
  const result: TcpWorkerResult = { results, node: process.version };
  writeFileSync(config.out, JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`tcp worker failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killChildren();
    process.exit(1);
  },
);
