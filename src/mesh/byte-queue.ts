// ByteQueue: reassembles a TCP byte stream into exact-size reads and length-prefixed frames.
import { DecodeError } from '../errors.js';

/** Buffers stream chunks and hands out exact byte counts without copying more than needed. */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  /** Removes and returns exactly `n` bytes, or undefined if fewer are buffered. */
  take(n: number): Uint8Array | undefined {
    if (n > this.size) return undefined;
    const first = this.chunks[0];
    if (first !== undefined && first.byteLength >= n) {
      // Common case: the bytes sit in one chunk, so hand out a view.
      if (first.byteLength === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.size -= n;
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Uint8Array;
      const want = Math.min(n - filled, chunk.byteLength);
      out.set(chunk.subarray(0, want), filled);
      filled += want;
      if (want === chunk.byteLength) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(want);
    }
    this.size -= n;
    return out;
  }

  /** Peeks a big-endian u32 at the front without consuming it. */
  private peekU32(): number | undefined {
    if (this.size < 4) return undefined;
    const head = this.chunks[0] as Uint8Array;
    const b = head.byteLength >= 4 ? head : (this.take(4) as Uint8Array);
    const value = ((b[0] as number) * 2 ** 24 + ((b[1] as number) << 16) + ((b[2] as number) << 8) + (b[3] as number)) >>> 0;
    if (b !== head) this.unshift(b);
    return value;
  }

  private unshift(b: Uint8Array): void {
    this.chunks.unshift(b);
    this.size += b.byteLength;
  }

  /**
   * Removes and returns one u32-length-prefixed frame body, or undefined if it is not complete yet.
   * A declared length over `max` throws `DecodeError('too-large')` before anything is buffered for it.
   */
  takeFrame(max: number): Uint8Array | undefined {
    const length = this.peekU32();
    if (length === undefined) return undefined;
    if (length > max) throw new DecodeError('too-large', `message of ${length} bytes exceeds the ${max}-byte limit`);
    if (this.size < 4 + length) return undefined;
    this.take(4);
    return this.take(length);
  }
}
