// TCP machine test helpers: a recording host, scripted peers (packetdrill style) and a back-to-back pipe.
import { seededRandom, type Random } from '../../src/random.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { acceptTcpConnection, openTcpConnection } from '../../src/stack/tcp/connection.js';
import {
  DEFAULT_TCP_CONFIG,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpConfig,
  type TcpConnection,
  type TcpErrorCode,
  type TcpFourTuple,
  type TcpOptions,
  type TcpSegment,
} from '../../src/stack/tcp/contract.js';
import { decodeTcpSegment, encodeTcpSegment } from '../../src/stack/tcp/segment.js';

export const LOCAL = 0x0a20_0001;
export const REMOTE = 0x0a20_0002;
export const LOCAL_PORT = 40_000;
export const REMOTE_PORT = 8080;

/** Everything a connection told its owner, in order. */
export interface Recording {
  sent: TcpSegment[];
  events: string[];
  received: number[];
  closed: (TcpErrorCode | undefined)[];
  finished: number;
}

/** Short flag names as packetdrill prints them: S, F, R, P, . (ACK). */
export function flagString(flags: number): string {
  let s = '';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_ACK) s += '.';
  return s;
}

/** A one-line summary of a segment relative to the two ISNs (seq/ack printed as offsets). */
export function describe(seg: TcpSegment, iss: number, irs: number): string {
  const rel = (n: number, base: number) => ((n - base) >>> 0) | 0;
  const opts = Object.entries(seg.options)
    .map(([k, v]) => (k === 'sack' ? `sack ${(v as [number, number][]).map(([l, r]) => `${rel(l, irs)}:${rel(r, irs)}`).join(' ')}` : `${k} ${String(v)}`))
    .join(',');
  return `${flagString(seg.flags)} ${rel(seg.seq, iss)}:${rel(seg.seq, iss) + seg.payload.byteLength}(${seg.payload.byteLength}) ack ${seg.flags & TCP_ACK ? rel(seg.ack, irs) : '-'} win ${seg.window}${opts ? ` <${opts}>` : ''}`;
}

export interface Harness {
  clock: FakeClock;
  connection: TcpConnection;
  rec: Recording;
  /** Our ISN (from the first SYN we sent or answered with). */
  iss: number;
  /** Segments sent since the last call, cleared. */
  take(): TcpSegment[];
}

export function config(overrides: Partial<TcpConfig> = {}): TcpConfig {
  return { ...DEFAULT_TCP_CONFIG, ...overrides };
}

function recorder(): { rec: Recording; events: Parameters<typeof openTcpConnection>[0]['events']; finished: () => void } {
  const rec: Recording = { sent: [], events: [], received: [], closed: [], finished: 0 };
  return {
    rec,
    events: {
      established: () => rec.events.push('established'),
      data: (bytes) => {
        rec.events.push(`data ${bytes.byteLength}`);
        rec.received.push(...bytes);
      },
      end: () => rec.events.push('end'),
      drain: () => rec.events.push('drain'),
      closed: (error) => {
        rec.events.push(`closed ${error ?? 'ok'}`);
        rec.closed.push(error);
      },
    },
    finished: () => {
      rec.finished++;
    },
  };
}

const tuple: TcpFourTuple = { localAddress: LOCAL, localPort: LOCAL_PORT, remoteAddress: REMOTE, remotePort: REMOTE_PORT };

/** Segments go through the real codec so every test also exercises encode/decode. */
function viaWire(seg: TcpSegment): TcpSegment {
  return decodeTcpSegment(encodeTcpSegment(seg, LOCAL, REMOTE), LOCAL, REMOTE);
}

/** A connection opened actively (SYN already sent) on a fake clock. */
export function activeHarness(overrides: Partial<TcpConfig> = {}, mss = 1460, random: Random = seededRandom(1)): Harness {
  const clock = new FakeClock(1_000_000);
  const { rec, events, finished } = recorder();
  let cursor = 0;
  const connection = openTcpConnection({
    host: { clock, random, config: config(overrides), transmit: (seg) => rec.sent.push(viaWire(seg)) },
    tuple,
    events,
    mss,
    finished,
  });
  const iss = (rec.sent[0] as TcpSegment).seq;
  return {
    clock,
    connection,
    rec,
    iss,
    take() {
      const out = rec.sent.slice(cursor);
      cursor = rec.sent.length;
      return out;
    },
  };
}

/** A connection accepted from `syn` (SYN-ACK already sent). */
export function passiveHarness(syn: TcpSegment, overrides: Partial<TcpConfig> = {}, mss = 1460): Harness {
  const clock = new FakeClock(1_000_000);
  const { rec, events, finished } = recorder();
  let cursor = 0;
  const connection = acceptTcpConnection(
    { host: { clock, random: seededRandom(2), config: config(overrides), transmit: (seg) => rec.sent.push(viaWire(seg)) }, tuple, events, mss, finished },
    syn,
  );
  const iss = (rec.sent[0] as TcpSegment).seq;
  return {
    clock,
    connection,
    rec,
    iss,
    take() {
      const out = rec.sent.slice(cursor);
      cursor = rec.sent.length;
      return out;
    },
  };
}

/** A segment from the remote peer. */
export function peer(fields: { seq: number; ack?: number; flags: number; window?: number; options?: TcpOptions; payload?: Uint8Array | number }): TcpSegment {
  const payload = typeof fields.payload === 'number' ? patterned(fields.payload) : (fields.payload ?? new Uint8Array(0));
  return {
    sourcePort: REMOTE_PORT,
    destinationPort: LOCAL_PORT,
    seq: fields.seq >>> 0,
    ack: (fields.ack ?? 0) >>> 0,
    flags: fields.flags,
    window: fields.window ?? 65535,
    urgentPointer: 0,
    options: fields.options ?? {},
    payload,
  };
}

