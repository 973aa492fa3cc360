// Super-frames of either kind: TCP (TSO, src/wire/tso.ts) or UDP (USO, src/wire/uso.ts), told apart by the frame's
// IP protocol, as the kernel's virtio header says nothing a neighbour could not get wrong.
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethertype.js';
import { segmentTcpSuperFrame, tcpSuperFrameVirtioHeader } from './tso.js';
import { segmentUdpSuperFrame, udpSegmentCount, udpSuperFrameVirtioHeader, UDP_MAX_SEGMENTS } from './uso.js';

const PROTOCOL_UDP = 17;
/** Offset of the IPv4 protocol and the IPv6 next header in an untagged frame. */
const IPV4_PROTOCOL_AT = 14 + 9;
const IPV6_NEXT_HEADER_AT = 14 + 6;

/**
 * True when the frame's IP header says UDP (untagged IPv4, or IPv6 whose first next header is UDP): a UDP
 * super-frame. Anything else is treated as a TCP super-frame, which the TCP codec checks. Reads two bytes; does not
 * validate the frame.
 */
export function isUdpSuperFrame(frame: Uint8Array): boolean {
  if (frame.byteLength <= IPV4_PROTOCOL_AT) return false;
  const type = ((frame[12] as number) << 8) | (frame[13] as number);
  if (type === ETHERTYPE_IPV4) return frame[IPV4_PROTOCOL_AT] === PROTOCOL_UDP;
  if (type === ETHERTYPE_IPV6) return frame[IPV6_NEXT_HEADER_AT] === PROTOCOL_UDP;
  return false;
}

/**
 * Cuts a super-frame into segments of `segmentSize` payload bytes: TCP segments or UDP datagrams, by the frame's
 * protocol. Throws `DecodeError` when the frame is neither kind of super-frame or the size is unusable.
 */
export function segmentSuperFrame(frame: Uint8Array, segmentSize: number): Uint8Array[] {
  return isUdpSuperFrame(frame) ? segmentUdpSuperFrame(frame, segmentSize) : segmentTcpSuperFrame(frame, segmentSize);
}

/**
 * Writes the virtio_net_hdr that hands a super-frame to a TAP device with offloads (gso_type TCPv4/TCPv6 or UDP_L4,
 * by the frame's protocol) at `out[at, at + 10)`. Throws `DecodeError` like `segmentSuperFrame`.
 */
export function superFrameVirtioHeader(frame: Uint8Array, segmentSize: number, out: Uint8Array, at: number): void {
  if (isUdpSuperFrame(frame)) udpSuperFrameVirtioHeader(frame, segmentSize, out, at);
  else tcpSuperFrameVirtioHeader(frame, segmentSize, out, at);
}

/**
 * True when a TAP device with offloads takes this super-frame whole: every TCP one; a UDP one only when its kernel
 * has USO (`udpOffload`) and it holds at most `UDP_MAX_SEGMENTS` datagrams. False also for a malformed UDP one
 * (cutting it then refuses it).
 */
export function tapTakesWhole(frame: Uint8Array, segmentSize: number, udpOffload: boolean): boolean {
  if (!isUdpSuperFrame(frame)) return true;
  if (!udpOffload) return false;
  try {
    return udpSegmentCount(frame, segmentSize) <= UDP_MAX_SEGMENTS;
  } catch {
    return false;
  }
}
