import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionMaker, DEFAULT_BACKOFF, type ConnectionMakerOptions, type TargetStatus } from '../../../src/mesh/connection-maker.js';
import { ConnectionError, HandshakeError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { seededRandom, type Random } from '../../../src/random.js';
import type { PeerName } from '../../../src/wire/peer-name.js';

const A = '10.0.0.1:6783';
const B = '10.0.0.2:6783';
const HOUR = 3_600_000;
const INITIAL = 2_000;
const MAX_INTERVAL = 360_000;
const EPS = 1e-6;

/** One call of the scripted dial, settled by the test. */
interface Dial {
  address: string;
  at: number;
  resolve(peer: PeerName): void;
  reject(error: unknown): void;
}

function harness(options: Partial<Omit<ConnectionMakerOptions, 'clock' | 'dial'>> = {}) {
  const clock = new FakeClock(1_000);
  const dials: Dial[] = [];
  const maker = new ConnectionMaker({
    clock,
    random: seededRandom(42),
    dial: (address) =>
      new Promise<PeerName>((resolve, reject) => {
        dials.push({ address, at: clock.now(), resolve, reject });
      }),
    ...options,
  });
  const status = (address: string): TargetStatus | undefined => maker.status().find((s) => s.address === address);
  const last = (): Dial => {
    const dial = dials[dials.length - 1];
    if (!dial) throw new Error('no dial yet');
    return dial;
  };
  return { clock, dials, maker, status, last };
}

/** Lets the maker's promise callbacks run after a dial is settled. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const transient = (): ConnectionError => new ConnectionError('closed', 'connection reset by peer');

/** A Random whose float() is always `value`, so waits are exact. */
function fixedRandom(value: number): Random {
  return { float: () => value, u64: () => 1n, fill: (b) => b.fill(0) };
}

/** The backoff interval in force at the k-th consecutive failure (k from 1). */
function expectedInterval(k: number): number {
  return Math.min(INITIAL * 1.5 ** (k - 1), MAX_INTERVAL);
}

test('the defaults are Weave\'s', () => {
  assert.equal(DEFAULT_BACKOFF, { initialIntervalMs: 2_000, factor: 1.5, maxIntervalMs: 360_000, resetAfterMs: 60_000 });
});

test('a new direct target is dialled immediately', () => {
  const { dials, maker, status } = harness();
  maker.connect(A);
  assert.is(dials.length, 1);
  assert.is(dials[0]?.address, A);
  assert.is(dials[0]?.at, 1_000);
  assert.equal(status(A), { address: A, direct: true, state: 'attempting', attempts: 1 });
  assert.equal(maker.directTargets(), [A]);
});

test('connect on a target that is being dialled does not dial it twice', () => {
  const { dials, maker } = harness();
  maker.connect(A);
  maker.connect(A);
  assert.is(dials.length, 1);
});

test('after a failure the next try comes in [i/2, 3i/2) with i = 2000 ms', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const { clock, dials, maker, status, last } = harness({ random: seededRandom(seed) });
    maker.connect(A);
    last().reject(transient());
    await flush();
    const s = status(A);
    assert.is(s?.state, 'waiting');
    assert.is(s?.lastError, 'connection reset by peer');
    const wait = s?.retryInMs ?? -1;
    assert.ok(wait >= 1_000 && wait <= 3_000, `retryInMs ${wait}`);
    clock.advance(999);
    assert.is(dials.length, 1, 'nothing before i/2');
    clock.advance(2_001);
    assert.is(dials.length, 2, 'exactly one retry by 3i/2');
    const measured = (dials[1]?.at ?? 0) - 1_000;
    assert.ok(measured >= 1_000 && measured < 3_000, `waited ${measured}`);
    assert.ok(Math.abs(measured - wait) <= 0.5, 'retryInMs is the real wait, rounded');
    assert.is(status(A)?.attempts, 2);
  }
});

test('over many failures each wait stays in [i/2, 3i/2) of an interval growing x1.5 and capped at 6 min', async () => {
  for (const seed of [7, 8, 9]) {
    const { clock, dials, maker, last } = harness({ random: seededRandom(seed) });
    maker.connect(A);
    const waits: number[] = [];
    for (let k = 1; k <= 30; k++) {
      const failedAt = clock.now();
      last().reject(transient());
      await flush();
      clock.advance(600_000); // longer than any wait may be
      assert.is(dials.length, k + 1, `one dial after failure ${k}`);
      const wait = last().at - failedAt;
      const i = expectedInterval(k);
      // EPS absorbs the rounding of fractional timestamps; it is far below any real error.
      assert.ok(wait >= i / 2 - EPS && wait < (3 * i) / 2 + EPS, `failure ${k}: waited ${wait}, interval ${i}`);
      assert.ok(wait <= 1.5 * MAX_INTERVAL, `failure ${k}: waited ${wait}`);
      waits.push(wait);
    }
    // The cap was reached (2000 * 1.5^15 > 360000), so late waits sit in [180 s, 540 s).
    assert.ok(waits.slice(20).every((w) => w >= MAX_INTERVAL / 2));
  }
});

