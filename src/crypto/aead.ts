// AEAD streams: ChaCha20-Poly1305 with 64-bit counter nonces; implicit counters for the TCP stream.
import { CryptoError } from '../errors.js';
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, type SodiumBackend } from './sodium.js';

/** The largest counter a key may ever use; one more would repeat a nonce. */
export const MAX_COUNTER = 2n ** 64n - 1n;
/**
 * The largest datagram counter: counters of the sleeve are numbers (no BigInt per packet), exact up to 2^53 − 1. The
 * wire keeps 64 bits; a link would need 28 years at 10 million packets a second to get there.
 */
export const MAX_PACKET_COUNTER = Number.MAX_SAFE_INTEGER;

/**
 * Writes the 12-byte nonce for `counter`: 4 zero bytes, then the counter as 64-bit big-endian.
 * Throws `CryptoError('bad-value')` for a counter outside 0..2^64-1 or a nonce that is not 12 bytes.
 */
export function writeCounterNonce(nonce: Uint8Array, counter: bigint): void {
  if (nonce.length !== AEAD_NONCE_BYTES) throw new CryptoError('bad-value', `nonce is ${nonce.length} bytes, expected ${AEAD_NONCE_BYTES}`);
  if (counter < 0n || counter > MAX_COUNTER) throw new CryptoError('bad-value', `nonce counter ${counter} is outside 0..2^64-1`);
  writeNonceWords(nonce, Number(counter >> 32n), Number(counter & 0xffff_ffffn));
}

/** As {@link writeCounterNonce} for a number counter (0..2^53 − 1), without BigInt arithmetic: the per-datagram path. */
export function writePacketNonce(nonce: Uint8Array, counter: number): void {
  if (nonce.length !== AEAD_NONCE_BYTES) throw new CryptoError('bad-value', `nonce is ${nonce.length} bytes, expected ${AEAD_NONCE_BYTES}`);
  if (!Number.isSafeInteger(counter) || counter < 0) throw new CryptoError('bad-value', `packet counter ${counter} is outside 0..2^53-1`);
  writeNonceWords(nonce, Math.floor(counter / 0x1_0000_0000), counter >>> 0);
}

/** 4 zero bytes, then the counter's high and low 32-bit words, big-endian. */
function writeNonceWords(nonce: Uint8Array, hi: number, lo: number): void {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  nonce[4] = hi >>> 24;
  nonce[5] = (hi >>> 16) & 0xff;
  nonce[6] = (hi >>> 8) & 0xff;
  nonce[7] = hi & 0xff;
  nonce[8] = lo >>> 24;
  nonce[9] = (lo >>> 16) & 0xff;
  nonce[10] = (lo >>> 8) & 0xff;
  nonce[11] = lo & 0xff;
}

function copyKey(key: Uint8Array): Uint8Array {
  if (key.length !== AEAD_KEY_BYTES) throw new CryptoError('bad-value', `stream key is ${key.length} bytes, expected ${AEAD_KEY_BYTES}`);
  return key.slice(); // the caller may reuse or wipe its array
}

function exhausted(): CryptoError {
  // A rekey would be needed after 2^64 messages; reconnecting does that.
  return new CryptoError('counter-exhausted', 'stream nonce counter is exhausted; reconnect to get fresh keys');
}

/** One direction of a stream with implicit counters (TCP): each seal uses the next counter, from 0. */
export class StreamSealer {
  private readonly key: Uint8Array;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  /** The counter the next message will use. */
  protected counter = 0n;

  constructor(
    private readonly sodium: SodiumBackend,
    key: Uint8Array,
  ) {
    this.key = copyKey(key);
  }

  /** Seals `plaintext` into a new array of `plaintext.length + 16` bytes. */
  seal(plaintext: Uint8Array): Uint8Array {
    const out = new Uint8Array(plaintext.length + AEAD_TAG_BYTES);
    this.sealInto(out, 0, plaintext);
    return out;
  }

  /** Seals `plaintext` into `out` at `outOffset` (in place if it is those very bytes); returns bytes written. */
  sealInto(out: Uint8Array, outOffset: number, plaintext: Uint8Array): number {
    if (this.counter > MAX_COUNTER) throw exhausted();
    writeCounterNonce(this.nonce, this.counter);
    const written = this.sodium.aeadSeal(out, outOffset, plaintext, this.nonce, this.key);
    this.counter++;
    return written;
  }
}

/**
 * The receiving side of a {@link StreamSealer}: each open expects exactly the next counter, so a gap,
 * reorder, replay or tampered byte fails. After one failure it refuses everything (a broken stream stays
 * broken: resynchronising would let an attacker probe it); drop the connection.
 */
export class StreamOpener {
  private readonly key: Uint8Array;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  /** The counter the next message must carry. */
  protected counter = 0n;
  private broken = false;

  constructor(
    private readonly sodium: SodiumBackend,
    key: Uint8Array,
  ) {
    this.key = copyKey(key);
  }

  /** True once a message has failed to open; every later `open` throws. */
  get isBroken(): boolean {
    return this.broken;
  }

  /** Opens the next message into a new array; throws `CryptoError('decrypt-failed')` if it does not authenticate. */
  open(sealed: Uint8Array): Uint8Array {
    const out = new Uint8Array(Math.max(0, sealed.length - AEAD_TAG_BYTES));
    this.openInto(out, 0, sealed);
    return out;
  }

  /** Opens the next message into `out` at `outOffset`; returns the plaintext length. Same failures as `open`. */
  openInto(out: Uint8Array, outOffset: number, sealed: Uint8Array): number {
    if (this.broken) throw new CryptoError('decrypt-failed', 'stream is broken by an earlier message that failed to decrypt');
    if (this.counter > MAX_COUNTER) {
      this.broken = true;
      throw exhausted();
    }
    writeCounterNonce(this.nonce, this.counter);
    const length = this.sodium.aeadOpen(out, outOffset, sealed, this.nonce, this.key);
    if (length < 0) {
      this.broken = true;
      throw new CryptoError(
        'decrypt-failed',
        `message ${this.counter} failed to decrypt: it was tampered with, replayed, reordered or lost, or the peer uses other keys`,
      );
    }
    this.counter++;
    return length;
  }
}
