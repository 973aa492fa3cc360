// The network key: the shared password stretched once with Argon2id, so a captured handshake cannot be brute-forced cheaply.
import { OptionsError } from '../errors.js';
import { loadSodium, type SodiumBackend } from './sodium.js';

/** Argon2id passes; fixed by the protocol (every peer must use the same value). */
export const ARGON2ID_OPSLIMIT = 3;
/** Argon2id memory in bytes; fixed by the protocol (every peer must use the same value). */
export const ARGON2ID_MEMLIMIT = 64 * 1024 * 1024;
/** Length of the network key in bytes. */
export const NETWORK_KEY_BYTES = 32;

/**
 * The Argon2id salt: BLAKE2b-128 (unkeyed) of the ASCII string "weave-ts network key v1".
 * Fixed, not random, because every peer must derive the same key from the same password; the
 * versioned label keeps our keys apart from any other use of the same password.
 */
export const NETWORK_KEY_SALT: Uint8Array = Uint8Array.of(
  0x47, 0x00, 0x5e, 0x4e, 0x7e, 0x19, 0xf7, 0x33, 0x3f, 0x9d, 0x95, 0xe9, 0x0b, 0x6f, 0x62, 0x37,
);

const salt = NETWORK_KEY_SALT.slice(); // private copy: the exported array is mutable

/** A 32-byte key stretched from the network password; all peers with the same password derive the same key. */
export interface NetworkKey {
  /** The 32 key bytes; secret, never log them. */
  readonly bytes: Uint8Array;
}

const textEncoder = new TextEncoder();

/** Keeps the key bytes out of logs, `util.inspect` and `JSON.stringify`. */
class StretchedKey implements NetworkKey {
  constructor(readonly bytes: Uint8Array) {}
  toJSON(): string {
    return '[NetworkKey]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'NetworkKey <redacted>';
  }
}

/**
 * Stretches `password` (a string is taken as its UTF-8 bytes, unnormalised) into the network key with
 * Argon2id({@link ARGON2ID_OPSLIMIT}, {@link ARGON2ID_MEMLIMIT}, {@link NETWORK_KEY_SALT}). Slow on purpose
 * (about 0.1–1 s); call it once at start. Nothing is cached, so the password does not linger in memory.
 */
export async function deriveNetworkKey(password: string | Uint8Array, sodium?: SodiumBackend): Promise<NetworkKey> {
  if (password.length === 0) {
    throw new OptionsError('an empty password is not allowed; omit the password to run unencrypted');
  }
  const backend = sodium ?? (await loadSodium());
  const ownsBytes = typeof password === 'string';
  const bytes = typeof password === 'string' ? textEncoder.encode(password) : password;
  try {
    return new StretchedKey(await backend.argon2id(NETWORK_KEY_BYTES, bytes, salt, ARGON2ID_OPSLIMIT, ARGON2ID_MEMLIMIT));
  } finally {
    if (ownsBytes) bytes.fill(0); // our copy only; the caller's array is theirs to wipe
  }
}