test('with a fixed mid-point draw the waits are exactly the interval sequence', async () => {
  const { clock, maker, last } = harness({ random: fixedRandom(0.5) });
  maker.connect(A);
  const waits: number[] = [];
  for (let k = 1; k <= 20; k++) {
    const failedAt = clock.now();
    last().reject(transient());
    await flush();
    clock.advance(600_000);
    waits.push(last().at - failedAt);
  }
  assert.equal(waits, Array.from({ length: 20 }, (_, k) => expectedInterval(k + 1)));
});

test('the longest draw waits just under 1.5 x 6 min once capped', async () => {
  const { clock, maker, last } = harness({ random: fixedRandom(0.9999999) });
  maker.connect(A);
  let wait = 0;
  for (let k = 1; k <= 25; k++) {
    const failedAt = clock.now();
    last().reject(transient());
    await flush();
    clock.advance(600_000);
    wait = last().at - failedAt;
    assert.ok(wait <= 1.5 * MAX_INTERVAL, `failure ${k}: waited ${wait}`);
  }
  assert.ok(wait > 1.5 * MAX_INTERVAL - 1, `capped wait ${wait}`);
});

test('backoff options override the defaults', async () => {
  const { clock, dials, maker, last } = harness({ random: fixedRandom(0.5), backoff: { initialIntervalMs: 100, factor: 2, maxIntervalMs: 300 } });
  maker.connect(A);
  const waits: number[] = [];
  for (let k = 0; k < 4; k++) {
    const failedAt = clock.now();
    last().reject(transient());
    await flush();
    clock.advance(10_000);
    waits.push(last().at - failedAt);
  }
  assert.equal(waits, [100, 200, 300, 300]);
  assert.is(dials.length, 5);
});

test('a rejection that is not a WeaveError is retried like a transient failure', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  last().reject(new Error('ECONNREFUSED'));
  await flush();
  assert.is(status(A)?.state, 'waiting');
  assert.match(status(A)?.lastError ?? '', /ECONNREFUSED/);
  clock.advance(3_000);
  assert.is(dials.length, 2);
});

for (const code of ['connect-to-self', 'name-collision'] as const) {
  test(`a ${code} failure is never retried`, async () => {
    const { clock, dials, maker, status, last } = harness();
    maker.connect(A);
    last().reject(new HandshakeError(code, `dial failed: ${code}`));
    await flush();
    assert.equal(status(A), { address: A, direct: true, state: 'failed', attempts: 1, lastError: `dial failed: ${code}`, lastErrorCode: code });
    clock.advance(HOUR);
    assert.is(dials.length, 1);
    assert.is(clock.pending, 0, 'no timer left running');
    // Reports about other links do not revive it either.
    maker.setConnected([B], [9]);
    maker.setConnected([], []);
    clock.advance(HOUR);
    assert.is(dials.length, 1);
    assert.is(status(A)?.state, 'failed');
  });
}

test('other handshake failures, such as a wrong password, are retried', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  last().reject(new HandshakeError('bad-password', 'the network password differs'));
  await flush();
  assert.is(status(A)?.state, 'waiting');
  clock.advance(3_000);
  assert.is(dials.length, 2);
});

test('connect on a failed target tries it again at once', async () => {
  const { dials, maker, status, last } = harness();
  maker.connect(A);
  last().reject(new HandshakeError('connect-to-self', 'that is us'));
  await flush();
  maker.connect(A);
  assert.is(dials.length, 2);
  assert.is(status(A)?.state, 'attempting');
});

test('a successful dial marks the target connected and no dial happens while the link is reported', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.setConnected([A], [7]); // the router reports the link before the dial resolves
  last().resolve(7);
  await flush();
  assert.equal(status(A), { address: A, direct: true, state: 'connected', attempts: 1, peer: '00:00:00:00:00:07' });
  clock.advance(HOUR);
  maker.setConnected([A, B], [7, 8]);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
  assert.is(status(A)?.state, 'connected');
});

