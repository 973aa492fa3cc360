// The libsodium backend: sodium-native when it loads, else libsodium-wrappers-sumo (WASM); same algorithms, same bytes.
import { createRequire } from 'node:module';
import { CryptoError, OptionsError } from '../errors.js';

/** Which libsodium build a backend runs on. */
export type SodiumBackendName = 'sodium-native' | 'libsodium-wrappers-sumo';

/** ChaCha20-Poly1305 authentication tag length. */
export const AEAD_TAG_BYTES = 16;
/** ChaCha20-Poly1305 key length. */
export const AEAD_KEY_BYTES = 32;
/** ChaCha20-Poly1305 IETF nonce length. */
export const AEAD_NONCE_BYTES = 12;
/** X25519 public and secret key length, and shared secret length. */
export const X25519_BYTES = 32;
/** Argon2id salt length (crypto_pwhash_SALTBYTES). */
export const ARGON2ID_SALT_BYTES = 16;
/** The smallest Argon2id pass count libsodium accepts (crypto_pwhash_OPSLIMIT_MIN). */
export const ARGON2ID_MIN_OPSLIMIT = 1;
/** The smallest Argon2id memory in bytes libsodium accepts (crypto_pwhash_MEMLIMIT_MIN). */
export const ARGON2ID_MIN_MEMLIMIT = 8192;

const ARGON2ID13 = 2; // crypto_pwhash_ALG_ARGON2ID13, the same in every libsodium build

/** The primitives weave-ts needs from libsodium; both builds implement them byte-for-byte identically. */
export interface SodiumBackend {
  /** Which libsodium build this backend runs on. */
  readonly name: SodiumBackendName;
  /** `n` bytes from the OS CSPRNG. */
  randomBytes(n: number): Uint8Array;
  /** A fresh X25519 key pair (32-byte keys). */
  x25519Keypair(): {
    /** 32-byte public key, safe to send. */
    publicKey: Uint8Array;
    /** 32-byte secret key. */
    secretKey: Uint8Array;
  };
  /**
   * The raw X25519 shared secret. Throws `CryptoError('decrypt-failed')` when the result is all zeros
   * (the peer sent a low-order point) or a key is not 32 bytes: either way the peer cannot be talked to.
   */
  x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** BLAKE2b with an `outLength` of 16..64 bytes, optionally keyed with 16..64 bytes. */
  blake2b(outLength: number, input: Uint8Array, key?: Uint8Array): Uint8Array;
  /** Argon2id v1.3 (crypto_pwhash); off the event loop with sodium-native, blocking with WASM. */
  argon2id(outLength: number, password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number): Promise<Uint8Array>;
  /**
   * ChaCha20-Poly1305 IETF; writes ciphertext‖tag (`plaintext.length + 16` bytes) into `out` at `outOffset`,
   * returns bytes written. `plaintext` may be the very bytes at `out[outOffset]` (in place) but must not
   * otherwise overlap them.
   */
  aeadSeal(out: Uint8Array, outOffset: number, plaintext: Uint8Array, nonce: Uint8Array, key: Uint8Array, ad?: Uint8Array): number;
  /**
   * Opens ciphertext‖tag into `out` at `outOffset`, returns the plaintext length, or -1 if authentication
   * fails (no throw: a forged packet is an expected condition on the hot path). On failure the output
   * region is zeroed. Same aliasing rule as {@link SodiumBackend.aeadSeal}.
   */
  aeadOpen(out: Uint8Array, outOffset: number, sealed: Uint8Array, nonce: Uint8Array, key: Uint8Array, ad?: Uint8Array): number;
}

// ---- argument checks shared by both backends, so both fail the same way ----

function badValue(message: string): CryptoError {
  return new CryptoError('bad-value', message);
}

function checkAead(nonce: Uint8Array, key: Uint8Array): void {
  if (nonce.length !== AEAD_NONCE_BYTES) throw badValue(`AEAD nonce is ${nonce.length} bytes, expected ${AEAD_NONCE_BYTES}`);
  if (key.length !== AEAD_KEY_BYTES) throw badValue(`AEAD key is ${key.length} bytes, expected ${AEAD_KEY_BYTES}`);
}

/** Checks that `out[outOffset, outOffset+length)` exists and that `input` aliases it exactly or not at all. */
function checkOutput(out: Uint8Array, outOffset: number, length: number, input: Uint8Array): void {
  if (!Number.isInteger(outOffset) || outOffset < 0 || outOffset + length > out.length) {
    throw badValue(`output needs ${length} bytes at offset ${outOffset}, buffer has ${out.length}`);
  }
  if (input.buffer === out.buffer) {
    const outStart = out.byteOffset + outOffset;
    const inStart = input.byteOffset;
    // libsodium supports exact in-place operation only; a shifted overlap would read bytes it already wrote.
    if (inStart !== outStart && inStart < outStart + length && outStart < inStart + input.length) {
      throw badValue('AEAD input and output overlap without starting at the same byte');
    }
  }
}

