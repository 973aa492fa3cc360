// TCP segment codec: header, options and payload, with the checksum over the IPv4 pseudo-header (RFC 9293 §3.1).
import { DecodeError } from '../../errors.js';
import { Reader, Writer } from '../../wire/codec.js';
import { ChecksumError, transportChecksum } from '../../wire/inet.js';
import type { TcpOptions, TcpSegment } from './contract.js';

/** IPv4 protocol number of TCP. */
export const IP_PROTOCOL_TCP = 6;
/** Length of a TCP header without options. */
export const TCP_HEADER_BYTES = 20;
/** Most option bytes a header can carry (data offset 15 words). */
export const TCP_MAX_OPTION_BYTES = 40;
/** Largest window shift (RFC 7323 §2.3): larger values received are taken as 14. */
export const TCP_MAX_WINDOW_SCALE = 14;

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WINDOW_SCALE = 3;
const OPT_SACK_PERMITTED = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

function checkField(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${v} does not fit in the TCP ${field} field`);
}

/** Bytes `writeOptions` will use for `o`. */
function optionBytes(o: TcpOptions): number {
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.sackPermitted || o.timestamp) n += o.timestamp ? 12 : 4;
  if (o.windowScale !== undefined) n += 4;
  if (o.sack && o.sack.length > 0) {
    if (o.sack.length > 4) throw new RangeError(`${o.sack.length} SACK blocks do not fit in a TCP header (at most 4)`);
    n += 4 + 8 * o.sack.length;
  }
  if (n > TCP_MAX_OPTION_BYTES) throw new RangeError(`TCP options of ${n} bytes exceed the 40 a header can carry`);
  return n;
}

/** Writes the options in a fixed, 4-byte-aligned layout (the one Linux uses for SYNs). */
function writeOptions(w: Writer, o: TcpOptions): void {
  if (o.mss !== undefined) {
    checkField(o.mss, 0xffff, 'MSS option');
    w.u8(OPT_MSS).u8(4).u16(o.mss);
  }
  if (o.sackPermitted && o.timestamp) {
    w.u8(OPT_SACK_PERMITTED).u8(2);
  } else if (o.sackPermitted) {
    w.u8(OPT_NOP).u8(OPT_NOP).u8(OPT_SACK_PERMITTED).u8(2);
  } else if (o.timestamp) {
    w.u8(OPT_NOP).u8(OPT_NOP);
  }
  if (o.timestamp) w.u8(OPT_TIMESTAMP).u8(10).u32(o.timestamp[0]).u32(o.timestamp[1]);
  if (o.windowScale !== undefined) {
    checkField(o.windowScale, TCP_MAX_WINDOW_SCALE, 'window scale option');
    w.u8(OPT_NOP).u8(OPT_WINDOW_SCALE).u8(3).u8(o.windowScale);
  }
  if (o.sack && o.sack.length > 0) {
    w.u8(OPT_NOP).u8(OPT_NOP).u8(OPT_SACK).u8(2 + 8 * o.sack.length);
    for (const [left, right] of o.sack) w.u32(left).u32(right);
  }
}

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}

function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/**
 * Encodes `segment` sent from `sourceAddress` to `destinationAddress` (IPv4, 32-bit numbers) into the
 * bytes of an IPv4 payload, checksum included. Throws RangeError for values a field cannot hold or
 * options beyond 40 bytes (a bug of the caller, never input from the network).
 *
 * The data path runs through here once per segment, so the fixed header goes straight into the one
 * output array (a Writer would cost two more allocations per segment); options, rare on data
 * segments, go through a Writer. `headroom` bytes are left free in front of the segment in its buffer
 * (the result is a view starting there) for the headers of the layers below.
 */
export function encodeTcpSegment(segment: TcpSegment, sourceAddress: number, destinationAddress: number, headroom = 0): Uint8Array {
  checkField(segment.sourcePort, 0xffff, 'source port');
  checkField(segment.destinationPort, 0xffff, 'destination port');
  checkField(segment.seq, 0xffff_ffff, 'sequence number');
  checkField(segment.ack, 0xffff_ffff, 'acknowledgement number');
  checkField(segment.flags, 0xff, 'flags');
  checkField(segment.window, 0xffff, 'window');
  checkField(segment.urgentPointer, 0xffff, 'urgent pointer');
  const optionLength = optionBytes(segment.options);
  const headerBytes = TCP_HEADER_BYTES + optionLength;
  // With headroom, the segment is a view `headroom` bytes into its buffer, so the stack writes the Ethernet and
  // IPv4 headers in front of it instead of copying it into a frame.
  const out = headroom === 0 ? new Uint8Array(headerBytes + segment.payload.byteLength) : new Uint8Array(headroom + headerBytes + segment.payload.byteLength).subarray(headroom);
  setU16(out, 0, segment.sourcePort);
  setU16(out, 2, segment.destinationPort);
  setU32(out, 4, segment.seq);
  setU32(out, 8, segment.ack);
  out[12] = (headerBytes / 4) << 4;
  out[13] = segment.flags;
  setU16(out, 14, segment.window);
  setU16(out, 18, segment.urgentPointer);
  if (optionLength > 0) {
    const w = new Writer(optionLength);
    writeOptions(w, segment.options);
    out.set(w.finish(), TCP_HEADER_BYTES);
  }
  out.set(segment.payload, headerBytes);
  const checksum = transportChecksum(out, 0, out.byteLength, sourceAddress, destinationAddress, IP_PROTOCOL_TCP);
  setU16(out, 16, checksum);
  return out;
}

function getU16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function getU32(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
}

function optionLength(kind: number, length: number, expected: number): void {
  if (length !== expected) throw new DecodeError('bad-value', `TCP option ${kind} has length ${length}, expected ${expected}`);
}

function readOptions(r: Reader): TcpOptions {
  const options: TcpOptions = {};
  while (r.remaining > 0) {
    const kind = r.u8();
    if (kind === OPT_EOL) {
      r.bytesView(r.remaining); // padding after the end of the option list
      break;
    }
    if (kind === OPT_NOP) continue;
    if (r.remaining < 1) throw new DecodeError('bad-value', `TCP option ${kind} has no length byte`);
    const length = r.u8();
    if (length < 2 || length - 2 > r.remaining) {
      throw new DecodeError('bad-value', `TCP option ${kind} has length ${length}, which does not fit in the ${r.remaining + 2} option bytes left`);
    }
    switch (kind) {
      case OPT_MSS:
        optionLength(kind, length, 4);
        options.mss = r.u16();
        break;
      case OPT_WINDOW_SCALE:
        optionLength(kind, length, 3);
        options.windowScale = Math.min(r.u8(), TCP_MAX_WINDOW_SCALE);
        break;
      case OPT_SACK_PERMITTED:
        optionLength(kind, length, 2);
        options.sackPermitted = true;
        break;
      case OPT_SACK: {
        if ((length - 2) % 8 !== 0 || length === 2) throw new DecodeError('bad-value', `TCP SACK option has length ${length}, not 2 + 8·n with n ≥ 1`);
        const blocks: (readonly [number, number])[] = [];
        for (let i = 0; i < (length - 2) / 8; i++) blocks.push([r.u32(), r.u32()]);
        options.sack = blocks;
        break;
      }
      case OPT_TIMESTAMP:
        optionLength(kind, length, 10);
        options.timestamp = [r.u32(), r.u32()];
        break;
      default:
        r.bytesView(length - 2); // unknown: skipped by its length
    }
  }
  return options;
}

/**
 * Decodes a TCP segment (an IPv4 payload) sent from `sourceAddress` to `destinationAddress`. The
 * checksum must verify (ChecksumError), the data offset must fit, and the options must be well formed
 * (DecodeError); unknown options are skipped. The payload is a view into `bytes`.
 */
export function decodeTcpSegment(bytes: Uint8Array, sourceAddress: number, destinationAddress: number): TcpSegment {
  // The fixed header is read by hand after one length check (the data path decodes every segment here);
  // the options, where lengths come from the wire, go through a Reader.
  if (bytes.byteLength < TCP_HEADER_BYTES) throw new DecodeError('short-read', `TCP segment of ${bytes.byteLength} bytes is shorter than the 20-byte header`);
  const b = bytes;
  const headerBytes = ((b[12] as number) >>> 4) * 4;
  if (headerBytes < TCP_HEADER_BYTES) throw new DecodeError('bad-value', `TCP data offset ${headerBytes} bytes is shorter than the 20-byte header`);
  if (headerBytes > bytes.byteLength) throw new DecodeError('short-read', `TCP data offset ${headerBytes} exceeds the ${bytes.byteLength} bytes of the segment`);
  if (transportChecksum(bytes, 0, bytes.byteLength, sourceAddress, destinationAddress, IP_PROTOCOL_TCP) !== 0) throw new ChecksumError('TCP');
  const options = headerBytes === TCP_HEADER_BYTES ? {} : readOptions(new Reader(bytes.subarray(TCP_HEADER_BYTES, headerBytes)));
  return {
    sourcePort: getU16(b, 0),
    destinationPort: getU16(b, 2),
    seq: getU32(b, 4),
    ack: getU32(b, 8),
    flags: b[13] as number,
    window: getU16(b, 14),
    urgentPointer: getU16(b, 18),
    options,
    payload: bytes.subarray(headerBytes),
  };
}
