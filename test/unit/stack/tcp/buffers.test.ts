import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { OutOfOrderQueue, SackScoreboard, SendRing } from '../../../../src/stack/tcp/buffers.js';

test('the send ring returns exactly the bytes pushed, across wrap-around and growth, by read and by view', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 5000 })), { maxLength: 40 }), (steps) => {
      const ring = new SendRing(20_000);
      const model: number[] = [];
      let next = 0;
      for (const [push, drop] of steps) {
        const bytes = Uint8Array.from({ length: push }, () => next++ & 0xff);
        const n = ring.push(bytes);
        assert.is(n, Math.min(push, 20_000 - model.length));
        model.push(...bytes.subarray(0, n));
        next -= push - n;
        const k = Math.min(drop, model.length);
        ring.drop(k);
        model.splice(0, k);
        assert.is(ring.length, model.length);
        assert.equal([...ring.read(0, model.length)], model);
        // view() (no copy unless the range wraps) shows the same bytes as read() for any range.
        const offset = model.length === 0 ? 0 : (push * 7 + drop) % model.length;
        const length = Math.min(model.length - offset, 1 + ((push + drop * 3) % 3000));
        assert.equal([...ring.view(offset, length)], model.slice(offset, offset + length));
      }
    }),
    { numRuns: 200 },
  );
});

test('the out-of-order queue keeps the first copy of each byte and hands back the contiguous run', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 800 })), { maxLength: 30 }), fc.integer({ min: 0, max: 0xffff_ffff }), (pieces, base) => {
      const q = new OutOfOrderQueue();
      const have = new Map<number, number>();
      for (const [offset, length] of pieces) {
        const data = Uint8Array.from({ length }, (_, i) => (offset + i) & 0xff);
        q.insert((base + offset) >>> 0, data);
        for (let i = 0; i < length; i++) have.set(offset + i, (offset + i) & 0xff);
      }
      assert.is(q.bytes, have.size);
      for (const [l, r] of q.sackBlocks(4)) assert.ok(((r - l) >>> 0) > 0);
      // Everything from offset 1 on that is contiguous comes back in order.
      let expected = 0;
      while (have.has(1 + expected)) expected++;
      const got: number[] = [];
      let rcvNxt = (base + 1) >>> 0;
      for (let chunk = q.take(rcvNxt); chunk; chunk = q.take(rcvNxt)) {
        got.push(...chunk);
        rcvNxt = (rcvNxt + chunk.byteLength) >>> 0;
      }
      assert.is(got.length, expected);
      assert.equal(got, Array.from({ length: expected }, (_, i) => (1 + i) & 0xff));
    }),
    { numRuns: 300 },
  );
});

test('the SACK scoreboard merges blocks and forgets what is cumulatively acknowledged', () => {
  const b = new SackScoreboard();
  b.add(2000, 3000);
  b.add(4000, 5000);
  b.add(2500, 4000);
  assert.is(b.sacked, 3000);
  assert.is(b.highest, 5000);
  assert.is(b.holeBytes(1000, 5000), 1000);
  assert.is(b.sackedEnd(2100), 5000);
  b.advance(4500);
  assert.is(b.sacked, 500);
  assert.is(b.nextSackedAfter(1000), 4500);
});

test.run();
