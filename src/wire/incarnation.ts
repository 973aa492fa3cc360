// Incarnation messages on the router's "incarnation" channel: liveness probes of a peer name and refusals
// of one incarnation of a name while another is alive.
//
// Layout (big-endian; one message is one gossip payload: a kind byte, then its fields, nothing after):
//
// | kind | message  | fields                                                                         | sent as |
// |------|----------|--------------------------------------------------------------------------------|---------|
// | 1    | probe    | u64 nonce                                                                      | unicast to a peer name |
// | 2    | answer   | u64 nonce (the probe's), u64 uid (the answering incarnation's)                 | unicast back to the prober |
// | 3    | refusals | u8 count (1 to MAX_REFUSALS), per refusal: u48 name, u64 refused uid, u64 kept uid | broadcast when decided, periodic gossip (all), unicast to the refused incarnation |
//
// Rules: uids are non-zero; names are non-zero peer names; a refusal's two uids differ; one refusal per
// (name, refused uid) within a message.
import { DecodeError } from '../errors.js';
import { isPeerName, type PeerName } from './peer-name.js';
import type { Reader, Writer } from './codec.js';

/** The router's internal gossip channel for incarnation messages (reserved, like "topology"). */
export const INCARNATION_CHANNEL = 'incarnation';
/** Most refusals one message carries, and most a router keeps. */
export const MAX_REFUSALS = 64;

export const enum IncarnationKind {
  Probe = 1,
  Answer = 2,
  Refusals = 3,
}

/** One incarnation of a peer name refused because another incarnation of that name is alive. */
export interface Refusal {
  /** The peer name both incarnations use. */
  readonly name: PeerName;
  /** The uid of the incarnation that is refused everywhere (the newer one). */
  readonly refused: bigint;
  /** The uid of the incarnation that keeps the name. */
  readonly kept: bigint;
}

/** A decoded incarnation message. */
export type IncarnationMessage =
  | { kind: IncarnationKind.Probe; nonce: bigint }
  | { kind: IncarnationKind.Answer; nonce: bigint; uid: bigint }
  | { kind: IncarnationKind.Refusals; refusals: Refusal[] };

/** Writes a message; throws RangeError on one the layout cannot carry. */
export function encodeIncarnationMessage(w: Writer, m: IncarnationMessage): void {
  w.u8(m.kind);
  switch (m.kind) {
    case IncarnationKind.Probe:
      w.u64(m.nonce);
      return;
    case IncarnationKind.Answer:
      if (m.uid === 0n) throw new RangeError('an answer carries a non-zero uid');
      w.u64(m.nonce).u64(m.uid);
      return;
    case IncarnationKind.Refusals:
      if (m.refusals.length === 0 || m.refusals.length > MAX_REFUSALS) {
        throw new RangeError(`${m.refusals.length} refusals: a message carries 1 to ${MAX_REFUSALS}`);
      }
      w.u8(m.refusals.length);
      for (const r of m.refusals) {
        if (!isPeerName(r.name) || r.refused === 0n || r.kept === 0n || r.refused === r.kept) {
          throw new RangeError('a refusal needs a peer name and two different non-zero uids');
        }
        w.u48(r.name).u64(r.refused).u64(r.kept);
      }
      return;
  }
}

/** Reads a message; DecodeError on anything the layout does not allow. */
export function decodeIncarnationMessage(r: Reader): IncarnationMessage {
  const kind = r.u8();
  switch (kind) {
    case IncarnationKind.Probe:
      return { kind, nonce: r.u64() };
    case IncarnationKind.Answer: {
      const nonce = r.u64();
      const uid = r.u64();
      if (uid === 0n) throw new DecodeError('bad-value', 'an incarnation answer carries uid 0');
      return { kind, nonce, uid };
    }
    case IncarnationKind.Refusals: {
      const count = r.u8();
      if (count === 0 || count > MAX_REFUSALS) throw new DecodeError('bad-value', `${count} refusals: a message carries 1 to ${MAX_REFUSALS}`);
      const refusals: Refusal[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < count; i++) {
        const name = r.u48();
        const refused = r.u64();
        const kept = r.u64();
        if (name === 0) throw new DecodeError('bad-value', 'a refusal names peer 0');
        if (refused === 0n || kept === 0n || refused === kept) throw new DecodeError('bad-value', 'a refusal needs two different non-zero uids');
        const key = `${name}/${refused}`;
        if (seen.has(key)) throw new DecodeError('bad-value', 'a refusal appears twice in one message');
        seen.add(key);
        refusals.push({ name, refused, kept });
      }
      return { kind, refusals };
    }
    default:
      throw new DecodeError('bad-value', `unknown incarnation message kind ${kind}`);
  }
}
