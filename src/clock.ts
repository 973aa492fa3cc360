// Clock: time and timers as a parameter, so tests can run a mesh deterministically.

/** A scheduled callback that can be cancelled. */
export interface Timer {
  /** Stops the callback from running; a no-op if it already ran or was cancelled. */
  cancel(): void;
}

/** How a timer relates to the process's life. */
export interface TimerOptions {
  /**
   * A caller awaits what this timer decides (the deadline of an awaited operation, a retry a pending send
   * waits for): the real clock keeps the process alive until it fires or is cancelled. Background timers
   * (heartbeats, gossip, expiry) leave it unset and never hold the process open.
   */
  keepAlive?: boolean | undefined;
}

/** The source of time and timers for every component. */
export interface Clock {
  /** Milliseconds since an arbitrary epoch (monotonic for the real clock). */
  now(): number;
  /**
   * Wall-clock milliseconds since the Unix epoch, where times must compare across hosts (a peer's start
   * time); when absent, `now()` stands in (fake clocks).
   */
  wallNow?(): number;
  /** Runs `fn` once after `ms` milliseconds; the returned {@link Timer} cancels it. */
  setTimer(ms: number, fn: () => void, options?: TimerOptions): Timer;
}

/**
 * The real clock: `performance.now()` and Node timers. Background timers are unref'd (they never keep the
 * process alive); `keepAlive` timers are not, so an awaited operation holds the process until it settles.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(ms, fn, options) {
    const handle = setTimeout(fn, ms);
    if (!options?.keepAlive) handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
