// TokenBucket: a burst, then a steady refill; the shared rate limiter (inbound dials, ICMP errors, the sleeve's slow path).
import type { Clock } from './clock.js';

/** Up to `capacity` tokens, one more earned every `refillEveryMs` (fractions allowed) on the injected clock. */
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

  /** Takes a token if one is available; false means the caller is over its rate. */
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
