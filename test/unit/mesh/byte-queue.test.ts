import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ByteQueue } from '../../../src/mesh/byte-queue.js';
import { DecodeError } from '../../../src/errors.js';
import { concatBytes } from '../../../src/wire/codec.js';

const MAX = 1024;

/** Concatenates byte arrays. */
/** A u32 big-endian length prefix then the body. */
function framed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, body.byteLength);
  out.set(body, 4);
  return out;
}

function prefix(length: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, length);
  return out;
}

/** Splits `bytes` at the given cut points (any order, duplicates allowed) into chunks, keeping empty ones. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

function drainFrames(q: ByteQueue, into: Uint8Array[]): void {
  for (let frame = q.takeFrame(MAX); frame !== undefined; frame = q.takeFrame(MAX)) into.push(Uint8Array.from(frame));
}

const framesArb = fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 });
const cutsArb = fc.array(fc.nat(), { maxLength: 40 });

function rejectsTooLarge(fn: () => unknown): void {
  try {
    fn();
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, DecodeError);
    assert.is((e as DecodeError).code, 'too-large');
  }
}

test('any split of a frame stream gives back the same frames in order (all chunks first)', () => {
  fc.assert(
    fc.property(framesArb, cutsArb, (frames, cuts) => {
      const q = new ByteQueue();
      for (const chunk of split(concatBytes(frames.map(framed)), cuts)) q.push(chunk);
      const out: Uint8Array[] = [];
      drainFrames(q, out);
      assert.equal(out, frames.map((f) => Uint8Array.from(f)));
      assert.is(q.length, 0);
    }),
    { numRuns: 500 },
  );
});

test('any split of a frame stream gives back the same frames in order (draining after every chunk)', () => {
  fc.assert(
    fc.property(framesArb, cutsArb, (frames, cuts) => {
      const q = new ByteQueue();
      const out: Uint8Array[] = [];
      for (const chunk of split(concatBytes(frames.map(framed)), cuts)) {
        q.push(chunk);
        drainFrames(q, out);
      }
      assert.equal(out, frames.map((f) => Uint8Array.from(f)));
      assert.is(q.length, 0);
    }),
    { numRuns: 500 },
  );
});

test('take(n) across chunk boundaries returns the right bytes', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      cutsArb,
      fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
      (stream, cuts, sizes) => {
        const q = new ByteQueue();
        for (const chunk of split(stream, cuts)) q.push(chunk);
        assert.is(q.length, stream.byteLength);
        let at = 0;
        for (const n of sizes) {
          const got = q.take(n);
          if (at + n > stream.byteLength) {
            assert.is(got, undefined);
            assert.is(q.length, stream.byteLength - at, 'a short take consumes nothing');
          } else {
            assert.equal(got === undefined ? undefined : Array.from(got), Array.from(stream.subarray(at, at + n)));
            at += n;
            assert.is(q.length, stream.byteLength - at);
          }
        }
        const rest = q.take(stream.byteLength - at);
        assert.equal(rest === undefined ? undefined : Array.from(rest), Array.from(stream.subarray(at)));
        assert.is(q.length, 0);
      },
    ),
    { numRuns: 500 },
  );
});

test('takes interleaved with pushes see the stream in order', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), cutsArb, fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 10 }), (stream, cuts, sizes) => {
      const q = new ByteQueue();
      const out: number[] = [];
      let i = 0;
      const drain = (): void => {
        for (;;) {
          const got = q.take(sizes[i % sizes.length] as number);
          if (got === undefined) return;
          out.push(...got);
          i++;
        }
      };
      for (const chunk of split(stream, cuts)) {
        q.push(chunk);
        drain();
      }
      const rest = q.take(q.length);
      out.push(...(rest ?? []));
      assert.equal(out, Array.from(stream));
    }),
    { numRuns: 300 },
  );
});

test('a declared length over the limit throws too-large as soon as the 4-byte prefix is in', () => {
  const q = new ByteQueue();
  q.push(prefix(MAX + 1));
  rejectsTooLarge(() => q.takeFrame(MAX));

  const huge = new ByteQueue();
  huge.push(prefix(0xffffffff));
  rejectsTooLarge(() => huge.takeFrame(10 * 1024 * 1024));
});

test('a too-large prefix arriving a byte at a time throws only once all four bytes are in', () => {
  const q = new ByteQueue();
  const p = prefix(MAX + 1);
  for (let i = 0; i < 3; i++) {
    q.push(p.subarray(i, i + 1));
    assert.is(q.takeFrame(MAX), undefined);
  }
  q.push(p.subarray(3));
  rejectsTooLarge(() => q.takeFrame(MAX));
});

test('a length of exactly the limit is accepted', () => {
  const body = Uint8Array.from({ length: MAX }, (_, i) => i & 0xff);
  const q = new ByteQueue();
  q.push(prefix(MAX));
  assert.is(q.takeFrame(MAX), undefined);
  q.push(body);
  assert.equal(q.takeFrame(MAX), body);
});

test('a partial frame gives undefined until its last byte arrives, then the frame', () => {
  const body = Uint8Array.from([9, 8, 7, 6, 5, 4, 3]);
  const bytes = concatBytes([framed(body), framed(new Uint8Array([1]))]);
  const q = new ByteQueue();
  const firstEnd = 4 + body.byteLength;
  for (let i = 0; i < firstEnd - 1; i++) {
    q.push(bytes.subarray(i, i + 1));
    assert.is(q.takeFrame(MAX), undefined, `undefined after ${i + 1} bytes`);
    assert.is(q.length, i + 1, 'an incomplete frame consumes nothing');
  }
  q.push(bytes.subarray(firstEnd - 1, firstEnd + 2)); // the last byte plus part of the next prefix
  assert.equal(q.takeFrame(MAX), body);
  assert.is(q.takeFrame(MAX), undefined);
  q.push(bytes.subarray(firstEnd + 2));
  assert.equal(q.takeFrame(MAX), new Uint8Array([1]));
  assert.is(q.takeFrame(MAX), undefined);
});

test('a zero-length frame is an empty body, not "incomplete"', () => {
  const q = new ByteQueue();
  q.push(concatBytes([prefix(0), prefix(0)]));
  assert.equal(q.takeFrame(MAX), new Uint8Array(0));
  assert.equal(q.takeFrame(MAX), new Uint8Array(0));
  assert.is(q.takeFrame(MAX), undefined);
  assert.is(q.length, 0);
});

test('empty chunks are ignored and an empty queue has nothing to give', () => {
  const q = new ByteQueue();
  q.push(new Uint8Array(0));
  assert.is(q.length, 0);
  assert.is(q.take(1), undefined);
  assert.is(q.takeFrame(MAX), undefined);
  assert.equal(q.take(0), new Uint8Array(0));
});

test.run();
