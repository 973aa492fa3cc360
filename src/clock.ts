// Clock: time and timers as a parameter, so tests can run a mesh deterministically.

/** A scheduled callback that can be cancelled. */
export interface Timer {
  /** Stops the callback from running; a no-op if it already ran or was cancelled. */
  cancel(): void;
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
  setTimer(ms: number, fn: () => void): Timer;
}

/** The real clock: `performance.now()` and unref'd Node timers (they never keep the process alive). */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
