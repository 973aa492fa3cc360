// UDP super-frames (USO, virtio gso_type UDP_L4): many UDP datagrams of one flow in one Ethernet frame, as a TAP
// device with offloads hands them over. Cut into datagrams of one segment size each (the last may be shorter), as
// the kernel's __udp_gso_segment does: unlike UFO, every segment is a whole UDP datagram with its own UDP header.
//
// A super-frame's UDP checksum field holds only the pseudo-header sum (a partial checksum, completed per segment).
// The IPv4 total length or IPv6 payload length covers the whole super-frame; its UDP length field is not trusted
// (the kernel may leave the unsegmented length there) and is rewritten in every segment.
import { DecodeError } from '../errors.js';
import { ETHERNET_HEADER_BYTES } from './ethertype.js';
import { cutSegment, parseSuperFrameIp, pseudoHeaderSum, setU16 } from './ip-headers.js';
import { internetChecksum } from './checksum.js';
import { isValidSegmentSize } from './tso.js';
import { VIRTIO_F_NEEDS_CSUM, VIRTIO_GSO_UDP_L4, encodeVirtioHeader } from './virtio.js';

export { VIRTIO_GSO_UDP_L4 };

/**
 * Most datagrams a kernel takes in one UDP_L4 write to a TAP device: `virtio_net_hdr_to_skb` refuses a frame whose
 * payload exceeds gso_size × UDP_MAX_SEGMENTS (128 since Linux 6.9 and the stable kernels that got the check).
 */
export const UDP_MAX_SEGMENTS = 128;

const IP = ETHERNET_HEADER_BYTES;
const PROTOCOL_UDP = 17;
const UDP_HEADER_BYTES = 8;
/** Offset of the checksum in the UDP header. */
const UDP_CHECKSUM_OFFSET = 6;

/** Where the headers of a UDP super-frame end. */
export interface UdpSuperFrame {
  ipv6: boolean;
  /** Offset of the UDP header in the frame. */
  udpOffset: number;
  /** Offset of the UDP payload (the end of all headers). */
  payloadOffset: number;
}

/**
 * Checks that `frame` is an untagged IPv4 or IPv6 UDP packet that can be segmented: no IP fragment, no IPv6
 * extension header, IP lengths that agree with the frame, a payload. Throws `DecodeError` otherwise.
 */
export function parseUdpSuperFrame(frame: Uint8Array): UdpSuperFrame {
  const length = frame.byteLength;
  if (length < IP + 20 + UDP_HEADER_BYTES) throw new DecodeError('short-read', `a ${length}-byte frame is too short for a UDP super-frame`);
  const { ipv6, transportOffset: udpOffset } = parseSuperFrameIp(frame, PROTOCOL_UDP, 'UDP', UDP_HEADER_BYTES);
  const payloadOffset = udpOffset + UDP_HEADER_BYTES;
  if (payloadOffset > length) throw new DecodeError('short-read', 'super-frame UDP header cut short');
  if (payloadOffset === length) throw new DecodeError('bad-value', 'super-frame without a UDP payload');
  return { ipv6, udpOffset, payloadOffset };
}

/** How many datagrams `segmentUdpSuperFrame` cuts the frame into; throws `DecodeError` like it. */
export function udpSegmentCount(frame: Uint8Array, segmentSize: number): number {
  const { payloadOffset } = parseUdpSuperFrame(frame);
  if (!isValidSegmentSize(segmentSize)) throw new DecodeError('bad-value', `segment size ${segmentSize} is out of range`);
  return Math.ceil((frame.byteLength - payloadOffset) / segmentSize);
}

/** Fills in the full UDP checksum (pseudo-header, header, payload) of a segment whose UDP header is at `udpOffset`. */
function writeUdpChecksum(segment: Uint8Array, ipv6: boolean, udpOffset: number): void {
  const udpLength = segment.byteLength - udpOffset;
  setU16(segment, udpOffset + UDP_CHECKSUM_OFFSET, 0);
  let sum = (~internetChecksum(segment, udpOffset, segment.byteLength) & 0xffff) + pseudoHeaderSum(segment, ipv6, PROTOCOL_UDP, udpLength);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  setU16(segment, udpOffset + UDP_CHECKSUM_OFFSET, ~sum & 0xffff || 0xffff); // 0 means "no checksum" in UDP
}

/**
 * Cuts a UDP super-frame into UDP datagrams of `segmentSize` payload bytes each (the last may be shorter), each
 * with the super-frame's headers, its own lengths and complete checksums; IPv4 ids count up from the super-frame's.
 * Throws `DecodeError` when the frame is not a UDP super-frame or the size is unusable.
 */
export function segmentUdpSuperFrame(frame: Uint8Array, segmentSize: number): Uint8Array[] {
  const { ipv6, udpOffset, payloadOffset } = parseUdpSuperFrame(frame);
  if (!isValidSegmentSize(segmentSize)) throw new DecodeError('bad-value', `segment size ${segmentSize} is out of range`);
  const count = Math.ceil((frame.byteLength - payloadOffset) / segmentSize);
  const ip = { ipv6, transportOffset: udpOffset };
  const segments = new Array<Uint8Array>(count);
  for (let i = 0; i < count; i++) {
    const segment = cutSegment(frame, ip, payloadOffset, segmentSize, i);
    setU16(segment, udpOffset + 4, segment.byteLength - udpOffset);
    writeUdpChecksum(segment, ipv6, udpOffset);
    segments[i] = segment;
  }
  return segments;
}

/**
 * Writes the virtio_net_hdr that hands a UDP super-frame to a TAP device with USO (the kernel segments it, or
 * delivers it whole to a local stack). Throws `DecodeError` like `segmentUdpSuperFrame`.
 */
export function udpSuperFrameVirtioHeader(frame: Uint8Array, segmentSize: number, out: Uint8Array, at: number): void {
  const { udpOffset, payloadOffset } = parseUdpSuperFrame(frame);
  if (!isValidSegmentSize(segmentSize)) throw new DecodeError('bad-value', `segment size ${segmentSize} is out of range`);
  encodeVirtioHeader(
    {
      flags: VIRTIO_F_NEEDS_CSUM,
      gsoType: VIRTIO_GSO_UDP_L4,
      headerLength: payloadOffset,
      gsoSize: segmentSize,
      checksumStart: udpOffset,
      checksumOffset: UDP_CHECKSUM_OFFSET,
    },
    out,
    at,
  );
}
