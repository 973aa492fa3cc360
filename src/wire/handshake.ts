// Handshake wire formats: the clear protocol header, the crypto hello, and the feature record.
//
// | step | bytes | field |
// |---|---|---|
// | header | 4 | magic "WVTS" |
// | | 1 | minimum protocol version |
// | | 1 | maximum protocol version |
// | hello | 1 | crypto flag: 0 = no password, 1 = encrypted |
// | | 32 | X25519 public key (only when the flag is 1) |
// | features | framed | the feature record (sealed with the handshake key when encrypted) |
import { DecodeError } from '../errors.js';
import type { Reader, Writer } from './codec.js';

/** The four magic bytes every control connection starts with. */
export const MAGIC = new Uint8Array([0x57, 0x56, 0x54, 0x53]); // "WVTS"
/** Lowest protocol version this build speaks. */
export const PROTOCOL_MIN_VERSION = 1;
/** Highest protocol version this build speaks. */
export const PROTOCOL_MAX_VERSION = 1;
/** Size of the clear protocol header. */
export const HEADER_BYTES = 6;
/** Size of an X25519 public key in the hello. */
export const PUBLIC_KEY_BYTES = 32;
/** Bounds of the capability list in a feature record. */
export const MAX_CAPABILITIES = 32;

/** The clear protocol header: magic plus the supported version range. */
export interface ProtocolHeader {
  minVersion: number;
  maxVersion: number;
}

export function encodeHeader(w: Writer, h: ProtocolHeader): void {
  w.bytes(MAGIC).u8(h.minVersion).u8(h.maxVersion);
}

export function decodeHeader(r: Reader): ProtocolHeader {
  const magic = r.bytesView(4);
  if (!MAGIC.every((b, i) => magic[i] === b)) {
    throw new DecodeError('bad-magic', 'the remote is not a weave-ts peer (bad protocol magic)');
  }
  const minVersion = r.u8();
  const maxVersion = r.u8();
  if (minVersion > maxVersion) throw new DecodeError('bad-value', `version range ${minVersion}..${maxVersion} is empty`);
  return { minVersion, maxVersion };
}

/** The version both ends speak, or undefined when the ranges do not overlap. */
export function negotiateVersion(ours: ProtocolHeader, theirs: ProtocolHeader): number | undefined {
  const version = Math.min(ours.maxVersion, theirs.maxVersion);
  return version >= Math.max(ours.minVersion, theirs.minVersion) ? version : undefined;
}

/** What a peer says about itself once the channel is keyed. */
export interface FeatureRecord {
  name: number;
  nickname: string;
  uid: bigint;
  /** Random per connection; both ends XOR theirs to get the connection id. */
  connectionId: bigint;
  /** The TCP port this peer listens on (0 if it does not listen). */
  listenPort: number;
  capabilities: string[];
}

export function encodeFeatures(w: Writer, f: FeatureRecord): void {
  if (f.capabilities.length > MAX_CAPABILITIES) {
    throw new RangeError(`${f.capabilities.length} capabilities exceed the limit of ${MAX_CAPABILITIES}`);
  }
  w.u48(f.name).str8(f.nickname).u64(f.uid).u64(f.connectionId).u16(f.listenPort).u8(f.capabilities.length);
  for (const c of f.capabilities) w.str8(c);
}

export function decodeFeatures(r: Reader): FeatureRecord {
  const name = r.u48();
  if (name === 0) throw new DecodeError('bad-value', 'feature record has the reserved peer name 0');
  const nickname = r.str8();
  const uid = r.u64();
  if (uid === 0n) throw new DecodeError('bad-value', 'feature record has the reserved uid 0');
  const connectionId = r.u64();
  const listenPort = r.u16();
  const count = r.u8();
  if (count > MAX_CAPABILITIES) throw new DecodeError('too-large', `${count} capabilities exceed the limit of ${MAX_CAPABILITIES}`);
  const capabilities: string[] = [];
  for (let i = 0; i < count; i++) capabilities.push(r.str8());
  return { name, nickname, uid, connectionId, listenPort, capabilities };
}
