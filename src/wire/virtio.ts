// The virtio_net_hdr a TAP device with IFF_VNET_HDR puts before every frame (and expects before every write).
//
// | offset | size | field |
// |---|---|---|
// | 0 | 1 | flags: 1 = NEEDS_CSUM (checksum from csum_start to the end, stored at csum_start + csum_offset) |
// | 1 | 1 | gso_type: 0 none, 1 TCPv4, 3 UDP (UFO), 4 TCPv6, 5 UDP_L4 (USO); bit 0x80 = ECN |
// | 2 | 2 | hdr_len: bytes of Ethernet, IP and TCP headers |
// | 4 | 2 | gso_size: payload bytes per segment |
// | 6 | 2 | csum_start |
// | 8 | 2 | csum_offset |
//
// Fields are in the host's byte order for a legacy header (little-endian on x86 and arm64, the hosts weave-ts runs
// on); the native binding only offers offloads there.
import { DecodeError } from '../errors.js';

export const VIRTIO_HEADER_BYTES = 10;
export const VIRTIO_F_NEEDS_CSUM = 1;
export const VIRTIO_GSO_NONE = 0;
export const VIRTIO_GSO_TCPV4 = 1;
export const VIRTIO_GSO_TCPV6 = 4;
/** A UDP super-frame (VIRTIO_NET_HDR_GSO_UDP_L4, USO), for IPv4 and IPv6 alike. */
export const VIRTIO_GSO_UDP_L4 = 5;

/** A decoded virtio_net_hdr. */
export interface VirtioHeader {
  flags: number;
  gsoType: number;
  headerLength: number;
  gsoSize: number;
  checksumStart: number;
  checksumOffset: number;
}

function u16le(b: Uint8Array, at: number): number {
  return (b[at] as number) | ((b[at + 1] as number) << 8);
}

function setU16le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

/** Decodes the header at `at`; throws `DecodeError` when fewer than 10 bytes remain. */
export function decodeVirtioHeader(b: Uint8Array, at = 0): VirtioHeader {
  if (at < 0 || b.byteLength - at < VIRTIO_HEADER_BYTES) throw new DecodeError('short-read', 'virtio_net_hdr cut short');
  return {
    flags: b[at] as number,
    gsoType: b[at + 1] as number,
    headerLength: u16le(b, at + 2),
    gsoSize: u16le(b, at + 4),
    checksumStart: u16le(b, at + 6),
    checksumOffset: u16le(b, at + 8),
  };
}

/** Writes `h` at `out[at, at + 10)`. */
export function encodeVirtioHeader(h: VirtioHeader, out: Uint8Array, at = 0): void {
  out[at] = h.flags & 0xff;
  out[at + 1] = h.gsoType & 0xff;
  setU16le(out, at + 2, h.headerLength);
  setU16le(out, at + 4, h.gsoSize);
  setU16le(out, at + 6, h.checksumStart);
  setU16le(out, at + 8, h.checksumOffset);
}

/**
 * What the data plane needs of a header the kernel handed over with a frame: 0 for a complete frame (the binding has
 * already finished a partial checksum), the segment size of a TCP or UDP (USO) super-frame, or -1 for anything else
 * (UFO, ECN, a zero segment size), which weave-ts never asks the kernel for. Whether a super-frame is TCP or UDP is
 * read from the frame's IP header (see `superFrameProtocol`), so the two share one segment size array.
 */
export function virtioSegmentSize(b: Uint8Array, at: number): number {
  if (at < 0 || b.byteLength - at < VIRTIO_HEADER_BYTES) return -1;
  const type = b[at + 1] as number;
  if (type === VIRTIO_GSO_NONE) return 0;
  if (type !== VIRTIO_GSO_TCPV4 && type !== VIRTIO_GSO_TCPV6 && type !== VIRTIO_GSO_UDP_L4) return -1;
  const size = u16le(b, at + 4);
  return size > 0 ? size : -1;
}