test('a link to the dialled peer counts even when reported under another address', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.setConnected(['192.168.1.1:6783'], [7]);
  last().resolve(7);
  await flush();
  assert.is(status(A)?.state, 'connected');
  clock.advance(HOUR);
  assert.is(dials.length, 1);
});

test('a dial that resolves but whose link is never reported counts as a link that dropped at once', async () => {
  const { clock, dials, maker, status, last } = harness({ random: fixedRandom(0.5) });
  maker.connect(A);
  last().resolve(7);
  await flush();
  assert.is(status(A)?.state, 'waiting');
  assert.is(status(A)?.retryInMs, INITIAL);
  clock.advance(INITIAL);
  assert.is(dials.length, 2);
});

test('an address reported connected before it was dialled is not dialled', () => {
  const { dials, maker, status } = harness();
  maker.connect(A);
  maker.setConnected([B], [8]);
  maker.connect(B);
  // B is a new target created 'waiting' and due now, but refresh sees the live link first.
  assert.is(dials.length, 1);
  assert.is(status(B)?.state, 'connected');
});

test('a link that stayed up at least 60 s is redialled immediately when it drops', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.setConnected([A], [7]);
  last().resolve(7);
  await flush();
  clock.advance(60_000);
  maker.setConnected([], []);
  assert.is(dials.length, 2);
  assert.is(last().at, 61_000);
  assert.is(status(A)?.state, 'attempting');
});

test('a link that was up less than 60 s waits a backoff interval before the redial', async () => {
  const { clock, dials, maker, status, last } = harness({ random: fixedRandom(0.5) });
  maker.connect(A);
  maker.setConnected([A], [7]);
  last().resolve(7);
  await flush();
  clock.advance(59_999);
  maker.setConnected([], []);
  assert.is(dials.length, 1);
  assert.is(status(A)?.state, 'waiting');
  assert.is(status(A)?.retryInMs, INITIAL);
  clock.advance(INITIAL - 1);
  assert.is(dials.length, 1);
  clock.advance(1);
  assert.is(dials.length, 2);
});

test('a short-lived link keeps the grown interval; a long-lived one resets it', async () => {
  const { clock, maker, status, last } = harness({ random: fixedRandom(0.5) });
  maker.connect(A);
  for (let k = 0; k < 3; k++) {
    last().reject(transient());
    await flush();
    clock.advance(600_000);
  }
  // Three failures: the interval is now 2000 * 1.5^3.
  maker.setConnected([A], [7]);
  last().resolve(7);
  await flush();
  clock.advance(10_000);
  maker.setConnected([], []);
  assert.is(status(A)?.retryInMs, 6_750);
  clock.advance(6_750);
  maker.setConnected([A], [7]);
  last().resolve(7);
  await flush();
  clock.advance(60_000);
  maker.setConnected([], []);
  assert.is(status(A)?.state, 'attempting', 'redialled at once');
  last().reject(transient());
  await flush();
  assert.is(status(A)?.retryInMs, INITIAL, 'the interval started again from 2 s');
});

test('connect on a waiting target cuts the wait short', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  last().reject(transient());
  await flush();
  assert.ok((status(A)?.retryInMs ?? 0) >= 1_000);
  clock.advance(500);
  maker.connect(A);
  assert.is(dials.length, 2);
  assert.is(last().at, 1_500);
  assert.is(status(A)?.state, 'attempting');
  // The old timer does not fire a second dial.
  clock.advance(10_000);
  assert.is(dials.length, 2);
});

test('forget stops redialling a waiting direct target', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  last().reject(transient());
  await flush();
  maker.forget(A);
  assert.is(status(A), undefined);
  assert.equal(maker.directTargets(), []);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
  assert.is(clock.pending, 0);
});

test('forget during a dial lets it finish but never retries it', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.forget(A);
  assert.is(status(A)?.state, 'attempting', 'kept until the dial settles');
  assert.is(status(A)?.direct, false);
  last().reject(transient());
  await flush();
  assert.is(status(A), undefined);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
});

test('forget leaves a connected link alone but does not redial it when it drops', async () => {
  const { clock, dials, maker, last } = harness();
  maker.connect(A);
  maker.setConnected([A], [7]);
  last().resolve(7);
  await flush();
  maker.forget(A);
  clock.advance(120_000);
  maker.setConnected([], []);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
});

test('a discovered address is dialled, and dropped when no longer discovered', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.setDiscovered([B]);
  assert.is(dials.length, 1);
  assert.is(dials[0]?.address, B);
  assert.is(status(B)?.direct, false);
  assert.equal(maker.directTargets(), []);
  last().reject(transient());
  await flush();
  assert.is(status(B)?.state, 'waiting');
  maker.setDiscovered([]);
  assert.is(status(B), undefined);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
});

