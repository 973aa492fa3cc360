// Reassembly: puts incoming IPv4 fragments back together, bounded in size, count, concurrency and time.
import type { Clock, Timer } from '../clock.js';
import { IPV4_HEADER_BYTES, MAX_IPV4_PACKET, type Ipv4Packet } from '../wire/inet.js';

/** Bounds of reassembly; every field has a default. */
export interface ReassemblyOptions {
  /** Datagrams being reassembled at once; fragments of further datagrams are dropped (default 64). */
  maxDatagrams?: number | undefined;
  /** Fragments one datagram may consist of (default 256). */
  maxFragments?: number | undefined;
  /** Time from a datagram's first fragment until its partial data is discarded (default 30 000 ms, as Linux). */
  timeoutMs?: number | undefined;
}

/** What reassembly reports to its stack. */
export interface ReassemblyHost {
  drop(reason: string, n?: number): void;
}

interface Piece {
  offset: number;
  data: Uint8Array;
}

interface Datagram {
  key: string;
  pieces: Piece[];
  received: number;
  /** Payload length, known once the last fragment (MF clear) arrived; -1 before. */
  total: number;
  timer: Timer;
}

/** Largest UDP/ICMP payload a reassembled datagram can carry (65535 minus a 20-byte header). */
const MAX_PAYLOAD = MAX_IPV4_PACKET - IPV4_HEADER_BYTES;

/** Reassembly state of one stack (RFC 791 / RFC 815, overlapping fragments drop the datagram as Linux does). */
export class Reassembly {
  private readonly datagrams = new Map<string, Datagram>();
  private readonly maxDatagrams: number;
  private readonly maxFragments: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly host: ReassemblyHost,
    options: ReassemblyOptions = {},
  ) {
    this.maxDatagrams = options.maxDatagrams ?? 64;
    this.maxFragments = options.maxFragments ?? 256;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Datagrams currently waiting for fragments. */
  get inProgress(): number {
    return this.datagrams.size;
  }

  /**
   * Adds one fragment (MF set or a non-zero offset). Returns the whole payload when this fragment
   * completes its datagram, else undefined (waiting, or dropped and counted).
   */
  add(packet: Ipv4Packet): Uint8Array | undefined {
    const { fragmentOffset: offset, payload } = packet;
    const end = offset + payload.byteLength;
    if (end > MAX_PAYLOAD) {
      this.host.drop('reassembly-too-big');
      return undefined;
    }
    if (packet.moreFragments && (payload.byteLength === 0 || payload.byteLength % 8 !== 0)) {
      this.host.drop('bad-fragment');
      return undefined;
    }
    const key = `${packet.source}>${packet.destination}/${packet.protocol}#${packet.identification}`;
    let datagram = this.datagrams.get(key);
    if (!datagram) {
      if (this.datagrams.size >= this.maxDatagrams) {
        this.host.drop('reassembly-limit');
        return undefined;
      }
      const created: Datagram = { key, pieces: [], received: 0, total: -1, timer: this.clock.setTimer(this.timeoutMs, () => this.expire(created)) };
      this.datagrams.set(key, created);
      datagram = created;
    }
    if (!packet.moreFragments) {
      if ((datagram.total >= 0 && datagram.total !== end) || end < this.highestEnd(datagram)) return this.abandon(datagram, 'bad-fragment');
      datagram.total = end;
    } else if (datagram.total >= 0 && end > datagram.total) {
      return this.abandon(datagram, 'bad-fragment');
    }
    for (const piece of datagram.pieces) {
      const pieceEnd = piece.offset + piece.data.byteLength;
      if (piece.offset === offset && pieceEnd === end) return undefined; // an exact duplicate changes nothing
      if (offset < pieceEnd && piece.offset < end) return this.abandon(datagram, 'reassembly-overlap');
    }
    if (datagram.pieces.length >= this.maxFragments) return this.abandon(datagram, 'reassembly-limit');
    datagram.pieces.push({ offset, data: payload.slice() });
    datagram.received += payload.byteLength;
    if (datagram.total < 0 || datagram.received !== datagram.total) return undefined;
    // Pieces do not overlap and add up to the total, so they cover it exactly.
    this.forget(datagram);
    const whole = new Uint8Array(datagram.total);
    for (const piece of datagram.pieces) whole.set(piece.data, piece.offset);
    return whole;
  }

  /** Discards every partial datagram (the stack is closing). */
  clear(): void {
    for (const datagram of this.datagrams.values()) datagram.timer.cancel();
    this.datagrams.clear();
  }

  private highestEnd(datagram: Datagram): number {
    let highest = 0;
    for (const piece of datagram.pieces) highest = Math.max(highest, piece.offset + piece.data.byteLength);
    return highest;
  }

  private abandon(datagram: Datagram, reason: string): undefined {
    this.forget(datagram);
    this.host.drop(reason);
    return undefined;
  }

  private forget(datagram: Datagram): void {
    datagram.timer.cancel();
    this.datagrams.delete(datagram.key);
  }

  private expire(datagram: Datagram): void {
    if (this.datagrams.get(datagram.key) !== datagram) return;
    this.datagrams.delete(datagram.key);
    this.host.drop('reassembly-timeout');
  }
}
