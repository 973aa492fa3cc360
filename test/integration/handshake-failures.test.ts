// Refused peers are visible: a warn log line per source per minute with the reason, and the recent failures in status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type Socket } from 'node:net';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { deriveNetworkKey } from '../../src/crypto/network-key.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { renderMetrics } from '../../src/status/metrics.js';
import type { HandshakeFailureView } from '../../src/status/handshake-failures.js';
import { FAST, testNetworkKey } from '../helpers/mesh.js';

interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

/** An overlay on loopback with a fake clock (only the test moves time) and a logger that records every entry. */
async function startOverlay(clock: FakeClock, extra: Partial<OverlayOptions> = {}): Promise<{ overlay: Overlay; logs: LogEntry[] }> {
  const logs: LogEntry[] = [];
  const log = (level: LogEntry['level']) => (fields: object, message?: string): void => {
    logs.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
  };
  const overlay = new Overlay({
    nickname: 'target',
    listen: '127.0.0.1:0',
    networkKey: await testNetworkKey(),
    discovery: false,
    ipam: false,
    dns: false,
    clock,
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    ...extra,
  });
  await overlay.start();
  return { overlay, logs };
}

/** A peer that dials only when told to: its own clock never moves, so no backoff retry happens by itself. */
async function startPeer(options: ConstructorParameters<typeof MeshRouter>[0]): Promise<MeshRouter> {
  const router = new MeshRouter({ ...FAST, clock: new FakeClock(1000), ...options });
  await router.start();
  return router;
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const failures = (overlay: Overlay, code: string): number => overlay.status().router.stats.handshakeFailures[code] ?? 0;
const warnings = (logs: LogEntry[]): LogEntry[] => logs.filter((l) => l.level === 'warn' && /handshake/.test(l.message));
const recent = (overlay: Overlay): HandshakeFailureView[] => overlay.status().handshakeFailures;

test('a peer with the wrong password: one warn line per source per minute with the reason, and the failures in status', async () => {
  const clock = new FakeClock(1000);
  const { overlay, logs } = await startOverlay(clock);
  const intruder = await startPeer({ nickname: 'intruder', networkKey: await deriveNetworkKey('not the password') });
  const target = `127.0.0.1:${overlay.router.port}`;
  try {
    intruder.connect(target);
    await waitFor('the first refusal', () => failures(overlay, 'bad-password') === 1);
    let warned = warnings(logs);
    assert.is(warned.length, 1, 'the first failure is logged at warn');
    assert.match(warned[0]?.message ?? '', /password/, 'the reason is in the message');
    assert.is(warned[0]?.fields.source, '127.0.0.1');
    assert.is(warned[0]?.fields.code, 'bad-password');

    // Two more attempts within the minute: counted, not logged again.
    const redial = async (): Promise<void> => {
      await waitFor('the intruder to give up its last attempt', () => intruder.targets()[0]?.state === 'waiting');
      intruder.connect(target);
    };
    for (const n of [2, 3]) {
      clock.advance(10_000);
      await redial();
      await waitFor(`refusal ${n}`, () => failures(overlay, 'bad-password') === n);
    }
    assert.is(warnings(logs).length, 1, 'no second warning within a minute from the same source');
    assert.ok(logs.some((l) => l.level === 'debug' && l.fields.code === 'bad-password'), 'suppressed failures still reach debug');

    let list = recent(overlay);
    assert.is(list.length, 1, JSON.stringify(list));
    const entry = list[0] as HandshakeFailureView;
    assert.is(entry.source, '127.0.0.1');
    assert.match(entry.address, /^127\.0\.0\.1:\d+$/);
    assert.is(entry.peer, undefined, 'the peer cannot be known: its feature record did not decrypt');
    assert.is(entry.code, 'bad-password');
    assert.match(entry.reason, /network password differs/);
    assert.is(entry.count, 3);
    assert.is(entry.lastAgoMs, 0);
    assert.is(entry.firstAgoMs, 20_000);

    // A minute after the warning, the next failure is logged again with how many were not.
    clock.advance(45_000);
    await redial();
    await waitFor('refusal 4', () => failures(overlay, 'bad-password') === 4);
    warned = warnings(logs);
    assert.is(warned.length, 2, 'one more warning after the minute');
    assert.is(warned[1]?.fields.suppressed, 2, 'the warning says how many failures were not logged');
    list = recent(overlay);
    assert.is(list[0]?.count, 4);
    assert.is(list[0]?.firstAgoMs, 65_000);

    const metrics = renderMetrics(overlay.status());
    assert.match(metrics, /^weave_handshake_failure_sources\{reason="bad-password"\} 1$/m);
  } finally {
    await intruder.stop();
    await overlay.stop();
  }
});

test('an encryption mismatch and a peer name collision are each logged and listed per source, with the peer when known', async () => {
  const clock = new FakeClock(1000);
  const { overlay, logs } = await startOverlay(clock);
  const plain = await startPeer({ nickname: 'plain', listen: '127.0.0.2:0' });
  const twin = await startPeer({ nickname: 'twin', listen: '127.0.0.3:0', name: overlay.self.id, networkKey: await testNetworkKey() });
  try {
    overlay.connect(`127.0.0.2:${plain.port}`);
    overlay.connect(`127.0.0.3:${twin.port}`);
    await waitFor('both refusals', () => failures(overlay, 'crypto-mismatch') === 1 && failures(overlay, 'name-collision') === 1);
    const warned = warnings(logs);
    assert.equal(warned.map((w) => [w.fields.source, w.fields.code]).sort(), [['127.0.0.2', 'crypto-mismatch'], ['127.0.0.3', 'name-collision']]);
    assert.match(warned.find((w) => w.fields.code === 'crypto-mismatch')?.message ?? '', /set the same password on every peer/);

    const list = recent(overlay);
    assert.equal(list.map((f) => f.source).sort(), ['127.0.0.2', '127.0.0.3']);
    const collision = list.find((f) => f.code === 'name-collision');
    assert.is(collision?.peer, overlay.self.id, 'the peer is named when the handshake got far enough');
    assert.is(collision?.address, `127.0.0.3:${twin.port}`);
    assert.is(list.find((f) => f.code === 'crypto-mismatch')?.peer, undefined);
  } finally {
    await plain.stop();
    await twin.stop();
    await overlay.stop();
  }
});

function rawSocket(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.on('error', reject);
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

test('an unreachable target and a silent socket stay at debug; a peer that sent part of a handshake and stalled warns', async () => {
  const clock = new FakeClock(1000);
  const { overlay, logs } = await startOverlay(clock, { tuning: { connection: { handshakeTimeoutMs: 5_000 } } });
  const sockets: Socket[] = [];
  try {
    overlay.connect(`127.0.0.1:${await closedPort()}`);
    await waitFor('the refused dial', () => failures(overlay, 'closed') === 1);
    overlay.forget(overlay.router.targets()[0]?.address ?? ''); // no redial when time moves on

    const silent = await rawSocket(overlay.router.port, '127.0.0.4');
    const stalled = await rawSocket(overlay.router.port, '127.0.0.5');
    sockets.push(silent, stalled);
    stalled.write(Buffer.from([0x57, 0x56])); // the first two bytes of the magic, then nothing
    await new Promise((resolve) => setTimeout(resolve, 250)); // let the bytes arrive before time moves
    clock.advance(5_000);
    await waitFor('both handshake deadlines', () => failures(overlay, 'handshake-timeout') === 2);

    const warned = warnings(logs);
    assert.is(warned.length, 1, JSON.stringify(warned));
    assert.is(warned[0]?.fields.source, '127.0.0.5');
    assert.is(warned[0]?.fields.code, 'handshake-timeout');
    assert.equal(recent(overlay).map((f) => [f.source, f.code]), [['127.0.0.5', 'handshake-timeout']]);
    const debug = logs.filter((l) => l.level === 'debug' && l.message === 'connection failed');
    assert.equal(debug.map((l) => l.fields.code).sort(), ['closed', 'handshake-timeout'], 'the routine failures are at debug');
  } finally {
    for (const s of sockets) s.destroy();
    await overlay.stop();
  }
});

test.run();
