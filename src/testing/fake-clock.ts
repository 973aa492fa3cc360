// FakeClock: a Clock whose time moves only when a test advances it, so timer-driven behaviour is deterministic.
import type { Clock, Timer, TimerOptions } from '../clock.js';

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A manually driven clock; timers fire in time order (ties in scheduling order) during `advance`.
 * @category Testing
 */
export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private queue: Scheduled[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /**
   * Schedules `fn` for `ms` from now (negative counts as 0); it runs only inside `advance`. `keepAlive` is
   * ignored: nothing here holds the process, since time moves only when a test advances it (see `drive`).
   */
  setTimer(ms: number, fn: () => void, _options?: TimerOptions): Timer {
    const entry: Scheduled = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.queue.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Number of live timers. */
  get pending(): number {
    return this.queue.filter((e) => !e.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      this.queue = this.queue.filter((e) => !e.cancelled);
      let next: Scheduled | undefined;
      for (const e of this.queue) if (e.at <= until && (!next || e.at < next.at || (e.at === next.at && e.seq < next.seq))) next = e;
      if (!next) break;
      this.queue.splice(this.queue.indexOf(next), 1);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = until;
  }
}