function checkBlake2b(outLength: number, key: Uint8Array | undefined): void {
  if (!Number.isInteger(outLength) || outLength < 16 || outLength > 64) throw badValue(`BLAKE2b output of ${outLength} bytes, expected 16..64`);
  if (key !== undefined && (key.length < 16 || key.length > 64)) throw badValue(`BLAKE2b key of ${key.length} bytes, expected 16..64`);
}

function checkArgon2id(outLength: number, salt: Uint8Array, opslimit: number, memlimit: number): void {
  if (!Number.isInteger(outLength) || outLength < 16) throw badValue(`Argon2id output of ${outLength} bytes, expected at least 16`);
  if (salt.length !== ARGON2ID_SALT_BYTES) throw badValue(`Argon2id salt is ${salt.length} bytes, expected ${ARGON2ID_SALT_BYTES}`);
  if (!Number.isInteger(opslimit) || opslimit < ARGON2ID_MIN_OPSLIMIT) throw badValue(`Argon2id opslimit ${opslimit} is below ${ARGON2ID_MIN_OPSLIMIT}`);
  if (!Number.isInteger(memlimit) || memlimit < ARGON2ID_MIN_MEMLIMIT) throw badValue(`Argon2id memlimit ${memlimit} is below ${ARGON2ID_MIN_MEMLIMIT} bytes`);
}

function checkX25519(secretKey: Uint8Array, publicKey: Uint8Array): void {
  if (secretKey.length !== X25519_BYTES || publicKey.length !== X25519_BYTES) {
    throw new CryptoError('decrypt-failed', `X25519 keys must be ${X25519_BYTES} bytes, got secret ${secretKey.length} and public ${publicKey.length}`);
  }
}

function lowOrderPoint(cause?: unknown): CryptoError {
  return new CryptoError('decrypt-failed', 'X25519 gave an all-zero shared secret: the peer sent a low-order public key', { cause });
}

function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i] ?? 0; // no early exit: keep it constant-time
  return acc === 0;
}

// ---- sodium-native ----

/** The part of sodium-native's (untyped, CommonJS) API we call. */
interface NativeSodium {
  randombytes_buf(out: Uint8Array): void;
  crypto_box_keypair(pk: Uint8Array, sk: Uint8Array): void;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  crypto_pwhash_async(out: Buffer, password: Buffer, salt: Buffer, opslimit: number, memlimit: number, alg: number): Promise<void>;
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
}

/** A Buffer view of the same memory (crypto_pwhash_async reads its arguments with napi_get_buffer_info). */
function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function nativeBackend(na: NativeSodium): SodiumBackend {
  return {
    name: 'sodium-native',
    randomBytes(n) {
      const out = new Uint8Array(n);
      na.randombytes_buf(out);
      return out;
    },
    x25519Keypair() {
      const publicKey = new Uint8Array(X25519_BYTES);
      const secretKey = new Uint8Array(X25519_BYTES);
      na.crypto_box_keypair(publicKey, secretKey);
      return { publicKey, secretKey };
    },
    x25519(secretKey, publicKey) {
      checkX25519(secretKey, publicKey);
      const shared = new Uint8Array(X25519_BYTES);
      try {
        na.crypto_scalarmult(shared, secretKey, publicKey); // throws when libsodium rejects an all-zero result
      } catch (cause) {
        throw lowOrderPoint(cause);
      }
      if (isAllZero(shared)) throw lowOrderPoint();
      return shared;
    },
    blake2b(outLength, input, key) {
      checkBlake2b(outLength, key);
      const out = new Uint8Array(outLength);
      if (key === undefined) na.crypto_generichash(out, input);
      else na.crypto_generichash(out, input, key);
      return out;
    },
    async argon2id(outLength, password, salt, opslimit, memlimit) {
      checkArgon2id(outLength, salt, opslimit, memlimit);
      const out = new Uint8Array(outLength);
      try {
        await na.crypto_pwhash_async(bufferView(out), bufferView(password), bufferView(salt), opslimit, memlimit, ARGON2ID13);
      } catch (cause) {
        throw new CryptoError('crypto-unavailable', `Argon2id failed (is ${memlimit} bytes of memory available?)`, { cause });
      }
      return out;
    },
    aeadSeal(out, outOffset, plaintext, nonce, key, ad) {
      checkAead(nonce, key);
      const length = plaintext.length + AEAD_TAG_BYTES;
      checkOutput(out, outOffset, length, plaintext);
      na.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(outOffset, outOffset + length), plaintext, ad ?? null, null, nonce, key);
      return length;
    },
    aeadOpen(out, outOffset, sealed, nonce, key, ad) {
      checkAead(nonce, key);
      if (sealed.length < AEAD_TAG_BYTES) return -1;
      const length = sealed.length - AEAD_TAG_BYTES;
      checkOutput(out, outOffset, length, sealed);
      try {
        // sodium-native reports a bad tag only by throwing; every other cause was ruled out above.
        na.crypto_aead_chacha20poly1305_ietf_decrypt(out.subarray(outOffset, outOffset + length), null, sealed, ad ?? null, nonce, key);
      } catch {
        return -1; // libsodium has already zeroed the output region
      }
      return length;
    },
  };
}

