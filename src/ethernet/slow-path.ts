// SlowPath: the budgets for sleeve datagrams that do not come from their link's authenticated address.
import type { Clock, Timer } from '../clock.js';
import { TokenBucket } from '../token-bucket.js';
import { SourceFailures, type SourceFailureLimits, type SourceFailureStatus } from './source-failures.js';
import { withDefaults, type Overrides } from '../options.js';

/**
 * Limits of the slow path: datagrams that do not come from their link's authenticated address (first
 * contact, an address change, or forgeries) are read, decrypted and counted within these budgets, so a flood
 * of them costs a bounded amount of work however fast it arrives.
 */
export interface SlowPathLimits {
  /** Such datagrams handled per second; beyond it they are dropped and the shared socket pauses (default 4000). */
  readsPerSecond: number;
  /** Decryptions of such datagrams per second, all sources together (default 1000). */
  decryptsPerSecond: number;
  /** How long the shared socket stops reading once the read budget is spent, in ms (default 20). */
  pauseMs: number;
  /** Per-source failure counting and decryption budget. */
  sources: Overrides<SourceFailureLimits>;
}

export const DEFAULT_SLOW_PATH_LIMITS: SlowPathLimits = { readsPerSecond: 4000, decryptsPerSecond: 1000, pauseMs: 20, sources: {} };

/** The shared socket as the slow path sees it: it may stop reading it while a flood lasts. */
export interface PausableSocket {
  /** Stops or resumes reading; false when it could not. */
  setReceiving(receiving: boolean): boolean;
  /** Whether stopping now loses nothing authentic (every known neighbour has a socket of its own). */
  mayPause(): boolean;
}

/**
 * The slow path's budgets: reads (over them the shared socket pauses), decryptions for all sources, and a
 * decryption budget and failure count per source address. Each check is O(1) and allocates nothing for a
 * source already in the table.
 */
export class SlowPath {
  private readonly reads: TokenBucket;
  private readonly decrypts: TokenBucket;
  private readonly sources: SourceFailures;
  private readonly pauseMs: number;
  private pauseTimer: Timer | undefined;
  private pauses = 0;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    limits: Overrides<SlowPathLimits> = {},
    private readonly shared?: PausableSocket,
  ) {
    const l = withDefaults(DEFAULT_SLOW_PATH_LIMITS, limits);
    // Bursts of a tenth of a second's budget: enough for a link's first heartbeats or an address change.
    this.reads = new TokenBucket(clock, Math.max(1, Math.ceil(l.readsPerSecond / 10)), 1000 / l.readsPerSecond);
    this.decrypts = new TokenBucket(clock, Math.max(1, Math.ceil(l.decryptsPerSecond / 10)), 1000 / l.decryptsPerSecond);
    this.sources = new SourceFailures(l.sources);
    this.pauseMs = l.pauseMs;
  }

  /**
   * A slow-path datagram from `address` arrived (`fromShared`: on the shared socket). Returns undefined when it
   * may be looked at, else why not (`rate-limited`, already counted against the source).
   */
  read(address: string, fromShared: boolean): string | undefined {
    if (this.reads.tryTake()) return undefined;
    this.fail(address, 'rate-limited');
    if (fromShared) this.pause();
    return 'rate-limited';
  }

  /** Whether a datagram from `address` may be decrypted: undefined if so, else why not (counted against the source). */
  decrypt(address: string): string | undefined {
    const reason = !this.sources.mayDecrypt(address, this.clock.now()) ? 'source-blocked' : this.decrypts.tryTake() ? undefined : 'rate-limited';
    if (reason !== undefined) this.fail(address, reason);
    return reason;
  }

  /** Counts a failed datagram from `address`; a failed decryption (`decryption`) also spends the source's budget. */
  fail(address: string, reason: string, decryption = false): void {
    this.sources.record(address, reason, this.clock.now(), decryption);
  }

  /** Pauses of the shared socket so far, whether it is paused now, and the sources with most failures. */
  status(): { pauses: number; paused: boolean; sources: SourceFailureStatus[] } {
    return { pauses: this.pauses, paused: this.pauseTimer !== undefined, sources: this.sources.status(this.clock.now()) };
  }

  /** Stops the resume timer; the socket belongs to the caller. */
  close(): void {
    this.closed = true;
    this.pauseTimer?.cancel();
    this.pauseTimer = undefined;
  }

  /** Stops reading the shared socket for `pauseMs`: the kernel drops what overflows its queue, at no cost to us. */
  private pause(): void {
    const shared = this.shared;
    if (!shared || this.pauseTimer !== undefined || this.closed || !shared.mayPause()) return;
    if (!shared.setReceiving(false)) return;
    this.pauses += 1;
    this.pauseTimer = this.clock.setTimer(this.pauseMs, () => {
      this.pauseTimer = undefined;
      if (!this.closed) shared.setReceiving(true);
    });
  }
}
