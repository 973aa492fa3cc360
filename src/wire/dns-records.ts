// DNS record codec: the records gossiped on the "dns" channel, plus the name and address rules they obey.
//
// Layout (big-endian; one gossip payload, a delta or the full state):
//
// | field              | type          | rules                                                                      |
// |--------------------|---------------|----------------------------------------------------------------------------|
// | record count       | u32           | cannot exceed remaining bytes / 32 (the smallest record)                   |
// | per record:        |               | no two records with the same key (origin, name, address, id)              |
// |   name             | str8          | a normalised name: see `isNormalisedName`                                  |
// |   address family   | u8            | 4 or 6                                                                     |
// |   address          | 4 or 16 bytes | network order                                                              |
// |   id               | str8          | owner id (container or endpoint id), UTF-8, 0 to 255 bytes                 |
// |   origin           | u48           | non-zero peer name of the peer that added the record                      |
// |   origin uid       | u64           | non-zero; the origin's incarnation when it last changed the record         |
// |   version          | u64           | 1 to 2^53 - 1; bumped only by the origin                                   |
// |   flags            | u8            | bit 0 tombstone; other bits must be 0                                      |
//
// No timestamps travel: tombstone expiry is measured on each peer's own clock from when it learned the
// tombstone, so clock skew between peers cannot matter (Weave dropped connections over 15 min of skew).
import { DecodeError } from '../errors.js';
import { formatPeerName, type PeerName } from './peer-name.js';
import type { Reader, Writer } from './codec.js';

/** One DNS record as gossiped. Identified by (origin, name, address, id); see `recordKey`. */
export interface DnsRecord {
  /** Fully qualified, lower-case, with a trailing dot, e.g. 'db.weave.local.'. */
  name: string;
  /** IPv4 or IPv6 text in canonical form (`canonicalAddress`). */
  address: string;
  /** Owner id (e.g. a container or endpoint id), at most 255 UTF-8 bytes. */
  id: string;
  /** The peer that added the record; only it changes or tombstones it. */
  origin: PeerName;
  /** The origin's incarnation (uid) when it last changed the record. */
  originUid: bigint;
  /** Bumped by the origin on every change; 1 to `MAX_RECORD_VERSION`. */
  version: number;
  /** True once the origin removed the record. */
  tombstone: boolean;
}

/** Largest record version (versions are exact JS numbers). */
export const MAX_RECORD_VERSION = Number.MAX_SAFE_INTEGER;
/** Longest name without its trailing dot, in characters (RFC 1035). */
export const MAX_NAME_LENGTH = 253;
/** Longest label, in characters. */
export const MAX_LABEL_LENGTH = 63;
/** Longest owner id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 255;

const MIN_RECORD_BYTES = 3 + 5 + 1 + 6 + 8 + 8 + 1; // name "a.", IPv4, empty id
const FLAG_TOMBSTONE = 0x01;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const textEncoder = new TextEncoder();

/**
 * The key identifying a record: `${origin}/${name}/${address}/${id}`, origin in decimal. Names and
 * addresses never contain '/' and the id comes last, so the key is unambiguous even for ids with '/'.
 */
export function recordKey(r: Pick<DnsRecord, 'origin' | 'name' | 'address' | 'id'>): string {
  return `${r.origin}/${r.name}/${r.address}/${r.id}`;
}

/**
 * True for a normalised name: lower-case labels of letters, digits, '_' and inner '-', each 1 to 63
 * characters, ending with a dot, at most 253 characters before that dot.
 */
export function isNormalisedName(name: string): boolean {
  if (!name.endsWith('.') || name.length - 1 > MAX_NAME_LENGTH || name.length < 2) return false;
  for (const label of name.slice(0, -1).split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL_LENGTH || !LABEL.test(label)) return false;
  }
  return true;
}

// --- addresses -------------------------------------------------------------------------------------

const DECIMAL_OCTET = /^(?:0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? '';
    if (!DECIMAL_OCTET.test(part) || Number(part) > 255) return undefined;
    out[i] = Number(part);
  }
  return out;
}

