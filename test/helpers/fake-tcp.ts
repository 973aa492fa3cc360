// A small lossless TCP for testing the layer, sockets and servers before (and besides) the real protocol machine:
// handshake, windowed data, FIN both ways, RST; no retransmission, no options. Plus a plain segment codec.
import { DecodeError } from '../../src/errors.js';
import { ChecksumError, transportChecksum } from '../../src/wire/inet.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpConnection,
  type TcpConnectionInit,
  type TcpConnectionStats,
  type TcpSegment,
  type TcpState,
} from '../../src/stack/tcp/contract.js';
import type { TcpImplementation } from '../../src/stack/tcp/tcp-layer.js';

const HEADER = 20;

/** Encodes a segment without options (20-byte header), checksum over the pseudo-header. */
export function encodeSegment(s: TcpSegment, source: number, destination: number): Uint8Array {
  const out = new Uint8Array(HEADER + s.payload.byteLength);
  const v = new DataView(out.buffer);
  v.setUint16(0, s.sourcePort);
  v.setUint16(2, s.destinationPort);
  v.setUint32(4, s.seq >>> 0);
  v.setUint32(8, s.ack >>> 0);
  out[12] = (HEADER / 4) << 4;
  out[13] = s.flags & 0xff;
  v.setUint16(14, Math.min(0xffff, s.window));
  v.setUint16(18, s.urgentPointer);
  out.set(s.payload, HEADER);
  v.setUint16(16, transportChecksum(out, 0, out.byteLength, source, destination, 6));
  return out;
}

