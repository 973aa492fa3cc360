// ConnectionMaker: keeps dialling direct and discovered targets, with jittered exponential backoff.
import type { Clock, Timer } from '../clock.js';
import type { Random } from '../random.js';
import { WeaveError, type WeaveErrorCode } from '../errors.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import { withDefaults, type Overrides } from '../options.js';

/** Where a target stands. */
export type TargetState = 'waiting' | 'attempting' | 'connected' | 'failed';

/** One row of the maker's status. */
export interface TargetStatus {
  /** The canonical "host:port" dialled. */
  address: string;
  /** Given by the user (`connect`) rather than discovered from topology. */
  direct: boolean;
  /** Where the target stands: waiting to dial, dialling, linked, or given up on (connect-to-self, name collision). */
  state: TargetState;
  /** Dials made since the target was added. */
  attempts: number;
  /** Message of the last failed dial; absent before the first failure and after a success. */
  lastError?: string;
  /** Stable code of the last failed dial (`connect-to-self` marks our own address). */
  lastErrorCode?: WeaveErrorCode;
  /** The peer this target's last successful dial reached, MAC form. */
  peer?: string;
  /** Milliseconds until the next attempt, when waiting. */
  retryInMs?: number;
}

/** Retry timing; the defaults are Weave's. */
export interface BackoffOptions {
  /** Base retry interval after the first failure, in ms (default 2000); each wait is jittered to [½, 1½)× the interval. */
  initialIntervalMs: number;
  /** Growth of the interval after each failure (default 1.5). */
  factor: number;
  /** Cap on the interval, in ms (default 6 min). */
  maxIntervalMs: number;
  /** A link that stayed up this long resets the backoff when it drops. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialIntervalMs: 2_000,
  factor: 1.5,
  maxIntervalMs: 6 * 60_000,
  resetAfterMs: 60_000,
};

export interface ConnectionMakerOptions {
  clock: Clock;
  random: Random;
  /** Dials `address`; resolves with the remote peer once the link is accepted, rejects with why it failed. */
  dial: (address: string) => Promise<PeerName>;
  backoff?: Overrides<BackoffOptions>;
  /** Dial targets learned from topology gossip (default true). */
  discovery?: boolean;
}

interface Target {
  direct: boolean;
  discovered: boolean;
  state: TargetState;
  attempts: number;
  intervalMs: number;
  tryAfter: number;
  connectedAt: number;
  peer: PeerName | undefined;
  lastError: WeaveError | undefined;
}

/** Errors that retrying cannot fix. */
const PERMANENT = new Set(['connect-to-self', 'name-collision']);

export class ConnectionMaker {
  private readonly targets = new Map<string, Target>();
  private readonly backoff: BackoffOptions;
  private readonly discovery: boolean;
  private connectedAddresses = new Set<string>();
  private connectedPeers = new Set<PeerName>();
  private discovered = new Set<string>();
  private timer: Timer | undefined;
  private stopped = false;

  constructor(private readonly options: ConnectionMakerOptions) {
    this.backoff = withDefaults(DEFAULT_BACKOFF, options.backoff);
    this.discovery = options.discovery ?? true;
  }

  /** Adds a direct target (canonical "host:port") and tries it now. */
  connect(address: string): void {
    const target = this.targets.get(address);
    if (target) {
      target.direct = true;
      if (target.state === 'waiting' || target.state === 'failed') {
        target.state = 'waiting';
        target.tryAfter = this.options.clock.now();
      }
    } else {
      this.targets.set(address, this.newTarget({ direct: true, discovered: false }));
    }
    this.refresh();
  }

  /** Removes a direct target; an existing link stays up but is not re-dialled. */
  forget(address: string): void {
    const target = this.targets.get(address);
    if (target) target.direct = false;
    this.refresh();
  }

  /** Tells the maker which listen addresses and peers currently have a live link. */
  setConnected(addresses: Iterable<string>, peers: Iterable<PeerName>): void {
    this.connectedAddresses = new Set(addresses);
    this.connectedPeers = new Set(peers);
    this.refresh();
  }

