// MemoryNic: an in-process NIC pair (like a veth pair): frames sent on one end arrive at the other.
import { copyBytes } from '../wire/codec.js';
import type { FrameBatchHandler, Nic, NicStats } from './nic.js';

/** Options of {@link MemoryNic.pair}; every field has a default. */
export interface MemoryNicOptions {
  /** Name of the first end (the second gets `-peer` appended unless `peerName` is given). */
  name?: string | undefined;
  /** Name of the second end (default: `name` + `-peer`). */
  peerName?: string | undefined;
  /** IP MTU of both ends (default 65000: in-process links have no wire limit). */
  mtu?: number | undefined;
  /** MAC of the first end, 6 bytes (default: a fresh locally administered `02:77:74:…` address). */
  mac?: Uint8Array | undefined;
  /** MAC of the second end, 6 bytes (default: another fresh `02:77:74:…` address). */
  peerMac?: Uint8Array | undefined;
  /** Frames queued for the other end before sends are refused (default 4096). */
  queueLimit?: number | undefined;
}

let counter = 0;

function defaultMac(): Uint8Array {
  counter += 1;
  return Uint8Array.of(0x02, 0x77, 0x74, (counter >>> 16) & 0xff, (counter >>> 8) & 0xff, counter & 0xff);
}

/**
 * One end of a memory NIC pair. Delivery is asynchronous and batched per turn of the event loop.
 * @category Endpoints
 */
export class MemoryNic implements Nic {
  /** Counters since the pair was created, updated in place. */
  readonly stats: NicStats = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, drops: {} };
  private handler: FrameBatchHandler | undefined;
  private other: MemoryNic | undefined;
  private inbox: Uint8Array[] = [];
  private scheduled = false;
  private closed = false;

  private constructor(
    readonly name: string,
    readonly mac: Uint8Array,
    readonly mtu: number,
    private readonly queueLimit: number,
  ) {}

  /** Creates two connected ends. */
  static pair(options: MemoryNicOptions = {}): [MemoryNic, MemoryNic] {
    const name = options.name ?? `mem${counter + 1}`;
    const mtu = options.mtu ?? 65_000;
    const limit = options.queueLimit ?? 4096;
    const a = new MemoryNic(name, options.mac ?? defaultMac(), mtu, limit);
    const b = new MemoryNic(options.peerName ?? `${name}-peer`, options.peerMac ?? defaultMac(), mtu, limit);
    a.other = b;
    b.other = a;
    return [a, b];
  }

  onFrames(handler: FrameBatchHandler): void {
    this.handler = handler;
  }

  private drop(reason: string): false {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
    return false;
  }

  send(frame: Uint8Array): boolean {
    const other = this.other;
    if (this.closed || !other || other.closed) return this.drop('closed');
    if (frame.byteLength > this.mtu + 18) return this.drop('too-big');
    if (other.inbox.length >= other.queueLimit) return this.drop('queue-full');
    // Callers reuse their buffers, so the frame is copied before it crosses the turn boundary.
    other.inbox.push(copyBytes(frame));
    this.stats.framesOut += 1;
    this.stats.bytesOut += frame.byteLength;
    other.schedule();
    return true;
  }

  sendBatch(frames: readonly Uint8Array[]): number {
    let sent = 0;
    for (const frame of frames) if (this.send(frame)) sent += 1;
    return sent;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.inbox;
      this.inbox = [];
      if (this.closed || batch.length === 0) return;
      for (const frame of batch) {
        this.stats.framesIn += 1;
        this.stats.bytesIn += frame.byteLength;
      }
      this.handler?.(batch);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.inbox = [];
  }
}
