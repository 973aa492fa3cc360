// TCP super-frames (TSO/GSO): up to 64 KiB of one TCP stream in one Ethernet frame, as a TAP device with offloads
// hands them over. They cross the sleeve whole where the link carries big datagrams and the neighbour takes them,
// and are cut into MTU-sized segments here everywhere else (as the kernel's tcp_gso_segment and wireguard-go's
// tun/offload_linux.go do).
//
// A super-frame's TCP checksum field holds only the pseudo-header sum (a partial checksum, completed per segment by
// whoever segments it). The IPv4 total length or IPv6 payload length covers the whole super-frame.
import { DecodeError } from '../errors.js';
import { ETHERNET_HEADER_BYTES } from './ethertype.js';
import { cutSegment, parseSuperFrameIp, pseudoHeaderSum, setU16 } from './ip-headers.js';
import { internetChecksum } from './checksum.js';
import { VIRTIO_F_NEEDS_CSUM, VIRTIO_GSO_TCPV4, VIRTIO_GSO_TCPV6, encodeVirtioHeader } from './virtio.js';

const IP = ETHERNET_HEADER_BYTES;
const PROTOCOL_TCP = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
/** Offset of the checksum in the TCP header. */
export const TCP_CHECKSUM_OFFSET = 16;
/** Smallest segment size accepted (IPv4's minimum MSS is 536; anything far below is not a real stream). */
const MIN_SEGMENT_SIZE = 64;

/** Where the headers of a TCP super-frame end. */
export interface TcpSuperFrame {
  ipv6: boolean;
  /** Offset of the TCP header in the frame. */
  tcpOffset: number;
  /** Offset of the TCP payload (the end of all headers). */
  payloadOffset: number;
}

function u32(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) >>> 0) + ((b[at + 1] as number) << 16) + ((b[at + 2] as number) << 8) + (b[at + 3] as number);
}

function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/**
 * Checks that `frame` is an untagged IPv4 or IPv6 TCP packet that can be segmented: no IP fragment, no IPv6
 * extension header, lengths that agree with the frame, a payload. Throws `DecodeError` otherwise.
 */
export function parseTcpSuperFrame(frame: Uint8Array): TcpSuperFrame {
  const length = frame.byteLength;
  if (length < IP + 40) throw new DecodeError('short-read', `a ${length}-byte frame is too short for a TCP super-frame`);
  const { ipv6, transportOffset: tcpOffset } = parseSuperFrameIp(frame, PROTOCOL_TCP, 'TCP');
  if (tcpOffset + 20 > length) throw new DecodeError('short-read', 'super-frame TCP header cut short');
  const dataOffset = ((frame[tcpOffset + 12] as number) >> 4) * 4;
  if (dataOffset < 20) throw new DecodeError('bad-value', 'super-frame with a bad TCP data offset');
  const payloadOffset = tcpOffset + dataOffset;
  if (payloadOffset >= length) throw new DecodeError('bad-value', 'super-frame without a TCP payload');
  return { ipv6, tcpOffset, payloadOffset };
}

/** True when `segmentSize` is one a super-frame may carry. */
export function isValidSegmentSize(segmentSize: number): boolean {
  return Number.isInteger(segmentSize) && segmentSize >= MIN_SEGMENT_SIZE && segmentSize <= 0xffff;
}

/** Fills in the full TCP checksum of a segment frame whose TCP header starts at `tcpOffset`. */
function writeTcpChecksum(segment: Uint8Array, ipv6: boolean, tcpOffset: number): void {
  setU16(segment, tcpOffset + TCP_CHECKSUM_OFFSET, 0);
  const dataSum = ~internetChecksum(segment, tcpOffset, segment.byteLength) & 0xffff;
  let sum = dataSum + pseudoHeaderSum(segment, ipv6, PROTOCOL_TCP, segment.byteLength - tcpOffset);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  setU16(segment, tcpOffset + TCP_CHECKSUM_OFFSET, ~sum & 0xffff || 0xffff);
}

/**
 * Cuts a TCP super-frame into frames of at most `segmentSize` payload bytes each, with complete IP and TCP
 * checksums: sequence numbers advance, IPv4 ids count up from the super-frame's, FIN and PSH stay on the last
 * segment, CWR on the first. Throws `DecodeError` when the frame is not a TCP super-frame or the size is unusable.
 */
export function segmentTcpSuperFrame(frame: Uint8Array, segmentSize: number): Uint8Array[] {
  const parsed = parseTcpSuperFrame(frame);
  if (!isValidSegmentSize(segmentSize)) throw new DecodeError('bad-value', `segment size ${segmentSize} is out of range`);
  const { ipv6, tcpOffset, payloadOffset } = parsed;
  const payloadLength = frame.byteLength - payloadOffset;
  const count = Math.ceil(payloadLength / segmentSize);
  const sequence = u32(frame, tcpOffset + 4);
  const flags = frame[tcpOffset + 13] as number;
  const ip = { ipv6, transportOffset: tcpOffset };
  const segments: Uint8Array[] = new Array<Uint8Array>(count);
  for (let i = 0; i < count; i++) {
    const segment = cutSegment(frame, ip, payloadOffset, segmentSize, i);
    setU32(segment, tcpOffset + 4, (sequence + i * segmentSize) >>> 0);
    let segmentFlags = flags;
    if (i < count - 1) segmentFlags &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) segmentFlags &= ~TCP_CWR;
    segment[tcpOffset + 13] = segmentFlags;
    writeTcpChecksum(segment, ipv6, tcpOffset);
    segments[i] = segment;
  }
  return segments;
}

/**
 * Writes the virtio_net_hdr that hands a TCP super-frame to a TAP device with offloads (the kernel segments it, or
 * delivers it whole to a local stack). Throws `DecodeError` like `segmentTcpSuperFrame`.
 */
export function tcpSuperFrameVirtioHeader(frame: Uint8Array, segmentSize: number, out: Uint8Array, at: number): void {
  const { ipv6, tcpOffset, payloadOffset } = parseTcpSuperFrame(frame);
  if (!isValidSegmentSize(segmentSize)) throw new DecodeError('bad-value', `segment size ${segmentSize} is out of range`);
  encodeVirtioHeader(
    {
      flags: VIRTIO_F_NEEDS_CSUM,
      gsoType: ipv6 ? VIRTIO_GSO_TCPV6 : VIRTIO_GSO_TCPV4,
      headerLength: payloadOffset,
      gsoSize: segmentSize,
      checksumStart: tcpOffset,
      checksumOffset: TCP_CHECKSUM_OFFSET,
    },
    out,
    at,
  );
}
