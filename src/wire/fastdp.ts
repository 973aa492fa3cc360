// Fast datapath wire formats: the control messages neighbours exchange over their TCP link, and the
// heartbeat frame sent through the VXLAN tunnel. Pure codecs; every decoder throws DecodeError.
import { DecodeError } from '../errors.js';
import { Reader, Writer, decodeWith, encodeWith } from './codec.js';

/** Overlay control kinds of the fast path (the sleeve uses 1 to 3). */
export const enum FastControl {
  /** "I run a fast path and accept plain VXLAN from you": {@link FastHello}. */
  Hello = 16,
  /** "Your heartbeat came through the tunnel": {@link FastAck}. */
  Ack = 17,
  /** "These MACs left my bridge" (an endpoint detached or moved): a list of 6-byte MACs. */
  Forget = 18,
  /** "These MACs live on my bridge" (frames to them may come through the tunnel): a list of 6-byte MACs. */
  Here = 19,
}

/** Version of the fast path's messages; a hello of another version is answered by staying on the sleeve. */
export const FASTDP_VERSION = 1;

/** Ethertype of heartbeat frames (IEEE 802 local experimental). */
export const HEARTBEAT_ETHERTYPE = 0x88b5;
const HEARTBEAT_MAGIC = 0x57_54_46_44; // "WTFD"
/** Ethernet header + magic + connection id + sequence number. */
export const HEARTBEAT_MIN_FRAME = 14 + 4 + 8 + 4;

export interface FastHello {
  version: number;
  /** The VXLAN UDP port the sender's tunnels use (the same on both ends). */
  port: number;
  /** The sender's endpoint MTU (the tunnel's device MTU; the same on both ends). */
  mtu: number;
  /** The link's connection id, so a hello for an older link is ignored. */
  connectionId: bigint;
  /** True when the receiver should answer with a hello of its own (it may have missed ours). */
  wantReply: boolean;
  /** False when the sender runs a fast path but will not take plain frames from the receiver (it is not trusted). */
  accepts: boolean;
}

export function encodeHello(hello: FastHello): Uint8Array {
  return encodeWith((w: Writer, h: FastHello) => w.u8(h.version).u16(h.port).u16(h.mtu).u64(h.connectionId).bool(h.wantReply).bool(h.accepts), hello, 15);
}

export function decodeHello(bytes: Uint8Array): FastHello {
  return decodeWith((r: Reader) => {
    const version = r.u8();
    if (version !== FASTDP_VERSION) throw new DecodeError('bad-value', `fast path hello of version ${version}, this peer speaks ${FASTDP_VERSION}`);
    return { version, port: r.u16(), mtu: r.u16(), connectionId: r.u64(), wantReply: r.bool(), accepts: r.bool() };
  }, bytes);
}

export interface FastAck {
  connectionId: bigint;
  /** The sequence number of the heartbeat that came through. */
  sequence: number;
}

export function encodeAck(ack: FastAck): Uint8Array {
  return encodeWith((w: Writer, a: FastAck) => w.u64(a.connectionId).u32(a.sequence), ack, 12);
}

export function decodeAck(bytes: Uint8Array): FastAck {
  return decodeWith((r: Reader) => ({ connectionId: r.u64(), sequence: r.u32() }), bytes);
}

/** Encodes MACs (48-bit numbers) for a Here or Forget message. */
export function encodeForget(macs: readonly number[]): Uint8Array {
  return encodeWith((w: Writer, list: readonly number[]) => {
    for (const mac of list) w.u48(mac);
  }, macs, macs.length * 6);
}

export function decodeForget(bytes: Uint8Array): number[] {
  if (bytes.byteLength === 0 || bytes.byteLength % 6 !== 0) throw new DecodeError('bad-value', `fast path MAC list of ${bytes.byteLength} bytes is not a list of MACs`);
  return decodeWith((r: Reader) => {
    const macs: number[] = [];
    while (r.remaining > 0) macs.push(r.u48());
    return macs;
  }, bytes);
}

export interface Heartbeat {
  /** Destination MAC: the receiving peer's probe MAC. */
  destination: number;
  /** Source MAC: the sending peer's probe MAC. */
  source: number;
  connectionId: bigint;
  sequence: number;
}

/** A heartbeat frame of exactly `frameLength` bytes (padded with zeros, so it checks the tunnel carries that size). */
export function encodeHeartbeat(heartbeat: Heartbeat, frameLength: number): Uint8Array {
  if (!Number.isInteger(frameLength) || frameLength < HEARTBEAT_MIN_FRAME) throw new RangeError(`heartbeat frame of ${frameLength} bytes is shorter than ${HEARTBEAT_MIN_FRAME}`);
  const w = new Writer(frameLength);
  w.u48(heartbeat.destination).u48(heartbeat.source).u16(HEARTBEAT_ETHERTYPE).u32(HEARTBEAT_MAGIC).u64(heartbeat.connectionId).u32(heartbeat.sequence);
  const head = w.finish();
  const frame = new Uint8Array(frameLength);
  frame.set(head);
  return frame;
}

/** Reads a heartbeat frame; undefined for any other frame (not our ethertype or magic); DecodeError when cut short. */
export function decodeHeartbeat(frame: Uint8Array): Heartbeat | undefined {
  if (frame.byteLength < 14) throw new DecodeError('short-read', `frame of ${frame.byteLength} bytes is shorter than an Ethernet header`);
  const r = new Reader(frame);
  const destination = r.u48();
  const source = r.u48();
  if (r.u16() !== HEARTBEAT_ETHERTYPE) return undefined;
  if (frame.byteLength < HEARTBEAT_MIN_FRAME) throw new DecodeError('short-read', `heartbeat frame of ${frame.byteLength} bytes is cut short`);
  if (r.u32() !== HEARTBEAT_MAGIC) return undefined;
  return { destination, source, connectionId: r.u64(), sequence: r.u32() };
}
