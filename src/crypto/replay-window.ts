// Replay window: which 64-bit packet counters (sent in clear over UDP) are new, as a sliding bitmap ring.
import { CryptoError, OptionsError } from '../errors.js';
import { MAX_COUNTER } from './aead.js';

/** Weave's window: 2^20 counters, 128 KiB of bitmap per peer. */
export const DEFAULT_REPLAY_WINDOW = 2 ** 20;

/**
 * Sliding-window replay check. A counter is fresh if it is above the highest accepted counter, or
 * within `size` below it (highest - counter < size) and not accepted before. `accept` is called only
 * after the packet decrypted, so forged counters cannot move the window.
 *
 * Bit `counter mod size` of a ring of `size` bits records whether that counter was accepted; advancing
 * the highest counter clears the bits of the counters skipped over (a jump of `size` or more clears all),
 * so each check is O(1) and nothing is allocated per packet beyond bigint arithmetic.
 */
export class ReplayWindow {
  private readonly bits: Uint32Array;
  private readonly size: number;
  private readonly sizeBig: bigint;
  private readonly maskBig: bigint;
  /** Highest accepted counter; -1 before the first. */
  private highest = -1n;

  /** `size` (a power of two, at least 32) is how far behind the highest counter a packet may arrive. */
  constructor(size: number = DEFAULT_REPLAY_WINDOW) {
    if (!Number.isInteger(size) || size < 32 || size > 2 ** 30 || (size & (size - 1)) !== 0) {
      throw new OptionsError(`replay window size ${size} must be a power of two between 32 and 2^30`);
    }
    this.size = size;
    this.sizeBig = BigInt(size);
    this.maskBig = BigInt(size - 1);
    this.bits = new Uint32Array(size / 32);
  }

  /** False if `counter` is too old or was already accepted (or is not a 64-bit unsigned value). */
  isFresh(counter: bigint): boolean {
    if (counter > this.highest) return counter <= MAX_COUNTER;
    if (counter < 0n || this.highest - counter >= this.sizeBig) return false;
    const at = Number(counter & this.maskBig);
    return (this.bits[at >>> 5]! & (1 << (at & 31))) === 0;
  }

  /** Records `counter` as seen; call it only for a packet that passed `isFresh` and then decrypted. */
  accept(counter: bigint): void {
    if (counter < 0n || counter > MAX_COUNTER) throw new CryptoError('bad-value', `packet counter ${counter} is outside 0..2^64-1`);
    if (counter > this.highest) {
      const jump = counter - this.highest;
      if (jump >= this.sizeBig) this.bits.fill(0);
      else this.clear(Number((this.highest + 1n) & this.maskBig), Number(jump));
      this.highest = counter;
    } else if (this.highest - counter >= this.sizeBig) {
      return; // below the window: it can never be fresh again anyway
    }
    const at = Number(counter & this.maskBig);
    this.bits[at >>> 5]! |= 1 << (at & 31);
  }

  /** Clears `count` (< size) ring bits starting at bit `from`, a word at a time where it can. */
  private clear(from: number, count: number): void {
    let at = from;
    let left = count;
    while (left > 0) {
      const bit = at & 31;
      const n = Math.min(32 - bit, left); // size is a multiple of 32, so a run never crosses the ring's end mid-word
      const word = at >>> 5;
      if (n === 32) this.bits[word] = 0;
      else this.bits[word]! &= ~(((1 << n) - 1) << bit);
      left -= n;
      at = (at + n) & (this.size - 1);
    }
  }
}
