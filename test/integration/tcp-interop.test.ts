// The in-process TCP against Linux TCP through the overlay, in real network namespaces (root; skipped elsewhere with
// the reason): curl, python3's http.server, undici fetch, iperf3 and socat on one side, in-process endpoints on the
// other, all by overlay name.
//
// An Overlay makes a bridge, a TAP and an exposed address in the namespace it runs in, so this file runs twice: the
// outer run (the test runner's process) creates two namespaces, `h` for the overlay and `n` to attach, then runs
// itself inside `h` (WTI_INTEROP_INNER=1), where the tests run; afterwards it kills whatever is left in both
// namespaces (by PID, from `ip netns pids`), deletes them and checks that nothing named `wti…` is left.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, createReadStream } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch } from 'undici';
import { Overlay, type NetnsEndpoint } from '../../src/overlay.js';
import type { MemoryEndpoint } from '../../src/endpoint/memory-endpoint.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { iperf3Client, iperf3Server } from '../../src/testing/iperf3.js';
import { NetnsLab, leftovers, parseIperf3, tapNamespaceSkipReason } from '../helpers/netns.js';
import { NamespaceProcesses } from '../helpers/netns-processes.js';

const INNER = process.env['WTI_INTEROP_INNER'] === '1';
const NAME_PREFIX = 'wti';
const COMMANDS = ['curl', 'iperf3', 'socat', 'python3', 'ss'];

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

if (INNER) await innerTests();
else await outerRun();

// ---------------------------------------------------------------------------------------------
// Outer run: namespaces, the inner run, clean-up.

async function outerRun(): Promise<void> {
  const skip = tapNamespaceSkipReason(COMMANDS);
  if (skip !== '') {
    console.log(`TCP interop tests skipped: ${skip}; CI runs them as root`);
    test.skip('in-process TCP against Linux TCP in namespaces', () => undefined);
    test.run();
    return;
  }
  const lab = new NetnsLab('x', { namePrefix: NAME_PREFIX });
  let code: number | null = 1;
  try {
    await lab.addHost('h');
    const netns = await lab.addHost('n');
    // Anything still running in our namespaces (a server the inner run could not stop) is ours: stop it by PID.
    // Deferred, so the exit/signal backstop of the lab does it too.
    lab.defer(() => {
      for (const host of ['h', 'n']) killEverythingIn(lab.ns(host));
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'wti-interop-data-'));
    const scratch = mkdtempSync(join(tmpdir(), 'wti-interop-files-'));
    lab.defer(() => {
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(scratch, { recursive: true, force: true });
      rmSync(join('/etc/netns', netns), { recursive: true, force: true });
    });
    const inner = lab.spawn('h', [process.execPath, '--enable-source-maps', fileURLToPath(import.meta.url)], {
      WTI_INTEROP_INNER: '1',
      WTI_INTEROP_NETNS: netns,
      WTI_INTEROP_BRIDGE: `${lab.prefix}b`,
      WTI_INTEROP_DATA: dataDir,
      WTI_INTEROP_FILES: scratch,
    });
    inner.stdout?.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    inner.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    const limit = setTimeout(() => {
      console.log('!! the inner run did not finish within 240 s; killing it');
      void lab.kill(inner, 1_000);
    }, 240_000);
    code = await new Promise<number | null>((resolve) => inner.once('exit', (c) => resolve(c)));
    clearTimeout(limit);
  } catch (error) {
    console.error('TCP interop: setting up the namespaces failed:', error);
  } finally {
    await lab.cleanup().catch((error: unknown) => {
      console.error(String(error));
      code = 1;
    });
    const left = leftovers(NAME_PREFIX);
    if (left.namespaces.length > 0 || left.links.length > 0) {
      console.error(`TCP interop left behind: ${JSON.stringify(left)}`);
      code = 1;
    }
  }
  process.exitCode = code ?? 1;
}

