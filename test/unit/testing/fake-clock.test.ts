// FakeClock: timers fire in time order, ties in scheduling order, cancelled ones never, and ones scheduled while
// advancing fire in the same advance when due; checked against a plain list model (the clock keeps a heap).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { FakeClock } from '../../../src/testing/fake-clock.js';

/** The obvious implementation: a list scanned for the earliest timer each time. */
class ListClock {
  private time = 0;
  now(): number {
    return this.time;
  }
  private seq = 0;
  private queue: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  setTimer(ms: number, fn: () => void): { cancel(): void } {
    const entry = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.queue.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }
  get pending(): number {
    return this.queue.filter((e) => !e.cancelled).length;
  }
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      this.queue = this.queue.filter((e) => !e.cancelled);
      let next: (typeof this.queue)[number] | undefined;
      for (const e of this.queue) if (e.at <= until && (!next || e.at < next.at || (e.at === next.at && e.seq < next.seq))) next = e;
      if (!next) break;
      this.queue.splice(this.queue.indexOf(next), 1);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = until;
  }
}

type Op = { kind: 'set'; ms: number; child: number | undefined } | { kind: 'cancel'; which: number } | { kind: 'advance'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), ms: fc.integer({ min: -5, max: 50 }), child: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }) }),
  fc.record({ kind: fc.constant('cancel' as const), which: fc.nat(40) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
);

/** Runs `ops` on a clock and returns what fired, in order, with the time each saw. */
function run(clock: { setTimer(ms: number, fn: () => void): { cancel(): void }; advance(ms: number): void; now(): number; readonly pending: number }, ops: readonly Op[]): string[] {
  const log: string[] = [];
  const timers: { cancel(): void }[] = [];
  const now = (): number => clock.now();
  for (const [i, o] of ops.entries()) {
    if (o.kind === 'set') {
      timers.push(
        clock.setTimer(o.ms, () => {
          log.push(`${i}@${now()}`);
          // A timer that schedules another while the clock advances (as retransmission timers do).
          if (o.child !== undefined) timers.push(clock.setTimer(o.child, () => log.push(`${i}.child@${now()}`)));
        }),
      );
    } else if (o.kind === 'cancel') timers[o.which % Math.max(1, timers.length)]?.cancel();
    else {
      clock.advance(o.ms);
      log.push(`advanced to ${now()}, ${clock.pending} pending`);
    }
  }
  return log;
}

test('the heap clock fires exactly what the list model fires, in the same order and at the same times', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      assert.equal(run(new FakeClock(), ops), run(new ListClock(), ops));
    }),
    { numRuns: 500 },
  );
});

test('ties fire in scheduling order; a cancelled timer never fires and leaves pending', () => {
  const clock = new FakeClock(100);
  const fired: string[] = [];
  clock.setTimer(10, () => fired.push('a'));
  const b = clock.setTimer(10, () => fired.push('b'));
  clock.setTimer(10, () => fired.push('c'));
  clock.setTimer(5, () => fired.push('first'));
  b.cancel();
  b.cancel();
  assert.is(clock.pending, 3);
  clock.advance(10);
  assert.equal(fired, ['first', 'a', 'c']);
  assert.is(clock.pending, 0);
  assert.is(clock.now(), 110);
});

test('ten thousand timers: each fires once, in order', () => {
  const clock = new FakeClock();
  const fired: number[] = [];
  for (let i = 0; i < 10_000; i++) clock.setTimer((i * 7919) % 10_000, () => fired.push((i * 7919) % 10_000));
  clock.advance(10_000);
  assert.is(fired.length, 10_000);
  assert.ok(fired.every((at, i) => i === 0 || at >= (fired[i - 1] as number)));
});

test.run();
