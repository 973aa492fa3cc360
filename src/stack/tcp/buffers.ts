// The byte stores of one connection: the send ring (unacknowledged and unsent bytes) and the out-of-order queue.
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from './seq.js';

/** Largest send buffer kept allocated once everything is acknowledged. */
const IDLE_KEEP_BYTES = 16_384;

/** Bytes from the oldest unacknowledged one onwards, growing by doubling up to a fixed capacity. */
export class SendRing {
  private buf = new Uint8Array(0);
  private head = 0;
  /** Bytes held. */
  length = 0;

  constructor(readonly capacity: number) {}

  /** Room left before `capacity`. */
  get free(): number {
    return this.capacity - this.length;
  }

  /** Appends up to `free` bytes of `bytes`; returns how many were taken. */
  push(bytes: Uint8Array): number {
    const n = Math.min(bytes.byteLength, this.free);
    if (n === 0) return 0;
    this.reserve(this.length + n);
    const size = this.buf.byteLength;
    const tail = (this.head + this.length) % size;
    const first = Math.min(n, size - tail);
    this.buf.set(bytes.subarray(0, first), tail);
    if (first < n) this.buf.set(bytes.subarray(first, n), 0);
    this.length += n;
    return n;
  }

  /** A copy of `length` bytes starting `offset` bytes after the head. */
  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const size = this.buf.byteLength;
    if (length === 0) return out;
    const start = (this.head + offset) % size;
    const first = Math.min(length, size - start);
    out.set(this.buf.subarray(start, start + first));
    if (first < length) out.set(this.buf.subarray(0, length - first), first);
    return out;
  }

  /**
   * `length` bytes starting `offset` bytes after the head, without a copy when they do not wrap around the ring
   * (a copy when they do). A view changes when the ring does: use it before the next push or drop.
   */
  view(offset: number, length: number): Uint8Array {
    const size = this.buf.byteLength;
    if (length === 0 || size === 0) return this.read(offset, length);
    const start = (this.head + offset) % size;
    return start + length <= size ? this.buf.subarray(start, start + length) : this.read(offset, length);
  }

  /** Forgets the first `n` bytes (acknowledged). */
  drop(n: number): void {
    const k = Math.min(n, this.length);
    this.length -= k;
    this.head = this.length === 0 ? 0 : (this.head + k) % this.buf.byteLength;
    // An idle connection keeps no big buffer: memory per idle connection stays small.
    if (this.length === 0 && this.buf.byteLength > IDLE_KEEP_BYTES) this.buf = new Uint8Array(0);
  }

  private reserve(need: number): void {
    if (need <= this.buf.byteLength) return;
    let size = Math.max(4096, this.buf.byteLength * 2);
    while (size < need) size *= 2;
    size = Math.min(size, Math.max(this.capacity, need));
    const next = new Uint8Array(size);
    if (this.length > 0) next.set(this.read(0, this.length));
    this.buf = next;
    this.head = 0;
  }
}

interface Piece {
  seq: number;
  bytes: Uint8Array;
}

/** Segments received beyond a hole, as sorted, non-overlapping pieces (copies). */
export class OutOfOrderQueue {
  private pieces: Piece[] = [];
  /** Bytes held. */
  bytes = 0;
  /** Sequence number just after the most recently received piece's block, for the first SACK block (RFC 2018 §4). */
  private recentSeq = 0;

  /** Nothing is queued. */
  get empty(): boolean {
    return this.pieces.length === 0;
  }

  /** Stores the parts of `[seq, seq + data.length)` not already held (data is copied). */
  insert(seq: number, data: Uint8Array): void {
    this.recentSeq = seq;
    let start = seq;
    const end = seqAdd(seq, data.byteLength);
    let i = 0;
    while (i < this.pieces.length && seqLt(start, end)) {
      const p = this.pieces[i] as Piece;
      const pEnd = seqAdd(p.seq, p.bytes.byteLength);
      if (seqLe(pEnd, start)) {
        i++;
        continue;
      }
      if (seqLt(start, p.seq)) {
        const cut = seqMin(end, p.seq);
        this.add(i, start, data.slice(seqSub(start, seq), seqSub(cut, seq)));
        i++;
      }
      start = seqMax(start, pEnd);
      i++;
    }
    if (seqLt(start, end)) this.add(this.pieces.length, start, data.slice(seqSub(start, seq), seqSub(end, seq)));
    // re-sort only when needed: pieces were added in order of position
  }

