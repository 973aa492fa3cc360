// MacTable: which port (a local NIC or a remote peer) each source MAC was last seen on, with expiry.
import type { PeerName } from '../wire/peer-name.js';

/** A local port is a negative number; a remote peer is its (positive) peer name. */
export type PortId = number;

/** True when `port` is a local NIC rather than a remote peer. */
export function isLocalPort(port: PortId): boolean {
  return port < 0;
}

interface Entry {
  port: PortId;
  seen: number;
}

/** What `learn` did. */
export type LearnResult = 'new' | 'refreshed' | 'moved';

/** One learned MAC, for status. */
export interface MacEntry {
  mac: number;
  port: PortId;
  seen: number;
}

export class MacTable {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly maxAgeMs = 10 * 60_000) {}

  /** Records that `mac` was seen on `port`; a MAC that shows up elsewhere moves at once (no hold-down). */
  learn(mac: number, port: PortId, now: number): LearnResult {
    const entry = this.entries.get(mac);
    if (entry === undefined || now - entry.seen > this.maxAgeMs) {
      this.entries.set(mac, { port, seen: now });
      return 'new';
    }
    entry.seen = now;
    if (entry.port === port) return 'refreshed';
    entry.port = port;
    return 'moved';
  }

  /** The port `mac` lives on, or undefined when unknown or expired. */
  lookup(mac: number, now: number): PortId | undefined {
    const entry = this.entries.get(mac);
    if (entry === undefined) return undefined;
    if (now - entry.seen > this.maxAgeMs) {
      this.entries.delete(mac);
      return undefined;
    }
    return entry.port;
  }

  /** Drops entries older than the maximum age. */
  sweep(now: number): void {
    for (const [mac, entry] of this.entries) if (now - entry.seen > this.maxAgeMs) this.entries.delete(mac);
  }

  /** Forgets every MAC behind a port (a peer that went away, a NIC that was removed). */
  forgetPort(port: PortId | PeerName): void {
    for (const [mac, entry] of this.entries) if (entry.port === port) this.entries.delete(mac);
  }

  /** The live MACs on `port`. */
  onPort(port: PortId, now: number): number[] {
    const out: number[] = [];
    for (const [mac, entry] of this.entries) if (entry.port === port && now - entry.seen <= this.maxAgeMs) out.push(mac);
    return out;
  }

  /** Forgets `mac` if it is on `port`. */
  forget(mac: number, port: PortId): void {
    if (this.entries.get(mac)?.port === port) this.entries.delete(mac);
  }

  get size(): number {
    return this.entries.size;
  }

  list(): MacEntry[] {
    return [...this.entries].map(([mac, e]) => ({ mac, port: e.port, seen: e.seen }));
  }
}
