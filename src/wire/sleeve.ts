// Sleeve packet layout: the UDP datagrams that carry Ethernet frames between neighbouring peers.
//
// | offset | size | field |
// |---|---|---|
// | 0 | 6 | sender: the neighbour that sent this packet (u48 peer name, clear) |
// | 6 | 8 | counter: u64, one per packet and direction, clear; the AEAD nonce and the replay check use it |
// | 14 | n | body: plain, or sealed with ChaCha20-Poly1305 (n includes the 16-byte tag; AD = bytes 0..13) |
//
// The body is a list of entries, as many as fit:
//
// | size | field |
// |---|---|
// | 6 | source peer: the peer that captured the frame; 0 marks a sleeve control entry |
// | 6 | destination peer: the peer the frame is for; 0 = flood along the source's broadcast tree |
// | 2 | length of what follows (u16) |
// | len | an Ethernet frame (14-byte header, no FCS), or a control entry: kind (u8) then its payload |
import { DecodeError } from '../errors.js';

export const PACKET_HEADER_BYTES = 14;
export const ENTRY_HEADER_BYTES = 14;
/** Largest UDP payload over IPv4. */
export const MAX_UDP_PAYLOAD = 65_507;
/** Sleeve control entry kinds (source peer 0). */
export const enum SleeveControl {
  /** Payload: u64 connection id. Makes the link established once acknowledged. */
  Heartbeat = 1,
  /** Payload: zero padding; tests whether the path carries fragmented UDP. */
  FragTest = 2,
  /** Payload: u16 total UDP payload size being probed, then zero padding. */
  MtuProbe = 3,
  /** Payload: source and destination peer, u16 segment size, a TCP or UDP super-frame. */
  SuperFrame = 4,
}

/** The sleeve capability (handshake feature record) of a peer that takes TCP super-frames. */
export const SUPER_FRAME_CAPABILITY = 'super-frames';
/** The capability of a peer that also takes UDP super-frames (an older one would refuse them as malformed). */
export const UDP_SUPER_FRAME_CAPABILITY = 'udp-super-frames';
/** Bytes of a super-frame entry before the frame (kind, peers, segment size). */
export const SUPER_FRAME_PREFIX_BYTES = 15;

/** Appends a super-frame entry at `offset` of `body`; returns the offset after it. The caller checks the space. */
export function writeSuperFrameEntry(
  body: Uint8Array,
  offset: number,
  source: number,
  destination: number,
  segmentSize: number,
  frame: Uint8Array,
): number {
  const length = SUPER_FRAME_PREFIX_BYTES + frame.byteLength;
  writeU48(body, offset, 0);
  writeU48(body, offset + 6, 0);
  body[offset + 12] = length >>> 8;
  body[offset + 13] = length & 0xff;
  const at = offset + ENTRY_HEADER_BYTES;
  body[at] = SleeveControl.SuperFrame;
  writeU48(body, at + 1, source);
  writeU48(body, at + 7, destination);
  body[at + 13] = segmentSize >>> 8;
  body[at + 14] = segmentSize & 0xff;
  body.set(frame, at + SUPER_FRAME_PREFIX_BYTES);
  return at + length;
}

/** A decoded super-frame entry; `frame` is a view into the entry. */
export interface SuperFrameEntry {
  source: number;
  destination: number;
  segmentSize: number;
  frame: Uint8Array;
}

/** Decodes a control entry of kind 4 (`entry` starts at the kind byte); throws `DecodeError` when malformed. */
export function readSuperFrameEntry(entry: Uint8Array): SuperFrameEntry {
  if (entry.byteLength < SUPER_FRAME_PREFIX_BYTES + 14) throw new DecodeError('short-read', 'super-frame entry cut short');
  if (entry[0] !== SleeveControl.SuperFrame) throw new DecodeError('bad-value', 'not a super-frame entry');
  const source = readU48(entry, 1);
  const destination = readU48(entry, 7);
  const segmentSize = ((entry[13] as number) << 8) | (entry[14] as number);
  if (source === 0) throw new DecodeError('bad-value', 'super-frame entry without a source peer');
  if (segmentSize < 64) throw new DecodeError('bad-value', `super-frame segment size ${segmentSize} is below 64`);
  return { source, destination, segmentSize, frame: entry.subarray(SUPER_FRAME_PREFIX_BYTES) };
}