/** Decodes a segment, skipping options; DecodeError for short or inconsistent bytes, ChecksumError for a bad sum. */
export function decodeSegment(bytes: Uint8Array, source: number, destination: number): TcpSegment {
  if (bytes.byteLength < HEADER) throw new DecodeError('short-read', `TCP segment of ${bytes.byteLength} bytes is shorter than its header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const offset = ((bytes[12] as number) >> 4) * 4;
  if (offset < HEADER || offset > bytes.byteLength) throw new DecodeError('bad-value', `TCP data offset ${offset} is impossible`);
  if (transportChecksum(bytes, 0, bytes.byteLength, source, destination, 6) !== 0) throw new ChecksumError('TCP');
  return {
    sourcePort: v.getUint16(0),
    destinationPort: v.getUint16(2),
    seq: v.getUint32(4),
    ack: v.getUint32(8),
    flags: bytes[13] as number,
    window: v.getUint16(14),
    urgentPointer: v.getUint16(18),
    options: {},
    payload: bytes.subarray(offset),
  };
}

const WINDOW_UNIT = 64; // the fake scales windows by 64 so a 16-bit field carries a few MiB

class FakeConnection implements TcpConnection {
  state: TcpState;
  readonly stats: TcpConnectionStats = { segmentsIn: 0, segmentsOut: 0, bytesIn: 0, bytesOut: 0, retransmits: 0, fastRetransmits: 0, timeouts: 0, resetsIn: 0, resetsOut: 0, dropped: 0 };
  readonly tuple;
  private readonly init: TcpConnectionInit;
  private readonly iss: number;
  private sndNxt: number;
  private sndUna: number;
  private rcvNxt = 0;
  private peerWindow = 0;
  private readonly sendQueue: Uint8Array[] = [];
  private queued = 0;
  private unread = 0;
  private finQueued = false;
  private finSent = false;
  private wantDrain = false;
  private reported = false;
  private done = false;

  constructor(init: TcpConnectionInit, syn?: TcpSegment) {
    this.init = init;
    this.tuple = init.tuple;
    this.iss = Math.floor(init.host.random.float() * 0xffff_ffff) >>> 0;
    this.sndNxt = this.iss;
    this.sndUna = this.iss;
    if (syn) {
      this.state = 'SYN-RECEIVED';
      this.rcvNxt = (syn.seq + 1) >>> 0;
      this.peerWindow = syn.window * WINDOW_UNIT;
      this.emit(TCP_SYN | TCP_ACK, this.iss, new Uint8Array(0));
    } else {
      this.state = 'SYN-SENT';
      this.emit(TCP_SYN, this.iss, new Uint8Array(0));
    }
    this.sndNxt = (this.iss + 1) >>> 0;
  }

  get sendBufferFree(): number {
    return Math.max(0, this.init.host.config.sendBufferBytes - this.queued);
  }

  handleSegment(s: TcpSegment): void {
    if (this.done) return;
    this.stats.segmentsIn += 1;
    if (s.flags & TCP_RST) {
      this.stats.resetsIn += 1;
      return this.finish(this.state === 'SYN-SENT' ? 'ECONNREFUSED' : 'ECONNRESET');
    }
    if (this.state === 'SYN-SENT') {
      if ((s.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK)) return;
      this.rcvNxt = (s.seq + 1) >>> 0;
      this.sndUna = s.ack;
      this.peerWindow = s.window * WINDOW_UNIT;
      this.state = 'ESTABLISHED';
      this.emit(TCP_ACK, this.sndNxt, new Uint8Array(0));
      this.init.events.established();
      this.pump();
      return;
    }
    if (s.flags & TCP_SYN) return; // a retransmitted SYN: lossless here, ignore
    if (s.flags & TCP_ACK) {
      this.sndUna = s.ack;
      this.peerWindow = s.window * WINDOW_UNIT;
      if (this.state === 'SYN-RECEIVED') {
        this.state = 'ESTABLISHED';
        this.init.events.established();
      }
      if (this.finSent && s.ack === this.sndNxt) {
        if (this.state === 'FIN-WAIT-1') this.state = 'FIN-WAIT-2';
        else if (this.state === 'CLOSING') this.timeWait();
        else if (this.state === 'LAST-ACK') return this.finish(undefined);
      }
    }
    if (s.seq !== this.rcvNxt && (s.payload.byteLength > 0 || s.flags & TCP_FIN)) {
      this.stats.dropped += 1;
      return this.ack();
    }
    if (s.payload.byteLength > 0 && this.state !== 'CLOSED') {
      this.rcvNxt = (this.rcvNxt + s.payload.byteLength) >>> 0;
      this.unread += s.payload.byteLength;
      this.stats.bytesIn += s.payload.byteLength;
      this.init.events.data(s.payload.slice());
      if (this.done) return;
    }
    if (s.flags & TCP_FIN) {
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      if (this.state === 'ESTABLISHED') this.state = 'CLOSE-WAIT';
      else if (this.state === 'FIN-WAIT-1') this.state = 'CLOSING';
      else if (this.state === 'FIN-WAIT-2') this.timeWait();
      this.init.events.end();
      if (this.done) return;
    }
    if (s.payload.byteLength > 0 || s.flags & TCP_FIN) this.ack();
    this.pump();
  }

  write(bytes: Uint8Array): number {
    if (this.finQueued || this.done) return 0;
    const n = Math.min(bytes.byteLength, this.sendBufferFree);
    if (n > 0) {
      this.sendQueue.push(bytes.slice(0, n));
      this.queued += n;
    }
    if (n < bytes.byteLength) this.wantDrain = true;
    this.pump();
    return n;
  }

  consumed(n: number): void {
    const before = this.window();
    this.unread -= n;
    if (this.unread < 0) throw new Error(`consumed ${n} more than delivered`);
    if (before < this.init.host.config.receiveBufferBytes / 2 && this.window() >= this.init.host.config.receiveBufferBytes / 2 && !this.done) this.ack();
  }

  shutdown(): void {
    if (this.finQueued || this.done) return;
    this.finQueued = true;
    this.pump();
  }

  abort(): void {
    if (this.done) return;
    this.stats.resetsOut += 1;
    this.emit(TCP_RST | TCP_ACK, this.sndNxt, new Uint8Array(0));
    this.reported = true;
    this.finish(undefined);
  }

  setNoDelay(): void {}
  setKeepAlive(): void {}
  pathMtuChanged(): void {}

  private window(): number {
    return Math.max(0, this.init.host.config.receiveBufferBytes - this.unread);
  }

  private pump(): void {
    if (this.state !== 'ESTABLISHED' && this.state !== 'CLOSE-WAIT') return;
    while (this.sendQueue.length > 0) {
      const inFlight = (this.sndNxt - this.sndUna) >>> 0;
      const room = this.peerWindow - inFlight;
      if (room <= 0) break;
      const head = this.sendQueue[0] as Uint8Array;
      const n = Math.min(head.byteLength, this.init.mss, room);
      const chunk = head.subarray(0, n);
      if (n === head.byteLength) this.sendQueue.shift();
      else this.sendQueue[0] = head.subarray(n);
      this.queued -= n;
      this.stats.bytesOut += n;
      this.emit(TCP_ACK, this.sndNxt, chunk);
      this.sndNxt = (this.sndNxt + n) >>> 0;
    }
    if (this.wantDrain && this.sendBufferFree > 0) {
      this.wantDrain = false;
      this.init.events.drain();
    }
    if (this.finQueued && !this.finSent && this.sendQueue.length === 0) {
      this.finSent = true;
      this.emit(TCP_FIN | TCP_ACK, this.sndNxt, new Uint8Array(0));
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      this.state = this.state === 'CLOSE-WAIT' ? 'LAST-ACK' : 'FIN-WAIT-1';
    }
  }

  private ack(): void {
    this.emit(TCP_ACK, this.sndNxt, new Uint8Array(0));
  }

  private emit(flags: number, seq: number, payload: Uint8Array): void {
    this.stats.segmentsOut += 1;
    this.init.host.transmit({
      sourcePort: this.tuple.localPort,
      destinationPort: this.tuple.remotePort,
      seq,
      ack: flags & TCP_ACK ? this.rcvNxt : 0,
      flags,
      window: Math.min(0xffff, Math.floor(this.window() / WINDOW_UNIT)),
      urgentPointer: 0,
      options: {},
      payload,
    });
  }

  private timeWait(): void {
    this.state = 'TIME-WAIT';
    this.report(undefined);
    this.init.host.clock.setTimer(2 * this.init.host.config.mslMs, () => this.finish(undefined));
  }

  private report(error: 'ECONNREFUSED' | 'ECONNRESET' | undefined): void {
    if (this.reported) return;
    this.reported = true;
    this.init.events.closed(error);
  }

  private finish(error: 'ECONNREFUSED' | 'ECONNRESET' | undefined): void {
    if (this.done) return;
    this.done = true;
    this.state = 'CLOSED';
    this.report(error);
    this.init.finished();
  }
}

/** The fake machine and the plain codec, as a stack's TCP implementation. */
export const fakeTcp: TcpImplementation = {
  open: (init) => new FakeConnection(init),
  accept: (init, syn) => new FakeConnection(init, syn),
  encode: encodeSegment,
  decode: decodeSegment,
};
