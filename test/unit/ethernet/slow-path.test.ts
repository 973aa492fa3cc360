import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SlowPath } from '../../../src/ethernet/slow-path.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';

function pausable(mayPause = true) {
  const calls: boolean[] = [];
  return { calls, socket: { setReceiving: (on: boolean) => (calls.push(on), true), mayPause: () => mayPause } };
}

test('over the read budget datagrams are refused and the shared socket pauses, then resumes after pauseMs', () => {
  const clock = new FakeClock();
  const { calls, socket } = pausable();
  const path = new SlowPath(clock, { readsPerSecond: 100, pauseMs: 20 }, socket); // burst 10
  const verdicts = Array.from({ length: 12 }, () => path.read('192.0.2.1', true));
  assert.equal(verdicts.slice(0, 10), Array(10).fill(undefined));
  assert.equal(verdicts.slice(10), ['rate-limited', 'rate-limited']);
  assert.equal(calls, [false], 'one pause, however many refusals');
  assert.is(path.status().paused, true);
  clock.advance(20);
  assert.equal(calls, [false, true]);
  assert.equal(path.status(), { pauses: 1, paused: false, sources: [{ address: '192.0.2.1', failures: 2, reasons: { 'rate-limited': 2 }, lastAt: 0, blocked: false }] });
  // Refusals of datagrams that came on a neighbour's own socket never pause the shared one.
  clock.advance(1000);
  for (let i = 0; i < 20; i++) path.read('192.0.2.1', false);
  assert.equal(calls, [false, true]);
});

test('no pause while a neighbour has no socket of its own, nor without a pausable socket', () => {
  const clock = new FakeClock();
  const { calls, socket } = pausable(false);
  const path = new SlowPath(clock, { readsPerSecond: 10 }, socket);
  for (let i = 0; i < 5; i++) path.read('192.0.2.1', true);
  assert.equal(calls, []);
  const bare = new SlowPath(clock, { readsPerSecond: 10 });
  for (let i = 0; i < 5; i++) bare.read('192.0.2.1', true);
  assert.is(bare.status().pauses, 0);
});

test('decryptions: a source that failed its budget is blocked before the shared budget is touched', () => {
  const clock = new FakeClock();
  const path = new SlowPath(clock, { decryptsPerSecond: 50, sources: { decryptBurst: 2, decryptEveryMs: 1000 } }); // shared burst 5
  for (let i = 0; i < 2; i++) {
    assert.is(path.decrypt('198.51.100.7'), undefined);
    path.fail('198.51.100.7', 'auth-failed', true);
  }
  assert.is(path.decrypt('198.51.100.7'), 'source-blocked');
  assert.equal([path.decrypt('203.0.113.1'), path.decrypt('203.0.113.1'), path.decrypt('203.0.113.1')], [undefined, undefined, undefined]);
  assert.is(path.decrypt('203.0.113.2'), 'rate-limited', 'the shared budget (burst 5) is spent');
  clock.advance(1000);
  assert.is(path.decrypt('198.51.100.7'), undefined, 'a second later the blocked source may try once more');
  path.close();
});

test.run();
