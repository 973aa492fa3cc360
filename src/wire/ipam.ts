// IPAM ring codec: the address ring as gossiped on the "ipam" channel and saved on disk.
//
// Layout (big-endian):
//
// | field            | type | rules                                                                 |
// |------------------|------|-----------------------------------------------------------------------|
// | range start      | u32  | first address of the ring's range                                     |
// | range size       | u32  | 1 to 2^32-1: the range is [start, start + size), ending by 2^32       |
// | entry count      | u32  | at most MAX_RING_ENTRIES; cannot exceed remaining bytes / 22          |
// | per entry:       |      | sorted by token, tokens unique                                        |
// |   token          | u32  | inside [start, start + size); strictly greater than the previous one  |
// |   owner          | u48  | non-zero peer name                                                    |
// |   version        | u64  | at most 2^53 (versions are JS numbers)                                |
// |   free           | u32  | at most the entry's size                                              |
//
// An entry owns [token, next token); the last entry also owns [start, first token) (the ring wraps).
// An empty ring (count 0) is valid: the range is known but not yet divided. A ring cannot span all
// 2^32 addresses (0.0.0.0/0), so every size and free count fits a u32.
//
// Seeds (how the ring was first divided; written after the ring where a format carries them):
//
// | field      | type | rules                                                       |
// |------------|------|-------------------------------------------------------------|
// | seed count | u16  | at most MAX_SEEDS; cannot exceed remaining bytes / 6        |
// | per seed   | u48  | non-zero peer names, strictly ascending                     |
import { DecodeError } from '../errors.js';
import { formatPeerName, isPeerName, type PeerName } from './peer-name.js';
import type { Reader, Writer } from './codec.js';

/** One token of the ring: `owner` owns [token, next token), wrapping around at the end of the range. */
export interface RingEntry {
  /** The first address this entry owns. */
  readonly token: number;
  readonly owner: PeerName;
  /** Raised on every change to the entry; the higher version wins a merge. At most MAX_RING_VERSION. */
  readonly version: number;
  /** How many of the entry's addresses its owner reports free. */
  readonly free: number;
}

/** A ring as plain data: its range [start, end), its entries sorted by token, and its seeds. */
export interface RingState {
  readonly start: number;
  readonly end: number;
  readonly entries: readonly RingEntry[];
  /**
   * The peers the range was first divided among, ascending (empty: unknown, as in rings from before seeds
   * were recorded). Rings with different non-empty seeds were divided apart and are never merged.
   */
  readonly seeds?: readonly PeerName[];
}

/** Most entries one encoded ring may hold. */
export const MAX_RING_ENTRIES = 65536;
/** Largest entry version: versions are JS numbers, exact up to 2^53. */
export const MAX_RING_VERSION = 2 ** 53;
/** Most seeds a ring may record. */
export const MAX_SEEDS = 65535;
/** Most addresses a ring may span: all of IPv4 but one, so sizes and free counts fit a u32. */
export const MAX_RING_SIZE = 2 ** 32 - 1;

const IPV4_SPACE = 2 ** 32;
/** token u32 + owner u48 + version u64 + free u32. */
const ENTRY_BYTES = 4 + 6 + 8 + 4;

/** Writes a ring; throws RangeError on a ring the layout cannot hold. */
export function encodeRing(w: Writer, ring: RingState): void {
  const size = ring.end - ring.start;
  if (size < 1 || size > MAX_RING_SIZE) throw new RangeError(`ring range [${ring.start}, ${ring.end}) is not 1 to 2^32-1 addresses`);
  if (ring.entries.length > MAX_RING_ENTRIES) {
    throw new RangeError(`a ring of ${ring.entries.length} entries exceeds the limit of ${MAX_RING_ENTRIES}`);
  }
  w.u32(ring.start).u32(size).u32(ring.entries.length);
  for (const e of ring.entries) {
    if (!Number.isInteger(e.version) || e.version < 0 || e.version > MAX_RING_VERSION) {
      throw new RangeError(`ring entry version ${e.version} is not an integer 0 to 2^53`);
    }
    w.u32(e.token).u48(e.owner).u64(BigInt(e.version)).u32(e.free);
  }
}

