// Forwarding messages: the query a server sends upstream (marked as forwarded), and the upstream's reply made fit for each client.
import { DecodeError } from '../errors.js';
import { Reader, Writer } from '../wire/codec.js';
import { FORWARDED_OPTION_CODE, HEADER_SIZE, RecordType, skipName, skipRecord } from './message.js';

/** Header flags a forwarded query keeps from the client's: RD, AD and CD (RFC 6840 §5.7–5.9). */
const FORWARDED_FLAGS = 0x0100 | 0x0020 | 0x0010;

/** What goes into a query sent upstream. */
export interface ForwardQuery {
  /** A fresh random id for the exchange. */
  id: number;
  /** The client's header flags (only RD, AD and CD are kept; the opcode is QUERY). */
  flags: number;
  /** The client's question section, as asked. */
  question: Uint8Array;
  /** The UDP payload size to advertise (the client's limit, so the upstream truncates as the client would want). */
  udpSize: number;
  /** The DO bit (DNSSEC records wanted). */
  dnssecOk: boolean;
  /** Leave the OPT record (and so the marker) out: for an upstream that answered FORMERR to EDNS (RFC 6891 §7). */
  plain?: boolean;
}

/**
 * A fresh query: header, the client's question, and an OPT record carrying {@link FORWARDED_OPTION_CODE}. The
 * client's other records and EDNS options (cookies, padding, client subnet) are not passed on: they belong to its
 * exchange with us, and one upstream answer may serve several clients.
 */
export function encodeForwardQuery(q: ForwardQuery): Uint8Array {
  const w = new Writer(HEADER_SIZE + q.question.byteLength + 15);
  w.u16(q.id).u16(q.flags & FORWARDED_FLAGS).u16(1).u16(0).u16(0).u16(q.plain ? 0 : 1);
  w.bytes(q.question);
  if (!q.plain) w.u8(0).u16(RecordType.OPT).u16(q.udpSize).u32(q.dnssecOk ? 0x8000 : 0).u16(4).u16(FORWARDED_OPTION_CODE).u16(0);
  return w.finish();
}

/** Where the parts of an upstream reply are, found once and used for every client it answers. */
export interface ResponseLayout {
  /** Number of questions (0 or 1; anything else is rejected). */
  qdcount: number;
  /** Offset just after the question section. */
  questionEnd: number;
  /** Byte ranges [start, end) of the OPT records in the additional section. */
  opts: readonly (readonly [number, number])[];
}

/** Walks an upstream reply; throws DecodeError when a section is cut short or malformed. */
export function responseLayout(response: Uint8Array): ResponseLayout {
  const r = new Reader(response);
  r.u16();
  r.u16();
  const qdcount = r.u16();
  const ancount = r.u16();
  const nscount = r.u16();
  const arcount = r.u16();
  if (qdcount > 1) throw new DecodeError('bad-value', `upstream reply has ${qdcount} questions`);
  if (qdcount === 1) {
    skipName(r);
    r.u16();
    r.u16();
  }
  const questionEnd = r.position;
  for (let i = 0; i < ancount + nscount; i++) skipRecord(r);
  const opts: [number, number][] = [];
  for (let i = 0; i < arcount; i++) {
    const start = r.position;
    const root = response[start] === 0;
    skipRecord(r);
    if (root && (((response[start + 1] as number) << 8) | (response[start + 2] as number)) === RecordType.OPT) opts.push([start, r.position]);
  }
  return { qdcount, questionEnd, opts };
}

/** Who a reply is for. */
export interface ReplyTarget {
  /** The client's id. */
  id: number;
  /** The client's question section as asked (same name up to ASCII case), echoed so case-checking resolvers accept it. */
  question: Uint8Array;
  /** Whether the client sent an OPT record; without one, the reply must carry none (RFC 6891 §7). */
  edns: boolean;
}

/** The upstream reply for one client: its id and question bytes, and without OPT records unless it used EDNS. */
export function replyFor(response: Uint8Array, layout: ResponseLayout, target: ReplyTarget): Uint8Array {
  const cut = target.edns ? [] : layout.opts;
  let size = response.byteLength;
  for (const [start, end] of cut) size -= end - start;
  const out = new Uint8Array(size);
  let at = 0;
  let from = 0;
  for (const [start, end] of cut) {
    out.set(response.subarray(from, start), at);
    at += start - from;
    from = end;
  }
  out.set(response.subarray(from), at);
  out[0] = target.id >> 8;
  out[1] = target.id & 0xff;
  if (cut.length > 0) {
    const arcount = (((out[10] as number) << 8) | (out[11] as number)) - cut.length;
    out[10] = arcount >> 8;
    out[11] = arcount & 0xff;
  }
  if (layout.qdcount === 1 && layout.questionEnd - HEADER_SIZE === target.question.byteLength) out.set(target.question, HEADER_SIZE);
  return out;
}
