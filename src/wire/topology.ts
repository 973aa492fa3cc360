// Topology update codec: the last-writer-wins peer records gossiped on the "topology" channel.
//
// Layout (big-endian; the whole update is one gossip payload):
//
// | field                  | type  | rules                                                         |
// |------------------------|-------|---------------------------------------------------------------|
// | record count           | u32   | cannot exceed remaining bytes / 25 (the smallest record)      |
// | per record:            |       |                                                               |
// |   name                 | u48   | non-zero; unique within the update                            |
// |   nickname             | str8  | UTF-8, at most 255 bytes                                      |
// |   uid                  | u64   | non-zero; random per start (incarnation)                      |
// |   version              | u64   | bumped only by the owner                                      |
// |   connection count     | u16   | cannot exceed remaining bytes / 8 (the smallest connection)   |
// |   per connection:      |       | the owner's complete connection list                          |
// |     peer               | u48   | non-zero; not the record's own name; unique within the list   |
// |     address            | str8  | the remote's listen "host:port" (its IP, its advertised port) |
// |     flags              | u8    | bit 0 outbound, bit 1 established; other bits must be 0       |
import { DecodeError } from '../errors.js';
import { formatPeerName, type PeerName } from './peer-name.js';
import { encodeWith, type Reader, type Writer } from './codec.js';

/** One entry of a peer's connection list, as the peer that owns the connection reports it. */
export interface ConnectionSummary {
  /** The peer at the other end. */
  peer: PeerName;
  /** The remote's listening "host:port" as the owner sees it: its IP and its advertised listen port. */
  address: string;
  /** True when the owner dialled the connection. */
  outbound: boolean;
  /** True once the link is usable: at once without a data plane, after UDP heartbeats flow with one. */
  established: boolean;
}

/** A peer's last-writer-wins topology record, ordered by (version, uid). */
export interface PeerRecord {
  /** The owning peer's permanent name. */
  name: PeerName;
  /** The owner's display name, at most 255 UTF-8 bytes. */
  nickname: string;
  /** Random per start: a different uid means the peer restarted. */
  uid: bigint;
  /** Incremented only by the owning peer, on every change to its record. */
  version: bigint;
  /** The owner's complete connection list. */
  connections: ConnectionSummary[];
}

/** Longest nickname on the wire, in UTF-8 bytes. */
export const MAX_NICKNAME_BYTES = 255;
/** Longest connection address on the wire, in UTF-8 bytes. */
export const MAX_ADDRESS_BYTES = 255;
/** Most connections one record can list (the u16 count). */
export const MAX_CONNECTIONS_PER_PEER = 65535;

const MIN_RECORD_BYTES = 6 + 1 + 8 + 8 + 2;
const MIN_CONNECTION_BYTES = 6 + 1 + 1;
const FLAG_OUTBOUND = 0x01;
const FLAG_ESTABLISHED = 0x02;

/**
 * Encoded bytes of frozen records (the topology stores only frozen copies): a record is immutable for its
 * version, and the same records go out in every broadcast, full-state reply and digest answer.
 */
const encodedRecords = new WeakMap<PeerRecord, Uint8Array>();

/** Writes `records` as one topology update; throws RangeError on records the layout cannot hold. */
export function encodeTopologyUpdate(w: Writer, records: readonly PeerRecord[]): void {
  w.u32(records.length);
  for (const record of records) {
    w.bytes(encodedRecord(record));
  }
}

function encodedRecord(record: PeerRecord): Uint8Array {
  let bytes = encodedRecords.get(record);
  if (bytes === undefined) {
    bytes = encodeWith(encodeRecord, record);
    if (isDeeplyFrozen(record)) encodedRecords.set(record, bytes);
  }
  return bytes;
}

function isDeeplyFrozen(record: PeerRecord): boolean {
  return Object.isFrozen(record) && Object.isFrozen(record.connections) && record.connections.every((c) => Object.isFrozen(c));
}

