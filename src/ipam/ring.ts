// Ring: the IPAM address ring CRDT; each token's owner holds the addresses up to the next token, merged by (version, owner, free).
import { WeaveError } from '../errors.js';
import { formatPeerName, isPeerName, type PeerName } from '../wire/peer-name.js';
import { MAX_RING_SIZE, MAX_RING_VERSION, ringEntrySize, validateRingEntries, type RingEntry, type RingState } from '../wire/ipam.js';
import { formatIPv4 } from './address.js';

export type { RingEntry, RingState } from '../wire/ipam.js';
export { MAX_RING_SIZE, MAX_RING_VERSION } from '../wire/ipam.js';

/** A half-open range of addresses [start, end). */
export interface OwnedRange {
  start: number;
  end: number;
}

/** What one `merge` did to this replica. */
export interface RingMergeResult {
  /** True when any entry was added or replaced (relay the ring, persist it). */
  changed: boolean;
  /**
   * Tokens (ascending) whose entry now names an owner different from the one that owned that address
   * before the merge: the addresses [token, next token) changed hands. Adopting a ring into an empty
   * replica lists nothing (nobody owned anything before).
   */
  reowned: number[];
}

const IPV4_SPACE = 2 ** 32;

/**
 * The address ring over [start, end). Every address has exactly one owner once the ring is divided:
 * the owner of the entry with the greatest token ≤ the address, or of the last entry for addresses
 * before the first token (the ring wraps). Tokens are never removed, so merging is a union of tokens,
 * and for a token present on both sides the greater entry under (version, owner, free) wins; free
 * counts are then clamped to the entry sizes of the merged ring. That order is total, so merge is
 * commutative, associative and idempotent, and replicas that have seen the same states are identical.
 * Entries are frozen; `entries()` returns a frozen array.
 */
export class Ring {
  readonly start: number;
  readonly end: number;
  private list: RingEntry[] = [];
  private snapshot: readonly RingEntry[] | undefined;
  private seedList: readonly PeerName[] = [];