test('a discovered address with a live link is not dialled', () => {
  const { dials, maker, status } = harness();
  maker.setConnected([B], [8]);
  maker.setDiscovered([B]);
  assert.is(dials.length, 0);
  assert.is(status(B), undefined);
});

test('a target both direct and discovered survives forget while it is still discovered', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.setDiscovered([A]);
  assert.is(dials.length, 1);
  last().reject(transient());
  await flush();
  maker.forget(A);
  assert.is(status(A)?.state, 'waiting');
  assert.is(status(A)?.direct, false);
  clock.advance(3_000);
  assert.is(dials.length, 2, 'still dialled as a discovered target');
  last().reject(transient());
  await flush();
  maker.setDiscovered([]);
  assert.is(status(A), undefined);
  clock.advance(HOUR);
  assert.is(dials.length, 2);
});

test('a direct target stays when it is no longer discovered', async () => {
  const { clock, dials, maker, status, last } = harness();
  maker.connect(A);
  maker.setDiscovered([A]);
  last().reject(transient());
  await flush();
  maker.setDiscovered([]);
  assert.is(status(A)?.direct, true);
  clock.advance(3_000);
  assert.is(dials.length, 2);
});

test('with discovery off, discovered addresses are ignored', () => {
  const { dials, maker, status } = harness({ discovery: false });
  maker.setDiscovered([B]);
  assert.is(dials.length, 0);
  assert.is(status(B), undefined);
  maker.connect(A);
  assert.is(dials.length, 1);
  assert.is(dials[0]?.address, A);
});

test('with discovery off, a forgotten direct target is dropped even if it is advertised', async () => {
  const { clock, dials, maker, status, last } = harness({ discovery: false });
  maker.connect(A);
  maker.setDiscovered([A]);
  last().reject(transient());
  await flush();
  maker.forget(A);
  assert.is(status(A), undefined);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
});

test('stop cancels every pending retry', async () => {
  const { clock, dials, maker } = harness();
  maker.connect(A);
  maker.setDiscovered([B]);
  assert.is(dials.length, 2);
  for (const d of [...dials]) d.reject(transient());
  await flush();
  assert.ok(clock.pending > 0);
  maker.stop();
  assert.is(clock.pending, 0);
  clock.advance(HOUR);
  assert.is(dials.length, 2);
});

test('after stop, settling dials, new targets and link reports dial nothing', async () => {
  const { clock, dials, maker, last } = harness();
  maker.connect(A);
  maker.stop();
  last().reject(transient());
  await flush();
  maker.connect(B);
  maker.setDiscovered(['10.0.0.3:6783']);
  maker.setConnected([], []);
  clock.advance(HOUR);
  assert.is(dials.length, 1);
  assert.is(clock.pending, 0);
  maker.stop(); // idempotent
});

test('status reports the attempts, last error and remaining wait', async () => {
  const { clock, maker, status, last } = harness({ random: fixedRandom(0.5) });
  maker.connect(A);
  last().reject(new HandshakeError('bad-password', 'the network password differs'));
  await flush();
  clock.advance(500);
  assert.equal(status(A), {
    address: A,
    direct: true,
    state: 'waiting',
    attempts: 1,
    lastError: 'the network password differs',
    lastErrorCode: 'bad-password',
    retryInMs: 1_500,
  });
  clock.advance(1_500);
  last().resolve(7);
  maker.setConnected([A], [7]);
  await flush();
  assert.equal(status(A), { address: A, direct: true, state: 'connected', attempts: 2, peer: '00:00:00:00:00:07' });
});

test('a discovered link that drops within 60 s waits a backoff interval before the redial', async () => {
  const clock = new FakeClock(0);
  const dials: ((p: number) => void)[] = [];
  const maker = new ConnectionMaker({ clock, random: seededRandom(1), dial: () => new Promise((resolve) => dials.push(resolve)) });
  maker.setDiscovered(['10.0.0.2:6783']);
  maker.setConnected(['10.0.0.2:6783'], [8]);
  dials[0]?.(8);
  await new Promise((r) => setImmediate(r));
  clock.advance(1_000);
  maker.setConnected([], []); // the link drops after 1 s; topology still lists the address
  assert.is(dials.length, 1, 'not redialled at once');
  assert.is(maker.status()[0]?.state, 'waiting');
  clock.advance(3_000); // the longest first wait is 3 s
  assert.is(dials.length, 2, 'redialled after the backoff');
  maker.stop();
});

test.run();