/** Writes the packet header (`counter` an integer below 2^53); returns the offset of the body. */
export function writePacketHeader(packet: Uint8Array, sender: number, counter: number): number {
  writeU48(packet, 0, sender);
  const hi = Math.floor(counter / 0x1_0000_0000);
  writeU32(packet, 6, hi);
  writeU32(packet, 10, counter >>> 0);
  return PACKET_HEADER_BYTES;
}

/** The sender peer of a packet (0 when the packet is too short to have one). */
export function packetSender(packet: Uint8Array): number {
  if (packet.byteLength < PACKET_HEADER_BYTES) return 0;
  return ((packet[0] as number) * 0x100 + (packet[1] as number)) * 0x1_0000_0000 + readU32(packet, 2);
}

/**
 * The packet counter; call only after `packetSender` returned non-zero. -1 for a counter of 2^53 or more, which no
 * sender of this version reaches (receivers drop such packets as malformed).
 */
export function packetCounter(packet: Uint8Array): number {
  const hi = readU32(packet, 6);
  if (hi >= 0x20_0000) return -1;
  return hi * 0x1_0000_0000 + readU32(packet, 10);
}

/** Appends one entry at `offset` of `body`; returns the offset after it. The caller checks the space. */
export function writeEntry(body: Uint8Array, offset: number, source: number, destination: number, frame: Uint8Array): number {
  writeU48(body, offset, source);
  writeU48(body, offset + 6, destination);
  body[offset + 12] = frame.byteLength >>> 8;
  body[offset + 13] = frame.byteLength & 0xff;
  body.set(frame, offset + ENTRY_HEADER_BYTES);
  return offset + ENTRY_HEADER_BYTES + frame.byteLength;
}

/** Receives each entry of a body; `frame` is a view into the body, valid only during the call. */
export type EntryVisitor = (source: number, destination: number, frame: Uint8Array) => void;

/**
 * Walks the entries of a decrypted body. A truncated entry, an empty one or a control entry with a
 * non-zero destination throws `DecodeError`; entries before it have already been visited.
 */
export function forEachEntry(body: Uint8Array, visit: EntryVisitor): void {
  let at = 0;
  while (at < body.byteLength) {
    if (body.byteLength - at < ENTRY_HEADER_BYTES) {
      throw new DecodeError('short-read', `sleeve entry header cut short at offset ${at}`);
    }
    const source = readU48(body, at);
    const destination = readU48(body, at + 6);
    const length = ((body[at + 12] as number) << 8) | (body[at + 13] as number);
    const start = at + ENTRY_HEADER_BYTES;
    if (length === 0) throw new DecodeError('bad-value', `empty sleeve entry at offset ${at}`);
    if (start + length > body.byteLength) {
      throw new DecodeError('short-read', `sleeve entry of ${length} bytes at offset ${at} runs past the packet`);
    }
    if (source === 0 && destination !== 0) throw new DecodeError('bad-value', 'sleeve control entry with a destination');
    if (source !== 0 && length < 14) throw new DecodeError('bad-value', `frame of ${length} bytes is shorter than an Ethernet header`);
    visit(source, destination, body.subarray(start, start + length));
    at = start + length;
  }
}

function readU32(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) >>> 0) + ((b[at + 1] as number) << 16) + ((b[at + 2] as number) << 8) + (b[at + 3] as number);
}

function readU48(b: Uint8Array, at: number): number {
  return ((b[at] as number) * 0x100 + (b[at + 1] as number)) * 0x1_0000_0000 + readU32(b, at + 2);
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function writeU48(b: Uint8Array, at: number, v: number): void {
  const high = Math.floor(v / 0x1_0000_0000);
  const low = v >>> 0;
  b[at] = high >>> 8;
  b[at + 1] = high & 0xff;
  b[at + 2] = low >>> 24;
  b[at + 3] = (low >>> 16) & 0xff;
  b[at + 4] = (low >>> 8) & 0xff;
  b[at + 5] = low & 0xff;
}