  /**
   * Throws RangeError on an invalid range (it must hold 1 to 2^32-1 addresses: not all of 0.0.0.0/0)
   * and DecodeError('bad-value') on entries that break the invariants.
   */
  constructor(range: { start: number; end: number }, entries: readonly RingEntry[] = [], seeds: readonly PeerName[] = []) {
    const { start, end } = range;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > IPV4_SPACE || start >= end) {
      throw new RangeError(`ring range [${start}, ${end}) is not a non-empty range of IPv4 addresses`);
    }
    if (end - start > MAX_RING_SIZE) throw new RangeError('a ring cannot span the whole IPv4 space (0.0.0.0/0); use a smaller range');
    this.start = start;
    this.end = end;
    this.list = entries.map(entry);
    this.validate();
    this.seedList = normaliseSeeds(seeds);
    if (this.list.length === 0 && this.seedList.length > 0) throw new RangeError('an undivided ring has no seeds');
  }

  /** A ring from plain data (as decoded by `decodeRing`); validates it. */
  static fromState(state: RingState): Ring {
    return new Ring(state, state.entries, state.seeds);
  }

  /** The ring as plain data (for `encodeRing`; `seeds` only when known). */
  toState(): RingState {
    return { start: this.start, end: this.end, entries: this.entries(), ...(this.seedList.length > 0 ? { seeds: this.seedList } : {}) };
  }

  /** An independent replica with the same entries and seeds. */
  clone(): Ring {
    const copy = new Ring(this);
    copy.list = this.list.slice();
    copy.seedList = this.seedList;
    return copy;
  }

  /**
   * The peers the range was first divided among, ascending and frozen; empty while the ring is undivided
   * or when it was divided before seeds were recorded (such a ring adopts the seeds of the first seeded
   * ring merged into it).
   */
  get seeds(): readonly PeerName[] {
    return this.seedList;
  }

  /** True until the range has been divided (claimForPeers) or a divided ring merged in. */
  isEmpty(): boolean {
    return this.list.length === 0;
  }

  /** Number of entries (tokens). */
  get size(): number {
    return this.list.length;
  }

  /** The entries sorted by token; frozen. */
  entries(): readonly RingEntry[] {
    this.snapshot ??= Object.freeze(this.list.slice());
    return this.snapshot;
  }

  /** The owner of `address`, or undefined outside the range or while the ring is empty. O(log n). */
  ownerOf(address: number): PeerName | undefined {
    if (!(address >= this.start && address < this.end) || this.list.length === 0) return undefined;
    return (this.list[this.covering(address)] as RingEntry).owner;
  }

  /** Everything `peer` owns, as sorted, non-adjacent ranges (adjacent entries merged). */
  rangesOf(peer: PeerName): OwnedRange[] {
    const out: OwnedRange[] = [];
    const push = (start: number, end: number): void => {
      const last = out[out.length - 1];
      if (last !== undefined && last.end === start) last.end = end;
      else out.push({ start, end });
    };
    const n = this.list.length;
    if (n === 0) return out;
    const first = this.list[0] as RingEntry;
    if (first.token > this.start && (this.list[n - 1] as RingEntry).owner === peer) push(this.start, first.token);
    for (let i = 0; i < n; i++) {
      const e = this.list[i] as RingEntry;
      if (e.owner === peer) push(e.token, i + 1 < n ? (this.list[i + 1] as RingEntry).token : this.end);
    }
    return out;
  }

  /** The addresses the entry at `token` owns: one range, or two when it wraps past the end. */
  rangesOfEntry(token: number): OwnedRange[] {
    const i = this.indexOf(token);
    if (i < 0) throw new WeaveError('bad-value', `the ring has no entry at ${describe(token)}`);
    const n = this.list.length;
    if (i + 1 < n) return [{ start: token, end: (this.list[i + 1] as RingEntry).token }];
    const first = (this.list[0] as RingEntry).token;
    return first > this.start ? [{ start: this.start, end: first }, { start: token, end: this.end }] : [{ start: token, end: this.end }];
  }

  /** Number of addresses the entry at `token` owns. */
  sizeOf(token: number): number {
    const i = this.indexOf(token);
    if (i < 0) throw new WeaveError('bad-value', `the ring has no entry at ${describe(token)}`);
    return this.span(i);
  }

  /** Sum of the free counts `peer` reports in its entries. */
  freeOf(peer: PeerName): number {
    let total = 0;
    for (const e of this.list) if (e.owner === peer) total += e.free;
    return total;
  }

  /** The distinct owners, ascending. */
  owners(): PeerName[] {
    return [...new Set(this.list.map((e) => e.owner))].sort((a, b) => a - b);
  }

  /**
   * Initial division: the range split among `peers` (sorted by name, duplicates removed) by recursive
   * halving, as Weave's Ring.subdivide: the lower half of the peer list gets the lower half of the
   * range. Each peer gets one entry, version 0, all free. Over a CIDR range with at least as many
   * addresses as the next power of two ≥ the number of peers, every share is a CIDR-aligned block and
   * the largest share is at most twice the smallest; over a smaller range some peers get nothing.
   * Everyone computing it from the same names gets the identical ring. Only on an empty ring.
   */
  claimForPeers(peers: readonly PeerName[]): void {
    if (this.list.length !== 0) throw new WeaveError('bad-value', 'the ring is already divided; initial division only applies to an empty ring');
    if (peers.length === 0) throw new RangeError('initial division needs at least one peer');
    for (const p of peers) if (!isPeerName(p)) throw new RangeError(`${p} is not a non-zero 48-bit peer name`);
    const names = [...new Set(peers)].sort((a, b) => a - b);
    const out: RingEntry[] = [];
    const subdivide = (from: number, to: number, share: readonly PeerName[]): void => {
      const size = to - from;
      if (size === 0) return;
      if (size === 1 || share.length === 1) {
        out.push(Object.freeze({ token: from, owner: share[0] as PeerName, version: 0, free: size }));
        return;
      }
      const mid = from + Math.floor(size / 2);
      const half = Math.floor(share.length / 2);
      subdivide(from, mid, share.slice(0, half));
      subdivide(mid, to, share.slice(half));
    };
    subdivide(this.start, this.end, names);
    this.replace(out);
    this.seedList = Object.freeze(names);
  }

  /**
   * Donation: `from`, who must own every address of `range`, hands it to `to`. A token is inserted at
   * `range.start` (owned by `to`) and at `range.end` (owned by `from`, at the range start when
   * `range.end` is the end of the ring) where none exists; tokens inside are re-owned. Every entry
   * whose owner or free count changes gets version + 1 (new tokens get the version of the entry they
   * split + 1). The granted entries are reported all free; `from`'s remaining pieces share what the
   * split entry reported free minus the granted addresses (assuming donations come from free space;
   * the owner corrects counts with setFree). Throws RangeError on a range outside the ring or empty,
   * WeaveError('bad-value') when the ring is empty or `from` does not own all of it.
   */
  grant(from: PeerName, range: OwnedRange, to: PeerName): void {
    if (!isPeerName(from)) throw new RangeError(`${from} is not a non-zero 48-bit peer name`);
    if (!isPeerName(to)) throw new RangeError(`${to} is not a non-zero 48-bit peer name`);
    const { start: s, end: e } = range;
    if (!Number.isInteger(s) || !Number.isInteger(e) || s < this.start || e > this.end || s >= e) {
      throw new RangeError(`cannot grant [${s}, ${e}): not a non-empty range inside the ring's ${this.describeRange()}`);
    }
    if (this.list.length === 0) throw new WeaveError('bad-value', `the ring is empty: nobody owns ${this.describe(range)} yet`);

    // Which entries the grant takes addresses from, and how many; all must be `from`'s.
    const granted = new Map<number, number>();
    for (let at = s; at < e; ) {
      const i = this.covering(at);
      const entry = this.list[i] as RingEntry;
      if (entry.owner !== from) {
        throw new WeaveError(
          'bad-value',
          `cannot grant ${this.describe(range)} from ${formatPeerName(from)}: ${formatIPv4(at)} is owned by ${formatPeerName(entry.owner)}`,
        );
      }
      const next = Math.min(e, this.segmentEnd(at, i));
      granted.set(i, (granted.get(i) ?? 0) + next - at);
      at = next;
    }
    if (from === to) return;

    // Tokens to insert, each with the index of the entry it splits.
    const after = e === this.end ? this.start : e;
    const inserts: { token: number; parent: number }[] = [];
    if (this.indexOf(s) < 0) inserts.push({ token: s, parent: this.covering(s) });
    if (after !== s && this.indexOf(after) < 0) inserts.push({ token: after, parent: this.covering(after) });
    inserts.sort((a, b) => a.token - b.token);

    // The new token list; `origin[j]` is the old index of entry j, or -(1 + insert index).
    const merged: RingEntry[] = [];
    const origin: number[] = [];
    let k = 0;
    for (let i = 0; i < this.list.length; i++) {
      const old = this.list[i] as RingEntry;
      while (k < inserts.length && (inserts[k] as { token: number }).token < old.token) {
        const ins = inserts[k] as { token: number; parent: number };
        merged.push({ ...(this.list[ins.parent] as RingEntry), token: ins.token });
        origin.push(-(1 + k));
        k++;
      }
      merged.push(old);
      origin.push(i);
    }
    for (; k < inserts.length; k++) {
      const ins = inserts[k] as { token: number; parent: number };
      merged.push({ ...(this.list[ins.parent] as RingEntry), token: ins.token });
      origin.push(-(1 + k));
    }

    // The pieces of each entry the grant touches (takes from or splits): its old token first, then inserts.
    const touched = new Set([...granted.keys(), ...inserts.map((ins) => ins.parent)]);
    const pieces = new Map<number, number[]>();
    for (let j = 0; j < merged.length; j++) {
      const o = origin[j] as number;
      const parent = o >= 0 ? o : (inserts[-o - 1] as { parent: number }).parent;
      if (!touched.has(parent)) continue;
      const list = pieces.get(parent) ?? [];
      if (o >= 0) list.unshift(j);
      else list.push(j);
      pieces.set(parent, list);
    }

    const out = merged.slice();
    for (const [parent, js] of pieces) {
      const old = this.list[parent] as RingEntry;
      if (old.version >= MAX_RING_VERSION) throw new RangeError(`ring entry at ${formatIPv4(old.token)} is at the largest version`);
      // Inserted pieces after the old token, in ring order (a piece may wrap past the end).
      const head = js[0] as number;
      const rest = js.slice(1).sort((a, b) => this.offset(old.token, (merged[a] as RingEntry).token) - this.offset(old.token, (merged[b] as RingEntry).token));
      let remaining = Math.max(0, old.free - (granted.get(parent) ?? 0));
      for (const j of [head, ...rest]) {
        const piece = merged[j] as RingEntry;
        const size = ringEntrySize(this.start, this.end, merged, j);
        const inside = piece.token >= s && piece.token < e;
        let next: RingEntry;
        if (inside) {
          next = { token: piece.token, owner: to, version: old.version + 1, free: size };
        } else {
          const free = Math.min(remaining, size);
          remaining -= free;
          const isNew = (origin[j] as number) < 0;
          next = isNew || free !== old.free ? { token: piece.token, owner: from, version: old.version + 1, free } : old;
        }
        out[j] = next === old ? old : Object.freeze(next);
      }
    }
    this.replace(out);
  }

  /**
   * rmpeer / shutdown: every entry owned by `from` goes to `to` with its version raised by `bump`
   * (use a large bump, e.g. 1_000_000, so it beats the dead owner's unseen ordinary updates). Free
   * counts are kept. Deterministic: replicas with the same entries doing the same transfer end up
   * identical, so they merge without conflict. Returns how many addresses moved (0 when `from` owns
   * nothing, so repeating a transfer is harmless).
   */
  transfer(from: PeerName, to: PeerName, bump: number): number {
    if (!isPeerName(from)) throw new RangeError(`${from} is not a non-zero 48-bit peer name`);
    if (!isPeerName(to)) throw new RangeError(`${to} is not a non-zero 48-bit peer name`);
    if (!Number.isInteger(bump) || bump < 1) throw new RangeError(`version bump ${bump} is not a positive integer`);
    if (from === to) return 0;
    let moved = 0;
    const out = this.list.slice();
    for (let i = 0; i < out.length; i++) {
      const e = out[i] as RingEntry;
      if (e.owner !== from) continue;
      if (e.version > MAX_RING_VERSION - bump) {
        throw new RangeError(`ring entry at ${formatIPv4(e.token)} would pass the largest version with a bump of ${bump}`);
      }
      out[i] = Object.freeze({ token: e.token, owner: to, version: e.version + bump, free: e.free });
      moved += this.span(i);
    }
    if (moved > 0) this.replace(out);
    return moved;
  }

  /**
   * The owner reports how many addresses of its entry at `token` are free; version + 1 when the count
   * changed. Returns true if it changed. Throws WeaveError('bad-value') when there is no such entry or
   * `owner` does not own it, RangeError when `free` exceeds the entry's size.
   */
  setFree(owner: PeerName, token: number, free: number): boolean {
    const i = this.indexOf(token);
    if (i < 0) throw new WeaveError('bad-value', `the ring has no entry at ${describe(token)}`);
    const e = this.list[i] as RingEntry;
    if (e.owner !== owner) {
      throw new WeaveError('bad-value', `the ring entry at ${formatIPv4(token)} is owned by ${formatPeerName(e.owner)}, not ${formatPeerName(owner)}`);
    }
    const size = this.span(i);
    if (!Number.isInteger(free) || free < 0 || free > size) {
      throw new RangeError(`free count ${free} for the entry at ${formatIPv4(token)} is not an integer 0 to its size ${size}`);
    }
    if (free === e.free) return false;
    if (e.version >= MAX_RING_VERSION) throw new RangeError(`ring entry at ${formatIPv4(token)} is at the largest version`);
    const out = this.list.slice();
    out[i] = Object.freeze({ token, owner, version: e.version + 1, free });
    this.replace(out);
    return true;
  }

  /**
   * CRDT merge: the union of tokens; for a token on both sides the entry greater under (version,
   * owner, free) wins; then free counts are clamped to the merged entry sizes. Ownership is not
   * policed here (the ring must converge); `reowned` tells the allocator which addresses changed hands.
   * Entries given as an array are validated first (DecodeError). Throws WeaveError('bad-value') when
   * the other ring covers a different range, and WeaveError('different-seeds') when both rings know their
   * seeds and they differ: such rings were divided apart, and merging them would give one address range
   * two owners. A ring with unknown seeds adopts the other's.
   */
  merge(other: Ring | readonly RingEntry[]): RingMergeResult {
    const theirs = other instanceof Ring ? other : new Ring(this, other);
    if (theirs.start !== this.start || theirs.end !== this.end) {
      throw new WeaveError(
        'bad-value',
        `cannot merge a ring over ${theirs.describeRange()} into one over ${this.describeRange()}: every peer must use the same IPAM range`,
      );
    }
    if (!sameSeeds(this.seedList, theirs.seedList) && this.seedList.length > 0 && theirs.seedList.length > 0) {
      throw new WeaveError(
        'different-seeds',
        `IP allocation was seeded by different peers: ours by ${this.seedList.map(formatPeerName).join(', ')}, theirs by ${theirs.seedList.map(formatPeerName).join(', ')}`,
      );
    }
    const adoptSeeds = this.seedList.length === 0 && theirs.seedList.length > 0;
    if (adoptSeeds) this.seedList = theirs.seedList;
    const ours = this.list;
    const them = theirs.list;
    const out: RingEntry[] = [];
    const kept: (RingEntry | undefined)[] = []; // our entry at the same token, if any
    const reowned: number[] = [];
    // The owner, before the merge, of the address being looked at: the last of our entries passed.
    let previousOwner = ours.length > 0 ? (ours[ours.length - 1] as RingEntry).owner : undefined;
    let i = 0;
    let j = 0;
    while (i < ours.length || j < them.length) {
      const a = ours[i];
      const b = them[j];
      if (b === undefined || (a !== undefined && a.token < b.token)) {
        const mine = a as RingEntry;
        out.push(mine);
        kept.push(mine);
        previousOwner = mine.owner;
        i++;
      } else if (a === undefined || b.token < a.token) {
        out.push(b);
        kept.push(undefined);
        if (previousOwner !== undefined && b.owner !== previousOwner) reowned.push(b.token);
        j++;
      } else {
        const winner = compareEntries(a, b) >= 0 ? a : b;
        out.push(winner);
        kept.push(a);
        if (winner.owner !== a.owner) reowned.push(a.token);
        previousOwner = a.owner;
        i++;
        j++;
      }
    }
    // Clamp free counts to the merged sizes, then see whether anything differs from what we had.
    let changed = out.length !== ours.length;
    for (let k = 0; k < out.length; k++) {
      let e = out[k] as RingEntry;
      const size = ringEntrySize(this.start, this.end, out, k);
      if (e.free > size) e = { token: e.token, owner: e.owner, version: e.version, free: size };
      const mine = kept[k];
      if (mine !== undefined && compareEntries(mine, e) === 0) {
        out[k] = mine;
      } else {
        out[k] = Object.isFrozen(e) ? e : Object.freeze(e);
        changed = true;
      }
    }
    if (changed) this.replace(out);
    return { changed: changed || adoptSeeds, reowned };
  }

  /** Checks the invariants (see validateRingEntries); throws DecodeError('bad-value') on a violation. */
  validate(): void {
    validateRingEntries(this.start, this.end, this.list);
  }

  private replace(list: RingEntry[]): void {
    this.list = list;
    this.snapshot = undefined;
  }

  /** Index of the entry owning `address` (which must be in range, ring non-empty). */
  private covering(address: number): number {
    let lo = 0;
    let hi = this.list.length - 1;
    let found = this.list.length - 1; // before the first token: the last entry (wrap-around)
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.list[mid] as RingEntry).token <= address) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Index of the entry whose token is exactly `token`, or -1. */
  private indexOf(token: number): number {
    if (this.list.length === 0) return -1;
    const i = this.covering(token);
    return (this.list[i] as RingEntry).token === token ? i : -1;
  }

  /** Where the run of addresses starting at `address` (owned by entry i) stops, without wrapping. */
  private segmentEnd(address: number, i: number): number {
    const first = (this.list[0] as RingEntry).token;
    if (address < first) return first;
    return i + 1 < this.list.length ? (this.list[i + 1] as RingEntry).token : this.end;
  }

  private span(i: number): number {
    return ringEntrySize(this.start, this.end, this.list, i);
  }

  /** Distance going up from `from` to `to` around the ring. */
  private offset(from: number, to: number): number {
    return to >= from ? to - from : to - this.start + (this.end - from);
  }

  private describeRange(): string {
    return `${formatIPv4(this.start)}-${formatIPv4(this.end - 1)}`;
  }

  private describe(range: OwnedRange): string {
    return `${formatIPv4(range.start)}-${formatIPv4(range.end - 1)}`;
  }
}

/** Orders entries for the same token: version, then owner, then free. 0 only for identical entries. */
export function compareEntries(a: RingEntry, b: RingEntry): number {
  return a.version - b.version || a.owner - b.owner || a.free - b.free;
}

function normaliseSeeds(seeds: readonly PeerName[]): readonly PeerName[] {
  for (const p of seeds) if (!isPeerName(p)) throw new RangeError(`ring seed ${p} is not a non-zero 48-bit peer name`);
  return Object.freeze([...new Set(seeds)].sort((a, b) => a - b));
}

function sameSeeds(a: readonly PeerName[], b: readonly PeerName[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

function entry(e: RingEntry): RingEntry {
  return Object.freeze({ token: e.token, owner: e.owner, version: e.version, free: e.free });
}

function describe(token: number): string {
  return Number.isInteger(token) && token >= 0 && token < IPV4_SPACE ? formatIPv4(token) : String(token);
}
