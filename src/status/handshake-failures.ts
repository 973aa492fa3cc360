// Handshake failures an operator should see: a warn line per source host per minute, and the recent ones for status.
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { LinkFailure } from '../mesh/router.js';
import { TokenBucket } from '../token-bucket.js';
import { formatPeerName } from '../wire/peer-name.js';

/** One source host's recent handshake failures of one kind (one error code), as status shows them. */
export interface HandshakeFailureView {
  /** The remote host without the port: the IP of an inbound connection, or the dialled host. */
  source: string;
  /** The remote "host:port" of the latest failure (an inbound connection's port is ephemeral). */
  address: string;
  /** The remote peer's name (MAC form), when the handshake got far enough to learn it. */
  peer?: string;
  /** The stable error code: `bad-password`, `crypto-mismatch`, `version-mismatch`, `name-collision`, … */
  code: string;
  /** The latest failure's message: what happened and what to do. */
  reason: string;
  /** How many failures of this kind came from this source while it stayed listed. */
  count: number;
  /** Milliseconds since the first of them. */
  firstAgoMs: number;
  /** Milliseconds since the latest. */
  lastAgoMs: number;
}

/** Limits of the bookkeeping; the defaults suit an agent. */
export interface HandshakeFailureLogOptions {
  /** Time source (monotonic is fine: only differences are used). */
  clock: Clock;
  /** Where warnings (and routine failures, at debug) go. */
  logger: Logger;
  /** Least time between two warnings about one source host, in ms (default 60 s). */
  warnIntervalMs?: number;
  /** Source hosts whose last warning is remembered; beyond this the oldest is forgotten (default 1024). */
  maxTrackedSources?: number;
  /** Warnings over all sources per `warnIntervalMs`, so many sources cannot flood the log (default 20). */
  maxWarningsPerInterval?: number;
  /** Entries kept for status, newest first (default 32). */
  maxRecent?: number;
  /** Entries whose latest failure is older than this leave the status list, in ms (default 1 h). */
  retentionMs?: number;
}

/**
 * Failures the mesh resolves by itself, never an operator's concern: the remote hung up or the socket
 * failed, a duplicate of a live link, a dial to ourselves, our own connection limit.
 */
const ROUTINE_CODES: ReadonlySet<string> = new Set(['closed', 'duplicate-connection', 'connect-to-self', 'connection-limit']);

/**
 * True when a failed handshake is worth an operator's attention: the remote spoke (so something that
 * is not a live weave-ts peer with our settings answered) and the failure is not routine. Bad password,
 * encryption or protocol version mismatch, a name collision, garbage, or a handshake that stalled after
 * the remote sent something qualify; a refused or unanswered dial does not.
 */
export function isOperatorRelevant(failure: LinkFailure): boolean {
  return failure.bytesReceived > 0 && !ROUTINE_CODES.has(failure.error.code);
}

/** The host part of "host:port", "[v6]:port" or a bare host; never throws (addresses come from sockets). */
export function sourceHost(address: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(address);
  if (bracketed) return bracketed[1] as string;
  const colon = address.indexOf(':');
  if (colon >= 0 && colon === address.lastIndexOf(':')) return address.slice(0, colon);
  return address; // a bare host, or bare IPv6
}

interface Warned {
  /** When the last warning about this source was logged. */
  at: number;
  /** Relevant failures from it since then that were not logged. */
  suppressed: number;
}

interface Entry {
  source: string;
  address: string;
  peer: string | undefined;
  code: string;
  reason: string;
  count: number;
  first: number;
  last: number;
}

/**
 * Turns the router's `connection:failed` events into what an operator sees: relevant failures are logged
 * at warn at most once per source host per interval (the next warning says how many were not), every
 * other failure at debug; the recent relevant ones are kept, grouped by source and code, for status.
 * Memory is bounded whatever the number of sources.
 */
export class HandshakeFailureLog {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly warnIntervalMs: number;
  private readonly maxTrackedSources: number;
  private readonly maxRecent: number;
  private readonly retentionMs: number;
  private readonly budget: TokenBucket;
  /** Source host → its last warning; insertion order is warning order (re-inserted on each warning). */
  private readonly warned = new Map<string, Warned>();
  /** "source code" → entry; insertion order is latest-failure order (re-inserted on each failure). */
  private readonly entries = new Map<string, Entry>();
  /** Relevant failures not logged because the overall warning budget was spent. */
  private unlogged = 0;

