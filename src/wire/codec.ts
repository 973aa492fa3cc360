// Reader and Writer: the one cursor pair all wire code goes through, so bounds checks live in one place.
import { DecodeError } from '../errors.js';

// ignoreBOM: a leading U+FEFF is content, not a byte-order mark to strip silently.
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const textEncoder = new TextEncoder();

/** Reads big-endian fields from a byte array; every read past the end throws `DecodeError('short-read')`. */
export class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.byteLength - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  private take(n: number): number {
    if (n > this.remaining) {
      throw new DecodeError('short-read', `need ${n} more bytes at offset ${this.offset}, have ${this.remaining}`);
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }

  u16(): number {
    return this.view.getUint16(this.take(2));
  }

  u32(): number {
    return this.view.getUint32(this.take(4));
  }

  /** 48-bit unsigned integer, returned as a number (exact below 2^53). */
  u48(): number {
    const at = this.take(6);
    return this.view.getUint16(at) * 0x1_0000_0000 + this.view.getUint32(at + 2);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.take(8));
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new DecodeError('bad-value', `boolean byte is ${v}, expected 0 or 1`);
    return v === 1;
  }

  /** A view (not a copy) of the next `n` bytes. */
  bytesView(n: number): Uint8Array {
    const at = this.take(n);
    return this.bytes.subarray(at, at + n);
  }

  /** Length-prefixed (u32) bytes, at most `max` long. */
  blob(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) throw new DecodeError('too-large', `blob of ${n} bytes exceeds the limit of ${max}`);
    return this.bytesView(n);
  }

  /** Length-prefixed (u8) UTF-8 string. */
  str8(): string {
    return this.utf8(this.u8());
  }

  /** Length-prefixed (u16) UTF-8 string, at most `max` bytes. */
  str16(max = 0xffff): string {
    const n = this.u16();
    if (n > max) throw new DecodeError('too-large', `string of ${n} bytes exceeds the limit of ${max}`);
    return this.utf8(n);
  }

  private utf8(n: number): string {
    const view = this.bytesView(n);
    try {
      return textDecoder.decode(view);
    } catch (cause) {
      throw new DecodeError('bad-value', 'string is not valid UTF-8', { cause });
    }
  }

  /** A count prefix (u32) that cannot exceed what the remaining bytes could hold at `minItemSize` bytes each. */
  count(minItemSize: number, max = 0xffff_ffff): number {
    const n = this.u32();
    if (n > max || n * minItemSize > this.remaining) {
      throw new DecodeError('too-large', `count ${n} cannot fit in ${this.remaining} remaining bytes`);
    }
    return n;
  }

  /** Trailing bytes are an error, not ignored. */
  end(): void {
    if (this.remaining !== 0) {
      throw new DecodeError('trailing-bytes', `${this.remaining} unexpected trailing bytes at offset ${this.offset}`);
    }
  }
}

/** Appends big-endian fields to a growable buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private offset = 0;

  constructor(initialSize = 256) {
    this.buf = new Uint8Array(initialSize);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.offset;
  }

  private reserve(n: number): number {
    const need = this.offset + n;
    if (need > this.buf.byteLength) {
      let size = this.buf.byteLength * 2;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.offset));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.offset;
    this.offset = need;
    return at;
  }

  u8(v: number): this {
    checkRange(v, 0xff, 'u8');
    const at = this.reserve(1);
    this.view.setUint8(at, v);
    return this;
  }

  u16(v: number): this {
    checkRange(v, 0xffff, 'u16');
    const at = this.reserve(2);
    this.view.setUint16(at, v);
    return this;
  }

  u32(v: number): this {
    checkRange(v, 0xffff_ffff, 'u32');
    const at = this.reserve(4);
    this.view.setUint32(at, v);
    return this;
  }

  u48(v: number): this {
    checkRange(v, 2 ** 48 - 1, 'u48');
    const at = this.reserve(6);
    this.view.setUint16(at, Math.floor(v / 0x1_0000_0000));
    this.view.setUint32(at + 2, v >>> 0);
    return this;
  }

  u64(v: bigint): this {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${v} does not fit in a u64 field`);
    const at = this.reserve(8);
    this.view.setBigUint64(at, v);
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  bytes(b: Uint8Array): this {
    const at = this.reserve(b.byteLength);
    this.buf.set(b, at);
    return this;
  }

  blob(b: Uint8Array): this {
    return this.u32(b.byteLength).bytes(b);
  }

  str8(s: string): this {
    const b = textEncoder.encode(s);
    if (b.byteLength > 0xff) throw new RangeError(`string of ${b.byteLength} bytes is longer than 255`);
    return this.u8(b.byteLength).bytes(b);
  }

  str16(s: string): this {
    const b = textEncoder.encode(s);
    if (b.byteLength > 0xffff) throw new RangeError(`string of ${b.byteLength} bytes is longer than 65535`);
    return this.u16(b.byteLength).bytes(b);
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.offset);
  }
}

/** Encoders refuse values a field cannot hold instead of letting them wrap. */
function checkRange(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${v} does not fit in a ${field} field`);
}

/** Encodes a value with `encode` into a fresh byte array. */
export function encodeWith<T>(encode: (w: Writer, value: T) => void, value: T, sizeHint = 256): Uint8Array {
  const w = new Writer(sizeHint);
  encode(w, value);
  return w.finish();
}

/** Decodes a whole byte array with `decode`, requiring every byte to be consumed. */
export function decodeWith<T>(decode: (r: Reader) => T, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const value = decode(r);
  r.end();
  return value;
}

/** Joins byte arrays into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * A copy of `bytes` in memory from Node's buffer pool: no zero-fill, and copies under 4 KiB share 8 KiB slabs as
 * small Buffers do, instead of each getting a backing store of its own (which costs more than the copy for a
 * packet-sized array). The data path copies every frame and segment it keeps with this. The result is a plain
 * Uint8Array (so `slice` still copies) whose `buffer` may be shared with other copies; up to 64 bytes, a slice.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  // Up to 64 bytes V8 keeps typed arrays on its heap, where slice is cheaper than the pool (ACKs are ~60 bytes).
  if (bytes.byteLength <= 64) return bytes.slice();
  const pooled = Buffer.allocUnsafe(bytes.byteLength);
  pooled.set(bytes);
  return new Uint8Array(pooled.buffer, pooled.byteOffset, bytes.byteLength);
}
