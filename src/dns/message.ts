// DNS messages: decoding the one-question queries weaveDNS serves and encoding its replies (RFC 1035; EDNS0 per RFC 6891).
import { isIPv4, isIPv6 } from 'node:net';
import { DecodeError } from '../errors.js';
import { Reader, Writer } from '../wire/codec.js';
import { formatAddress } from '../wire/dns-records.js';

/** Size of the fixed message header. */
export const HEADER_SIZE = 12;

/** Response codes weaveDNS sends (16 and up need an OPT record to carry the upper bits). */
export const Rcode = {
  noError: 0,
  formErr: 1,
  servFail: 2,
  nxDomain: 3,
  notImp: 4,
  refused: 5,
  badVers: 16,
} as const;

/** Record types weaveDNS knows about. */
export const RecordType = {
  A: 1,
  NS: 2,
  SOA: 6,
  PTR: 12,
  AAAA: 28,
  OPT: 41,
  ANY: 255,
} as const;

export const CLASS_IN = 1;
export const CLASS_ANY = 255;

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;

const MAX_NAME_WIRE = 255;
const MAX_LABEL = 63;
const OPT_SIZE = 11;
/** The UDP payload size we advertise in our own OPT records. */
export const ADVERTISED_UDP_SIZE = 4096;
/**
 * The EDNS0 option (code from the local/experimental range of RFC 6891 §9) a weave-ts server adds to every query it
 * forwards: a weave-ts server receiving it does not forward the query again, so forwarding loops between peers stop.
 */
export const FORWARDED_OPTION_CODE = 65367;

/** The fixed 12-byte header. */
export interface Header {
  id: number;
  flags: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** What a query's OPT record says. */
export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  /** The OPT record carries {@link FORWARDED_OPTION_CODE}: a weave-ts server already forwarded this query. */
  forwarded: boolean;
}

/** A decoded query with exactly one question. */
export interface Query {
  header: Header;
  /** The question's name as asked (case kept), absolute with a trailing dot; a byte outside printable ASCII, or a dot or backslash inside a label, is escaped as `\DDD`. */
  name: string;
  labelCount: number;
  type: number;
  class: number;
  /** The question section exactly as it arrived (name, type, class); replies echo it verbatim. */
  question: Uint8Array;
  edns: Edns | undefined;
}

/** The header, or undefined when there are fewer than 12 bytes. */
export function readHeader(bytes: Uint8Array): Header | undefined {
  if (bytes.byteLength < HEADER_SIZE) return undefined;
  const r = new Reader(bytes);
  return { id: r.u16(), flags: r.u16(), qdcount: r.u16(), ancount: r.u16(), nscount: r.u16(), arcount: r.u16() };
}

/** The opcode field of `flags`. */
export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}

/**
 * Decodes a query with exactly one question; throws `DecodeError` for anything else a server would answer
 * with FORMERR (several questions, a compressed or overlong question name, a bad OPT record, short sections).
 * Answer and authority records are skipped; bytes after the last section are ignored, as resolvers do.
 */
export function decodeQuery(bytes: Uint8Array): Query {
  const r = new Reader(bytes);
  const header = { id: r.u16(), flags: r.u16(), qdcount: r.u16(), ancount: r.u16(), nscount: r.u16(), arcount: r.u16() };
  if (header.qdcount !== 1) throw new DecodeError('bad-value', `query has ${header.qdcount} questions; exactly one is supported`);
  const start = r.position;
  const { name, labelCount } = readQuestionName(r);
  const type = r.u16();
  const klass = r.u16();
  const question = bytes.subarray(start, r.position);
  for (let i = 0; i < header.ancount + header.nscount; i++) skipRecord(r);
  let edns: Edns | undefined;
  for (let i = 0; i < header.arcount; i++) {
    const rootName = r.u8() === 0;
    if (!rootName) {
      skipNameRest(r, bytes[r.position - 1] as number);
      r.u16();
      r.u16();
      r.u32();
      r.bytesView(r.u16());
      continue;
    }
    const rrType = r.u16();
    const rrClass = r.u16();
    const ttl = r.u32();
    const rdata = r.bytesView(r.u16());
    if (rrType !== RecordType.OPT) continue;
    if (edns !== undefined) throw new DecodeError('bad-value', 'query has more than one OPT record');
    edns = { udpSize: rrClass, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0, forwarded: hasOption(rdata, FORWARDED_OPTION_CODE) };
  }
  return { header, name, labelCount, type, class: klass, question, edns };
}

