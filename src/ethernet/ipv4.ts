// IPv4 helpers for path-MTU handling: fragmenting inner packets and answering "fragmentation needed".
import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, etherType } from './frame.js';
import { internetChecksum } from '../wire/checksum.js';

export { internetChecksum };

const IP = ETHERNET_HEADER_BYTES;
const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const OFFSET_MASK = 0x1fff;

/** The IPv4 header length of a frame, or 0 when the frame does not carry a plausible IPv4 packet. */
function ipv4HeaderLength(frame: Uint8Array): number {
  if (frame.byteLength < IP + 20 || etherType(frame) !== ETHERTYPE_IPV4) return 0;
  const versionIhl = frame[IP] as number;
  const ihl = (versionIhl & 0x0f) * 4;
  if (versionIhl >> 4 !== 4 || ihl < 20 || frame.byteLength < IP + ihl) return 0;
  return ihl;
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

/** True when the frame is IPv4 with the Don't Fragment bit set. */
export function hasDontFragment(frame: Uint8Array): boolean {
  return ipv4HeaderLength(frame) > 0 && (u16(frame, IP + 6) & FLAG_DF) !== 0;
}

/**
 * Splits an IPv4 frame without DF into fragments of at most `maxFrame` bytes (RFC 791: payload pieces
 * on 8-byte boundaries, MF on all but the last, header checksums recomputed; options are copied to
 * every fragment). Returns undefined when the frame is not IPv4, has DF set, or cannot be split.
 */
export function fragmentIpv4Frame(frame: Uint8Array, maxFrame: number): Uint8Array[] | undefined {
  const ihl = ipv4HeaderLength(frame);
  if (ihl === 0) return undefined;
  const flagsOffset = u16(frame, IP + 6);
  if ((flagsOffset & FLAG_DF) !== 0) return undefined;
  const totalLength = Math.min(u16(frame, IP + 2), frame.byteLength - IP);
  const dataLength = totalLength - ihl;
  const pieceLength = Math.floor((maxFrame - IP - ihl) / 8) * 8;
  if (pieceLength < 8 || dataLength <= 0) return undefined;
  const baseOffset = (flagsOffset & OFFSET_MASK) * 8;
  const originalMf = (flagsOffset & FLAG_MF) !== 0;
  const fragments: Uint8Array[] = [];
  for (let at = 0; at < dataLength; at += pieceLength) {
    const length = Math.min(pieceLength, dataLength - at);
    const last = at + length >= dataLength;
    const out = new Uint8Array(IP + ihl + length);
    out.set(frame.subarray(0, IP + ihl), 0);
    out.set(frame.subarray(IP + ihl + at, IP + ihl + at + length), IP + ihl);
    setU16(out, IP + 2, ihl + length);
    setU16(out, IP + 6, ((baseOffset + at) / 8) | (last && !originalMf ? 0 : FLAG_MF));
    setU16(out, IP + 10, 0);
    setU16(out, IP + 10, internetChecksum(out, IP, IP + ihl));
    fragments.push(out);
  }
  return fragments;
}

/** ICMP types that are queries; errors are never answered with another error (RFC 1812). */
const ICMP_QUERIES = new Set([0, 8, 13, 14, 15, 16, 17, 18]);

/**
 * An ICMP "fragmentation needed" (type 3, code 4) frame answering `frame` as if sent by its
 * destination, telling the sender that at most `mtu` bytes fit. Undefined when no answer is due
 * (not IPv4, DF clear, not the first fragment, or an ICMP error itself).
 */
export function fragmentationNeeded(frame: Uint8Array, mtu: number): Uint8Array | undefined {
  const ihl = ipv4HeaderLength(frame);
  if (ihl === 0) return undefined;
  const flagsOffset = u16(frame, IP + 6);
  if ((flagsOffset & FLAG_DF) === 0 || (flagsOffset & OFFSET_MASK) !== 0) return undefined;
  if (frame[IP + 9] === 1 && !ICMP_QUERIES.has(frame[IP + ihl] ?? 255)) return undefined;
  const quoted = Math.min(ihl + 8, frame.byteLength - IP);
  const icmpLength = 8 + quoted;
  const out = new Uint8Array(IP + 20 + icmpLength);
  out.set(frame.subarray(6, 12), 0); // to the sender's MAC
  out.set(frame.subarray(0, 6), 6); // from the destination's MAC
  setU16(out, 12, ETHERTYPE_IPV4);
  out[IP] = 0x45;
  out[IP + 1] = 0xc0;
  setU16(out, IP + 2, 20 + icmpLength);
  out[IP + 8] = 64;
  out[IP + 9] = 1;
  out.set(frame.subarray(IP + 16, IP + 20), IP + 12); // source: the original destination
  out.set(frame.subarray(IP + 12, IP + 16), IP + 16); // destination: the original source
  setU16(out, IP + 10, internetChecksum(out, IP, IP + 20));
  const icmp = IP + 20;
  out[icmp] = 3;
  out[icmp + 1] = 4;
  setU16(out, icmp + 6, mtu);
  out.set(frame.subarray(IP, IP + quoted), icmp + 8);
  setU16(out, icmp + 2, internetChecksum(out, icmp, out.byteLength));
  return out;
}