  private add(at: number, seq: number, bytes: Uint8Array): void {
    this.pieces.splice(at, 0, { seq, bytes });
    this.bytes += bytes.byteLength;
  }

  /** Removes and returns the bytes that continue `rcvNxt` (trimming what is already received), or undefined. */
  take(rcvNxt: number): Uint8Array | undefined {
    for (;;) {
      const p = this.pieces[0];
      if (!p || seqGt(p.seq, rcvNxt)) return undefined;
      this.pieces.shift();
      this.bytes -= p.bytes.byteLength;
      const end = seqAdd(p.seq, p.bytes.byteLength);
      if (seqGt(end, rcvNxt)) return p.bytes.subarray(seqSub(rcvNxt, p.seq));
    }
  }

  /** Up to `max` SACK blocks, the one holding the latest arrival first (RFC 2018 §4). */
  sackBlocks(max: number): [number, number][] {
    const blocks: [number, number][] = [];
    for (const p of this.pieces) {
      const end = seqAdd(p.seq, p.bytes.byteLength);
      const last = blocks[blocks.length - 1];
      if (last && last[1] === p.seq) last[1] = end;
      else blocks.push([p.seq, end]);
    }
    const recent = blocks.findIndex(([l, r]) => seqGe(this.recentSeq, l) && seqLt(this.recentSeq, r));
    if (recent > 0) blocks.unshift(...blocks.splice(recent, 1));
    return blocks.slice(0, max);
  }

  /** Forgets everything queued. */
  clear(): void {
    this.pieces = [];
    this.bytes = 0;
  }
}

/** The sender's record of SACKed ranges above SND.UNA, sorted and merged. */
export class SackScoreboard {
  private ranges: [number, number][] = [];
  /** Bytes covered. */
  sacked = 0;

  /** Nothing is SACKed. */
  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** Highest SACKed sequence number (end of the last range), or undefined. */
  get highest(): number | undefined {
    return this.ranges[this.ranges.length - 1]?.[1];
  }

  /** Adds a block `[left, right)`; the caller checked it lies within (SND.UNA, SND.MAX]. */
  add(left: number, right: number): void {
    const merged: [number, number][] = [];
    let l = left;
    let r = right;
    let placed = false;
    for (const range of this.ranges) {
      if (seqLt(range[1], l)) merged.push(range);
      else if (seqGt(range[0], r)) {
        if (!placed) {
          merged.push([l, r]);
          placed = true;
        }
        merged.push(range);
      } else {
        l = seqMin(l, range[0]);
        r = seqMax(r, range[1]);
      }
    }
    if (!placed) merged.push([l, r]);
    this.ranges = merged;
    this.recount();
  }

  /** Drops everything below `una` (cumulatively acknowledged). */
  advance(una: number): void {
    if (this.ranges.length === 0) return;
    this.ranges = this.ranges.filter((r) => seqGt(r[1], una)).map((r) => (seqLt(r[0], una) ? [una, r[1]] : r));
    this.recount();
  }

  /** If `seq` is SACKed, the end of its range; else undefined. */
  sackedEnd(seq: number): number | undefined {
    for (const [l, r] of this.ranges) if (seqGe(seq, l) && seqLt(seq, r)) return r;
    return undefined;
  }

  /** The first range starting after `seq` (its left edge), or undefined. */
  nextSackedAfter(seq: number): number | undefined {
    for (const [l] of this.ranges) if (seqGt(l, seq)) return l;
    return undefined;
  }

  /** Bytes not SACKed in `[from, to)`. */
  holeBytes(from: number, to: number): number {
    if (!seqLt(from, to)) return 0;
    let n = seqSub(to, from);
    for (const [l, r] of this.ranges) {
      const a = seqMax(l, from);
      const b = seqMin(r, to);
      if (seqLt(a, b)) n -= seqSub(b, a);
    }
    return n;
  }

  /** Forgets every range (after a timeout). */
  clear(): void {
    this.ranges = [];
    this.sacked = 0;
  }

  private recount(): void {
    this.sacked = 0;
    for (const [l, r] of this.ranges) this.sacked += seqSub(r, l);
  }
}
