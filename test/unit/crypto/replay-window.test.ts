import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DEFAULT_REPLAY_WINDOW, ReplayWindow } from '../../../src/crypto/replay-window.js';
import { MAX_PACKET_COUNTER as MAX_COUNTER } from '../../../src/crypto/aead.js';
import { CryptoError, OptionsError } from '../../../src/errors.js';

/** The obvious model: every accepted counter in a set, plus the highest one. */
class ModelWindow {
  private readonly seen = new Set<number>();
  private highest: number | undefined;
  constructor(private readonly size: number) {}
  isFresh(c: number): boolean {
    if (!Number.isSafeInteger(c) || c < 0 || c > MAX_COUNTER) return false;
    if (this.highest === undefined || c > this.highest) return true;
    return this.highest - c < this.size && !this.seen.has(c);
  }
  accept(c: number): void {
    this.seen.add(c);
    if (this.highest === undefined || c > this.highest) this.highest = c;
  }
}

/** A step: a counter relative to a moving base, and whether the packet decrypted (only then is it accepted). */
const step = (size: number) =>
  fc.record(
    {
      delta: fc.oneof(
        fc.integer({ min: -size - 40, max: 40 }), // around the window's edges and just above the top
        fc.integer({ min: size - 40, max: 3 * size }), // jumps near, at and beyond the window size
        fc.constant(0),
      ),
      decrypted: fc.boolean(),
      moveBase: fc.boolean(),
    },
    { noNullPrototype: true },
  );

function runAgainstModel(size: number, start: number, steps: { delta: number; decrypted: boolean; moveBase: boolean }[]): void {
  const window = new ReplayWindow(size);
  const model = new ModelWindow(size);
  let base = start;
  for (const [i, s] of steps.entries()) {
    let c = base + s.delta;
    if (c < 0) c = 0;
    if (c > MAX_COUNTER) c = MAX_COUNTER;
    const fresh = model.isFresh(c);
    assert.is(window.isFresh(c), fresh, `step ${i}: isFresh(${c - start}) with size ${size}`);
    if (fresh && s.decrypted) {
      window.accept(c);
      model.accept(c);
      // Sweep the whole window and a little beyond, so a stale or lost bit anywhere in the ring shows.
      for (let q = c - size - 2; q <= Math.min(c + 2, MAX_COUNTER); q++) {
        assert.is(window.isFresh(q), model.isFresh(q), `step ${i}: after accepting ${c - start}, isFresh(${q - start}) with size ${size}`);
      }
    }
    if (s.moveBase) base = c;
  }
}

test('agrees with a set-based model on random counter sequences (window 32, 64, 128)', () => {
  for (const size of [32, 64, 128]) {
    fc.assert(
      fc.property(fc.array(step(size), { minLength: 20, maxLength: 300, size: 'max' }), fc.integer({ min: 0, max: 1000 }), (steps, start) => runAgainstModel(size, start, steps)),
      { numRuns: 200 },
    );
  }
});

test('agrees with the model near the top of the counter space (2^53 − 1)', () => {
  fc.assert(
    fc.property(fc.array(step(64), { minLength: 20, maxLength: 200, size: 'max' }), (steps) => runAgainstModel(64, MAX_COUNTER - 200, steps)),
    { numRuns: 200 },
  );
});

test('accepting counters the check called stale does not change the answers', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 20, maxLength: 300, size: 'max' }), (counters) => {
      const window = new ReplayWindow(64);
      const model = new ModelWindow(64);
      for (const c of counters) {
        assert.is(window.isFresh(c), model.isFresh(c), `isFresh(${c})`);
        window.accept(c); // even when not fresh: accept must be harmless
        model.accept(c);
      }
    }),
    { numRuns: 300 },
  );
});

test('duplicates are rejected, out-of-order packets inside the window are accepted once', () => {
  const w = new ReplayWindow(64);
  for (const c of [10, 12, 11]) {
    assert.ok(w.isFresh(c));
    w.accept(c);
  }
  for (const c of [10, 11, 12]) assert.not.ok(w.isFresh(c), `duplicate ${c}`);
  assert.ok(w.isFresh(0));
  assert.ok(w.isFresh(9));
  assert.ok(w.isFresh(13));
});

test('counters a full window or more behind the highest are too old', () => {
  const w = new ReplayWindow(64);
  w.accept(100);
  assert.ok(w.isFresh(37), 'highest - 63 is the oldest fresh counter');
  assert.not.ok(w.isFresh(36), 'highest - 64 is too old');
  assert.not.ok(w.isFresh(0));
});

test('a forward jump larger than the window clears it', () => {
  const w = new ReplayWindow(64);
  for (let c = 0; c < 64; c++) w.accept(c);
  w.accept(1_000_000);
  for (let c = 1_000_000 - 63; c < 1_000_000; c++) assert.ok(w.isFresh(c), `${c} after the jump`);
  assert.not.ok(w.isFresh(1_000_000));
  assert.not.ok(w.isFresh(63));
});

test('a forward jump shorter than the window keeps the bits still inside it', () => {
  const w = new ReplayWindow(64);
  for (let c = 0; c < 64; c++) w.accept(c);
  w.accept(100);
  for (let c = 37; c < 64; c++) assert.not.ok(w.isFresh(c), `${c} was seen`);
  for (let c = 64; c < 100; c++) assert.ok(w.isFresh(c), `${c} was skipped`);
});

test('before anything is accepted every counter up to 2^53 − 1 is fresh; others never are', () => {
  const w = new ReplayWindow(32);
  assert.ok(w.isFresh(0));
  assert.ok(w.isFresh(MAX_COUNTER));
  assert.not.ok(w.isFresh(-1));
  assert.not.ok(w.isFresh(MAX_COUNTER + 1));
  assert.not.ok(w.isFresh(1.5));
  assert.throws(() => w.accept(MAX_COUNTER + 1), (e: unknown) => e instanceof CryptoError);
});

test('the default window is 2^20 counters, like Weave', () => {
  assert.is(DEFAULT_REPLAY_WINDOW, 2 ** 20);
  const w = new ReplayWindow();
  w.accept(5_000_000);
  assert.ok(w.isFresh(5_000_000 - 2 ** 20 + 1));
  assert.not.ok(w.isFresh(5_000_000 - 2 ** 20));
});

test('sizes that are not powers of two of at least 32 are OptionsErrors', () => {
  for (const size of [0, 16, 31, 48, 100, 1.5, 2 ** 31]) {
    assert.throws(() => new ReplayWindow(size), (e: unknown) => e instanceof OptionsError, String(size));
  }
});

test.run();
