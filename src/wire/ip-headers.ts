// The IP part of a super-frame, shared by the TCP (tso.ts) and UDP (uso.ts) codecs: big-endian fields, the
// untagged IPv4/IPv6 header checks, and the transport pseudo-header sum.
import { DecodeError } from '../errors.js';
import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethertype.js';
import { internetChecksum } from './checksum.js';

const IP = ETHERNET_HEADER_BYTES;

/** Big-endian u16 at `at`. */
export function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

/** Writes big-endian u16 `v` at `at`. */
export function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

/** Where a super-frame's transport header starts, and which IP version carries it. */
export interface SuperFrameIp {
  ipv6: boolean;
  /** Offset of the transport (TCP or UDP) header in the frame. */
  transportOffset: number;
}

/**
 * Checks that `frame` is an untagged IPv4 or IPv6 packet of transport `protocol` (6 TCP, 17 UDP; `name` for errors)
 * that can be segmented: no IP fragment, no IPv6 extension header, IP lengths that agree with the frame. An IPv6
 * frame shorter than its header and `minTransportBytes` is `short-read`. Throws `DecodeError` otherwise.
 */
export function parseSuperFrameIp(frame: Uint8Array, protocol: number, name: string, minTransportBytes = 0): SuperFrameIp {
  const length = frame.byteLength;
  if (length < IP + 20) throw new DecodeError('short-read', `a ${length}-byte frame is too short for a ${name} super-frame`);
  const type = u16(frame, 12);
  if (type === ETHERTYPE_IPV4) {
    const versionIhl = frame[IP] as number;
    const ihl = (versionIhl & 0x0f) * 4;
    if (versionIhl >> 4 !== 4 || ihl < 20) throw new DecodeError('bad-value', 'super-frame with a bad IPv4 header');
    if (frame[IP + 9] !== protocol) throw new DecodeError('bad-value', `super-frame is not ${name}`);
    if ((u16(frame, IP + 6) & 0x3fff) !== 0) throw new DecodeError('bad-value', 'super-frame is an IPv4 fragment');
    if (u16(frame, IP + 2) !== length - IP) throw new DecodeError('bad-value', 'super-frame IPv4 total length disagrees with the frame');
    return { ipv6: false, transportOffset: IP + ihl };
  }
  if (type === ETHERTYPE_IPV6) {
    if (length < IP + 40 + minTransportBytes) throw new DecodeError('short-read', `a ${length}-byte frame is too short for an IPv6 ${name} super-frame`);
    if ((frame[IP] as number) >> 4 !== 6) throw new DecodeError('bad-value', 'super-frame with a bad IPv6 header');
    if (frame[IP + 6] !== protocol) throw new DecodeError('bad-value', `super-frame is not ${name} (or has IPv6 extension headers)`);
    if (u16(frame, IP + 4) !== length - IP - 40) throw new DecodeError('bad-value', 'super-frame IPv6 payload length disagrees with the frame');
    return { ipv6: true, transportOffset: IP + 40 };
  }
  throw new DecodeError('bad-value', `super-frame with EtherType 0x${type.toString(16)} (IPv4 or IPv6 only)`);
}

/** The folded one's-complement sum of the pseudo-header of `length` bytes of transport `protocol`. */
export function pseudoHeaderSum(frame: Uint8Array, ipv6: boolean, protocol: number, length: number): number {
  let sum = protocol + (length & 0xffff) + (length >>> 16);
  const start = ipv6 ? IP + 8 : IP + 12;
  const end = start + (ipv6 ? 32 : 8);
  for (let i = start; i < end; i += 2) sum += u16(frame, i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Segment `index` of a super-frame: its headers (up to `payloadOffset`) and the index-th `segmentSize` bytes of its
 * payload, with the IP lengths, the IPv4 id (the super-frame's plus `index`) and header checksum of the segment.
 * The transport header at `transportOffset` is the caller's to finish.
 */
export function cutSegment(frame: Uint8Array, ip: SuperFrameIp, payloadOffset: number, segmentSize: number, index: number): Uint8Array {
  const start = payloadOffset + index * segmentSize;
  const end = Math.min(frame.byteLength, start + segmentSize);
  const segment = new Uint8Array(payloadOffset + end - start);
  segment.set(frame.subarray(0, payloadOffset));
  segment.set(frame.subarray(start, end), payloadOffset);
  if (ip.ipv6) {
    setU16(segment, IP + 4, segment.byteLength - IP - 40);
  } else {
    setU16(segment, IP + 2, segment.byteLength - IP);
    setU16(segment, IP + 4, (u16(frame, IP + 4) + index) & 0xffff);
    setU16(segment, IP + 10, 0);
    setU16(segment, IP + 10, internetChecksum(segment, IP, ip.transportOffset));
  }
  return segment;
}
