// RecordStore: the DNS record CRDT; per key (origin, name, address, id) the record greatest by (version, tombstone, uid) wins.
import type { Clock } from '../clock.js';
import { OptionsError, WeaveError } from '../errors.js';
import {
  canonicalAddress,
  isNormalisedName,
  isValidRecordId,
  MAX_ID_BYTES,
  MAX_RECORD_VERSION,
  recordKey,
  type DnsRecord,
} from '../wire/dns-records.js';
import { isPeerName, type PeerName } from '../wire/peer-name.js';

export { recordKey, type DnsRecord };

/** The domain single-label names are put in unless the store is given another. */
export const DEFAULT_DOMAIN = 'weave.local.';
/** How long a tombstone is kept after this peer learned it, on this peer's clock. */
export const DEFAULT_TOMBSTONE_TTL_MS = 30 * 60_000;

const MAX_U64 = 2n ** 64n - 1n;

/**
 * The stored form of a name: ASCII lower-case, a single-label name (no dot before the optional
 * trailing one) gets `domain` appended, and a trailing dot is added. Only ASCII letters are folded,
 * so no non-ASCII character can turn into an ASCII one. Does not validate: see `isNormalisedName`.
 */
export function normaliseName(name: string, domain: string): string {
  let n = asciiLower(name);
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n === '') return '.';
  if (n.includes('.')) return `${n}.`;
  let d = asciiLower(domain);
  if (d.startsWith('.')) d = d.slice(1);
  if (d !== '' && !d.endsWith('.')) d += '.';
  return `${n}.${d}`;
}

export interface RecordStoreOptions {
  /** Our peer name: the origin of records we add. */
  self: PeerName;
  /** Our incarnation; records of ours with another uid come from a previous run and get tombstoned. */
  selfUid: bigint;
  /** Local time for tombstone expiry; never compared with another peer's clock. */
  clock: Clock;
  /** How long tombstones are kept after we learn them (default 30 min). */
  tombstoneTtlMs?: number;
  /** Domain for single-label names (default 'weave.local.'). */
  domain?: string;
}

/** A peer whose records are being served stale because it became unreachable. */
export interface StalePeer {
  peer: PeerName;
  /** Local time it became unreachable. */
  since: number;
  /** True once its grace period passed and its records were dropped (they are refused until it is reachable). */
  dropped: boolean;
}

interface Entry {
  record: DnsRecord;
  /** Local time this version entered the store; a tombstone expires `tombstoneTtlMs` after it. */
  since: number;
}

/**
 * The replicated DNS record table. Records are identified by `recordKey` (origin, name, address, id);
 * only the origin creates or changes a record, bumping its version, so merging by the total order
 * (version, then tombstone over live, then greater uid) is commutative, associative and idempotent on
 * every replica that is not the origin. The origin is the authority on its own records: a received
 * record of ours that beats what we hold (a previous incarnation's, or anything disagreeing with our
 * state) is answered with our state re-stamped one version above it, so the fix wins everywhere.
 *
 * All mutating methods return the records that changed: the delta to broadcast. Stored records are
 * frozen; callers may keep them.
 */
export class RecordStore {
  readonly self: PeerName;
  readonly selfUid: bigint;
  readonly domain: string;
  readonly tombstoneTtlMs: number;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private readonly byName = new Map<string, Set<string>>();
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly unreachable = new Map<PeerName, number>();
  private readonly dropped = new Set<PeerName>();