/** `n` bytes of a recognisable pattern. */
export function patterned(n: number, start = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (start + i) & 0xff;
  return out;
}

/** Adds to a sequence number. */
export const s = (base: number, n: number): number => (base + n) >>> 0;

/** Link conditions of a {@link Pipe}. */
export interface PipeConditions {
  loss?: number;
  duplicate?: number;
  /** Probability that a segment gets extra delay (up to `jitterMs`), so later ones overtake it. */
  reorder?: number;
  latencyMs?: number;
  jitterMs?: number;
  seed?: number;
}

/** Two machines wired back to back through a lossy, reordering, duplicating link under one fake clock. */
export class Pipe {
  readonly clock = new FakeClock(5_000_000);
  readonly client: TcpConnection;
  server: TcpConnection | undefined;
  readonly clientRec: Recording;
  readonly serverRec: Recording;
  private readonly serverEvents: ReturnType<typeof recorder>;
  private readonly random: Random;
  private readonly chance: Random;
  readonly config: TcpConfig;
  onServer: ((server: TcpConnection) => void) | undefined;
  /** Sees every segment sent (for tracing a failing case). */
  onSegment: ((seg: TcpSegment, toward: 'server' | 'client', lost: boolean) => void) | undefined;

  constructor(
    private readonly conditions: PipeConditions = {},
    overrides: Partial<TcpConfig> = {},
    private readonly mss = 1460,
  ) {
    this.random = seededRandom(conditions.seed ?? 7);
    this.chance = seededRandom((conditions.seed ?? 7) + 1000);
    this.config = config(overrides);
    const c = recorder();
    this.clientRec = c.rec;
    this.serverEvents = recorder();
    this.serverRec = this.serverEvents.rec;
    this.client = openTcpConnection({
      host: { clock: this.clock, random: this.random, config: this.config, transmit: (seg) => this.send(seg, LOCAL, REMOTE, 'server') },
      tuple,
      events: c.events,
      mss,
      finished: c.finished,
    });
  }

  /** Segments sent so far; a storm (far more than any transfer here needs) fails the test instead of exhausting memory. */
  segmentsSent = 0;

  private send(seg: TcpSegment, from: number, to: number, toward: 'server' | 'client'): void {
    if (++this.segmentsSent > 300_000) throw new Error(`segment storm: more than 300 000 segments (last: ${flagString(seg.flags)} seq ${seg.seq} ack ${seg.ack} toward the ${toward})`);
    const bytes = encodeTcpSegment(seg, from, to);
    // The link's MTU is the MSS + 40: a segment over it (options count) would be refused by a real NIC.
    if (bytes.byteLength > this.mss + 20) throw new Error(`segment of ${bytes.byteLength - 20} bytes over the MSS ${this.mss} (${flagString(seg.flags)} seq ${seg.seq}, ${seg.payload.byteLength} payload bytes)`);
    const c = this.conditions;
    const lost = this.chance.float() < (c.loss ?? 0);
    this.onSegment?.(seg, toward, lost);
    if (lost) return;
    const copies = this.chance.float() < (c.duplicate ?? 0) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const extra = this.chance.float() < (c.reorder ?? 0) ? this.chance.float() * (c.jitterMs ?? 5) : 0;
      this.clock.setTimer((c.latencyMs ?? 1) + extra, () => this.deliver(decodeTcpSegment(bytes, from, to), toward));
    }
  }

  private deliver(seg: TcpSegment, toward: 'server' | 'client'): void {
    const target = toward === 'client' ? this.client : this.server;
    if (target && target.state === 'CLOSED') {
      // What the stack does for a 4-tuple without a connection (RFC 9293 §3.10.7.1): RST, unless it is one.
      if (seg.flags & TCP_RST) return;
      const reply: TcpSegment = {
        sourcePort: seg.destinationPort,
        destinationPort: seg.sourcePort,
        seq: seg.flags & TCP_ACK ? seg.ack : 0,
        ack: seg.flags & TCP_ACK ? 0 : (seg.seq + seg.payload.byteLength + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0)) >>> 0,
        flags: seg.flags & TCP_ACK ? TCP_RST : TCP_RST | TCP_ACK,
        window: 0,
        urgentPointer: 0,
        options: {},
        payload: new Uint8Array(0),
      };
      if (toward === 'client') this.send(reply, LOCAL, REMOTE, 'server');
      else this.send(reply, REMOTE, LOCAL, 'client');
      return;
    }
    if (toward === 'client') {
      this.client.handleSegment(seg);
      return;
    }
    if (!this.server) {
      if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) return;
      const serverTuple: TcpFourTuple = { localAddress: REMOTE, localPort: REMOTE_PORT, remoteAddress: LOCAL, remotePort: LOCAL_PORT };
      this.server = acceptTcpConnection(
        {
          host: { clock: this.clock, random: this.random, config: this.config, transmit: (s) => this.send(s, REMOTE, LOCAL, 'client') },
          tuple: serverTuple,
          events: this.serverEvents.events,
          mss: this.mss,
          finished: this.serverEvents.finished,
        },
        seg,
      );
      this.onServer?.(this.server);
      return;
    }
    this.server.handleSegment(seg);
  }

  /** Advances the clock in steps of `stepMs` until `done()` or `limitMs` of simulated time. */
  runUntil(done: () => boolean, limitMs = 600_000, stepMs = 5): boolean {
    for (let t = 0; t < limitMs; t += stepMs) {
      if (done()) return true;
      this.clock.advance(stepMs);
    }
    return done();
  }
}
