// IpamStore: the ring and our allocations on disk, written atomically (temp file, fsync, rename) on every change.
//
// File `ipam.db` in the data directory, big-endian:
//
// | field | type | rules |
// |---|---|---|
// | magic | 4 bytes | "WTIP" |
// | format version | u8 | 2 (1: the same without seeds, still read) |
// | peer | u48 | the peer name the state belongs to |
// | ring | see src/wire/ipam.ts | range and entries |
// | allocation count | u32 | cannot exceed remaining bytes / 5 |
// | per allocation: address, id | u32, str8 | addresses unique |
// | seeds | see src/wire/ipam.ts | the ring's seeds (version 2 on) |
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DecodeError, WeaveError } from '../errors.js';
import { decodeWith, encodeWith, type Reader, type Writer } from '../wire/codec.js';
import { decodeRing, decodeSeeds, encodeRing, encodeSeeds, type RingState } from '../wire/ipam.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import { formatCidr, type Cidr } from './address.js';

const MAGIC = [0x57, 0x54, 0x49, 0x50]; // "WTIP"
const FORMAT_VERSION = 2;
/** Files written before rings recorded their seeds. */
const FORMAT_VERSION_NO_SEEDS = 1;
export const IPAM_FILE = 'ipam.db';
let setAsideCounter = 0;

/** What is saved: whose state it is, the ring, and our allocations (address → id). */
export interface IpamSnapshot {
  peer: PeerName;
  ring: RingState;
  owned: [number, string][];
}

export function encodeSnapshot(w: Writer, s: IpamSnapshot): void {
  for (const b of MAGIC) w.u8(b);
  w.u8(FORMAT_VERSION).u48(s.peer);
  encodeRing(w, s.ring);
  w.u32(s.owned.length);
  for (const [address, id] of s.owned) w.u32(address).str8(id);
  encodeSeeds(w, s.ring.seeds ?? []);
}

export function decodeSnapshot(r: Reader): IpamSnapshot {
  for (const b of MAGIC) if (r.u8() !== b) throw new DecodeError('bad-magic', 'not a weave-ts IPAM state file');
  const version = r.u8();
  if (version !== FORMAT_VERSION && version !== FORMAT_VERSION_NO_SEEDS) {
    throw new DecodeError('version-mismatch', `IPAM state format ${version}, this build reads ${FORMAT_VERSION_NO_SEEDS} and ${FORMAT_VERSION}`);
  }
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
  if (version === FORMAT_VERSION_NO_SEEDS) return { peer, ring, owned };
  const seeds = decodeSeeds(r);
  if (seeds.length > 0 && ring.entries.length === 0) throw new DecodeError('bad-value', 'IPAM state has seeds for an undivided ring');
  return { peer, ring: seeds.length > 0 ? { ...ring, seeds } : ring, owned };
}

/** The result of loading: the state, or why there is none to use. */
export interface LoadResult {
  snapshot?: IpamSnapshot;
  /** Set when a file for another peer or range was moved aside (say it in the logs). */
  setAside?: string;
}

export class IpamStore {
  readonly path: string;
  private writing: Promise<void> = Promise.resolve();
  private latest: IpamSnapshot | undefined;

  constructor(readonly dir: string) {
    this.path = join(dir, IPAM_FILE);
  }

  /**
   * Reads the saved state. A missing file is a fresh start; a file for another peer name or range is
   * moved aside (never silently reused or deleted); a corrupt file is a typed error.
   */
  async load(self: PeerName, range: Cidr): Promise<LoadResult> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
    let snapshot: IpamSnapshot;
    try {
      snapshot = decodeWith(decodeSnapshot, bytes);
    } catch (cause) {
      throw new WeaveError(
        'corrupt-state',
        `IPAM state file ${this.path} is corrupt (${cause instanceof Error ? cause.message : String(cause)}): move it away to start with no saved allocations`,
        { cause },
      );
    }
    const sameRange = snapshot.ring.start === range.start && snapshot.ring.end === range.start + range.size;
    if (snapshot.peer !== self || !sameRange) {
      const aside = `${this.path}.set-aside-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${(setAsideCounter += 1)}`;
      await rename(this.path, aside);
      const why = snapshot.peer !== self ? `it belongs to peer ${formatPeerName(snapshot.peer)}, we are ${formatPeerName(self)}` : `its range differs from ${formatCidr(range)}`;
      return { setAside: `IPAM state ${this.path} set aside as ${aside}: ${why}` };
    }
    return { snapshot };
  }

  /** Saves a snapshot; writes are serialised and coalesced (the newest snapshot wins). */
  save(snapshot: IpamSnapshot): Promise<void> {
    this.latest = snapshot;
    // A failed write must not poison every later one: each save starts from a settled chain.
    this.writing = this.writing.catch(() => undefined).then(() => this.writeLatest());
    return this.writing;
  }

  /** Waits for every pending write. */
  flush(): Promise<void> {
    return this.writing;
  }

  private async writeLatest(): Promise<void> {
    const snapshot = this.latest;
    if (!snapshot) return;
    this.latest = undefined;
    await mkdir(this.dir, { recursive: true });
    const temp = `${this.path}.tmp-${process.pid}`;
    try {
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(encodeWith(encodeSnapshot, snapshot, 4096));
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, this.path);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
    // The rename is only durable once the directory entry is on disk too.
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
