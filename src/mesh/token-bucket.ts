// TokenBucket: rate-limits inbound connection attempts (a burst, then a steady refill).
import type { Clock } from '../clock.js';

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly clock: Clock,
    private readonly capacity: number,
    private readonly refillEveryMs: number,
  ) {
    this.tokens = capacity;
    this.refilledAt = clock.now();
  }

  /** Takes a token if one is available. */
  tryTake(): boolean {
    const now = this.clock.now();
    const earned = Math.floor((now - this.refilledAt) / this.refillEveryMs);
    if (earned > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + earned);
      this.refilledAt = this.tokens === this.capacity ? now : this.refilledAt + earned * this.refillEveryMs;
    }
    if (this.tokens === 0) return false;
    this.tokens -= 1;
    return true;
  }
}
