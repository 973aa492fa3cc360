// Sequence-number arithmetic: 32-bit values compared modulo 2^32 (RFC 9293 §3.4), never with < on raw numbers.

/** `a + n` modulo 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** The signed distance `a − b` (in −2^31 … 2^31−1): positive when `a` is after `b`. */
export function seqSub(a: number, b: number): number {
  return (a - b) | 0;
}

/** `a` comes before `b`. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** `a` comes before `b` or equals it. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** `a` comes after `b`. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** `a` comes after `b` or equals it. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** `x` lies in the window `[left, left + size)` (an empty window holds nothing). */
export function seqInWindow(x: number, left: number, size: number): boolean {
  return ((x - left) >>> 0) < size;
}

/** The later of `a` and `b`. */
export function seqMax(a: number, b: number): number {
  return seqGt(a, b) ? a : b;
}

/** The earlier of `a` and `b`. */
export function seqMin(a: number, b: number): number {
  return seqLt(a, b) ? a : b;
}
