// FakeClock: a Clock whose time moves only when a test advances it, so timer-driven behaviour is deterministic.
import type { Clock, Timer, TimerOptions } from '../clock.js';

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  /** Cancelled or fired: skipped when it reaches the top of the heap. */
  done: boolean;
}

/** Heap order: earlier time first, ties in scheduling order. */
function before(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * A manually driven clock; timers fire in time order (ties in scheduling order) during `advance`.
 * Timers live in a binary heap, so a mesh of hundreds of peers with thousands of timers advances in
 * O(log n) per timer fired (cancelled timers are dropped when they surface).
 * @category Testing
 */
export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly heap: Scheduled[] = [];
  private live = 0;

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
    const entry: Scheduled = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, done: false };
    this.push(entry);
    this.live += 1;
    return {
      cancel: () => {
        if (entry.done) return;
        entry.done = true;
        this.live -= 1;
      },
    };
  }

  /** Number of live timers. */
  get pending(): number {
    return this.live;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.heap[0];
      if (!next || next.at > until) break;
      this.pop();
      if (next.done) continue;
      next.done = true;
      this.live -= 1;
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = until;
  }

  private push(entry: Scheduled): void {
    const heap = this.heap;
    let i = heap.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent] as Scheduled)) break;
      heap[i] = heap[parent] as Scheduled;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop() as Scheduled;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as Scheduled, heap[left] as Scheduled) ? right : left;
      if (!before(heap[child] as Scheduled, last)) break;
      heap[i] = heap[child] as Scheduled;
      i = child;
    }
    heap[i] = last;
  }
}