function encodeRecord(w: Writer, record: PeerRecord): void {
  if (record.connections.length > MAX_CONNECTIONS_PER_PEER) {
    throw new RangeError(`peer ${formatPeerName(record.name)} lists ${record.connections.length} connections, more than ${MAX_CONNECTIONS_PER_PEER}`);
  }
  w.u48(record.name).str8(record.nickname).u64(record.uid).u64(record.version).u16(record.connections.length);
  for (const c of record.connections) {
    w.u48(c.peer)
      .str8(c.address)
      .u8((c.outbound ? FLAG_OUTBOUND : 0) | (c.established ? FLAG_ESTABLISHED : 0));
  }
}

/** Reads one topology update; does not require the reader to be at its end (use `decodeWith`). */
export function decodeTopologyUpdate(r: Reader): PeerRecord[] {
  const count = r.count(MIN_RECORD_BYTES);
  const seen = new Set<PeerName>();
  const records: PeerRecord[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.u48();
    if (name === 0) throw new DecodeError('bad-value', `topology record ${i} has the reserved peer name 0`);
    if (seen.has(name)) throw new DecodeError('bad-value', `topology update lists peer ${formatPeerName(name)} twice`);
    seen.add(name);
    const nickname = r.str8();
    const uid = r.u64();
    if (uid === 0n) throw new DecodeError('bad-value', `topology record for peer ${formatPeerName(name)} has uid 0`);
    const version = r.u64();
    records.push({ name, nickname, uid, version, connections: decodeConnections(r, name) });
  }
  return records;
}

function decodeConnections(r: Reader, owner: PeerName): ConnectionSummary[] {
  const n = r.u16();
  // Checked before allocating so a bogus count costs nothing.
  if (n * MIN_CONNECTION_BYTES > r.remaining) {
    throw new DecodeError('too-large', `peer ${formatPeerName(owner)} claims ${n} connections but only ${r.remaining} bytes remain`);
  }
  const peers = new Set<PeerName>();
  const connections: ConnectionSummary[] = [];
  for (let i = 0; i < n; i++) {
    const peer = r.u48();
    if (peer === 0) throw new DecodeError('bad-value', `peer ${formatPeerName(owner)} lists a connection to the reserved peer name 0`);
    if (peer === owner) throw new DecodeError('bad-value', `peer ${formatPeerName(owner)} lists a connection to itself`);
    if (peers.has(peer)) throw new DecodeError('bad-value', `peer ${formatPeerName(owner)} lists its connection to ${formatPeerName(peer)} twice`);
    peers.add(peer);
    const address = r.str8();
    const flags = r.u8();
    if ((flags & ~(FLAG_OUTBOUND | FLAG_ESTABLISHED)) !== 0) {
      throw new DecodeError('bad-value', `connection flags 0x${flags.toString(16)} from peer ${formatPeerName(owner)} set unknown bits`);
    }
    connections.push({
      peer,
      address,
      outbound: (flags & FLAG_OUTBOUND) !== 0,
      established: (flags & FLAG_ESTABLISHED) !== 0,
    });
  }
  return connections;
}

/** Most names one topology request may ask for. */
export const MAX_REQUESTED_RECORDS = 1024;

/**
 * A topology request, sent as a gossip unicast on the "topology" channel to a neighbour: "send me the
 * records of these peers". Layout: u16 count (1..1024), then that many u48 non-zero names.
 */
export function encodeTopologyRequest(w: Writer, names: readonly PeerName[]): void {
  if (names.length === 0 || names.length > MAX_REQUESTED_RECORDS) {
    throw new RangeError(`a topology request names 1 to ${MAX_REQUESTED_RECORDS} peers, not ${names.length}`);
  }
  w.u16(names.length);
  for (const name of names) w.u48(name);
}

export function decodeTopologyRequest(r: Reader): PeerName[] {
  const n = r.u16();
  if (n === 0 || n > MAX_REQUESTED_RECORDS) throw new DecodeError('bad-value', `a topology request names ${n} peers (allowed: 1 to ${MAX_REQUESTED_RECORDS})`);
  const names: PeerName[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.u48();
    if (name === 0) throw new DecodeError('bad-value', 'a topology request names the reserved peer name 0');
    names.push(name);
  }
  return names;
}