/** Reads a ring and checks its invariants (see validateRingEntries); does not require the reader to be at its end. */
export function decodeRing(r: Reader): RingState {
  const start = r.u32();
  const size = r.u32();
  const end = start + size;
  if (size === 0) throw new DecodeError('bad-value', `ring range starting at ${ipv4(start)} is empty`);
  if (end > IPV4_SPACE) {
    throw new DecodeError('bad-value', `ring range starting at ${ipv4(start)} with ${size} addresses runs past 255.255.255.255`);
  }
  const count = r.count(ENTRY_BYTES, MAX_RING_ENTRIES);
  const entries: RingEntry[] = [];
  for (let i = 0; i < count; i++) {
    const token = r.u32();
    const owner = r.u48();
    const version = r.u64();
    const free = r.u32();
    if (version > BigInt(MAX_RING_VERSION)) {
      throw new DecodeError('bad-value', `ring entry at ${ipv4(token)} has version ${version}, more than 2^53`);
    }
    entries.push({ token, owner, version: Number(version), free });
  }
  validateRingEntries(start, end, entries);
  return { start, end, entries };
}

/** Writes a seed list (ascending, unique, non-zero names); throws RangeError on a list the layout cannot hold. */
export function encodeSeeds(w: Writer, seeds: readonly PeerName[]): void {
  if (seeds.length > MAX_SEEDS) throw new RangeError(`${seeds.length} seeds exceed the limit of ${MAX_SEEDS}`);
  validateSeeds(seeds, (message) => new RangeError(message));
  w.u16(seeds.length);
  for (const seed of seeds) w.u48(seed);
}

/** Reads a seed list; DecodeError('bad-value') unless the names are non-zero and strictly ascending. */
export function decodeSeeds(r: Reader): PeerName[] {
  const count = r.u16();
  if (count * 6 > r.remaining) throw new DecodeError('too-large', `${count} seeds cannot fit in ${r.remaining} remaining bytes`);
  const seeds: PeerName[] = [];
  for (let i = 0; i < count; i++) seeds.push(r.u48());
  validateSeeds(seeds, (message) => new DecodeError('bad-value', message));
  return seeds;
}

function validateSeeds(seeds: readonly PeerName[], error: (message: string) => Error): void {
  let previous = 0;
  for (const seed of seeds) {
    if (!isPeerName(seed)) throw error(`ring seed ${seed} is not a non-zero 48-bit peer name`);
    if (seed <= previous) throw error(`ring seed ${formatPeerName(seed)} ${seed === previous ? 'appears twice' : 'is out of order'}`);
    previous = seed;
  }
}

/**
 * The ring invariants: a range of 1 to 2^32-1 addresses, tokens integral, sorted, unique and inside [start, end), owners
 * valid non-zero peer names, versions integers 0..2^53, and free counts integers no larger than the
 * entry's size. Throws DecodeError('bad-value') naming the first violation.
 */
export function validateRingEntries(start: number, end: number, entries: readonly RingEntry[]): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > IPV4_SPACE || start >= end || end - start > MAX_RING_SIZE) {
    throw new DecodeError('bad-value', `ring range [${start}, ${end}) is not a range of 1 to 2^32-1 IPv4 addresses`);
  }
  let previous = -1;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as RingEntry;
    if (!Number.isInteger(e.token) || e.token < start || e.token >= end) {
      throw new DecodeError('bad-value', `ring token ${describe(e.token)} is outside the range ${ipv4(start)}-${ipv4(end - 1)}`);
    }
    if (e.token <= previous) {
      throw new DecodeError('bad-value', `ring token ${ipv4(e.token)} ${e.token === previous ? 'appears twice' : 'is out of order'}`);
    }
    previous = e.token;
    if (!isPeerName(e.owner)) {
      throw new DecodeError('bad-value', `ring entry at ${ipv4(e.token)} has owner ${e.owner}, not a non-zero 48-bit peer name`);
    }
    if (!Number.isInteger(e.version) || e.version < 0 || e.version > MAX_RING_VERSION) {
      throw new DecodeError('bad-value', `ring entry at ${ipv4(e.token)} has version ${e.version}, not an integer 0 to 2^53`);
    }
    const size = ringEntrySize(start, end, entries, i);
    if (!Number.isInteger(e.free) || e.free < 0 || e.free > size) {
      throw new DecodeError(
        'bad-value',
        `ring entry at ${ipv4(e.token)} owned by ${formatPeerName(e.owner)} reports ${e.free} free addresses but holds only ${size}`,
      );
    }
  }
}

/** Number of addresses entry `i` owns: up to the next token, or around the end to the first token. */
export function ringEntrySize(start: number, end: number, entries: readonly RingEntry[], i: number): number {
  const token = (entries[i] as RingEntry).token;
  if (i + 1 < entries.length) return (entries[i + 1] as RingEntry).token - token;
  return end - token + ((entries[0] as RingEntry).token - start);
}

function ipv4(n: number): string {
  return `${Math.floor(n / 2 ** 24) % 256}.${Math.floor(n / 2 ** 16) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

function describe(n: number): string {
  return Number.isInteger(n) && n >= 0 && n < IPV4_SPACE ? ipv4(n) : String(n);
}
