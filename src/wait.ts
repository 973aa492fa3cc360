// Awaited waits: a deadline, an abort signal and a hold on the process for operations a caller awaits.
import type { Clock, Timer } from './clock.js';
import { OptionsError } from './errors.js';

/** The longest delay a Node timer takes (about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Limits of an awaited wait. */
export interface WaitOptions {
  /** Aborting rejects the wait (with an `aborted` error). */
  signal?: AbortSignal | undefined;
  /** Gives up after this many milliseconds (with a `timeout` error); `Infinity` waits until aborted. */
  timeoutMs?: number | undefined;
}

/**
 * Holds the process open with the real clock until `release()`: for an awaited operation with no deadline
 * of its own. Under a fake clock it holds nothing (time moves only when a test advances it).
 */
export function holdOpen(clock: Clock): { release(): void } {
  let timer: Timer | undefined;
  let released = false;
  const arm = (): void => {
    if (!released) timer = clock.setTimer(MAX_TIMER_MS, arm, { keepAlive: true });
  };
  arm();
  return {
    release: () => {
      released = true;
      timer?.cancel();
    },
  };
}

/** Checks a caller's `timeoutMs`: a duration of 0 or more, or Infinity. */
export function checkTimeout(timeoutMs: number, what: string): void {
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
    throw new OptionsError(`${what}: timeoutMs ${String(timeoutMs)} is not a duration; give milliseconds (0 or more), or Infinity to wait until aborted`);
  }
}

/** How an awaited operation ends when it is not settled by its own work. */
export interface SettleLimits {
  /** Deadline in ms; Infinity for none (the process is still held open while waiting). */
  timeoutMs: number;
  /** Aborting rejects with `aborted(reason)`. */
  signal?: AbortSignal | undefined;
  /** The error for a missed deadline, made when it passes (so it can say what is still missing). */
  timeout: () => Error;
  /** The error for an abort. */
  aborted: (reason: unknown) => Error;
}

/**
 * Runs `start(resolve, reject)` and settles with it, or with the deadline or the abort, whichever comes first.
 * `start` may return a cleanup, run once the wait has settled. While waiting, the real clock keeps the
 * process alive: the deadline timer is a keep-alive timer (or, without a deadline, a hold).
 */
export function settleWithin<T>(
  clock: Clock,
  limits: SettleLimits,
  start: (resolve: (value: T) => void, reject: (error: Error) => void) => (() => void) | void,
): Promise<T> {
  const { signal } = limits;
  if (signal?.aborted) return Promise.reject(limits.aborted(signal.reason));
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const cleanups: (() => void)[] = [];
    const finish = (error: Error | undefined, value?: T): void => {
      if (done) return;
      done = true;
      for (const cleanup of cleanups.splice(0)) cleanup();
      if (error) reject(error);
      else resolve(value as T);
    };
    if (limits.timeoutMs <= MAX_TIMER_MS) {
      const deadline = clock.setTimer(limits.timeoutMs, () => finish(limits.timeout()), { keepAlive: true });
      cleanups.push(() => deadline.cancel());
    } else {
      const hold = holdOpen(clock);
      cleanups.push(() => hold.release());
    }
    if (signal) {
      const onAbort = (): void => finish(limits.aborted(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    let cleanup: (() => void) | void = undefined;
    try {
      cleanup = start(
        (value) => finish(undefined, value),
        (error) => finish(error),
      );
    } catch (error) {
      finish(error instanceof Error ? error : new Error(String(error)));
    }
    if (cleanup) {
      if (done) cleanup();
      else cleanups.push(cleanup);
    }
  });
}

/**
 * Resolves with the first defined result of `check()`, tried now, whenever `subscribe` reports a change and
 * every `pollMs` on the clock (a backstop for changes nothing reports); rejects with what `check` throws,
 * or as {@link settleWithin} does.
 */
export function waitUntil<T>(
  clock: Clock,
  limits: SettleLimits,
  watch: {
    check: () => T | undefined;
    subscribe?: (onChange: () => void) => () => void;
    pollMs?: number;
  },
): Promise<T> {
  return settleWithin<T>(clock, limits, (resolve, reject) => {
    let settled = false;
    const evaluate = (): void => {
      if (settled) return;
      let value: T | undefined;
      try {
        value = watch.check();
      } catch (error) {
        settled = true;
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (value !== undefined) {
        settled = true;
        resolve(value);
      }
    };
    evaluate();
    if (settled) return;
    const unsubscribe = watch.subscribe?.(evaluate);
    let poll: Timer | undefined;
    const pollMs = watch.pollMs;
    if (pollMs !== undefined) {
      const tick = (): void => {
        evaluate();
        if (!settled) poll = clock.setTimer(pollMs, tick);
      };
      poll = clock.setTimer(pollMs, tick);
    }
    return () => {
      settled = true;
      unsubscribe?.();
      poll?.cancel();
    };
  });
}