function loadNative(): SodiumBackend {
  const require = createRequire(import.meta.url);
  return nativeBackend(require('sodium-native') as NativeSodium);
}

// ---- libsodium-wrappers-sumo (WASM) ----

type WasmSodium = (typeof import('libsodium-wrappers-sumo'))['default'];

function wasmBackend(ws: WasmSodium): SodiumBackend {
  return {
    name: 'libsodium-wrappers-sumo',
    randomBytes: (n) => ws.randombytes_buf(n),
    x25519Keypair() {
      const { publicKey, privateKey } = ws.crypto_box_keypair();
      return { publicKey, secretKey: privateKey };
    },
    x25519(secretKey, publicKey) {
      checkX25519(secretKey, publicKey);
      let shared: Uint8Array;
      try {
        shared = ws.crypto_scalarmult(secretKey, publicKey); // throws "weak public key" on an all-zero result
      } catch (cause) {
        throw lowOrderPoint(cause);
      }
      if (isAllZero(shared)) throw lowOrderPoint();
      return shared;
    },
    blake2b(outLength, input, key) {
      checkBlake2b(outLength, key);
      return ws.crypto_generichash(outLength, input, key ?? null);
    },
    async argon2id(outLength, password, salt, opslimit, memlimit) {
      checkArgon2id(outLength, salt, opslimit, memlimit);
      try {
        return ws.crypto_pwhash(outLength, password, salt, opslimit, memlimit, ARGON2ID13);
      } catch (cause) {
        throw new CryptoError('crypto-unavailable', `Argon2id failed (is ${memlimit} bytes of memory available?)`, { cause });
      }
    },
    aeadSeal(out, outOffset, plaintext, nonce, key, ad) {
      checkAead(nonce, key);
      const length = plaintext.length + AEAD_TAG_BYTES;
      checkOutput(out, outOffset, length, plaintext);
      out.set(ws.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, ad ?? null, null, nonce, key), outOffset);
      return length;
    },
    aeadOpen(out, outOffset, sealed, nonce, key, ad) {
      checkAead(nonce, key);
      if (sealed.length < AEAD_TAG_BYTES) return -1;
      const length = sealed.length - AEAD_TAG_BYTES;
      checkOutput(out, outOffset, length, sealed);
      let plaintext: Uint8Array;
      try {
        plaintext = ws.crypto_aead_chacha20poly1305_ietf_decrypt(null, sealed, ad ?? null, nonce, key);
      } catch {
        out.fill(0, outOffset, outOffset + length); // match sodium-native, which zeroes on failure
        return -1;
      }
      out.set(plaintext, outOffset);
      return length;
    },
  };
}

async function loadWasm(): Promise<SodiumBackend> {
  const ws = (await import('libsodium-wrappers-sumo')).default;
  await ws.ready;
  return wasmBackend(ws);
}

// ---- selection ----

/** Which libsodium binding to load first. */
export type Preference = 'native' | 'wasm';

const loaded = new Map<Preference, Promise<SodiumBackend>>();

function preferenceFromEnv(): Preference {
  const value = process.env['WEAVE_TS_SODIUM'];
  if (value === undefined || value === '' || value === 'native') return 'native';
  if (value === 'wasm') return 'wasm';
  throw new OptionsError(`WEAVE_TS_SODIUM is "${value}"; set it to "wasm" or "native", or unset it`);
}

async function load(prefer: Preference): Promise<SodiumBackend> {
  let nativeFailure: unknown;
  if (prefer === 'native') {
    try {
      return loadNative();
    } catch (cause) {
      nativeFailure = cause; // no prebuilt binary for this platform: fall back to WASM
    }
  }
  try {
    return await loadWasm();
  } catch (cause) {
    throw new CryptoError(
      'crypto-unavailable',
      'neither sodium-native nor libsodium-wrappers-sumo could be loaded; reinstall weave-ts dependencies or run without a password',
      { cause: nativeFailure === undefined ? cause : new AggregateError([nativeFailure, cause]) },
    );
  }
}

/**
 * Loads a libsodium backend, once per preference. `prefer` defaults to `WEAVE_TS_SODIUM` (`wasm` or `native`),
 * else native; native falls back to WASM when sodium-native cannot load. Check `name` to see which one you got.
 */
export function loadSodium(options: { prefer?: Preference | undefined } = {}): Promise<SodiumBackend> {
  let prefer: Preference;
  try {
    prefer = options.prefer ?? preferenceFromEnv();
  } catch (error) {
    return Promise.reject(error);
  }
  let backend = loaded.get(prefer);
  if (backend === undefined) {
    backend = load(prefer);
    loaded.set(prefer, backend);
    backend.catch(() => loaded.delete(prefer)); // a failed load may succeed later (e.g. after reinstalling)
  }
  return backend;
}