function readQuestionName(r: Reader): { name: string; labelCount: number } {
  const labels: string[] = [];
  let wire = 1;
  for (;;) {
    const len = r.u8();
    if (len === 0) break;
    if (len > MAX_LABEL) throw new DecodeError('bad-value', `question name has a compression pointer or label type 0x${len.toString(16)}`);
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) throw new DecodeError('too-large', 'question name is longer than 255 bytes');
    labels.push(presentLabel(r.bytesView(len)));
  }
  return { name: labels.length === 0 ? '.' : `${labels.join('.')}.`, labelCount: labels.length };
}

function presentLabel(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b > 0x20 && b < 0x7f && b !== 0x2e && b !== 0x5c) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return out;
}

/** True when OPT record data (a list of code, length, value) holds option `code`; throws DecodeError when the list is cut short. */
function hasOption(rdata: Uint8Array, code: number): boolean {
  const r = new Reader(rdata);
  let found = false;
  while (r.remaining > 0) {
    if (r.u16() === code) found = true;
    r.bytesView(r.u16());
  }
  return found;
}

/** Skips a name (labels, ending in a zero byte or a compression pointer). */
export function skipName(r: Reader): void {
  skipNameRest(r, r.u8());
}

/** Skips the rest of a name whose first length byte `first` was already read. */
function skipNameRest(r: Reader, first: number): void {
  let len = first;
  for (let guard = 0; guard < 128; guard++) {
    if (len === 0) return;
    if ((len & 0xc0) === 0xc0) {
      r.u8();
      return;
    }
    if (len > MAX_LABEL) throw new DecodeError('bad-value', `unknown label type 0x${len.toString(16)}`);
    r.bytesView(len);
    len = r.u8();
  }
  throw new DecodeError('too-large', 'name has too many labels');
}

/** Skips one resource record (owner name, type, class, TTL, data). */
export function skipRecord(r: Reader): void {
  skipNameRest(r, r.u8());
  r.u16();
  r.u16();
  r.u32();
  r.bytesView(r.u16());
}

/** The data of one answer record; its owner is always the question's name (a pointer to it). */
export interface Rdata {
  type: number;
  ttl: number;
  data: Uint8Array;
}

/** A record with its own owner name (wire form), for the authority section. */
export interface NamedRecord extends Rdata {
  name: Uint8Array;
}

/** A reply to encode. */
export interface Reply {
  id: number;
  /** Opcode and RD are copied from here. */
  queryFlags: number;
  authoritative: boolean;
  rcode: number;
  /** The question section to echo; omitted for header-only errors. */
  question?: Uint8Array;
  answers?: readonly Rdata[];
  authority?: readonly NamedRecord[];
  /** Adds an OPT record (the query had one). */
  edns?: boolean;
  /** Largest message allowed: answers that would not fit are left out and TC is set. */
  limit: number;
}

/** Encodes a reply; `truncated` tells whether answers were left out to respect `limit`. */
export function encodeReply(reply: Reply): { bytes: Uint8Array; truncated: boolean } {
  const question = reply.question;
  const answers = reply.answers ?? [];
  let authority = reply.authority ?? [];
  const optSize = reply.edns ? OPT_SIZE : 0;
  let size = HEADER_SIZE + (question?.byteLength ?? 0) + optSize;
  let authoritySize = 0;
  for (const rr of authority) authoritySize += rr.name.byteLength + 10 + rr.data.byteLength;
  let fitting = 0;
  for (const rr of answers) {
    const rrSize = (question ? 2 : 1) + 10 + rr.data.byteLength;
    if (size + rrSize > reply.limit) break;
    size += rrSize;
    fitting++;
  }
  // Answers come first; the authority section goes too when anything does not fit.
  const truncated = fitting < answers.length || size + authoritySize > reply.limit;
  if (truncated) authority = [];
  const rcode = reply.edns ? reply.rcode : Math.min(reply.rcode, 15);
  let flags = FLAG_QR | (reply.queryFlags & 0x7800) | (reply.queryFlags & FLAG_RD) | FLAG_RA | (rcode & 0xf);
  if (reply.authoritative) flags |= FLAG_AA;
  if (truncated) flags |= FLAG_TC;
  const w = new Writer(size + authoritySize);
  w.u16(reply.id).u16(flags).u16(question ? 1 : 0).u16(fitting).u16(authority.length).u16(reply.edns ? 1 : 0);
  if (question) w.bytes(question);
  for (let i = 0; i < fitting; i++) {
    const rr = answers[i] as Rdata;
    if (question) w.u16(0xc000 | HEADER_SIZE);
    else w.u8(0);
    w.u16(rr.type).u16(CLASS_IN).u32(rr.ttl).u16(rr.data.byteLength).bytes(rr.data);
  }
  for (const rr of authority) w.bytes(rr.name).u16(rr.type).u16(CLASS_IN).u32(rr.ttl).u16(rr.data.byteLength).bytes(rr.data);
  if (reply.edns) w.u8(0).u16(RecordType.OPT).u16(ADVERTISED_UDP_SIZE).u32(((rcode >> 4) & 0xff) << 24).u16(0);
  return { bytes: w.finish(), truncated };
}

