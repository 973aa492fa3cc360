// Topology: the peer table CRDT, a map from peer name to a last-writer-wins record keyed by (version, uid).
import { OptionsError, WeaveError } from '../errors.js';
import { formatPeerName, isPeerName, type PeerName } from '../wire/peer-name.js';
import {
  MAX_ADDRESS_BYTES,
  MAX_CONNECTIONS_PER_PEER,
  MAX_NICKNAME_BYTES,
  type ConnectionSummary,
  type PeerRecord,
} from '../wire/topology.js';

/** What one `applyUpdate` changed. */
export interface TopologyChange {
  /** Peers whose record was added or replaced (ourselves when our version was bumped); relay these. */
  changed: PeerName[];
  /** Known peers now seen with a different uid, i.e. restarted; a subset of `changed`. */
  restarted: PeerName[];
  /** Peers that had no record before; a subset of `changed`. */
  added: PeerName[];
  /** Peers whose new record no longer lists a connection the previous one did; a subset of `changed`. */
  shrunk: PeerName[];
}

/** The last record of a garbage-collected peer, so stale copies of it still gossiped around can be told apart. */
interface Tombstone {
  uid: bigint;
  version: bigint;
}

/** Most tombstones kept; the oldest go first. */
const MAX_TOMBSTONES = 4096;

const MAX_U64 = 2n ** 64n - 1n;
const textEncoder = new TextEncoder();

/**
 * The peer table. Each peer owns its own record and is the only one to bump its version, so merging
 * by (version, uid) is commutative, associative and idempotent. Stored records are frozen copies:
 * what `get`, `records` and `select` return can be shared but not mutated.
 */
export class Topology {
  /** Our own peer name. */
  readonly selfName: PeerName;
  private readonly selfUid: bigint;
  private readonly peers = new Map<PeerName, PeerRecord>();
  private readonly tombstones = new Map<PeerName, Tombstone>();

  constructor(self: { name: PeerName; nickname: string; uid: bigint }) {
    if (!isPeerName(self.name)) throw new OptionsError(`peer name ${self.name} is not a non-zero 48-bit integer`);
    if (self.uid <= 0n || self.uid > MAX_U64) throw new OptionsError(`peer uid ${self.uid} must be a non-zero u64`);
    if (textEncoder.encode(self.nickname).byteLength > MAX_NICKNAME_BYTES) {
      throw new OptionsError(`nickname "${self.nickname}" is longer than ${MAX_NICKNAME_BYTES} UTF-8 bytes; pick a shorter one`);
    }
    this.selfName = self.name;
    this.selfUid = self.uid;
    this.peers.set(self.name, freeze({ name: self.name, nickname: self.nickname, uid: self.uid, version: 1n, connections: [] }));
  }

  /** The record for `name`, if known. */
  get(name: PeerName): PeerRecord | undefined {
    return this.peers.get(name);
  }

  /** True when a record for `name` is known. */
  has(name: PeerName): boolean {
    return this.peers.has(name);
  }

  /** Every known record, ourselves included. */
  records(): IterableIterator<PeerRecord> {
    return this.peers.values();
  }

  /** Number of known peers, ourselves included. */
  get size(): number {
    return this.peers.size;
  }

  /**
   * Replaces our own connection list; bumps our version if anything changed. Returns true if changed.
   * Throws WeaveError('bad-value' | 'too-large') on a list the wire cannot carry.
   */
  setLocalConnections(connections: readonly ConnectionSummary[]): boolean {
    if (connections.length > MAX_CONNECTIONS_PER_PEER) {
      throw new WeaveError('too-large', `${connections.length} connections exceed the limit of ${MAX_CONNECTIONS_PER_PEER}`);
    }
    const seen = new Set<PeerName>();
    for (const c of connections) {
      if (!isPeerName(c.peer) || c.peer === this.selfName || seen.has(c.peer)) {
        throw new WeaveError('bad-value', `connection to ${formatPeerName(c.peer)} is to ourselves, invalid or listed twice`);
      }
      if (textEncoder.encode(c.address).byteLength > MAX_ADDRESS_BYTES) {
        throw new WeaveError('too-large', `address "${c.address}" is longer than ${MAX_ADDRESS_BYTES} UTF-8 bytes`);
      }
      seen.add(c.peer);
    }
    const current = this.self();
    const next = sortedCopy(connections);
    if (sameConnections(current.connections, next)) return false;
    this.peers.set(this.selfName, freeze({ ...current, version: bump(current.version), connections: next }));
    return true;
  }

