// Allocations: the addresses this peer handed out, indexed by address (sorted) and by owner id, so free
// counts, the lowest free address and donation blocks cost O(log n + used addresses in the range) instead
// of a scan of every address or every allocation (weave's ipam/space keeps its allocations the same way).

/** Index of the first element of the sorted `list` that is ≥ `value`. */
function lowerBound(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The allocations of one peer: address → owner id, with a sorted address index and a per-id index. */
export class Allocations implements Iterable<[number, string]> {
  private readonly byAddress = new Map<number, string>();
  /** Every allocated address, ascending. */
  private readonly sorted: number[] = [];
  private readonly byId = new Map<string, Set<number>>();

  /** How many addresses are allocated. */
  get size(): number {
    return this.byAddress.size;
  }

  /** The owner id of `address`, or undefined when it is free. */
  get(address: number): string | undefined {
    return this.byAddress.get(address);
  }

  /** Whether `address` is allocated. */
  has(address: number): boolean {
    return this.byAddress.has(address);
  }

  /** Allocates `address` to `id` (replacing any previous owner id). */
  set(address: number, id: string): void {
    const previous = this.byAddress.get(address);
    if (previous === id) return;
    if (previous === undefined) this.sorted.splice(lowerBound(this.sorted, address), 0, address);
    else this.byId.get(previous)?.delete(address);
    this.byAddress.set(address, id);
    let ids = this.byId.get(id);
    if (!ids) this.byId.set(id, (ids = new Set()));
    ids.add(address);
  }

  /** Frees `address`; false when it was not allocated. */
  delete(address: number): boolean {
    const id = this.byAddress.get(address);
    if (id === undefined) return false;
    this.byAddress.delete(address);
    this.sorted.splice(lowerBound(this.sorted, address), 1);
    const ids = this.byId.get(id);
    ids?.delete(address);
    if (ids?.size === 0) this.byId.delete(id);
    return true;
  }

  /** Frees everything. */
  clear(): void {
    this.byAddress.clear();
    this.sorted.length = 0;
    this.byId.clear();
  }

  /** Every (address, id), in ascending address order. */
  *[Symbol.iterator](): Iterator<[number, string]> {
    for (const a of [...this.sorted]) yield [a, this.byAddress.get(a) as string];
  }

  /** The addresses of `id`, ascending. */
  addressesOf(id: string): number[] {
    return [...(this.byId.get(id) ?? [])].sort((x, y) => x - y);
  }

  /** How many addresses of [start, end) are allocated. */
  countIn(start: number, end: number): number {
    if (end <= start) return 0;
    return lowerBound(this.sorted, end) - lowerBound(this.sorted, start);
  }

  /** The lowest address of [start, end) that is not allocated, or undefined when all are. */
  firstFree(start: number, end: number): number | undefined {
    let candidate = start;
    for (let i = lowerBound(this.sorted, start); i < this.sorted.length && candidate < end; i++) {
      if (this.sorted[i] !== candidate) break;
      candidate += 1;
    }
    return candidate < end ? candidate : undefined;
  }

  /** The maximal runs [start, end) of unallocated addresses inside [start, end), ascending. */
  freeRuns(start: number, end: number): { start: number; end: number }[] {
    const runs: { start: number; end: number }[] = [];
    let runStart = start;
    for (let i = lowerBound(this.sorted, start); i < this.sorted.length; i++) {
      const a = this.sorted[i] as number;
      if (a >= end) break;
      if (a > runStart) runs.push({ start: runStart, end: a });
      runStart = a + 1;
    }
    if (end > runStart) runs.push({ start: runStart, end });
    return runs;
  }
}