  constructor(options: RecordStoreOptions) {
    if (!isPeerName(options.self)) throw new OptionsError(`peer name ${options.self} is not a non-zero 48-bit integer`);
    if (options.selfUid <= 0n || options.selfUid > MAX_U64) throw new OptionsError(`peer uid ${options.selfUid} must be a non-zero u64`);
    const ttl = options.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < 0) throw new OptionsError(`tombstoneTtlMs ${ttl} must be a non-negative number of milliseconds`);
    let domain = asciiLower(options.domain ?? DEFAULT_DOMAIN);
    if (domain.startsWith('.')) domain = domain.slice(1);
    if (!domain.endsWith('.')) domain += '.';
    if (!isNormalisedName(domain)) {
      throw new OptionsError(`DNS domain "${options.domain}" is not a valid domain name; use something like 'weave.local.'`);
    }
    this.self = options.self;
    this.selfUid = options.selfUid;
    this.clock = options.clock;
    this.tombstoneTtlMs = ttl;
    this.domain = domain;
  }

  /** Number of stored records, tombstones included. */
  get size(): number {
    return this.entries.size;
  }

  /** The record stored under `key` (see `recordKey`), tombstone or live. */
  get(key: string): DnsRecord | undefined {
    return this.entries.get(key)?.record;
  }

  /**
   * Adds our record (`name` is normalised with the store's domain, `address` canonicalised): version 1
   * if new, one above a tombstone we still hold. Adding a record we already serve returns it unchanged.
   * Throws WeaveError('bad-value') on an invalid name, address or id.
   */
  add(name: string, address: string, id: string): DnsRecord {
    const fqdn = normaliseName(name, this.domain);
    if (!isNormalisedName(fqdn)) {
      throw new WeaveError('bad-value', `"${name}" is not a valid DNS name: use labels of 1-63 letters, digits, '-' or '_', at most 253 characters`);
    }
    const canonical = canonicalAddress(address);
    if (canonical === undefined) throw new WeaveError('bad-value', `"${address}" is not an IPv4 or IPv6 address`);
    if (!isValidRecordId(id)) throw new WeaveError('bad-value', `id ${JSON.stringify(id)} is not well-formed text of at most ${MAX_ID_BYTES} UTF-8 bytes`);
    const fields = { name: fqdn, address: canonical, id, origin: this.self };
    const key = recordKey(fields);
    const known = this.entries.get(key)?.record;
    if (known !== undefined && !known.tombstone && known.originUid === this.selfUid) return known;
    return this.put(key, { ...fields, originUid: this.selfUid, version: known === undefined ? 1 : bump(known.version), tombstone: false });
  }

  /**
   * Tombstones our live records matching every given field (name normalised, address canonicalised;
   * an empty filter matches all our records). Returns the tombstones.
   */
  remove(filter: { name?: string | undefined; id?: string | undefined; address?: string | undefined }): DnsRecord[] {
    const name = filter.name === undefined ? undefined : normaliseName(filter.name, this.domain);
    const address = filter.address === undefined ? undefined : (canonicalAddress(filter.address) ?? filter.address);
    const removed: DnsRecord[] = [];
    for (const [key, { record }] of this.entries) {
      if (record.origin !== this.self || record.tombstone) continue;
      if (name !== undefined && record.name !== name) continue;
      if (address !== undefined && record.address !== address) continue;
      if (filter.id !== undefined && record.id !== filter.id) continue;
      removed.push(this.put(key, { ...record, originUid: this.selfUid, version: bump(record.version), tombstone: true }));
    }
    return removed;
  }

  /**
   * CRDT merge of received records (already validated, e.g. by `decodeRecords`). Per key the greater
   * record under (version, tombstone, uid) wins. Records of ours are never simply accepted when they
   * disagree with us: one that beats ours is answered with our state (live if we serve it, else a
   * tombstone) at its version + 1; a previous incarnation's live records thus become tombstones.
   * Records of a peer whose stale grace ran out are refused until `markReachable`.
   * Returns the records that changed here (each key once, final value): the delta to relay.
   */
  merge(records: readonly DnsRecord[]): DnsRecord[] {
    const changed = new Map<string, DnsRecord>();
    for (const incoming of records) {
      const key = recordKey(incoming);
      const known = this.entries.get(key)?.record;
      if (known !== undefined && compareRecords(incoming, known) <= 0) continue;
      if (incoming.origin === this.self) {
        const serving = known !== undefined && !known.tombstone && known.originUid === this.selfUid;
        if (incoming.tombstone && !serving) {
          changed.set(key, this.put(key, incoming)); // it agrees with us: the record is gone
        } else {
          const fields = { name: incoming.name, address: incoming.address, id: incoming.id, origin: this.self };
          changed.set(key, this.put(key, { ...fields, originUid: this.selfUid, version: bump(incoming.version), tombstone: !serving }));
        }
        continue;
      }
      if (this.dropped.has(incoming.origin)) continue;
      changed.set(key, this.put(key, incoming));
    }
    return [...changed.values()];
  }

  /** Live records for `name` (case-insensitive; single-label names get the domain), all families, stale included. */
  lookup(name: string): DnsRecord[] {
    const keys = this.byName.get(normaliseName(name, this.domain));
    return keys === undefined ? [] : this.liveOf(keys);
  }

  /** Names of live records with `address` (any textual form), sorted. */
  reverse(address: string): string[] {
    const canonical = canonicalAddress(address);
    const keys = canonical === undefined ? undefined : this.byAddress.get(canonical);
    if (keys === undefined) return [];
    return [...new Set(this.liveOf(keys).map((r) => r.name))].sort();
  }

  /** Every record, tombstones included, sorted by key: the full state to gossip. */
  all(): DnsRecord[] {
    return sortByKey([...this.entries.values()].map((e) => e.record));
  }

  /** Every live record, sorted by key. */
  live(): DnsRecord[] {
    return this.all().filter((r) => !r.tombstone);
  }

  /**
   * `peer` became unreachable at local time `now`: its records stay served, flagged stale, until
   * `expire` finds its grace over. Only the origin tombstones, so they are then dropped, not
   * tombstoned. Repeated calls keep the first time. Ignored for ourselves.
   */
  markUnreachable(peer: PeerName, now: number): void {
    if (peer === this.self || this.unreachable.has(peer)) return;
    this.unreachable.set(peer, now);
  }

  /** `peer` is reachable again: its records are fresh, and accepted again if they had been dropped. */
  markReachable(peer: PeerName): void {
    this.unreachable.delete(peer);
    this.dropped.delete(peer);
  }

  /** True when the record's origin is unreachable (it is served from the last state we heard). */
  isStale(record: Pick<DnsRecord, 'origin'>): boolean {
    return this.unreachable.has(record.origin);
  }

  /** Unreachable peers, sorted by name, for status. */
  stalePeers(): StalePeer[] {
    return [...this.unreachable]
      .map(([peer, since]) => ({ peer, since, dropped: this.dropped.has(peer) }))
      .sort((a, b) => a.peer - b.peer);
  }

  /**
   * Drops tombstones held for `tombstoneTtlMs` of local time since we learned them (local clock
   * only, so skew between peers cannot matter), and every record of peers unreachable for at least
   * `staleGraceMs`. Returns what was dropped, sorted by key.
   */
  expire(now: number, staleGraceMs: number): DnsRecord[] {
    for (const [peer, since] of this.unreachable) {
      if (now - since >= staleGraceMs) this.dropped.add(peer);
    }
    const out: DnsRecord[] = [];
    for (const [key, entry] of this.entries) {
      const { record } = entry;
      if (this.dropped.has(record.origin) || (record.tombstone && now - entry.since >= this.tombstoneTtlMs)) {
        this.drop(key, record);
        out.push(record);
      }
    }
    return sortByKey(out);
  }

  private liveOf(keys: Set<string>): DnsRecord[] {
    const out: DnsRecord[] = [];
    for (const key of keys) {
      const record = this.entries.get(key)?.record;
      if (record !== undefined && !record.tombstone) out.push(record);
    }
    return sortByKey(out);
  }

  private put(key: string, record: DnsRecord): DnsRecord {
    const frozen = Object.freeze({
      name: record.name,
      address: record.address,
      id: record.id,
      origin: record.origin,
      originUid: record.originUid,
      version: record.version,
      tombstone: record.tombstone,
    });
    if (!this.entries.has(key)) {
      index(this.byName, frozen.name, key);
      index(this.byAddress, frozen.address, key);
    }
    this.entries.set(key, { record: frozen, since: this.clock.now() });
    return frozen;
  }

  private drop(key: string, record: DnsRecord): void {
    this.entries.delete(key);
    unindex(this.byName, record.name, key);
    unindex(this.byAddress, record.address, key);
  }
}

/** The merge order of two versions of one record: version, then tombstone over live, then greater uid. */
export function compareRecords(a: DnsRecord, b: DnsRecord): number {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  if (a.tombstone !== b.tombstone) return a.tombstone ? 1 : -1;
  if (a.originUid !== b.originUid) return a.originUid < b.originUid ? -1 : 1;
  return 0;
}

// Saturates at the largest wire version instead of producing one peers would reject.
function bump(version: number): number {
  return version < MAX_RECORD_VERSION ? version + 1 : MAX_RECORD_VERSION;
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function index(map: Map<string, Set<string>>, at: string, key: string): void {
  let keys = map.get(at);
  if (keys === undefined) map.set(at, (keys = new Set()));
  keys.add(key);
}

function unindex(map: Map<string, Set<string>>, at: string, key: string): void {
  const keys = map.get(at);
  if (keys === undefined) return;
  keys.delete(key);
  if (keys.size === 0) map.delete(at);
}

function sortByKey(records: DnsRecord[]): DnsRecord[] {
  return records
    .map((r) => [recordKey(r), r] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => r);
}
