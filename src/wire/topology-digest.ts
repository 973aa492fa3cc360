// Topology digest on the router's "topology-digest" channel: periodic anti-entropy in O(1) bytes.
//
// Layout (one message is one gossip payload, nothing after):
//
// | field  | type     | rules                                                                          |
// |--------|----------|--------------------------------------------------------------------------------|
// | kind   | u8       | 1 periodic (answer a mismatch with ours), 2 answer (do not answer it)          |
// | digest | 32 bytes | SHA-256 over every known record's (name u48, uid u64, version u64), by name    |
//
// A neighbour whose digest differs gets our whole topology; a periodic digest is also answered with ours,
// so the side that is behind sends its whole topology too, and the exchange ends after one round.
import { DecodeError } from '../errors.js';
import type { Reader, Writer } from './codec.js';

/** The router's internal channel for topology digests (reserved, like "topology"). */
export const TOPOLOGY_DIGEST_CHANNEL = 'topology-digest';
/** Bytes of a digest (SHA-256). */
export const TOPOLOGY_DIGEST_BYTES = 32;

export const enum TopologyDigestKind {
  Periodic = 1,
  Answer = 2,
}

/** A decoded digest message. */
export interface TopologyDigestMessage {
  kind: TopologyDigestKind;
  digest: Uint8Array;
}

/** Writes a digest message; throws RangeError on a digest of the wrong size. */
export function encodeTopologyDigest(w: Writer, m: TopologyDigestMessage): void {
  if (m.digest.byteLength !== TOPOLOGY_DIGEST_BYTES) throw new RangeError(`a topology digest has ${TOPOLOGY_DIGEST_BYTES} bytes, not ${m.digest.byteLength}`);
  w.u8(m.kind).bytes(m.digest);
}

/** Reads a digest message; DecodeError on anything the layout does not allow. */
export function decodeTopologyDigest(r: Reader): TopologyDigestMessage {
  const kind = r.u8();
  if (kind !== TopologyDigestKind.Periodic && kind !== TopologyDigestKind.Answer) throw new DecodeError('bad-value', `unknown topology digest kind ${kind}`);
  return { kind, digest: r.bytesView(TOPOLOGY_DIGEST_BYTES).slice() };
}
