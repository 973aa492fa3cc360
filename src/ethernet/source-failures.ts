// SourceFailures: sleeve datagrams that failed, counted per source address in a bounded table, with a decryption budget per source.
import { withDefaults, type Overrides } from '../options.js';

/** One source address's failures, as status shows them. */
export interface SourceFailureStatus {
  /** The sender's IP address as the socket saw it. */
  address: string;
  /** Failed datagrams from this address since it entered the table. */
  failures: number;
  /** Failures by reason (`auth-failed`, `unknown-peer`, `malformed`, `replayed`, `rate-limited`, `source-blocked`). */
  reasons: Record<string, number>;
  /** Clock time (ms) of the latest failure. */
  lastAt: number;
  /** True while datagrams from this address are refused before decryption (its failure budget is spent). */
  blocked: boolean;
}

/** Limits of the per-source failure table (see {@link SlowPathLimits}). */
export interface SourceFailureLimits {
  /** Most addresses tracked; the least recently failing one makes room (default 256). */
  maxSources: number;
  /** Failed decryptions an address may cause at once before it is refused (default 8). */
  decryptBurst: number;
  /** One more failed decryption is allowed per this many ms (default 1000). */
  decryptEveryMs: number;
}

export const DEFAULT_SOURCE_FAILURE_LIMITS: SourceFailureLimits = { maxSources: 256, decryptBurst: 8, decryptEveryMs: 1000 };

interface Entry {
  failures: number;
  reasons: Record<string, number>;
  lastAt: number;
  /** Failed decryptions still allowed as of `creditAt`. */
  credit: number;
  creditAt: number;
}

/**
 * Failures per source address. Keyed by IP address only (not port), so a flood spread over many source ports
 * is one entry and one budget. The table holds at most `maxSources` entries: a Map in least-recently-failed
 * order, so the eviction is O(1) and its memory is bounded whatever the sources.
 */
export class SourceFailures {
  private readonly entries = new Map<string, Entry>();
  private readonly limits: SourceFailureLimits;

  constructor(limits: Overrides<SourceFailureLimits> = {}) {
    this.limits = withDefaults(DEFAULT_SOURCE_FAILURE_LIMITS, limits);
  }

  /** Counts one failed datagram from `address`; a failed decryption (`decryption`) also spends its budget. */
  record(address: string, reason: string, now: number, decryption = false): void {
    let entry = this.entries.get(address);
    if (entry === undefined) {
      if (this.entries.size >= this.limits.maxSources) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
      entry = { failures: 0, reasons: {}, lastAt: now, credit: this.limits.decryptBurst, creditAt: now };
    } else {
      this.entries.delete(address); // re-inserted below: the Map stays in least-recently-failed order
    }
    this.entries.set(address, entry);
    entry.failures += 1;
    entry.reasons[reason] = (entry.reasons[reason] ?? 0) + 1;
    entry.lastAt = now;
    if (decryption) {
      this.refill(entry, now);
      entry.credit = Math.max(0, entry.credit - 1);
    }
  }

  /** Whether a datagram from `address` may be decrypted: false once its failed decryptions spent the budget. */
  mayDecrypt(address: string, now: number): boolean {
    const entry = this.entries.get(address);
    if (entry === undefined) return true;
    this.refill(entry, now);
    return entry.credit >= 1;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** The `limit` addresses with the most failures, most first. */
  status(now: number, limit = 16): SourceFailureStatus[] {
    return [...this.entries]
      .sort((a, b) => b[1].failures - a[1].failures)
      .slice(0, limit)
      .map(([address, e]) => {
        this.refill(e, now);
        return { address, failures: e.failures, reasons: { ...e.reasons }, lastAt: e.lastAt, blocked: e.credit < 1 };
      });
  }

  private refill(entry: Entry, now: number): void {
    const earned = (now - entry.creditAt) / this.limits.decryptEveryMs;
    if (earned <= 0) return;
    entry.credit = Math.min(this.limits.decryptBurst, entry.credit + earned);
    entry.creditAt = now;
  }
}