/** SIGKILLs every process in a namespace (`ip netns pids`): only processes this test started live there. */
function killEverythingIn(netns: string): void {
  let pids: string[] = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter((p) => /^\d+$/.test(p));
  } catch {
    return; // the namespace is gone already
  }
  for (const pid of pids) {
    console.log(`TCP interop: killing leftover process ${pid} in ${netns}`);
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Inner run: inside namespace h, an Overlay with namespace n attached (as `web`) and an in-process endpoint `api`.

async function innerTests(): Promise<void> {
  const env = (name: string): string => {
    const value = process.env[name];
    if (value === undefined) throw new Error(`${name} is not set (the outer run sets it)`);
    return value;
  };
  const netns = env('WTI_INTEROP_NETNS');
  const files = env('WTI_INTEROP_FILES');
  const ns = new NamespaceProcesses(netns);
  const overlay = new Overlay({ password: 'tcp interop test', peers: [], dataDir: env('WTI_INTEROP_DATA'), bridge: env('WTI_INTEROP_BRIDGE') });
  let api: MemoryEndpoint;
  let webAddress: string;
  let web: NetnsEndpoint | undefined;

  test.before(async () => {
    await overlay.start();
    await overlay.ready();
    web = await overlay.attach({ name: 'web', netns });
    webAddress = web.info.address.split('/')[0] as string;
    api = await overlay.attach({ name: 'api' });
    console.log(`  overlay: web (namespace ${netns}) is ${web.info.address}, api (in-process) is ${api.info.address}, mtu ${api.info.mtu}`);
  });

  test.after(async () => {
    await ns.stopAll();
    if (web) await overlay.detach(web).catch((error: unknown) => console.error('detach failed:', error));
    await overlay.stop();
  });

  test('curl in the namespace reaches a node:http server on the in-process endpoint by name: GET, 8 MB down, 8 MB up', async () => {
    const blob = randomBytes(8 << 20);
    const server = http.createServer((req, res) => {
      if (req.url === '/blob') return void res.end(blob);
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      req.on('end', () => res.end(req.method === 'POST' ? `${bytes} ${hash.digest('hex')}\n` : `hello ${req.url} from ${req.socket.localAddress}\n`));
    });
    const tcp = await api.serveHttp(server, 8080);
    try {
      const hello = await ns.execOk(['curl', '-sS', '--max-time', '20', 'http://api.weave.local:8080/hello']);
      assert.is(hello.stdout, `hello /hello from ${api.address}\n`);
      const down = join(files, 'curl-down.bin');
      await ns.execOk(['curl', '-sS', '--max-time', '60', '-o', down, 'http://api.weave.local:8080/blob'], { timeoutMs: 70_000 });
      assert.is(sha256(readFileSync(down)), sha256(blob), '8 MB downloaded by curl, SHA-256 equal');
      const up = join(files, 'curl-up.bin');
      const upload = randomBytes(8 << 20);
      writeFileSync(up, upload);
      const posted = await ns.execOk(['curl', '-sS', '--max-time', '60', '--data-binary', `@${up}`, '-H', 'content-type: application/octet-stream', 'http://api:8080/upload'], { timeoutMs: 70_000 });
      assert.is(posted.stdout, `${upload.length} ${sha256(upload)}\n`, '8 MB uploaded by curl, SHA-256 equal');
    } finally {
      tcp.close();
      server.close();
    }
  });

  test('Linux negotiates window scaling and the overlay MSS with the in-process TCP (ss -ti in the namespace)', async () => {
    const held: TcpSocket[] = [];
    const server = api.createServer((socket) => held.push(socket.on('error', () => undefined)));
    server.listen(9002);
    const client = ns.spawn(['socat', '-u', 'TCP:api.weave.local:9002', 'OPEN:/dev/null']);
    try {
      let info = '';
      for (let i = 0; i < 100 && !/mss:/.test(info); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        info = (await ns.execOk(['ss', '-Htin', 'state', 'established', 'dst', api.address])).stdout;
      }
      console.log(`  ss -ti: ${info.replace(/\s+/g, ' ').trim()}`);
      assert.match(info, /\bwscale:7,\d+/, 'window scaling in use, our shift 7 (4 MiB receive buffer)');
      assert.match(info, new RegExp(`\\bmss:${api.info.mtu - 40}\\b`), `MSS ${api.info.mtu - 40} from the overlay MTU`);
      // (ss here prints neither `ts` nor `sack` even between two Linux sockets, so SACK is not asserted this way.)
    } finally {
      for (const socket of held) socket.end();
      server.close();
      await Promise.race([ns.exited(client), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    }
  });

  test('an in-process node:http client (endpoint.httpAgent()) downloads 8 MB from python3 -m http.server in the namespace', async () => {
    const www = join(files, 'www');
    mkdirSync(www, { recursive: true });
    const blob = randomBytes(8 << 20);
    writeFileSync(join(www, 'blob.bin'), blob);
    const python = ns.spawn(['python3', '-m', 'http.server', '8000', '--bind', '0.0.0.0', '--directory', www]);
    try {
      await ns.waitForListen(8000);
      const agent = api.httpAgent();
      const body = await new Promise<Buffer>((resolve, reject) => {
        http
          .get('http://web.weave.local:8000/blob.bin', { agent }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
          })
          .on('error', reject);
      });
      agent.destroy();
      assert.is(body.length, blob.length);
      assert.is(sha256(body), sha256(blob), 'SHA-256 equal');

      // fetch: undici's and Node's own, through endpoint.connector().
      const dispatcher = new Agent({ connect: api.connector() });
      try {
        const viaUndici = new Uint8Array(await (await undiciFetch('http://web.weave.local:8000/blob.bin', { dispatcher })).arrayBuffer());
        assert.is(sha256(viaUndici), sha256(blob), 'undici fetch: SHA-256 equal');
        const viaGlobal = await fetch(`http://${webAddress}:8000/blob.bin`, { dispatcher: dispatcher as unknown as NonNullable<RequestInit['dispatcher']> });
        assert.is(sha256(new Uint8Array(await viaGlobal.arrayBuffer())), sha256(blob), "Node's global fetch with the dispatcher: SHA-256 equal");
      } finally {
        await dispatcher.close();
      }
    } finally {
      python.kill('SIGTERM');
      await ns.exited(python);
    }
  });

  test('iperf3: iperf3Client against iperf3 -s in the namespace, both directions', async () => {
    for (const reverse of [false, true]) {
      const server = ns.spawn(['iperf3', '-s', '-1', '-p', '5201']);
      await ns.waitForListen(5201);
      const report = await iperf3Client(api, { host: 'web', seconds: 3, reverse });
      assert.is(await ns.exited(server), 0, 'iperf3 -s -1 exits 0 after the test');
      const mbps = report.receiverBitsPerSecond / 1e6;
      console.log(`  in-process ${reverse ? '<-' : '->'} iperf3 -s: ${mbps.toFixed(0)} Mbit/s received, ${report.sentBytes} sent, ${report.receivedBytes} received, retransmits ${report.peerRetransmits}`);
      assert.ok(report.seconds >= 2.9 && report.seconds < 10, `ran ${report.seconds} s`);
      assert.ok(mbps > 5, `a plausible rate: ${mbps} Mbit/s`);
      assert.ok(report.receivedBytes <= report.sentBytes && report.receivedBytes > report.sentBytes * 0.5, `received ${report.receivedBytes} of ${report.sentBytes}`);
    }
  });

  test('iperf3: iperf3 -c in the namespace against iperf3Server on the in-process endpoint, both directions', async () => {
    const sink = await iperf3Server(api, { port: 5201 });
    try {
      for (const reverse of [false, true]) {
        const next = sink.nextTest();
        const r = await ns.exec(['iperf3', '-c', 'api.weave.local', '-t', '3', '--json', ...(reverse ? ['-R'] : [])], { timeoutMs: 60_000 });
        const summary = parseIperf3(r.stdout);
        const seen = await next;
        const mbps = summary.receiverBps / 1e6;
        console.log(`  iperf3 -c ${reverse ? '-R ' : ''}against in-process: ${mbps.toFixed(0)} Mbit/s received, Linux retransmits ${summary.retransmits}`);
        assert.is(r.code, 0, r.stderr);
        assert.is(seen.reverse, reverse);
        assert.ok(mbps > 5, `a plausible rate: ${mbps} Mbit/s`);
        assert.ok(seen.receivedBytes > 0 && seen.receivedBytes <= seen.sentBytes, `server view: received ${seen.receivedBytes} of ${seen.sentBytes}`);
      }
      assert.equal(sink.errors, []);
    } finally {
      await sink.close();
    }
  });

  test('64 MB each way with socat, SHA-256 compared', async () => {
    const size = 64 << 20;
    // Namespace to in-process: socat reads a file and writes it to a TCP server on the endpoint.
    const upFile = join(files, 'socat-up.bin');
    const up = randomBytes(size);
    writeFileSync(upFile, up);
    const received = new Promise<{ bytes: number; hash: string }>((resolve, reject) => {
      const server = api.createServer((socket) => {
        const hash = createHash('sha256');
        let bytes = 0;
        socket.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        socket.on('end', () => {
          socket.end();
          server.close();
          resolve({ bytes, hash: hash.digest('hex') });
        });
        socket.on('error', reject);
      });
      server.listen(9000);
    });
    const started = Date.now();
    await ns.execOk(['socat', '-u', `OPEN:${upFile},rdonly`, 'TCP:api.weave.local:9000'], { timeoutMs: 120_000 });
    const got = await received;
    console.log(`  socat -> in-process: 64 MB in ${Date.now() - started} ms`);
    assert.equal(got, { bytes: size, hash: sha256(up) });

    // In-process to namespace: the endpoint writes to socat, which writes a file.
    const downFile = join(files, 'socat-down.bin');
    const socat = ns.spawn(['socat', '-u', 'TCP-LISTEN:9001,reuseaddr', `CREATE:${downFile}`]);
    await ns.waitForListen(9001);
    const down = randomBytes(size);
    const startedDown = Date.now();
    const socket = api.connect(9001, 'web');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        // Written in 256 KiB pieces with back-pressure, as a streaming producer would.
        let offset = 0;
        const pump = (): void => {
          while (offset < size) {
            const piece = down.subarray(offset, Math.min(size, offset + (256 << 10)));
            offset += piece.length;
            if (!socket.write(piece)) return void socket.once('drain', pump);
          }
          socket.end(() => resolve());
        };
        pump();
      });
    });
    assert.is(await ns.exited(socat), 0, 'socat exits 0');
    console.log(`  in-process -> socat: 64 MB in ${Date.now() - startedDown} ms`);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(downFile)) hash.update(chunk as Buffer);
    assert.is(hash.digest('hex'), sha256(down), 'the file socat wrote has the SHA-256 of what the endpoint sent');
    socket.destroy();
  });

  test('no process started in the namespace is left running', async () => {
    await ns.stopAll();
    assert.is(ns.running(), 0);
  });

  test.run();
}
