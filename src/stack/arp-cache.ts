// ArpCache: IPv4 → MAC bindings with expiry, and the bounded queue of sends waiting for an ARP reply (with retries).
import type { Clock, Timer } from '../clock.js';
import { StackError } from '../errors.js';
import { formatIPv4 } from '../ipam/address.js';

/** Tuning of the ARP cache; every field has a default (Linux's: 3 requests 1 s apart, like `mcast_solicit` and `retrans_time_ms`). */
export interface ArpCacheOptions {
  /** How long a learned binding is used before it must be resolved again (default 60 000 ms). */
  ttlMs?: number | undefined;
  /** Time between ARP requests for an unresolved address (default 1000 ms). */
  retryMs?: number | undefined;
  /** Requests sent before the waiting sends fail with `unreachable` (default 3). */
  requests?: number | undefined;
  /** Sends that may wait for one address (default 32); more fail at once. */
  queuePerAddress?: number | undefined;
  /** Addresses that may be waiting for resolution at the same time (default 256). */
  maxPending?: number | undefined;
  /** Bindings kept; the oldest is forgotten first (default 1024). */
  maxEntries?: number | undefined;
}

/** A send waiting for its destination's MAC: frames get the MAC written at offset 0, then go out. */
export interface WaitingSend {
  frames: Uint8Array[];
  resolve: () => void;
  reject: (error: Error) => void;
}

/** What the cache needs from its stack. */
export interface ArpCacheHost {
  /** Broadcasts an ARP request for `address`. */
  sendRequest(address: number): void;
  /** Sends frames whose destination MAC has been filled in. */
  transmit(frames: Uint8Array[]): void;
  /** Counts `n` packets dropped for `reason`. */
  drop(reason: string, n?: number): void;
}

interface Entry {
  mac: Uint8Array;
  expiresAt: number;
}

interface Pending {
  address: number;
  queue: WaitingSend[];
  requestsSent: number;
  timer: Timer | undefined;
}

/** Resolved bindings and pending resolutions of one stack. */
export class ArpCache {
  private readonly entries = new Map<number, Entry>();
  private readonly pending = new Map<number, Pending>();
  private readonly ttlMs: number;
  private readonly retryMs: number;
  private readonly requests: number;
  private readonly queuePerAddress: number;
  private readonly maxPending: number;
  private readonly maxEntries: number;

  constructor(
    private readonly clock: Clock,
    private readonly host: ArpCacheHost,
    options: ArpCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.retryMs = options.retryMs ?? 1000;
    this.requests = Math.max(1, options.requests ?? 3);
    this.queuePerAddress = options.queuePerAddress ?? 32;
    this.maxPending = options.maxPending ?? 256;
    this.maxEntries = options.maxEntries ?? 1024;
  }

  /** Number of live bindings (expired ones may still be counted until looked up). */
  get size(): number {
    return this.entries.size;
  }

  /** Number of addresses being resolved. */
  get resolving(): number {
    return this.pending.size;
  }

  /** The MAC bound to `address`, or undefined when unknown or expired. */
  lookup(address: number): Uint8Array | undefined {
    const entry = this.entries.get(address);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.clock.now()) {
      this.entries.delete(address);
      return undefined;
    }
    return entry.mac;
  }

  /** True when a binding for `address` is cached (used to refresh only known bindings, RFC 826). */
  has(address: number): boolean {
    return this.entries.has(address);
  }

  /** Records that `address` is at `mac` (copied) and releases the sends waiting for it. */
  learn(address: number, mac: Uint8Array): void {
    this.entries.delete(address); // re-insert: the map's order is the eviction order
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    const copy = mac.slice();
    this.entries.set(address, { mac: copy, expiresAt: this.clock.now() + this.ttlMs });
    const waiting = this.pending.get(address);
    if (!waiting) return;
    this.pending.delete(address);
    waiting.timer?.cancel();
    for (const send of waiting.queue) {
      for (const frame of send.frames) frame.set(copy, 0);
      this.host.transmit(send.frames);
      send.resolve();
    }
  }

  /** Queues a send until `address` resolves, sending the first request if none is outstanding. */
  enqueue(address: number, send: WaitingSend): void {
    let waiting = this.pending.get(address);
    if (!waiting) {
      if (this.pending.size >= this.maxPending) {
        this.host.drop('arp-queue-full');
        send.reject(new StackError('unreachable', `too many addresses (${this.maxPending}) are waiting for ARP replies; ${formatIPv4(address)} was not tried`));
        return;
      }
      waiting = { address, queue: [], requestsSent: 0, timer: undefined };
      this.pending.set(address, waiting);
      this.request(waiting);
    }
    if (waiting.queue.length >= this.queuePerAddress) {
      this.host.drop('arp-queue-full');
      send.reject(new StackError('unreachable', `${this.queuePerAddress} sends are already waiting for the MAC of ${formatIPv4(address)}`));
      return;
    }
    waiting.queue.push(send);
  }

  private request(waiting: Pending): void {
    waiting.requestsSent += 1;
    this.host.sendRequest(waiting.address);
    // Sends wait on this retry (a ping, a UDP send someone awaits): it holds the process open like they do.
    waiting.timer = this.clock.setTimer(this.retryMs, () => this.retry(waiting), { keepAlive: true });
  }

  private retry(waiting: Pending): void {
    if (this.pending.get(waiting.address) !== waiting) return;
    if (waiting.requestsSent < this.requests) {
      this.request(waiting);
      return;
    }
    this.pending.delete(waiting.address);
    this.host.drop('arp-timeout', waiting.queue.length);
    const error = new StackError('unreachable', `no ARP reply from ${formatIPv4(waiting.address)} after ${waiting.requestsSent} requests: no endpoint has that address on this network`);
    for (const send of waiting.queue) send.reject(error);
  }

  /** Fails every waiting send with `error` and forgets everything. */
  clear(error: Error): void {
    for (const waiting of this.pending.values()) {
      waiting.timer?.cancel();
      for (const send of waiting.queue) send.reject(error);
    }
    this.pending.clear();
    this.entries.clear();
  }
}