const textEncoder = new TextEncoder();

/** Wire form of an absolute name (`a.b.` or `a.b`); throws RangeError for empty or overlong labels. */
export function encodeName(name: string): Uint8Array {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed === '' ? [] : trimmed.split('.').map((l) => textEncoder.encode(l));
  const w = new Writer(trimmed.length + 2);
  for (const label of labels) {
    if (label.byteLength === 0 || label.byteLength > MAX_LABEL) throw new RangeError(`name ${JSON.stringify(name)} has an empty or overlong label`);
    w.u8(label.byteLength).bytes(label);
  }
  w.u8(0);
  if (w.length > MAX_NAME_WIRE) throw new RangeError(`name ${JSON.stringify(name)} is longer than 255 bytes`);
  return w.finish();
}

/** The 4 bytes of a dotted-quad IPv4 address, or undefined. */
export function ipv4Bytes(address: string): Uint8Array | undefined {
  if (!isIPv4(address)) return undefined;
  return Uint8Array.from(address.split('.').map(Number));
}

/** The 16 bytes of an IPv6 address (zone ignored; embedded IPv4 allowed), or undefined. */
export function ipv6Bytes(address: string): Uint8Array | undefined {
  if (!isIPv6(address)) return undefined;
  let text = address.split('%')[0] as string;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4Bytes(tail);
    if (!v4) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(((v4[0] as number) << 8) | (v4[1] as number)).toString(16)}:${(((v4[2] as number) << 8) | (v4[3] as number)).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  if (missing < 0 || (rest === undefined && missing !== 0)) return undefined;
  const groups = [...headGroups, ...new Array<string>(missing).fill('0'), ...restGroups];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952 text form of 16 address bytes (the records' canonical form, so lookups match). */
export function formatIpv6(bytes: Uint8Array): string {
  return formatAddress(bytes);
}

/** The address a reverse-lookup name (`4.3.2.1.in-addr.arpa.`, 32 nibbles `.ip6.arpa.`) stands for, or undefined. */
export function reverseAddress(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith('.in-addr.arpa.')) {
    const parts = lower.slice(0, -'.in-addr.arpa.'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
    return parts.reverse().join('.');
  }
  if (lower.endsWith('.ip6.arpa.')) {
    const nibbles = lower.slice(0, -'.ip6.arpa.'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
    const hex = nibbles.reverse().join('');
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return formatIpv6(bytes);
  }
  return undefined;
}

/** SOA record data for `domain`: `ns.<domain>`, `hostmaster.<domain>`, serial 1, `minimum` = negative-caching TTL. */
export function soaRdata(domain: string, minimum: number): Uint8Array {
  const w = new Writer(2 * domain.length + 40);
  w.bytes(encodeName(`ns.${domain}`)).bytes(encodeName(`hostmaster.${domain}`));
  w.u32(1).u32(3600).u32(600).u32(86400).u32(minimum);
  return w.finish();
}

/** A copy of `message` with its id replaced. */
export function withId(message: Uint8Array, id: number): Uint8Array {
  const copy = Uint8Array.from(message);
  if (copy.byteLength >= 2) {
    copy[0] = id >> 8;
    copy[1] = id & 0xff;
  }
  return copy;
}
