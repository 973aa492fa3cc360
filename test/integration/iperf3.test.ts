// The iperf3 control protocol in TypeScript (weave-ts/testing) against the real iperf3 3.x on loopback, against itself
// over in-process endpoints, and its parsers under fuzzing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fc from 'fast-check';
import { DecodeError, ConnectionError, OptionsError } from '../../src/errors.js';
import {
  createTestMesh,
  decodeIperf3Parameters,
  decodeIperf3Results,
  encodeIperf3Json,
  iperf3Client,
  iperf3Server,
  Iperf3State,
  IPERF3_COOKIE_SIZE,
} from '../../src/testing/index.js';
import { hasCommand, parseIperf3, waitForLine } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';

const LOOPBACK = '127.0.0.1';
const iperf3Missing = hasCommand('iperf3') ? '' : 'iperf3 is not installed (scripts/install-test-deps.sh installs it)';
if (iperf3Missing) console.log(`tests against the real iperf3 skipped: ${iperf3Missing}`);
const realTest = iperf3Missing === '' ? test : test.skip;

const children = new Set<ChildProcess>();

/** `iperf3 -s -1` on loopback; resolves once it listens. */
async function realServer(port: number): Promise<ChildProcess> {
  const child = spawn('iperf3', ['-s', '-1', '-B', LOOPBACK, '-p', String(port), '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  await waitForLine(child, 'Server listening', 10_000);
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** `iperf3 -c` on loopback with --json; resolves with its output. */
function realClient(port: number, extra: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('iperf3', ['-c', LOOPBACK, '-p', String(port), '--json', ...extra], { timeout: 60_000 }, (error, stdout) => {
      if (error && stdout === '') reject(error);
      else resolve(stdout);
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
  });
}

realTest('iperf3Client against iperf3 -s: a 1 s test, the reverse direction and a byte-limited test', async () => {
  const port = await freePort();
  let server = await realServer(port);
  const forward = await iperf3Client(net, { host: LOOPBACK, port, seconds: 1 });
  assert.is(await exited(server), 0, 'iperf3 -s -1 exits cleanly after the test');
  assert.ok(forward.sentBytes > 1_000_000, `sent ${forward.sentBytes} bytes`);
  assert.ok(forward.receivedBytes > 0 && forward.receivedBytes <= forward.sentBytes, `the server received ${forward.receivedBytes} of ${forward.sentBytes}`);
  assert.ok(forward.seconds >= 0.9 && forward.seconds < 5, `ran ${forward.seconds} s`);
  assert.is(forward.reverse, false);
  assert.is(forward.peerResults.streams.length, 1);
  assert.is(forward.peerResults.streams[0]?.id, 1);

  server = await realServer(port);
  const reverse = await iperf3Client(net, { host: LOOPBACK, port, seconds: 1, reverse: true });
  assert.is(await exited(server), 0);
  assert.is(reverse.reverse, true);
  assert.ok(reverse.receivedBytes > 1_000_000, `received ${reverse.receivedBytes} bytes from the server`);
  assert.ok(reverse.sentBytes >= reverse.receivedBytes, `the server says it sent ${reverse.sentBytes}`);
  assert.ok(reverse.receiverBitsPerSecond > 0);

  server = await realServer(port);
  const counted = await iperf3Client(net, { host: LOOPBACK, port, bytes: 3_000_000, blockSize: 100_000 });
  assert.is(await exited(server), 0);
  assert.is(counted.sentBytes, 3_000_000, 'exactly the requested bytes are sent');
});

realTest('iperf3 -c against iperf3Server: both directions, reports agree', async () => {
  const port = await freePort();
  const server = await iperf3Server(net, { port, host: LOOPBACK });
  try {
    assert.is(server.port, port);
    const next = server.nextTest();
    const forward = parseIperf3(await realClient(port, ['-t', '1']));
    const seen = await next;
    assert.ok(forward.receiverBps > 1e6, `iperf3 says the server received at ${forward.receiverBps} bit/s`);
    assert.is(seen.reverse, false);
    assert.is(seen.parameters.time, 1);
    assert.is(seen.parameters.parallel, 1);
    assert.ok(seen.receivedBytes > 0 && seen.receivedBytes <= seen.sentBytes, `server received ${seen.receivedBytes} of ${seen.sentBytes}`);

    const nextReverse = server.nextTest();
    const reverse = parseIperf3(await realClient(port, ['-t', '1', '-R']));
    const seenReverse = await nextReverse;
    assert.is(seenReverse.reverse, true);
    assert.ok(reverse.receiverBps > 1e6, `iperf3 -R received at ${reverse.receiverBps} bit/s`);
    assert.ok(seenReverse.sentBytes > 0);
    assert.is(server.errors.length, 0, server.errors.map(String).join('; '));
  } finally {
    await server.close();
  }
});

test('iperf3Client against iperf3Server between in-process endpoints of a test mesh, both directions', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const sink = await mesh.overlay('b').attach({ name: 'sink' });
  const source = await mesh.overlay('a').attach({ name: 'source' });
  const server = await iperf3Server(sink, { port: 5201 });
  try {
    const next = server.nextTest();
    const forward = await iperf3Client(source, { host: 'sink', bytes: 4_000_000 });
    assert.is(forward.sentBytes, 4_000_000);
    const seen = await next;
    assert.is(seen.receivedBytes, forward.receivedBytes, 'both sides report what the server received');
    const nextReverse = server.nextTest();
    const reverse = await iperf3Client(source, { host: 'sink', seconds: 1, reverse: true });
    assert.ok(reverse.receivedBytes > 0, `received ${reverse.receivedBytes}`);
    assert.is((await nextReverse).sentBytes, reverse.sentBytes);
    assert.is(server.tests.length, 2);
  } finally {
    await server.close();
  }
});

test('a second client while a test runs gets ACCESS_DENIED; a client that sends garbage ends only its own test', async () => {
  const port = await freePort();
  const server = await iperf3Server(net, { port, host: LOOPBACK });
  try {
    const firstDone = server.nextTest();
    const first = iperf3Client(net, { host: LOOPBACK, port, seconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = await iperf3Client(net, { host: LOOPBACK, port, seconds: 1 }).catch((error: unknown) => error);
    assert.instance(second, ConnectionError);
    assert.is((second as ConnectionError).code, 'protocol');
    assert.match((second as Error).message, /ACCESS_DENIED/);
    assert.ok((await first).sentBytes > 0);
    assert.ok((await firstDone).receivedBytes > 0);

    // Cookie, then a JSON length of 4 GiB: refused without allocating it.
    const raw = net.connect({ port, host: LOOPBACK }).on('error', () => undefined);
    const failed = server.nextTest().catch((error: unknown) => error);
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(Buffer.alloc(IPERF3_COOKIE_SIZE, 0x61));
    raw.write(Buffer.of(0xff, 0xff, 0xff, 0xff));
    const error = await failed;
    assert.instance(error, DecodeError);
    assert.is((error as DecodeError).code, 'too-large');
    raw.destroy();

    // The server still serves the next client.
    assert.ok((await iperf3Client(net, { host: LOOPBACK, port, bytes: 100_000 })).sentBytes === 100_000);
  } finally {
    await server.close();
  }
});

test('a refused connection and a server that closes early reject the client', async () => {
  const port = await freePort();
  const refused = await iperf3Client(net, { host: LOOPBACK, port, seconds: 1 }).catch((error: unknown) => error);
  assert.is((refused as { code?: string }).code, 'ECONNREFUSED');

  const rude = net.createServer((socket) => socket.once('data', () => socket.end(Buffer.of(Iperf3State.SERVER_TERMINATE))));
  await new Promise<void>((resolve) => rude.listen(port, LOOPBACK, resolve));
  try {
    const error = await iperf3Client(net, { host: LOOPBACK, port, seconds: 1 }).catch((e: unknown) => e);
    assert.instance(error, ConnectionError);
    assert.is((error as ConnectionError).code, 'closed');
  } finally {
    await new Promise((resolve) => rude.close(resolve));
  }
});

test('bad client options are an OptionsError', async () => {
  for (const options of [{ seconds: 0 }, { seconds: 1.5 }, { bytes: -1 }, { seconds: 1, blockSize: 0 }]) {
    const error = await iperf3Client(net, { host: LOOPBACK, port: 1, ...options }).catch((e: unknown) => e);
    assert.instance(error, OptionsError, JSON.stringify(options));
  }
});

test('parameters and results decode as iperf3 writes them and reject what it would not accept', () => {
  const params = decodeIperf3Parameters('{"tcp":true,"omit":0,"time":10,"num":0,"blockcount":0,"parallel":1,"len":131072,"pacing_timer":1000,"client_version":"3.12"}');
  assert.equal(params, { time: 10, bytes: 0, parallel: 1, reverse: false, blockSize: 131072, omit: 0, clientVersion: '3.12' });
  assert.is(decodeIperf3Parameters('{"tcp":true,"reverse":true}').reverse, true);
  const results = decodeIperf3Results(
    '{"cpu_util_total":1.5,"cpu_util_user":0.5,"cpu_util_system":1,"sender_has_retransmits":1,"congestion_used":"cubic","streams":[{"id":1,"bytes":1000,"retransmits":3,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1.0}]}',
  );
  assert.equal(results, { cpu: { total: 1.5, user: 0.5, system: 1 }, senderHasRetransmits: 1, congestionUsed: 'cubic', streams: [{ id: 1, bytes: 1000, retransmits: 3, seconds: 1 }] });
  const frame = encodeIperf3Json({ a: 1 });
  assert.is(frame.readUInt32BE(0), frame.length - 4);
  for (const bad of ['', '[]', 'null', '{"udp":true}', '{"parallel":0}', '{"time":-1}', '{"len":1.5}', '{"bidirectional":true}']) {
    assert.throws(() => decodeIperf3Parameters(bad), (e: unknown) => e instanceof DecodeError, bad);
  }
  for (const bad of ['{}', '{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":1,"sender_has_retransmits":0}', '{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[{"id":1}]}']) {
    assert.throws(() => decodeIperf3Results(bad), (e: unknown) => e instanceof DecodeError, bad);
  }
});

test('fuzz: any text or JSON value gives parameters/results or a DecodeError, nothing else', () => {
  const onlyDecodeErrors = (decode: (text: string) => unknown, text: string): void => {
    try {
      decode(text);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
    }
  };
  const texts = fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.dictionary(fc.constantFrom('tcp', 'time', 'num', 'parallel', 'len', 'omit', 'reverse', 'udp', 'streams', 'id', 'bytes', 'cpu_util_total', 'sender_has_retransmits'), fc.jsonValue()).map((v) => JSON.stringify(v)));
  fc.assert(
    fc.property(texts, (text) => {
      onlyDecodeErrors(decodeIperf3Parameters, text);
      onlyDecodeErrors(decodeIperf3Results, text);
    }),
    { numRuns: 3000 },
  );
});

test('no iperf3 process of these tests is left running', () => {
  for (const child of children) child.kill('SIGKILL');
  assert.is(children.size, 0, 'every iperf3 exited by itself');
});

test.run();