  /** Tells the maker the listen addresses that topology gossip says other peers link to. */
  setDiscovered(addresses: Iterable<string>): void {
    this.discovered = new Set(addresses);
    this.refresh();
  }

  directTargets(): string[] {
    return [...this.targets].filter(([, t]) => t.direct).map(([a]) => a);
  }

  status(): TargetStatus[] {
    const now = this.options.clock.now();
    return [...this.targets].map(([address, t]) => ({
      address,
      direct: t.direct,
      state: t.state,
      attempts: t.attempts,
      ...(t.lastError ? { lastError: t.lastError.message, lastErrorCode: t.lastError.code } : {}),
      ...(t.peer !== undefined ? { peer: formatPeerName(t.peer) } : {}),
      ...(t.state === 'waiting' ? { retryInMs: Math.max(0, Math.round(t.tryAfter - now)) } : {}),
    }));
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private newTarget(kind: { direct: boolean; discovered: boolean }): Target {
    return {
      ...kind,
      state: 'waiting',
      attempts: 0,
      intervalMs: this.backoff.initialIntervalMs,
      tryAfter: this.options.clock.now(),
      connectedAt: 0,
      peer: undefined,
      lastError: undefined,
    };
  }

  private isConnected(address: string, target: Target): boolean {
    return this.connectedAddresses.has(address) || (target.peer !== undefined && this.connectedPeers.has(target.peer));
  }

  /** Recomputes the target set and dials whatever is due. */
  private refresh(): void {
    if (this.stopped) return;
    const now = this.options.clock.now();
    if (this.discovery) {
      for (const address of this.discovered) {
        if (!this.targets.has(address) && !this.connectedAddresses.has(address)) {
          this.targets.set(address, this.newTarget({ direct: false, discovered: true }));
        }
      }
    }
    for (const [address, target] of this.targets) {
      target.discovered = this.discovery && this.discovered.has(address);
      const connected = this.isConnected(address, target);
      if (connected && target.state !== 'connected' && target.state !== 'failed') {
        target.state = 'connected';
        target.connectedAt = now;
      } else if (!connected && target.state === 'connected') {
        this.scheduleRetry(target, now, now - target.connectedAt >= this.backoff.resetAfterMs);
      }
      // Connected targets stay, so a link that drops keeps its backoff state instead of being redialled at once.
      if (!target.direct && !target.discovered && (target.state === 'waiting' || target.state === 'failed')) this.targets.delete(address);
    }
    let next = Infinity;
    for (const [address, target] of this.targets) {
      if (target.state !== 'waiting') continue;
      if (target.tryAfter <= now) this.attempt(address, target);
      else next = Math.min(next, target.tryAfter);
    }
    this.timer?.cancel();
    this.timer = next === Infinity ? undefined : this.options.clock.setTimer(next - now, () => this.refresh());
  }

  private attempt(address: string, target: Target): void {
    target.state = 'attempting';
    target.attempts += 1;
    this.options.dial(address).then(
      (peer) => {
        target.peer = peer;
        target.lastError = undefined;
        target.state = 'connected';
        target.connectedAt = this.options.clock.now();
        this.refresh();
      },
      (error: unknown) => {
        target.lastError = error instanceof WeaveError ? error : new WeaveError('closed', String(error));
        if (PERMANENT.has(target.lastError.code)) target.state = 'failed';
        else this.scheduleRetry(target, this.options.clock.now(), false);
        this.refresh();
      },
    );
  }

  /** Next try after a uniform [i/2, 3i/2) wait, then the interval grows; a long-lived link resets it. */
  private scheduleRetry(target: Target, now: number, reset: boolean): void {
    target.state = 'waiting';
    if (reset) {
      target.intervalMs = this.backoff.initialIntervalMs;
      target.tryAfter = now;
      return;
    }
    const i = target.intervalMs;
    target.tryAfter = now + i / 2 + this.options.random.float() * i;
    target.intervalMs = Math.min(i * this.backoff.factor, this.backoff.maxIntervalMs);
  }
}
