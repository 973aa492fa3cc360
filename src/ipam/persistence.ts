// IpamStore: the ring and our allocations on disk, checksummed and replaced atomically on every change.
//
// File `ipam.db` in the data directory: a state-file envelope (src/wire/state-file.ts: magic "WTIP",
// format 3, body length, body, SHA-256) whose body is, big-endian:
//
// | field | type | rules |
// |---|---|---|
// | peer | u48 | the peer name the state belongs to |
// | ring | see src/wire/ipam.ts | range and entries |
// | allocation count | u32 | cannot exceed remaining bytes / 5 |
// | per allocation: address, id | u32, str8 | addresses unique |
// | seeds | see src/wire/ipam.ts | the ring's seeds; none for an undivided ring |
//
// Formats before checksums, still read and rewritten as format 3 as soon as they are loaded: "WTIP",
// u8 1, then the body without seeds (format 1), or u8 2 and the body with seeds (format 2), and nothing
// after it.
import { join } from 'node:path';
import { DecodeError } from '../errors.js';
import { decodeWith, encodeWith, Reader, type Writer } from '../wire/codec.js';
import { decodeRing, decodeSeeds, encodeRing, encodeSeeds, type RingState } from '../wire/ipam.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import { hasStateFileMagic, openStateFile, sealStateFile, type StateFileKind } from '../wire/state-file.js';
import { nodeFileSystem, type FileSystem } from '../persist/file-system.js';
import { StateFile } from '../persist/state-file.js';
import { formatCidr, type Cidr } from './address.js';

/** The envelope of `ipam.db`. */
export const IPAM_FILE_KIND: StateFileKind = { magic: 'WTIP', format: 3, what: 'IPAM state' };
/** Formats before checksums: magic, the format byte, the body (format 1 without seeds). */
const LEGACY_NO_SEEDS = 1;
const LEGACY_WITH_SEEDS = 2;
export const IPAM_FILE = 'ipam.db';
let setAsideCounter = 0;

/** What is saved: whose state it is, the ring, and our allocations (address → id). */
export interface IpamSnapshot {
  peer: PeerName;
  ring: RingState;
  owned: [number, string][];
}

/** Writes the body of a snapshot (peer, ring, allocations, seeds). */
export function encodeSnapshotBody(w: Writer, s: IpamSnapshot): void {
  w.u48(s.peer);
  encodeRing(w, s.ring);
  w.u32(s.owned.length);
  for (const [address, id] of s.owned) w.u32(address).str8(id);
  encodeSeeds(w, s.ring.seeds ?? []);
}

/** Reads the body of a snapshot (`seeds` false: format 1, without them); a duplicate address or peer 0 is `bad-value`. */
export function decodeSnapshotBody(r: Reader, seeds = true): IpamSnapshot {
  const peer = r.u48();
  if (peer === 0) throw new DecodeError('bad-value', 'IPAM state for peer name 0');
  const ring = decodeRing(r);
  const n = r.count(5);
  const owned: [number, string][] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const address = r.u32();
    if (seen.has(address)) throw new DecodeError('bad-value', `address ${address} is allocated twice in the state file`);
    seen.add(address);
    owned.push([address, r.str8()]);
  }
  if (!seeds) return { peer, ring, owned };
  const ringSeeds = decodeSeeds(r);
  if (ringSeeds.length > 0 && ring.entries.length === 0) throw new DecodeError('bad-value', 'IPAM state has seeds for an undivided ring');
  return { peer, ring: ringSeeds.length > 0 ? { ...ring, seeds: ringSeeds } : ring, owned };
}

/** The whole file: the snapshot in its checksummed envelope. */
export function encodeSnapshot(s: IpamSnapshot): Uint8Array {
  return sealStateFile(IPAM_FILE_KIND, encodeWith(encodeSnapshotBody, s, 4096));
}

/** True when `bytes` are a format-1 or format-2 file (no checksum), which is read once and then rewritten. */
export function isLegacySnapshot(bytes: Uint8Array): boolean {
  return hasStateFileMagic(IPAM_FILE_KIND, bytes) && (bytes[4] === LEGACY_NO_SEEDS || bytes[4] === LEGACY_WITH_SEEDS);
}