  constructor(options: HandshakeFailureLogOptions) {
    this.clock = options.clock;
    this.logger = options.logger;
    this.warnIntervalMs = options.warnIntervalMs ?? 60_000;
    this.maxTrackedSources = Math.max(1, options.maxTrackedSources ?? 1024);
    this.maxRecent = Math.max(1, options.maxRecent ?? 32);
    this.retentionMs = options.retentionMs ?? 3_600_000;
    const perInterval = Math.max(1, options.maxWarningsPerInterval ?? 20);
    this.budget = new TokenBucket(this.clock, perInterval, this.warnIntervalMs / perInterval);
  }

  /** Source hosts whose last warning is remembered (at most `maxTrackedSources`). */
  get trackedSources(): number {
    return this.warned.size;
  }

  /** Takes one failed dial or inbound handshake: logs it (warn or debug) and, if relevant, lists it. */
  record(failure: LinkFailure): void {
    const { error } = failure;
    if (!isOperatorRelevant(failure)) {
      this.debug(failure);
      return;
    }
    const now = this.clock.now();
    const source = sourceHost(failure.address);
    const peer = failure.peer !== undefined ? formatPeerName(failure.peer) : undefined;
    this.remember(source, failure.address, peer, error.code, error.message, now);

    const last = this.warned.get(source);
    if (last && now - last.at < this.warnIntervalMs) {
      last.suppressed += 1;
      this.debug(failure);
      return;
    }
    if (!this.budget.tryTake()) {
      this.unlogged += 1;
      this.debug(failure);
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    const unloggedFromOthers = this.unlogged;
    this.unlogged = 0;
    const more = suppressed > 0 ? ` (${suppressed} more from ${source} since the last warning)` : '';
    this.logger.warn(
      {
        source,
        address: failure.address,
        ...(peer !== undefined ? { peer } : {}),
        code: error.code,
        ...(suppressed > 0 ? { suppressed } : {}),
        ...(unloggedFromOthers > 0 ? { unloggedFromOthers } : {}),
      },
      `handshake failed: ${error.message}${more}`,
    );
    this.warned.delete(source);
    this.warned.set(source, { at: now, suppressed: 0 });
    this.forgetOldWarnings(now);
  }

  /** The recent relevant failures, newest first. */
  recent(): HandshakeFailureView[] {
    const now = this.clock.now();
    this.expire(now);
    const views: HandshakeFailureView[] = [];
    for (const e of this.entries.values()) {
      views.push({
        source: e.source,
        address: e.address,
        ...(e.peer !== undefined ? { peer: e.peer } : {}),
        code: e.code,
        reason: e.reason,
        count: e.count,
        firstAgoMs: Math.max(0, Math.round(now - e.first)),
        lastAgoMs: Math.max(0, Math.round(now - e.last)),
      });
    }
    return views.reverse();
  }

  private debug(failure: LinkFailure): void {
    this.logger.debug({ address: failure.address, code: failure.error.code, err: failure.error }, 'connection failed');
  }

  private remember(source: string, address: string, peer: string | undefined, code: string, reason: string, now: number): void {
    const key = `${source} ${code}`;
    const existing = this.entries.get(key);
    this.entries.delete(key);
    this.entries.set(key, {
      source,
      address,
      peer: peer ?? existing?.peer,
      code,
      reason,
      count: (existing?.count ?? 0) + 1,
      first: existing?.first ?? now,
      last: now,
    });
    this.expire(now);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxRecent) break;
      this.entries.delete(oldest);
    }
  }

  /** Drops entries past retention (the oldest come first). */
  private expire(now: number): void {
    for (const [key, e] of this.entries) {
      if (now - e.last <= this.retentionMs) break;
      this.entries.delete(key);
    }
  }

  /**
   * Forgets warnings older than the interval (they no longer hold anything back) unless they still owe
   * a count of unlogged failures, then the oldest beyond the cap whatever they owe.
   */
  private forgetOldWarnings(now: number): void {
    for (const [source, w] of this.warned) {
      const overCap = this.warned.size > this.maxTrackedSources;
      if (!overCap && now - w.at < this.warnIntervalMs) break; // the rest are newer
      if (overCap || w.suppressed === 0) this.warned.delete(source);
    }
  }
}
