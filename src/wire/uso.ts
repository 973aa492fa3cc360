// UDP super-frames (USO, virtio gso_type UDP_L4): many UDP datagrams of one flow in one Ethernet frame, as a TAP
// device with offloads hands them over. Cut into datagrams of one segment size each (the last may be shorter), as
// the kernel's __udp_gso_segment does: unlike UFO, every segment is a whole UDP datagram with its own UDP header.
//
// A super-frame's UDP checksum field holds only the pseudo-header sum (a partial checksum, completed per segment).
// The IPv4 total length or IPv6 payload length covers the whole super-frame; its UDP length field is not trusted
// (the kernel may leave the unsegmented length there) and is rewritten in every segment.
import { DecodeError } from '../errors.js';
import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethertype.js';
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

function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

/**
 * Checks that `frame` is an untagged IPv4 or IPv6 UDP packet that can be segmented: no IP fragment, no IPv6
 * extension header, IP lengths that agree with the frame, a payload. Throws `DecodeError` otherwise.
 */
export function parseUdpSuperFrame(frame: Uint8Array): UdpSuperFrame {
  const length = frame.byteLength;
  if (length < IP + 20 + UDP_HEADER_BYTES) throw new DecodeError('short-read', `a ${length}-byte frame is too short for a UDP super-frame`);
  const type = u16(frame, 12);
  let udpOffset: number;
  let ipv6: boolean;
  if (type === ETHERTYPE_IPV4) {
    const versionIhl = frame[IP] as number;
    const ihl = (versionIhl & 0x0f) * 4;
    if (versionIhl >> 4 !== 4 || ihl < 20) throw new DecodeError('bad-value', 'super-frame with a bad IPv4 header');
    if (frame[IP + 9] !== PROTOCOL_UDP) throw new DecodeError('bad-value', 'super-frame is not UDP');
    if ((u16(frame, IP + 6) & 0x3fff) !== 0) throw new DecodeError('bad-value', 'super-frame is an IPv4 fragment');
    if (u16(frame, IP + 2) !== length - IP) throw new DecodeError('bad-value', 'super-frame IPv4 total length disagrees with the frame');
    udpOffset = IP + ihl;
    ipv6 = false;
  } else if (type === ETHERTYPE_IPV6) {
    if (length < IP + 40 + UDP_HEADER_BYTES) throw new DecodeError('short-read', `a ${length}-byte frame is too short for an IPv6 UDP super-frame`);
    if ((frame[IP] as number) >> 4 !== 6) throw new DecodeError('bad-value', 'super-frame with a bad IPv6 header');
    if (frame[IP + 6] !== PROTOCOL_UDP) throw new DecodeError('bad-value', 'super-frame is not UDP (or has IPv6 extension headers)');
    if (u16(frame, IP + 4) !== length - IP - 40) throw new DecodeError('bad-value', 'super-frame IPv6 payload length disagrees with the frame');
    udpOffset = IP + 40;
    ipv6 = true;
  } else {
    throw new DecodeError('bad-value', `super-frame with EtherType 0x${type.toString(16)} (IPv4 or IPv6 only)`);
  }
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
  let sum = (~internetChecksum(segment, udpOffset, segment.byteLength) & 0xffff) + PROTOCOL_UDP + udpLength;
  const start = ipv6 ? IP + 8 : IP + 12;
  const end = start + (ipv6 ? 32 : 8);
  for (let i = start; i < end; i += 2) sum += u16(segment, i);
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
  const ipId = ipv6 ? 0 : u16(frame, IP + 4);
  const segments = new Array<Uint8Array>(count);
  for (let i = 0; i < count; i++) {
    const start = payloadOffset + i * segmentSize;
    const end = Math.min(frame.byteLength, start + segmentSize);
    const segment = new Uint8Array(payloadOffset + end - start);
    segment.set(frame.subarray(0, payloadOffset));
    segment.set(frame.subarray(start, end), payloadOffset);
    if (ipv6) {
      setU16(segment, IP + 4, segment.byteLength - IP - 40);
    } else {
      setU16(segment, IP + 2, segment.byteLength - IP);
      setU16(segment, IP + 4, (ipId + i) & 0xffff);
      setU16(segment, IP + 10, 0);
      setU16(segment, IP + 10, internetChecksum(segment, IP, udpOffset));
    }
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