/** Decodes a whole file, format 3 (checksum verified), 2 or 1; anything else is a `DecodeError`. */
export function decodeSnapshot(bytes: Uint8Array): IpamSnapshot {
  if (isLegacySnapshot(bytes)) return decodeWith((r) => (r.bytesView(5), decodeSnapshotBody(r, bytes[4] === LEGACY_WITH_SEEDS)), bytes);
  return decodeWith(decodeSnapshotBody, openStateFile(IPAM_FILE_KIND, bytes));
}

/** The result of loading: the state, or why there is none to use. */
export interface LoadResult {
  snapshot?: IpamSnapshot;
  /** Set when a file for another peer or range was moved aside (say it in the logs). */
  setAside?: string;
  /** Something else an operator should know (an old-format file that could not be upgraded yet). */
  warning?: string;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The IPAM state file of a data dir. */
export class IpamStore {
  readonly path: string;
  private readonly file: StateFile;
  private source: (() => IpamSnapshot) | undefined;
  private waiters: Waiter[] = [];
  private pumping: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly fs: FileSystem = nodeFileSystem,
  ) {
    this.path = join(dir, IPAM_FILE);
    this.file = new StateFile(this.path, IPAM_FILE_KIND.what, fs);
  }

  /**
   * Reads the saved state. A missing file is a fresh start; a file for another peer name or range is
   * moved aside (never silently reused or deleted); a damaged file (bad checksum, truncated, invalid) is
   * a `StateFileError('corrupt-state')` naming it; a file of format 1 or 2 is loaded and rewritten as format 3.
   */
  async load(self: PeerName, range: Cidr): Promise<LoadResult> {
    const bytes = await this.file.read();
    if (bytes === undefined) return {};
    let snapshot: IpamSnapshot;
    try {
      snapshot = decodeSnapshot(bytes);
    } catch (cause) {
      throw this.file.corrupt(cause, 'move it away to start with no saved allocations (the peer then learns the ring again from the others)');
    }
    const sameRange = snapshot.ring.start === range.start && snapshot.ring.end === range.start + range.size;
    if (snapshot.peer !== self || !sameRange) {
      const aside = `${this.path}.set-aside-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${(setAsideCounter += 1)}`;
      await this.fs.rename(this.path, aside);
      const why = snapshot.peer !== self ? `it belongs to peer ${formatPeerName(snapshot.peer)}, we are ${formatPeerName(self)}` : `its range differs from ${formatCidr(range)}`;
      return { setAside: `IPAM state ${this.path} set aside as ${aside}: ${why}` };
    }
    if (isLegacySnapshot(bytes)) {
      try {
        await this.file.write(encodeSnapshot(snapshot));
      } catch (error) {
        return { snapshot, warning: `${(error as Error).message}: ${this.path} stays in the old format without a checksum until the next successful write` };
      }
    }
    return { snapshot };
  }

  /**
   * Saves the state. `snapshot` may be a function: it is called when the write starts, so a write always
   * holds the newest state. Writes are serialised and coalesced; the promise resolves once a write that
   * started after this call is on disk, and rejects with that write's `StateFileError` if it failed.
   */
  save(snapshot: IpamSnapshot | (() => IpamSnapshot)): Promise<void> {
    this.source = typeof snapshot === 'function' ? snapshot : () => snapshot;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.pumping ??= this.pump();
    });
  }

  /** Waits for every pending write (never rejects: each save reports its own failure). */
  async flush(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private async pump(): Promise<void> {
    try {
      while (this.waiters.length > 0) {
        const batch = this.waiters.splice(0);
        const source = this.source as () => IpamSnapshot;
        try {
          await this.file.write(encodeSnapshot(source()));
          for (const w of batch) w.resolve();
        } catch (error) {
          for (const w of batch) w.reject(error as Error);
          // Let the callers undo what could not be saved before the next write takes its snapshot.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      // Cleared in the same turn as the last check of `waiters`, so a save that comes later starts a new pump.
      this.pumping = undefined;
    }
  }
}