function parseIPv6Bytes(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] ?? '';
      if (last && i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4Bytes(piece);
        if (v4 === undefined) return undefined;
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else {
        if (!HEX_GROUP.test(piece)) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  let all: number[];
  if (halves.length === 2) {
    const zeros = 8 - head.length - tail.length;
    if (zeros < 1) return undefined;
    all = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    all = head;
  }
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** The 4 or 16 bytes of IPv4 (dotted decimal, no leading zeros) or IPv6 text; undefined if it is neither. */
export function parseAddress(text: string): Uint8Array | undefined {
  return text.includes(':') ? parseIPv6Bytes(text) : parseIPv4Bytes(text);
}

/**
 * Canonical text for 4 or 16 address bytes: dotted decimal, or RFC 5952 IPv6 (lower-case hex, no
 * leading zeros, the first longest run of two or more zero groups written '::'; always all-hex, so
 * IPv4-mapped addresses read '::ffff:a00:1', as WHATWG URLs write them). Throws RangeError on other lengths.
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new RangeError(`an address has 4 or 16 bytes, not ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** The canonical form of IPv4 or IPv6 text, or undefined if it is not an address. */
export function canonicalAddress(text: string): string | undefined {
  const bytes = parseAddress(text);
  return bytes === undefined ? undefined : formatAddress(bytes);
}

// --- codec -----------------------------------------------------------------------------------------

/** Writes `records` as one message; throws RangeError on a record peers would reject. */
export function encodeRecords(w: Writer, records: readonly DnsRecord[]): void {
  w.u32(records.length);
  for (const record of records) {
    if (!isNormalisedName(record.name)) throw new RangeError(`"${record.name}" is not a normalised DNS name`);
    const address = parseAddress(record.address);
    if (address === undefined || formatAddress(address) !== record.address) {
      throw new RangeError(`"${record.address}" is not an address in canonical form`);
    }
    if (!Number.isInteger(record.version) || record.version < 1 || record.version > MAX_RECORD_VERSION) {
      throw new RangeError(`record version ${record.version} is not an integer from 1 to 2^53 - 1`);
    }
    if (!isValidRecordId(record.id)) throw new RangeError(`record id ${JSON.stringify(record.id)} is not well-formed or longer than ${MAX_ID_BYTES} bytes`);
    if (record.origin === 0) throw new RangeError('a record cannot have the reserved origin 0');
    if (record.originUid === 0n) throw new RangeError('a record cannot have origin uid 0');
    w.str8(record.name)
      .u8(address.length === 4 ? 4 : 6)
      .bytes(address)
      .str8(record.id)
      .u48(record.origin)
      .u64(record.originUid)
      .u64(BigInt(record.version))
      .u8(record.tombstone ? FLAG_TOMBSTONE : 0);
  }
}

/** Reads one message of records; does not require the reader to be at its end (use `decodeWith`). */
export function decodeRecords(r: Reader): DnsRecord[] {
  const count = r.count(MIN_RECORD_BYTES);
  const seen = new Set<string>();
  const records: DnsRecord[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.str8();
    if (!isNormalisedName(name)) {
      throw new DecodeError('bad-value', `DNS record ${i} has name ${JSON.stringify(name)}, which is not a normalised name`);
    }
    const family = r.u8();
    if (family !== 4 && family !== 6) throw new DecodeError('bad-value', `DNS record ${i} has address family ${family}, expected 4 or 6`);
    const address = formatAddress(r.bytesView(family === 4 ? 4 : 16));
    const id = r.str8();
    const origin = r.u48();
    if (origin === 0) throw new DecodeError('bad-value', `DNS record ${i} has the reserved origin peer name 0`);
    const originUid = r.u64();
    if (originUid === 0n) throw new DecodeError('bad-value', `DNS record ${i} from ${formatPeerName(origin)} has origin uid 0`);
    const version64 = r.u64();
    if (version64 === 0n || version64 > BigInt(MAX_RECORD_VERSION)) {
      throw new DecodeError('bad-value', `DNS record ${i} has version ${version64}, outside 1 to 2^53 - 1`);
    }
    const flags = r.u8();
    if ((flags & ~FLAG_TOMBSTONE) !== 0) {
      throw new DecodeError('bad-value', `DNS record ${i} has flags 0x${flags.toString(16)} with unknown bits set`);
    }
    const record: DnsRecord = { name, address, id, origin, originUid, version: Number(version64), tombstone: (flags & FLAG_TOMBSTONE) !== 0 };
    const key = recordKey(record);
    if (seen.has(key)) {
      throw new DecodeError('bad-value', `DNS message lists record ${name} ${address} id ${JSON.stringify(id)} from ${formatPeerName(origin)} twice`);
    }
    seen.add(key);
    records.push(record);
  }
  return records;
}

/** True when `id` survives the wire unchanged: well-formed UTF-16 (no lone surrogates), at most 255 UTF-8 bytes. */
export function isValidRecordId(id: string): boolean {
  return !LONE_SURROGATE.test(id) && textEncoder.encode(id).byteLength <= MAX_ID_BYTES;
}