  /**
   * Merges received records: a record replaces ours if its version is greater, or equal with a greater uid.
   * A record about ourselves with another uid and a version >= ours is a previous incarnation still
   * gossiped around: we bump our version past it and report ourselves changed so the fix propagates.
   * Records about ourselves with our uid are never accepted from others. A record no newer than the one
   * we garbage-collected for that peer is a stale copy: it is taken back only when the update leaves the
   * peer reachable (a healed partition, a restart that reconnected), so a peer that left is not revived
   * by peers that have not forgotten it yet.
   */
  applyUpdate(records: readonly PeerRecord[]): TopologyChange {
    const change: TopologyChange = { changed: [], restarted: [], added: [], shrunk: [] };
    const stale: PeerRecord[] = [];
    for (const record of records) {
      if (record.name === this.selfName) {
        const self = this.self();
        if (record.uid !== this.selfUid && record.version >= self.version) {
          // Only a version past theirs makes every peer prefer our record over the stale one.
          this.peers.set(this.selfName, freeze({ ...self, version: bump(record.version) }));
          change.changed.push(this.selfName);
        }
        continue;
      }
      const tombstone = this.tombstones.get(record.name);
      if (tombstone !== undefined && !newer(record, tombstone)) stale.push(record);
      else this.accept(record, change);
    }
    // Reachability only grows as stale records are taken back, so repeat until none more is reached.
    for (let taken = stale.length > 0; taken; ) {
      taken = false;
      const reached = this.reachable();
      for (let i = 0; i < stale.length; i++) {
        const record = stale[i] as PeerRecord;
        if (!reached.has(record.name)) continue;
        const known = this.peers.get(record.name);
        if (known === undefined || newer(record, known)) this.accept(record, change);
        stale.splice(i--, 1);
        taken = true;
      }
    }
    return change;
  }

  private accept(record: PeerRecord, change: TopologyChange): void {
    const known = this.peers.get(record.name);
    if (known !== undefined && !newer(record, known)) return;
    this.tombstones.delete(record.name);
    this.peers.set(record.name, freeze({ ...record, connections: sortedCopy(record.connections) }));
    change.changed.push(record.name);
    if (known === undefined) change.added.push(record.name);
    else {
      if (known.uid !== record.uid) change.restarted.push(record.name);
      if (known.connections.some((c) => !record.connections.some((d) => d.peer === c.peer))) change.shrunk.push(record.name);
    }
  }

  /** Forgets the record of `name` if it is incarnation `uid` (never ours); true when one was removed. */
  discard(name: PeerName, uid: bigint): boolean {
    if (name === this.selfName || this.peers.get(name)?.uid !== uid) return false;
    this.peers.delete(name);
    return true;
  }

  /**
   * Removes peers not reachable from us over any listed connection (ignoring the established and
   * symmetric flags), except those for which `isPinned(name)` is true (the router pins peers
   * with a live local link). Returns the removed names, sorted.
   */
  garbageCollect(isPinned: (name: PeerName) => boolean = () => false): PeerName[] {
    const reached = this.reachable();
    const removed: PeerName[] = [];
    for (const name of this.peers.keys()) {
      if (!reached.has(name) && !isPinned(name)) removed.push(name);
    }
    for (const name of removed) {
      const record = this.peers.get(name) as PeerRecord;
      this.peers.delete(name);
      this.tombstones.delete(name);
      this.tombstones.set(name, { uid: record.uid, version: record.version });
      if (this.tombstones.size > MAX_TOMBSTONES) this.tombstones.delete(this.tombstones.keys().next().value as PeerName);
    }
    return removed.sort((a, b) => a - b);
  }

  /** Peers reachable from us over any listed connection, ourselves included. */
  private reachable(): Set<PeerName> {
    const reached = new Set<PeerName>([this.selfName]);
    const work: PeerName[] = [this.selfName];
    for (let cur = work.pop(); cur !== undefined; cur = work.pop()) {
      for (const c of this.peers.get(cur)?.connections ?? []) {
        if (!reached.has(c.peer)) {
          reached.add(c.peer);
          work.push(c.peer);
        }
      }
    }
    return reached;
  }

  /** Records for `names` (unknown names skipped), for encoding a delta; every record when `names` is omitted. */
  select(names?: Iterable<PeerName>): PeerRecord[] {
    if (names === undefined) return [...this.peers.values()];
    const out: PeerRecord[] = [];
    const seen = new Set<PeerName>();
    for (const name of names) {
      const record = this.peers.get(name);
      if (record !== undefined && !seen.has(name)) {
        seen.add(name);
        out.push(record);
      }
    }
    return out;
  }

  private self(): PeerRecord {
    const self = this.peers.get(this.selfName);
    if (self === undefined) throw new Error('unreachable: our own record is never removed');
    return self;
  }
}

/** The LWW order: a greater version wins, then a greater uid. */
function newer(a: Tombstone, b: Tombstone): boolean {
  return a.version > b.version || (a.version === b.version && a.uid > b.uid);
}

// Saturates rather than wrapping to 0 on the wire; only a hostile record can get us there.
function bump(version: bigint): bigint {
  return version < MAX_U64 ? version + 1n : MAX_U64;
}

function sortedCopy(connections: readonly ConnectionSummary[]): ConnectionSummary[] {
  return connections
    .map((c) => ({ peer: c.peer, address: c.address, outbound: c.outbound, established: c.established }))
    .sort((a, b) => a.peer - b.peer);
}

function sameConnections(a: readonly ConnectionSummary[], b: readonly ConnectionSummary[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i];
    return y !== undefined && x.peer === y.peer && x.address === y.address && x.outbound === y.outbound && x.established === y.established;
  });
}

// Freezing instead of copying on every read: callers can hold records, never change ours.
function freeze(record: PeerRecord): PeerRecord {
  for (const c of record.connections) Object.freeze(c);
  Object.freeze(record.connections);
  return Object.freeze({
    name: record.name,
    nickname: record.nickname,
    uid: record.uid,
    version: record.version,
    connections: record.connections,
  });
}
