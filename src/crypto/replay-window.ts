// Replay window: which packet counters (sent in clear over UDP) are new, as a sliding bitmap ring.
import { CryptoError, OptionsError } from '../errors.js';
import { MAX_PACKET_COUNTER } from './aead.js';

/** Weave's window: 2^20 counters, 128 KiB of bitmap per peer. */
export const DEFAULT_REPLAY_WINDOW = 2 ** 20;

/**
 * Sliding-window replay check. A counter is fresh if it is above the highest accepted counter, or
 * within `size` below it (highest - counter < size) and not accepted before. `accept` is called only
 * after the packet decrypted, so forged counters cannot move the window.
 *
 * Bit `counter mod size` of a ring of `size` bits records whether that counter was accepted; advancing
 * the highest counter clears the bits of the counters skipped over (a jump of `size` or more clears all),
 * so each check is O(1) and nothing is allocated per packet. Counters are numbers (exact up to 2^53 − 1, which
 * no link reaches: 10 million packets a second for 28 years).
 */
export class ReplayWindow {
  private readonly bits: Uint32Array;
  private readonly size: number;
  private readonly mask: number;
  /** Highest accepted counter; -1 before the first. */
  private highest = -1;

  /** `size` (a power of two, at least 32) is how far behind the highest counter a packet may arrive. */
  constructor(size: number = DEFAULT_REPLAY_WINDOW) {
    if (!Number.isInteger(size) || size < 32 || size > 2 ** 30 || (size & (size - 1)) !== 0) {
      throw new OptionsError(`replay window size ${size} must be a power of two between 32 and 2^30`);
    }
    this.size = size;
    this.mask = size - 1;
    this.bits = new Uint32Array(size / 32);
  }

  /** False if `counter` is too old or was already accepted (or is not an integer in 0..2^53 − 1). */
  isFresh(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (counter > this.highest) return counter <= MAX_PACKET_COUNTER;
    if (this.highest - counter >= this.size) return false;
    const at = ringBit(counter, this.mask);
    return (this.bits[at >>> 5]! & (1 << (at & 31))) === 0;
  }

  /** Records `counter` as seen; call it only for a packet that passed `isFresh` and then decrypted. */
  accept(counter: number): void {
    if (!Number.isSafeInteger(counter) || counter < 0) throw new CryptoError('bad-value', `packet counter ${counter} is outside 0..2^53-1`);
    if (counter > this.highest) {
      const jump = counter - this.highest;
      if (jump >= this.size) this.bits.fill(0);
      else this.clear(ringBit(this.highest + 1, this.mask), jump);
      this.highest = counter;
    } else if (this.highest - counter >= this.size) {
      return; // below the window: it can never be fresh again anyway
    }
    const at = ringBit(counter, this.mask);
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

/** `counter mod (mask + 1)` for counters past 2^32: `>>> 0` keeps the low 32 bits exactly, and the ring is smaller. */
function ringBit(counter: number, mask: number): number {
  return (counter >>> 0) & mask;
}
