// Control messages: the frame length prefix and the tagged bodies carried on an established connection.
//
// Every message after the hello is framed as a u32 big-endian length then the body (sealed when
// encrypted). The plaintext body is a tag byte then the fields below; a gossip payload runs to the
// end of the body, so it needs no length of its own.
//
// | tag | message | fields |
// |---|---|---|
// | 0 | heartbeat | (none) |
// | 1 | gossip | str8 channel, u48 sender (the previous hop), payload |
// | 2 | gossip unicast | str8 channel, u48 source, u48 destination, payload |
// | 3 | gossip broadcast | str8 channel, u48 source, payload |
// | 4 | overlay control | u8 kind, payload (used by the data plane) |
import { DecodeError } from '../errors.js';
import { Reader, Writer } from './codec.js';

/** Largest framed body accepted on a control connection (10 MiB). */
export const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/** Size of the frame length prefix. */
export const FRAME_PREFIX_BYTES = 4;

export const enum MessageTag {
  Heartbeat = 0,
  Gossip = 1,
  GossipUnicast = 2,
  GossipBroadcast = 3,
  OverlayControl = 4,
}

/** A decoded control message. Payloads are views into the received buffer. */
export type ControlMessage =
  | { tag: MessageTag.Heartbeat }
  | { tag: MessageTag.Gossip; channel: string; sender: number; payload: Uint8Array }
  | { tag: MessageTag.GossipUnicast; channel: string; source: number; destination: number; payload: Uint8Array }
  | { tag: MessageTag.GossipBroadcast; channel: string; source: number; payload: Uint8Array }
  | { tag: MessageTag.OverlayControl; kind: number; payload: Uint8Array };

export function encodeMessage(w: Writer, m: ControlMessage): void {
  w.u8(m.tag);
  switch (m.tag) {
    case MessageTag.Heartbeat:
      return;
    case MessageTag.Gossip:
      w.str8(m.channel).u48(m.sender).bytes(m.payload);
      return;
    case MessageTag.GossipUnicast:
      w.str8(m.channel).u48(m.source).u48(m.destination).bytes(m.payload);
      return;
    case MessageTag.GossipBroadcast:
      w.str8(m.channel).u48(m.source).bytes(m.payload);
      return;
    case MessageTag.OverlayControl:
      w.u8(m.kind).bytes(m.payload);
      return;
  }
}

function peerName(r: Reader, what: string): number {
  const name = r.u48();
  if (name === 0) throw new DecodeError('bad-value', `${what} is the reserved peer name 0`);
  return name;
}

/** Channel names are one to 255 bytes of printable ASCII. */
export function isValidChannelName(name: string): boolean {
  return /^[\x21-\x7e]{1,255}$/.test(name);
}

function channelName(r: Reader): string {
  const channel = r.str8();
  if (!isValidChannelName(channel)) throw new DecodeError('bad-value', 'gossip channel name is not 1-255 printable ASCII characters');
  return channel;
}

/** Decodes a whole message body (the payload takes the rest). */
export function decodeMessage(body: Uint8Array): ControlMessage {
  const r = new Reader(body);
  const tag = r.u8();
  switch (tag) {
    case MessageTag.Heartbeat:
      r.end();
      return { tag };
    case MessageTag.Gossip: {
      const channel = channelName(r);
      const sender = peerName(r, 'gossip sender');
      return { tag, channel, sender, payload: r.bytesView(r.remaining) };
    }
    case MessageTag.GossipUnicast: {
      const channel = channelName(r);
      const source = peerName(r, 'unicast source');
      const destination = peerName(r, 'unicast destination');
      return { tag, channel, source, destination, payload: r.bytesView(r.remaining) };
    }
    case MessageTag.GossipBroadcast: {
      const channel = channelName(r);
      const source = peerName(r, 'broadcast source');
      return { tag, channel, source, payload: r.bytesView(r.remaining) };
    }
    case MessageTag.OverlayControl:
      return { tag, kind: r.u8(), payload: r.bytesView(r.remaining) };
    default:
      throw new DecodeError('bad-value', `unknown message tag ${tag}`);
  }
}

/** Encodes a message into a fresh body. */
export function encodeMessageBody(m: ControlMessage): Uint8Array {
  const w = new Writer(64 + ('payload' in m ? m.payload.byteLength : 0));
  encodeMessage(w, m);
  return w.finish();
}
