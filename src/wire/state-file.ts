// State-file envelope: magic, format, length and a SHA-256 over everything, so a torn or bit-flipped file is refused.
//
// Every file weave-ts keeps in its data dir (`ipam.db`, `endpoints.json`) is one envelope, big-endian:
//
// | field | type | rules |
// |---|---|---|
// | magic | 4 bytes | says which file it is ("WTIP", "WTEP") |
// | format | u8 | the body's format version, per file |
// | length | u32 | body bytes; at most {@link MAX_STATE_BODY} |
// | body | `length` bytes | the file's own encoding |
// | checksum | 32 bytes | SHA-256 of magic, format, length and body |
import { createHash } from 'node:crypto';
import { DecodeError } from '../errors.js';
import { Reader, Writer } from './codec.js';

/** Largest body a state file may carry (16 MiB): a bigger length field is corruption, not data. */
export const MAX_STATE_BODY = 16 * 1024 * 1024;
/** Bytes of the envelope around the body: magic, format, length, checksum. */
export const STATE_FILE_OVERHEAD = 4 + 1 + 4 + 32;

/** Which file an envelope holds: its magic and the body format this build writes. */
export interface StateFileKind {
  /** Four ASCII characters at the start of the file. */
  magic: string;
  /** The body format version written (and the only one `openStateFile` accepts). */
  format: number;
  /** What the file is, for messages ("IPAM state", "endpoint registry"). */
  what: string;
}

function magicBytes(kind: StateFileKind): Uint8Array {
  const bytes = new TextEncoder().encode(kind.magic);
  if (bytes.length !== 4) throw new RangeError(`state file magic ${JSON.stringify(kind.magic)} must be 4 ASCII characters`);
  return bytes;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

/** Wraps `body` in the envelope of `kind`. */
export function sealStateFile(kind: StateFileKind, body: Uint8Array): Uint8Array {
  if (body.byteLength > MAX_STATE_BODY) throw new RangeError(`${kind.what} body of ${body.byteLength} bytes exceeds ${MAX_STATE_BODY}`);
  const w = new Writer(body.byteLength + STATE_FILE_OVERHEAD);
  w.bytes(magicBytes(kind)).u8(kind.format).u32(body.byteLength).bytes(body);
  const covered = w.finish();
  return new Writer(covered.byteLength + 32).bytes(covered).bytes(sha256(covered)).finish();
}

/** True when `bytes` start with the magic of `kind` (whatever the format). */
export function hasStateFileMagic(kind: StateFileKind, bytes: Uint8Array): boolean {
  const magic = magicBytes(kind);
  return bytes.byteLength >= 4 && magic.every((b, i) => bytes[i] === b);
}

/**
 * Checks the envelope of `kind` and returns its body (a view into `bytes`). A wrong magic is `bad-magic`,
 * another format `version-mismatch`, a short or long file `short-read`/`trailing-bytes`, and a checksum
 * that does not match `bad-value`: nothing of a damaged file is ever used.
 */
export function openStateFile(kind: StateFileKind, bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes);
  const magic = magicBytes(kind);
  for (const b of magic) if (r.u8() !== b) throw new DecodeError('bad-magic', `not a weave-ts ${kind.what} file`);
  const format = r.u8();
  if (format !== kind.format) throw new DecodeError('version-mismatch', `${kind.what} format ${format}, this build reads ${kind.format}`);
  const length = r.u32();
  if (length > MAX_STATE_BODY) throw new DecodeError('too-large', `${kind.what} body of ${length} bytes exceeds ${MAX_STATE_BODY}`);
  const body = r.bytesView(length);
  const covered = bytes.subarray(0, r.position);
  const stored = r.bytesView(32);
  r.end();
  const actual = sha256(covered);
  if (!actual.every((b, i) => stored[i] === b)) {
    throw new DecodeError('bad-value', `${kind.what} checksum does not match its contents (the file was damaged after it was written)`);
  }
  return body;
}
