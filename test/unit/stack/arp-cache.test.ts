import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ArpCache, type WaitingSend } from '../../../src/stack/arp-cache.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';

function setup(options: ConstructorParameters<typeof ArpCache>[2] = {}) {
  const clock = new FakeClock();
  const requests: number[] = [];
  const sent: Uint8Array[][] = [];
  const drops: Record<string, number> = {};
  const cache = new ArpCache(
    clock,
    {
      sendRequest: (address) => requests.push(address),
      transmit: (frames) => sent.push(frames),
      drop: (reason, n = 1) => void (drops[reason] = (drops[reason] ?? 0) + n),
    },
    options,
  );
  return { clock, cache, requests, sent, drops };
}

const MAC = Uint8Array.of(2, 0, 0, 0, 0, 1);

function waiting(): WaitingSend & { outcome: string[] } {
  const outcome: string[] = [];
  return { frames: [new Uint8Array(20)], resolve: () => outcome.push('sent'), reject: (e) => outcome.push((e as Error & { code: string }).code), outcome };
}

test('waiting sends go out with the learned MAC written in, in order', () => {
  const { cache, requests, sent } = setup();
  const one = waiting();
  const two = waiting();
  cache.enqueue(7, one);
  cache.enqueue(7, two);
  assert.equal(requests, [7], 'one request for both sends');
  cache.learn(7, MAC);
  assert.equal(one.outcome, ['sent']);
  assert.equal(two.outcome, ['sent']);
  assert.is(sent.length, 2);
  assert.equal([...(sent[0]?.[0]?.subarray(0, 6) ?? [])], [...MAC]);
  assert.equal([...(cache.lookup(7) ?? [])], [...MAC]);
  assert.is(cache.resolving, 0);
});

test('requests are retried, then every waiting send fails with unreachable', () => {
  const { clock, cache, requests, drops } = setup({ retryMs: 100, requests: 2 });
  const send = waiting();
  cache.enqueue(9, send);
  clock.advance(100);
  assert.equal(requests, [9, 9]);
  assert.equal(send.outcome, []);
  clock.advance(100);
  assert.equal(send.outcome, ['unreachable']);
  assert.equal(drops, { 'arp-timeout': 1 });
  assert.is(clock.pending, 0);
});

test('bindings expire and the oldest is forgotten when the cache is full', () => {
  const { clock, cache } = setup({ ttlMs: 1000, maxEntries: 2 });
  cache.learn(1, MAC);
  cache.learn(2, MAC);
  cache.learn(1, MAC); // refreshes 1: now 2 is the oldest
  cache.learn(3, MAC);
  assert.ok(cache.lookup(1));
  assert.is(cache.lookup(2), undefined);
  assert.ok(cache.lookup(3));
  clock.advance(1000);
  assert.is(cache.lookup(1), undefined);
});

test('pending addresses and sends per address are bounded', () => {
  const { cache, drops } = setup({ maxPending: 1, queuePerAddress: 1 });
  const first = waiting();
  const second = waiting();
  const other = waiting();
  cache.enqueue(1, first);
  cache.enqueue(1, second);
  cache.enqueue(2, other);
  assert.equal(second.outcome, ['unreachable']);
  assert.equal(other.outcome, ['unreachable']);
  assert.equal(drops, { 'arp-queue-full': 2 });
  cache.clear(Object.assign(new Error('closed'), { code: 'closed' }));
  assert.equal(first.outcome, ['closed']);
});

test.run();
