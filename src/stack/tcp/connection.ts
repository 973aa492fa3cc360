// The protocol machine of one TCP connection (RFC 9293): states, sequence space, buffers, retransmission
// (RFC 6298), congestion control (RFC 5681, 6582, SACK per RFC 2018/6675-lite), delayed ACK, Nagle,
// persist and keep-alive timers. It has no I/O of its own: segments go out through `host.transmit`.
import type { Timer } from '../../clock.js';
import { OutOfOrderQueue, SackScoreboard, SendRing } from './buffers.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type AcceptTcpConnection,
  type OpenTcpConnection,
  type TcpConfig,
  type TcpConnection,
  type TcpConnectionEvents,
  type TcpConnectionInit,
  type TcpConnectionStats,
  zeroTcpConnectionStats,
  type TcpErrorCode,
  type TcpFourTuple,
  type TcpOptions,
  type TcpSegment,
  type TcpState,
} from './contract.js';
import { initialSequenceNumber } from './isn.js';
import { TCP_MAX_WINDOW_SCALE } from './segment.js';
import { seqAdd, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqMax, seqMin, seqSub } from './seq.js';
import { copyBytes } from '../../wire/codec.js';

/** MSS assumed when the peer sends no MSS option (RFC 9293 §3.7.1). */
const DEFAULT_PEER_MSS = 536;
/** Smallest MSS a path MTU report may lower us to (RFC 1191's 68-byte MTU is impractical; Linux floors at 48). */
const MIN_MSS = 88;
/** SACK blocks per segment: 4 fill 36 of the 40 option bytes (RFC 2018 §3). */
const MAX_SACK_BLOCKS = 4;
/** Initial congestion window in segments (RFC 6928). */
const INITIAL_WINDOW_SEGMENTS = 10;
/** Duplicate ACKs that trigger fast retransmit (RFC 5681). */
const DUP_ACK_THRESHOLD = 3;
/** Clock granularity G of RFC 6298 in ms. */
const CLOCK_GRANULARITY_MS = 1;
/** CUBIC's multiplicative decrease and scaling constant (RFC 9438 §5). */
const CUBIC_BETA = 0.7;
const CUBIC_C = 0.4;
const EMPTY = new Uint8Array(0);
const NO_OPTIONS: TcpOptions = Object.freeze({});

/**
 * A timer that is re-armed by moving a deadline, not by cancelling and creating clock timers: the clock
 * timer fires at the earliest deadline asked for and re-arms itself if the deadline moved later meanwhile.
 * Keeps per-segment work free of timer churn and closures.
 */
class Deadline {
  private at = Infinity;
  private armedAt = Infinity;
  private handle: Timer | undefined;
  private readonly fire = (): void => {
    this.handle = undefined;
    this.armedAt = Infinity;
    if (this.at === Infinity) return;
    const now = this.owner.clock.now();
    if (now < this.at) {
      this.arm(this.at - now);
      return;
    }
    this.at = Infinity;
    this.action();
  };

  constructor(
    private readonly owner: { readonly clock: { now(): number; setTimer(ms: number, fn: () => void): Timer } },
    private readonly action: () => void,
  ) {}

  get pending(): boolean {
    return this.at !== Infinity;
  }

  /** Runs the action `ms` from now (replacing any earlier setting). */
  set(ms: number): void {
    const now = this.owner.clock.now();
    this.at = now + ms;
    if (this.at < this.armedAt) {
      this.handle?.cancel();
      this.arm(ms);
    }
  }

  /** Sets it only if not already pending. */
  ensure(ms: number): void {
    if (this.at === Infinity) this.set(ms);
  }

  /** The action will not run (the clock timer may still wake up once and do nothing). */
  clear(): void {
    this.at = Infinity;
  }

  /** Clears and cancels the clock timer too (the connection is over). */
  stop(): void {
    this.at = Infinity;
    this.armedAt = Infinity;
    this.handle?.cancel();
    this.handle = undefined;
  }

  private arm(ms: number): void {
    this.armedAt = this.owner.clock.now() + ms;
    this.handle = this.owner.clock.setTimer(ms, this.fire);
  }
}

/** The window shift that lets `bytes` be advertised in 16 bits (RFC 7323 §2.2). */
function windowScaleFor(bytes: number): number {
  let shift = 0;
  while (shift < TCP_MAX_WINDOW_SCALE && bytes >>> shift > 0xffff) shift++;
  return shift;
}

/** One connection's machine; see {@link TcpConnection}. */
class Connection implements TcpConnection {
  state: TcpState = 'CLOSED';
  readonly stats: TcpConnectionStats = zeroTcpConnectionStats();
  readonly tuple: TcpFourTuple;
  /** The clock of the host (read by {@link Deadline}). */
  readonly clock: TcpConnectionInit['host']['clock'];
  private readonly config: TcpConfig;
  private readonly events: TcpConnectionEvents;
  private readonly init: TcpConnectionInit;
  private readonly passive: boolean;

  // --- send sequence space
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence number sent so far (SND.NXT is pulled back below it to retransmit after a timeout). */
  private sndMax: number;
  private sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndScale = 0;
  /** Sequence number of the first byte in `sendRing`. */
  private bufSeq: number;
  private readonly sendRing: SendRing;
  private finQueued = false;
  private drainWanted = false;
  /** The MSS our segments are cut to: min(ours, the peer's, the path's). */
  private mss: number;

  // --- receive sequence space
  private irs = 0;
  private rcvNxt = 0;
  /** Right edge of the window last advertised (never moved left: RFC 9293 §3.8.6.2.2). */
  private rcvAdv = 0;
  private rcvScale: number;
  private offeredScale: number;
  private unconsumed = 0;
  private readonly ooo = new OutOfOrderQueue();
  /** Sequence number of a FIN received out of order, processed once RCV.NXT reaches it. */
  private finSeqIn: number | undefined;
  private finReceived = false;
  private sackOk = false;
  /** The peer's SYN offered window scaling (both sides must for it to apply, RFC 7323 §1.3). */
  private peerOfferedScale = false;

  // --- retransmission and congestion control
  private hasRttSample = false;
  private srtt = 0;
  private rttvar = 0;
  private rto: number;
  private rttSeq: number | undefined;
  private rttStart = 0;
  private retries = 0;
  private lastProgressAt: number;
  private cwnd: number;
  private ssthresh = 0x7fff_ffff;
  private bytesAckedInCa = 0;
  /** CUBIC (RFC 9438) instead of NewReno's congestion avoidance; fast recovery is the same. */
  private readonly cubic: boolean;
  private cubicWMax = 0;
  private cubicWLastMax = 0;
  private cubicK = 0;
  private cubicOrigin = 0;
  private cubicWEst = 0;
  private cubicEpochStart: number | undefined;
  private dupAcks = 0;
  private inRecovery = false;
  private recover: number;
  /** Highest sequence retransmitted in this recovery (RFC 6675 HighRxt). */
  private highRxt = 0;
  private readonly scoreboard = new SackScoreboard();
  private persistBackoff = 0;
  /** End of the last sub-MSS segment sent (Nagle, Minshall's variant). */
  private lastSmallEnd = 0;
  /** When data last left (restart after idle). */
  private lastSendAt = 0;

  // --- acknowledgements and options
  private ackPending = false;
  private segmentsUnacked = 0;
  private noDelay = false;
  private keepAlive = false;
  private keepAliveIdle: number;
  private keepAliveProbesSent = 0;
  private lastReceiveAt: number;
  private inInput = false;

  private reported = false;
  private isFinished = false;

  private readonly rtxTimer = new Deadline(this, () => this.onRetransmitTimeout());
  private readonly persistTimer = new Deadline(this, () => this.onPersist());
  private readonly delayedAckTimer = new Deadline(this, () => this.onDelayedAck());
  private readonly keepAliveTimer = new Deadline(this, () => this.onKeepAlive());
  private readonly timeWaitTimer = new Deadline(this, () => this.onTimeWaitEnd());

  constructor(init: TcpConnectionInit, passive: boolean) {
    this.init = init;
    this.passive = passive;
    this.tuple = init.tuple;
    this.clock = init.host.clock;
    this.config = init.host.config;
    this.events = init.events;
    this.iss = initialSequenceNumber(init.host.clock, init.host.random, init.tuple);
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.recover = this.iss;
    this.lastSmallEnd = this.iss;
    this.bufSeq = seqAdd(this.iss, 1);
    this.sendRing = new SendRing(this.config.sendBufferBytes);
    this.mss = Math.max(MIN_MSS, init.mss);
    this.offeredScale = windowScaleFor(this.config.receiveBufferBytes);
    this.rcvScale = 0;
    this.rto = this.config.initialRtoMs;
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.mss;
    this.keepAliveIdle = this.config.keepAliveIdleMs;
    this.cubic = this.config.congestionControl === 'cubic';
    this.lastReceiveAt = this.clock.now();
    this.lastProgressAt = this.lastReceiveAt;
  }

  get sendBufferFree(): number {
    return this.finQueued || this.state === 'CLOSED' ? 0 : this.sendRing.free;
  }

  // ------------------------------------------------------------------------------------------
  // Opening

  /** Active open: SYN with our options. */
  open(): void {
    this.state = 'SYN-SENT';
    this.sendSyn();
  }

  /** Passive open: takes the listener's SYN and answers SYN-ACK. */
  accept(syn: TcpSegment): void {
    this.stats.segmentsIn++;
    this.lastReceiveAt = this.clock.now();
    this.takeSynOptions(syn);
    this.irs = syn.seq;
    this.rcvNxt = seqAdd(syn.seq, 1);
    this.sndWnd = syn.window; // never scaled in a SYN
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = syn.seq;
    this.sndWl2 = this.iss;
    this.state = 'SYN-RECEIVED';
    this.sendSyn();
  }

  private takeSynOptions(syn: TcpSegment): void {
    const o = syn.options;
    this.peerOfferedScale = o.windowScale !== undefined;
    this.mss = Math.max(MIN_MSS, Math.min(this.mss, o.mss ?? DEFAULT_PEER_MSS));
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.mss;
    if (o.windowScale !== undefined) {
      this.sndScale = Math.min(o.windowScale, TCP_MAX_WINDOW_SCALE);
      this.rcvScale = this.offeredScale;
    } else {
      this.sndScale = 0;
      this.rcvScale = 0;
    }
    this.sackOk = o.sackPermitted === true;
  }

  /** Sends (or resends) our SYN or SYN-ACK. */
  private sendSyn(): void {
    const synAck = this.state === 'SYN-RECEIVED';
    const options: TcpOptions = synAck
      ? {
          mss: this.init.mss,
          ...(this.peerOfferedScale ? { windowScale: this.offeredScale } : {}),
          ...(this.sackOk ? { sackPermitted: true } : {}),
        }
      : { mss: this.init.mss, windowScale: this.offeredScale, sackPermitted: true };
    if (this.sndMax !== this.iss) {
      this.stats.retransmits++;
      this.rttSeq = undefined;
    } else {
      this.rttSeq = this.iss;
      this.rttStart = this.clock.now();
    }
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.emit(this.iss, synAck ? TCP_SYN | TCP_ACK : TCP_SYN, EMPTY, options, Math.min(this.freeReceiveSpace(), 0xffff));
    this.rcvAdv = seqAdd(this.rcvNxt, Math.min(this.freeReceiveSpace(), 0xffff));
    this.rtxTimer.set(this.rto);
  }


  // ------------------------------------------------------------------------------------------
  // Application calls

  write(bytes: Uint8Array): number {
    if (this.finQueued || this.state === 'CLOSED' || this.state === 'TIME-WAIT') return 0;
    const n = this.sendRing.push(bytes);
    if (n < bytes.byteLength) this.drainWanted = true;
    if (n > 0 && !this.inInput) this.output();
    return n;
  }

  consumed(n: number): void {
    this.unconsumed = Math.max(0, this.unconsumed - n);
    if (this.inInput || !this.synchronized()) return;
    // Window update (RFC 9293 §3.8.6.2.2): tell the peer once the window grows by ≥ min(buffer/2, MSS)
    // beyond what it last heard and what it last heard is less than half the buffer.
    const advertised = seqSub(this.rcvAdv, this.rcvNxt);
    const possible = this.freeReceiveSpace();
    const threshold = Math.min(this.config.receiveBufferBytes / 2, 2 * this.mss);
    if (advertised < this.config.receiveBufferBytes / 2 && possible - advertised >= threshold) this.sendAck();
  }

  shutdown(): void {
    if (this.finQueued || this.state === 'CLOSED') return;
    this.finQueued = true;
    if (this.state === 'ESTABLISHED') this.state = 'FIN-WAIT-1';
    else if (this.state === 'CLOSE-WAIT') this.state = 'LAST-ACK';
    else return; // SYN-SENT / SYN-RECEIVED: the FIN goes out once established
    if (!this.inInput) this.output();
  }

  abort(): void {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'SYN-SENT' && this.state !== 'TIME-WAIT') this.sendReset(this.sndMax, true);
    this.terminate(undefined);
  }

  setNoDelay(noDelay: boolean): void {
    this.noDelay = noDelay;
    if (noDelay && !this.inInput && this.synchronized()) this.output();
  }

  setKeepAlive(enable: boolean, initialDelayMs?: number): void {
    this.keepAlive = enable;
    if (initialDelayMs !== undefined && initialDelayMs > 0) this.keepAliveIdle = initialDelayMs;
    if (!enable) {
      this.keepAliveTimer.clear();
      return;
    }
    if (this.state !== 'CLOSED' && this.state !== 'TIME-WAIT') {
      this.keepAliveProbesSent = 0;
      this.keepAliveTimer.set(Math.max(0, this.lastReceiveAt + this.keepAliveIdle - this.clock.now()));
    }
  }

  pathMtuChanged(mtu: number): void {
    const mss = Math.max(MIN_MSS, Math.min(this.init.mss, mtu - 40));
    if (mss >= this.mss || this.state === 'CLOSED') return;
    this.mss = mss;
    this.cwnd = Math.max(this.cwnd, 2 * mss);
    if (!this.synchronized() || this.state === 'TIME-WAIT') return;
    // Resend everything unacknowledged at the new size (not a congestion signal, RFC 1191 §6.5); Karn applies.
    this.rttSeq = undefined;
    if (seqGt(this.sndMax, this.sndUna)) {
      this.sndNxt = this.sndUna;
      this.scoreboard.clear();
      if (!this.inInput) this.output();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Segment arrival (RFC 9293 §3.10.7)

  handleSegment(seg: TcpSegment): void {
    if (this.state === 'CLOSED') {
      this.stats.dropped++;
      return;
    }
    this.stats.segmentsIn++;
    this.stats.bytesIn += seg.payload.byteLength;
    this.inInput = true;
    try {
      if (this.state === 'SYN-SENT') this.inputSynSent(seg);
      else this.inputSynchronized(seg);
    } finally {
      this.inInput = false;
    }
    if (this.isOver()) return;
    this.output();
  }

  /** CLOSED or TIME-WAIT (a check after callbacks, which may abort the connection). */
  private isOver(): boolean {
    return this.state === 'CLOSED' || this.state === 'TIME-WAIT';
  }

  private inputSynSent(seg: TcpSegment): void {
    const hasAck = (seg.flags & TCP_ACK) !== 0;
    if (hasAck && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      this.stats.dropped++;
      if ((seg.flags & TCP_RST) === 0) this.sendReset(seg.ack, false);
      return;
    }
    if (seg.flags & TCP_RST) {
      this.stats.resetsIn++;
      if (hasAck) this.terminate('ECONNREFUSED');
      else this.stats.dropped++;
      return;
    }
    if ((seg.flags & TCP_SYN) === 0) {
      this.stats.dropped++;
      return;
    }
    this.lastReceiveAt = this.clock.now();
    this.takeSynOptions(seg);
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.rcvAdv = this.rcvNxt;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.sndWnd = seg.window;
    this.maxSndWnd = this.sndWnd;
    if (hasAck) {
      this.ackSyn(seg.ack);
      this.becomeEstablished();
      if (this.state === 'CLOSED') return;
      this.ackPending = true; // the third segment of the handshake
      this.acceptText(seg.payload, seqAdd(seg.seq, 1), (seg.flags & TCP_FIN) !== 0);
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 8): SYN-ACK with the same ISS.
      this.state = 'SYN-RECEIVED';
      this.sendSyn();
    }
  }

  /** Our SYN is acknowledged by `ack`. */
  private ackSyn(ack: number): void {
    this.sampleRtt(ack);
    this.sndUna = ack;
    this.retries = 0;
    this.rtxTimer.clear();
    this.lastProgressAt = this.clock.now();
  }

  private becomeEstablished(): void {
    this.state = this.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
    if (this.keepAlive) this.keepAliveTimer.set(this.keepAliveIdle);
    this.events.established();
  }

  private inputSynchronized(seg: TcpSegment): void {
    const flags = seg.flags;
    let seq = seg.seq;
    let payload = seg.payload;
    let fin = (flags & TCP_FIN) !== 0;
    const syn = (flags & TCP_SYN) !== 0;

    // A retransmitted SYN while we wait for the handshake's ACK: repeat the SYN-ACK.
    if (this.state === 'SYN-RECEIVED' && syn && (flags & TCP_ACK) === 0 && seq === this.irs && (flags & TCP_RST) === 0) {
      this.sendSyn();
      return;
    }
    // Simultaneous open: the peer's SYN-ACK answers our SYN-ACK (accepted as Linux does, though it repeats the SYN).
    if (
      this.state === 'SYN-RECEIVED' &&
      !this.passive &&
      (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === (TCP_SYN | TCP_ACK) &&
      seqAdd(seq, 1) === this.rcvNxt &&
      seg.ack === this.sndMax &&
      payload.byteLength === 0
    ) {
      this.lastReceiveAt = this.clock.now();
      this.ackSyn(seg.ack);
      this.sndWnd = seg.window << this.sndScale;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = seg.ack;
      this.becomeEstablished();
      this.ackPending = true;
      return;
    }
    // TIME-WAIT: a retransmitted FIN is acknowledged again and restarts 2·MSL (RFC 9293 §3.10.7.4).
    if (this.state === 'TIME-WAIT') {
      if ((flags & TCP_RST) !== 0) {
        this.stats.dropped++; // RFC 1337: a RST does not cut TIME-WAIT short
        return;
      }
      if (fin && seqAdd(seq, payload.byteLength + 1) === this.rcvNxt) {
        this.sendAck();
        this.timeWaitTimer.set(2 * this.config.mslMs);
        return;
      }
    }

    // 1. Sequence acceptability (RFC 9293 §3.10.7.4, first check).
    const segLen = payload.byteLength + (syn ? 1 : 0) + (fin ? 1 : 0);
    const wnd = seqSub(this.rcvAdv, this.rcvNxt) > 0 ? seqSub(this.rcvAdv, this.rcvNxt) : 0;
    let acceptable: boolean;
    if (segLen === 0) acceptable = wnd === 0 ? seq === this.rcvNxt : seqInWindow(seq, this.rcvNxt, wnd);
    else acceptable = wnd > 0 && (seqInWindow(seq, this.rcvNxt, wnd) || seqInWindow(seqAdd(seq, segLen - 1), this.rcvNxt, wnd));
    let windowFull = false;
    if (!acceptable && wnd === 0 && seq === this.rcvNxt) {
      // A zero window still takes ACKs and RSTs; the text waits.
      acceptable = true;
      windowFull = true;
    }
    if (!acceptable) {
      this.stats.dropped++;
      if ((flags & TCP_RST) === 0) this.sendAck();
      return;
    }

    // 2. RST (with RFC 5961 §3.2: only an exact RCV.NXT resets; otherwise a challenge ACK).
    if (flags & TCP_RST) {
      this.stats.resetsIn++;
      if (seq !== this.rcvNxt) {
        this.sendAck();
        return;
      }
      if (this.state === 'SYN-RECEIVED') this.terminate(this.passive ? 'ECONNRESET' : 'ECONNREFUSED');
      else this.terminate('ECONNRESET');
      return;
    }

    // 4. SYN in a synchronized state: challenge ACK (RFC 5961 §4.2).
    if (syn) {
      this.stats.dropped++;
      this.sendAck();
      return;
    }

    // 5. ACK.
    if ((flags & TCP_ACK) === 0) {
      this.stats.dropped++;
      return;
    }
    this.lastReceiveAt = this.clock.now();
    this.keepAliveProbesSent = 0;
    if (this.state === 'SYN-RECEIVED') {
      if (!seqGt(seg.ack, this.sndUna) || seqGt(seg.ack, this.sndMax)) {
        this.stats.dropped++;
        this.sendReset(seg.ack, false);
        return;
      }
      this.ackSyn(seg.ack);
      this.sndWnd = seg.window << this.sndScale;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = seg.ack;
      this.becomeEstablished();
      if (this.isOver()) return;
    }
    if (!this.processAck(seg)) return;
    if (this.state === 'CLOSED' || this.state === 'TIME-WAIT') return;

    // Trim to the window: bytes already received at the front, bytes beyond the window at the back.
    if (windowFull) {
      // A pure FIN takes no buffer space: taken even by a zero window (as Linux does), so a reader that
      // stalls does not make the peer's close time out.
      if (payload.byteLength > 0) fin = false;
      payload = EMPTY;
      this.ackPending = true;
    }
    if (seqLt(seq, this.rcvNxt)) {
      const skip = seqSub(this.rcvNxt, seq);
      if (skip >= payload.byteLength) {
        // Nothing new but maybe the FIN: duplicate data asks for a fresh ACK.
        if (payload.byteLength > 0) this.ackPending = true;
        payload = EMPTY;
      } else payload = payload.subarray(skip);
      seq = this.rcvNxt;
    }
    const room = Math.max(0, seqSub(this.rcvAdv, seq), this.freeReceiveSpace() - Math.max(0, seqSub(seq, this.rcvNxt)));
    if (payload.byteLength > room) {
      payload = payload.subarray(0, room);
      fin = false;
      this.ackPending = true;
    }

    // 7. Text, 8. FIN.
    this.acceptText(payload, seq, fin);
  }

  /** Takes in-window text at `seq` (and a FIN after it), delivering what is in order. */
  private acceptText(payload: Uint8Array, seq: number, fin: boolean): void {
    const receiving = this.state === 'ESTABLISHED' || this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2';
    if (!receiving || this.finReceived) {
      if (payload.byteLength > 0 || fin) this.ackPending = true;
      return;
    }
    if (payload.byteLength > 0) {
      if (seq === this.rcvNxt) {
        const fillsHole = !this.ooo.empty;
        this.deliver(copyBytes(payload)); // the frame is only ours during the call (Nic contract)
        for (let more = this.ooo.take(this.rcvNxt); more; more = this.ooo.take(this.rcvNxt)) this.deliver(more);
        if (this.state === 'CLOSED') return;
        if (fillsHole) this.ackPending = true;
        else {
          if (payload.byteLength >= this.mss) this.segmentsUnacked++;
          if (this.segmentsUnacked >= 2) this.ackPending = true;
          else this.delayedAckTimer.ensure(this.config.delayedAckMs);
        }
      } else {
        this.ooo.insert(seq, payload);
        this.ackPending = true; // an out-of-order segment is ACKed at once (RFC 5681 §4.2)
      }
    }
    if (fin) {
      const finSeq = seqAdd(seq, payload.byteLength);
      if (finSeq === this.rcvNxt) this.receiveFin();
      else {
        this.finSeqIn = finSeq;
        this.ackPending = true;
      }
    } else if (this.finSeqIn !== undefined && this.finSeqIn === this.rcvNxt) this.receiveFin();
  }

  private deliver(bytes: Uint8Array): void {
    this.rcvNxt = seqAdd(this.rcvNxt, bytes.byteLength);
    this.unconsumed += bytes.byteLength;
    this.events.data(bytes);
  }

  private receiveFin(): void {
    this.finSeqIn = undefined;
    this.finReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ackPending = true;
    this.ooo.clear();
    switch (this.state) {
      case 'ESTABLISHED':
        this.state = 'CLOSE-WAIT';
        break;
      case 'FIN-WAIT-1':
        this.state = this.finAcked() ? 'TIME-WAIT' : 'CLOSING';
        break;
      case 'FIN-WAIT-2':
        this.state = 'TIME-WAIT';
        break;
      default:
        break;
    }
    this.events.end();
    if (this.state === 'TIME-WAIT') this.enterTimeWait();
  }

  /** Processes the ACK field; false when the segment is to be dropped. */
  private processAck(seg: TcpSegment): boolean {
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      // ACKs something not yet sent (RFC 9293 §3.10.7.4, fifth check).
      this.stats.dropped++;
      this.sendAck();
      return false;
    }
    if (seqLt(ack, seqSub(this.sndUna, this.maxSndWnd) >>> 0) && seqLt(ack, this.sndUna) && this.maxSndWnd > 0) {
      // Far older than anything in flight (RFC 5961 §5.2): challenge ACK.
      this.stats.dropped++;
      this.sendAck();
      return false;
    }
    const window = seg.window << this.sndScale;
    const isDuplicate =
      ack === this.sndUna && seg.payload.byteLength === 0 && (seg.flags & (TCP_SYN | TCP_FIN)) === 0 && window === this.sndWnd && seqGt(this.sndMax, this.sndUna);

    if (this.sackOk && seg.options.sack) this.takeSack(seg.options.sack);

    // Send window update (RFC 9293 SND.WL1/WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      if (seqGe(ack, this.sndUna)) {
        this.sndWnd = window;
        this.maxSndWnd = Math.max(this.maxSndWnd, window);
        this.sndWl1 = seg.seq;
        this.sndWl2 = ack;
        if (window > 0) {
          this.persistTimer.clear();
          this.persistBackoff = 0;
        }
      }
    }

    if (seqGt(ack, this.sndUna)) this.newAck(ack);
    else if (isDuplicate) this.duplicateAck();

    // Our FIN acknowledged?
    if (this.finQueued && this.finAcked()) {
      if (this.state === 'FIN-WAIT-1') this.state = 'FIN-WAIT-2';
      else if (this.state === 'CLOSING') {
        this.state = 'TIME-WAIT';
        this.enterTimeWait();
        return false;
      } else if (this.state === 'LAST-ACK') {
        this.terminate(undefined);
        return false;
      }
    }
    return true;
  }

  private finAcked(): boolean {
    const finSeq = seqAdd(this.bufSeq, this.sendRing.length);
    return this.finQueued && seqGt(this.sndUna, finSeq);
  }

  private takeSack(blocks: readonly (readonly [number, number])[]): void {
    for (const [left, right] of blocks) {
      if (!seqLt(left, right) || !seqGt(right, this.sndUna) || seqGt(right, this.sndMax)) continue; // D-SACK or bogus
      this.scoreboard.add(seqMax(left, this.sndUna), right);
    }
  }

  /** SND.UNA moves to `ack`. */
  private newAck(ack: number): void {
    const acked = seqSub(ack, this.sndUna);
    this.sampleRtt(ack);
    // Bytes of the send buffer now acknowledged (the FIN's sequence number is not a byte).
    const dataEnd = seqAdd(this.bufSeq, this.sendRing.length);
    const dataAcked = seqSub(seqMin(ack, dataEnd), this.bufSeq);
    if (dataAcked > 0) {
      this.sendRing.drop(dataAcked);
      this.bufSeq = seqAdd(this.bufSeq, dataAcked);
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.scoreboard.advance(ack);
    this.retries = 0;
    this.lastProgressAt = this.clock.now();

    // Congestion control (RFC 5681 §3.1, RFC 6582 §3.2).
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.cwnd = Math.min(this.ssthresh, Math.max(this.flightSize(), this.mss) + this.mss);
        this.dupAcks = 0;
      } else {
        // Partial ACK: retransmit the next hole, deflate by what was acknowledged.
        this.retransmitHoles(true);
        this.cwnd = Math.max(this.mss, this.cwnd - acked + (acked >= this.mss ? this.mss : 0));
        this.rtxTimer.set(this.rto);
      }
    } else {
      this.dupAcks = 0;
      if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.mss);
      else if (this.cubic) this.cubicGrow(acked);
      else {
        this.bytesAckedInCa += acked;
        if (this.bytesAckedInCa >= this.cwnd) {
          this.bytesAckedInCa -= this.cwnd;
          this.cwnd += this.mss;
        }
      }
    }

    if (seqGt(this.sndMax, this.sndUna)) this.rtxTimer.set(this.rto);
    else this.rtxTimer.clear();

    if (this.drainWanted && this.sendRing.free >= Math.min(this.sendRing.capacity / 2, 65_536)) {
      this.drainWanted = false;
      this.events.drain();
    }
  }

  private duplicateAck(): void {
    this.dupAcks++;
    if (this.inRecovery) {
      this.cwnd += this.mss; // inflate: a segment left the network (RFC 5681 §3.2 step 4)
      this.retransmitHoles(false);
      return;
    }
    if (this.dupAcks !== DUP_ACK_THRESHOLD || !seqGt(this.sndUna, this.recover)) return;
    // Fast retransmit (RFC 5681 §3.2, RFC 6582 §3.2 step 2).
    this.ssthresh = this.congestionEvent();
    this.recover = this.sndMax;
    this.inRecovery = true;
    this.highRxt = this.sndUna;
    this.stats.fastRetransmits++;
    this.retransmitHoles(true);
    this.cwnd = this.ssthresh + DUP_ACK_THRESHOLD * this.mss;
    this.rtxTimer.set(this.rto);
  }

  /**
   * Retransmits lost segments during recovery. Without SACK: the segment at SND.UNA (NewReno), when
   * `first`. With SACK (RFC 6675-lite): every unSACKed hole below the highest SACKed byte, in order,
   * while the estimated pipe is below cwnd; the first one always.
   */
  private retransmitHoles(first: boolean): void {
    if (!this.sackOk || this.scoreboard.empty) {
      if (first) this.retransmitAt(this.sndUna);
      return;
    }
    if (seqLt(this.highRxt, this.sndUna)) this.highRxt = this.sndUna;
    const highest = this.scoreboard.highest ?? this.sndUna;
    let force = first;
    while (seqLt(this.highRxt, highest)) {
      const sackedEnd = this.scoreboard.sackedEnd(this.highRxt);
      if (sackedEnd !== undefined) {
        this.highRxt = sackedEnd;
        continue;
      }
      if (!force && this.pipe() >= this.cwnd) break;
      force = false;
      const nextSacked = this.scoreboard.nextSackedAfter(this.highRxt) ?? highest;
      const len = Math.min(this.dataMss(), seqSub(nextSacked, this.highRxt));
      this.retransmitAt(this.highRxt, len);
      this.highRxt = seqAdd(this.highRxt, len);
    }
  }

  /** RFC 6675 pipe, simplified: outstanding, minus SACKed, minus holes below the highest SACK not yet resent. */
  private pipe(): number {
    const outstanding = seqSub(this.sndMax, this.sndUna);
    const highest = this.scoreboard.highest;
    const lost = highest === undefined ? 0 : this.scoreboard.holeBytes(this.highRxt, highest);
    return Math.max(0, outstanding - this.scoreboard.sacked - lost);
  }

  /**
   * The new ssthresh after a loss: FlightSize/2 (RFC 5681 eq. 4) for NewReno; cwnd·β with β = 0.7 for
   * CUBIC (RFC 9438 §4.6), which also records W_max (with fast convergence, §4.7) and ends the epoch.
   */
  private congestionEvent(): number {
    if (!this.cubic) return Math.max(Math.floor(this.flightSize() / 2), 2 * this.mss);
    const cwndSegments = this.cwnd / this.mss;
    this.cubicWMax = cwndSegments < this.cubicWLastMax ? (cwndSegments * (1 + CUBIC_BETA)) / 2 : cwndSegments;
    this.cubicWLastMax = cwndSegments;
    this.cubicEpochStart = undefined;
    return Math.max(Math.floor(this.cwnd * CUBIC_BETA), 2 * this.mss);
  }

  /** CUBIC congestion avoidance (RFC 9438 §4.2–4.4), window in segments, time in seconds. */
  private cubicGrow(acked: number): void {
    const now = this.clock.now();
    const cwndSegments = this.cwnd / this.mss;
    if (this.cubicEpochStart === undefined) {
      this.cubicEpochStart = now;
      if (cwndSegments < this.cubicWMax) {
        this.cubicK = Math.cbrt((this.cubicWMax - cwndSegments) / CUBIC_C);
        this.cubicOrigin = this.cubicWMax;
      } else {
        this.cubicK = 0;
        this.cubicOrigin = cwndSegments;
      }
      this.cubicWEst = cwndSegments;
    }
    const rtt = (this.hasRttSample ? this.srtt : 100) / 1000;
    const t = (now - this.cubicEpochStart) / 1000 + rtt;
    const target = this.cubicOrigin + CUBIC_C * (t - this.cubicK) ** 3;
    // The Reno-friendly estimate (§4.3), α = 3(1 − β)/(1 + β).
    this.cubicWEst += ((3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA)) * (acked / this.mss / cwndSegments);
    const goal = Math.max(target, this.cubicWEst);
    if (goal > cwndSegments) {
      // At most 1.5× per RTT (§4.2): grow by (goal − cwnd)/cwnd segments per segment acknowledged.
      const grow = Math.min(goal, 1.5 * cwndSegments) - cwndSegments;
      this.cwnd += Math.max(0, (grow / cwndSegments) * acked);
    }
  }

  private flightSize(): number {
    return seqSub(this.sndMax, this.sndUna);
  }

  /** RTT sample (RFC 6298 §2, Karn: only for segments never retransmitted). */
  private sampleRtt(ack: number): void {
    if (this.rttSeq === undefined || !seqGt(ack, this.rttSeq)) return;
    const r = Math.max(0, this.clock.now() - this.rttStart);
    this.rttSeq = undefined;
    if (!this.hasRttSample) {
      this.hasRttSample = true;
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = this.computedRto();
  }

  private computedRto(): number {
    if (!this.hasRttSample) return Math.max(this.rto, this.config.minRtoMs);
    const rto = this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar);
    return Math.min(this.config.maxRtoMs, Math.max(this.config.minRtoMs, rto));
  }

  // ------------------------------------------------------------------------------------------
  // Output

  /** Sends what the windows, Nagle and the state allow, then a pending ACK if nothing carried it. */
  private output(): void {
    if (!this.synchronized() || this.state === 'TIME-WAIT') {
      return;
    }
    const dataEnd = seqAdd(this.bufSeq, this.sendRing.length);
    for (;;) {
      if (seqGe(this.sndNxt, dataEnd)) {
        // All data sent: the FIN, once, after it (it needs no window).
        if (this.finQueued && this.sndNxt === dataEnd) {
          if (seqLt(this.sndNxt, this.sndMax)) this.stats.retransmits++;
          this.emit(this.sndNxt, TCP_FIN | TCP_ACK, EMPTY, NO_OPTIONS);
          this.sndNxt = seqAdd(this.sndNxt, 1);
          this.sndMax = seqMax(this.sndMax, this.sndNxt);
          this.rtxTimer.ensure(this.rto);
          continue;
        }
        break;
      }
      // Skip what the peer SACKed when resending after a timeout.
      if (seqLt(this.sndNxt, this.sndMax)) {
        const sackedEnd = this.scoreboard.sackedEnd(this.sndNxt);
        if (sackedEnd !== undefined) {
          this.sndNxt = seqMin(sackedEnd, dataEnd);
          continue;
        }
      }
      const available = seqSub(dataEnd, this.sndNxt);
      const inFlight = this.inRecovery && this.sackOk ? this.pipe() : seqSub(this.sndNxt, this.sndUna);
      const windowRoom = seqSub(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
      // Whole bytes only: CUBIC grows cwnd by fractions, and a fractional length would send empty segments forever.
      const room = Math.floor(Math.min(windowRoom, this.cwnd - inFlight));
      const segmentMax = this.dataMss();
      const len = Math.min(available, segmentMax, room);
      if (len <= 0) {
        if (this.sndWnd === 0 && !seqGt(this.sndMax, this.sndUna)) this.persistTimer.ensure(this.persistInterval());
        break;
      }
      const outstanding = seqGt(this.sndMax, this.sndUna);
      if (!outstanding && this.clock.now() - this.lastSendAt > this.rto) {
        // Restart after idle (RFC 5681 §4.1): an old cwnd says nothing about the path now.
        this.cwnd = Math.min(this.cwnd, INITIAL_WINDOW_SEGMENTS * this.mss);
      }
      const seq = this.sndNxt;
      const retransmit = seqLt(seq, this.sndMax);
      if (len < segmentMax && !retransmit) {
        const last = len === available;
        // Nagle (RFC 896) with Minshall's refinement (as Linux): a small segment waits while an earlier
        // small segment is unacknowledged.
        if (last && !this.noDelay && !this.finQueued && seqGt(this.lastSmallEnd, this.sndUna)) break;
        // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a window-limited piece waits for a useful window.
        if (!last && outstanding && len < this.maxSndWnd / 2) break;
      }
      const end = seqAdd(seq, len);
      if (len < segmentMax) this.lastSmallEnd = end;
      // A FIN rides on the last segment when the FIN is queued.
      const withFin = this.finQueued && end === dataEnd;
      if (retransmit) this.stats.retransmits++;
      else if (this.rttSeq === undefined) {
        this.rttSeq = seq;
        this.rttStart = this.clock.now();
      }
      if (!outstanding) this.lastProgressAt = this.clock.now();
      // A view of the ring, not a copy: the host encodes it before transmit returns.
      const payload = this.sendRing.view(seqSub(seq, this.bufSeq), len);
      this.emit(seq, TCP_ACK | (end === dataEnd ? TCP_PSH : 0) | (withFin ? TCP_FIN : 0), payload, NO_OPTIONS);
      this.sndNxt = withFin ? seqAdd(end, 1) : end;
      this.sndMax = seqMax(this.sndMax, this.sndNxt);
      this.rtxTimer.ensure(this.rto);
    }
    if (this.ackPending) this.sendAck();
  }

  /**
   * Payload room of a data segment sent now: the MSS less the SACK option it will carry. The MSS counts
   * no options (RFC 9293 §3.7.1), so a full segment with SACK blocks would exceed the path MTU.
   */
  private dataMss(): number {
    if (!this.sackOk || this.ooo.empty) return this.mss;
    return this.mss - (4 + 8 * this.ooo.sackBlocks(MAX_SACK_BLOCKS).length);
  }

  /** Resends `len` bytes (default one segment) at `seq`, without moving SND.NXT. */
  private retransmitAt(seq: number, len = this.dataMss()): void {
    const dataEnd = seqAdd(this.bufSeq, this.sendRing.length);
    const n = Math.max(0, Math.min(len, this.dataMss(), seqSub(dataEnd, seq)));
    this.stats.retransmits++;
    if (this.rttSeq !== undefined && seqGe(this.rttSeq, seq)) this.rttSeq = undefined; // Karn
    if (n === 0) {
      if (this.finQueued && seq === dataEnd) this.emit(seq, TCP_FIN | TCP_ACK, EMPTY, NO_OPTIONS);
      return;
    }
    const withFin = this.finQueued && seqAdd(seq, n) === dataEnd && seqGt(this.sndMax, dataEnd);
    const flags = TCP_ACK | (seqAdd(seq, n) === dataEnd ? TCP_PSH : 0) | (withFin ? TCP_FIN : 0);
    this.emit(seq, flags, this.sendRing.view(seqSub(seq, this.bufSeq), n), NO_OPTIONS);
  }

  /**
   * A pure ACK now, numbered SND.MAX: SND.NXT may be rewound for a retransmission, and an ACK below what
   * the peer already received would be unacceptable to it (each side answering the other's ACK: a storm).
   */
  private sendAck(): void {
    this.emit(this.sndMax, TCP_ACK, EMPTY, NO_OPTIONS);
  }

  private sendReset(seq: number, withAck: boolean): void {
    this.stats.resetsOut++;
    this.emitRaw(seq, withAck ? TCP_RST | TCP_ACK : TCP_RST, 0, withAck ? this.rcvNxt : 0, NO_OPTIONS, EMPTY);
  }

  /** Sends a segment carrying our current ACK and window (SACK blocks added when the OOO queue holds any). */
  private emit(seq: number, flags: number, payload: Uint8Array, options: TcpOptions, synWindow?: number): void {
    let window: number;
    if (synWindow !== undefined) window = synWindow;
    else {
      window = this.advertiseWindow();
    }
    let opts = options;
    if (this.sackOk && !this.ooo.empty && (flags & TCP_SYN) === 0) opts = { ...options, sack: this.ooo.sackBlocks(MAX_SACK_BLOCKS) };
    this.ackPending = false;
    this.segmentsUnacked = 0;
    this.delayedAckTimer.clear();
    this.emitRaw(seq, flags, window, (flags & TCP_ACK) !== 0 ? this.rcvNxt : 0, opts, payload);
  }

  private emitRaw(seq: number, flags: number, window: number, ack: number, options: TcpOptions, payload: Uint8Array): void {
    this.stats.segmentsOut++;
    if (payload.byteLength > 0) this.lastSendAt = this.clock.now();
    this.stats.bytesOut += payload.byteLength;
    this.init.host.transmit({
      sourcePort: this.tuple.localPort,
      destinationPort: this.tuple.remotePort,
      seq,
      ack,
      flags,
      window,
      urgentPointer: 0,
      options,
      payload,
    });
  }

  /** The window field to send now, moving the advertised right edge (never left; receiver SWS avoidance). */
  private advertiseWindow(): number {
    const free = this.freeReceiveSpace();
    const current = Math.max(0, seqSub(this.rcvAdv, this.rcvNxt));
    let offer = free;
    // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): move the right edge only by a useful amount.
    if (offer > current && offer - current < Math.min(this.config.receiveBufferBytes / 2, this.mss) && offer < this.config.receiveBufferBytes) offer = current;
    offer = Math.max(offer, current);
    const field = Math.min(0xffff, Math.floor(offer / 2 ** this.rcvScale));
    this.rcvAdv = seqAdd(this.rcvNxt, field * 2 ** this.rcvScale);
    if (seqLt(this.rcvAdv, seqAdd(this.rcvNxt, current))) this.rcvAdv = seqAdd(this.rcvNxt, current);
    return field;
  }

  private freeReceiveSpace(): number {
    return Math.max(0, this.config.receiveBufferBytes - this.unconsumed - this.ooo.bytes);
  }

  private synchronized(): boolean {
    return this.state !== 'CLOSED' && this.state !== 'SYN-SENT' && this.state !== 'SYN-RECEIVED' && this.state !== 'LISTEN';
  }

  // ------------------------------------------------------------------------------------------
  // Timers

  private onRetransmitTimeout(): void {
    if (this.state === 'CLOSED' || this.state === 'TIME-WAIT' || !seqGt(this.sndMax, this.sndUna)) return;
    this.stats.timeouts++;
    this.retries++;
    const now = this.clock.now();
    const handshake = this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED';
    const limit = handshake ? this.config.synRetries : this.config.dataRetries;
    const userTimedOut = this.config.userTimeoutMs > 0 && now - this.lastProgressAt >= this.config.userTimeoutMs;
    if (this.retries > limit || userTimedOut) {
      this.terminate('ETIMEDOUT');
      return;
    }
    this.rto = Math.min(this.config.maxRtoMs, this.rto * 2);
    if (handshake) {
      this.sendSyn();
      return;
    }
    // RFC 5681 §3.1 equation 4 and a loss window of one segment; RFC 6582: recover = highest sent.
    this.ssthresh = this.congestionEvent();
    this.cwnd = this.mss;
    this.bytesAckedInCa = 0;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recover = this.sndMax;
    this.scoreboard.clear();
    this.rttSeq = undefined;
    this.sndNxt = this.sndUna;
    this.output();
    // A closed send window held everything back: the segment at SND.UNA goes anyway (as Linux does), like a
    // zero-window probe. The window we believe may be stale (a zero-window ACK reordered behind the update
    // that opened it), and its answer brings the real one; without it we would fall silent until ETIMEDOUT.
    if (this.sndNxt === this.sndUna) this.retransmitAt(this.sndUna);
    this.rtxTimer.set(this.userTimeoutCap(this.rto));
  }

  /** Shortens a timer so that the user timeout is checked when it expires. */
  private userTimeoutCap(ms: number): number {
    if (this.config.userTimeoutMs <= 0) return ms;
    return Math.max(1, Math.min(ms, this.lastProgressAt + this.config.userTimeoutMs - this.clock.now()));
  }

  private persistInterval(): number {
    return Math.min(this.config.maxRtoMs, Math.max(this.rto, this.config.minRtoMs) * 2 ** this.persistBackoff);
  }

  /** Zero-window probe: an old sequence number makes the peer answer with its window (as Linux does). */
  private onPersist(): void {
    if (!this.synchronized() || this.state === 'TIME-WAIT') return;
    if (this.sndWnd > 0 || seqGt(this.sndMax, this.sndUna)) return;
    this.emit(seqSub(this.sndUna, 1) >>> 0, TCP_ACK, EMPTY, NO_OPTIONS);
    this.persistBackoff = Math.min(this.persistBackoff + 1, 16);
    this.persistTimer.set(this.persistInterval());
  }

  private onDelayedAck(): void {
    if (this.synchronized()) this.sendAck();
  }

  private onKeepAlive(): void {
    if (!this.keepAlive || !this.synchronized() || this.state === 'TIME-WAIT') return;
    const now = this.clock.now();
    const idleFor = now - this.lastReceiveAt;
    if (this.keepAliveProbesSent === 0 && idleFor < this.keepAliveIdle) {
      this.keepAliveTimer.set(this.keepAliveIdle - idleFor);
      return;
    }
    if (this.keepAliveProbesSent > 0 && idleFor < this.config.keepAliveIntervalMs) {
      // The peer answered since the last probe: back to idle watching.
      this.keepAliveProbesSent = 0;
      this.keepAliveTimer.set(this.keepAliveIdle - idleFor);
      return;
    }
    if (this.keepAliveProbesSent >= this.config.keepAliveProbes) {
      this.sendReset(this.sndMax, true);
      this.terminate('ETIMEDOUT');
      return;
    }
    this.keepAliveProbesSent++;
    this.emit(seqSub(this.sndUna, 1) >>> 0, TCP_ACK, EMPTY, NO_OPTIONS);
    this.keepAliveTimer.set(this.config.keepAliveIntervalMs);
  }

  private enterTimeWait(): void {
    this.stopTimers();
    if (this.ackPending) this.sendAck();
    this.report(undefined);
    this.timeWaitTimer.set(2 * this.config.mslMs);
  }

  private onTimeWaitEnd(): void {
    if (this.state !== 'TIME-WAIT') return;
    this.state = 'CLOSED';
    this.finish();
  }

  // ------------------------------------------------------------------------------------------
  // The end

  private terminate(error: TcpErrorCode | undefined): void {
    this.state = 'CLOSED';
    this.stopTimers();
    this.timeWaitTimer.stop();
    this.ooo.clear();
    this.report(error);
    this.finish();
  }

  private stopTimers(): void {
    this.rtxTimer.stop();
    this.persistTimer.stop();
    this.delayedAckTimer.stop();
    this.keepAliveTimer.stop();
  }

  private report(error: TcpErrorCode | undefined): void {
    if (this.reported) return;
    this.reported = true;
    this.events.closed(error);
  }

  private finish(): void {
    if (this.isFinished) return;
    this.isFinished = true;
    this.init.finished();
  }
}

/** Active open: a connection in SYN-SENT that has sent its SYN (see {@link OpenTcpConnection}). */
export const openTcpConnection: OpenTcpConnection = (init) => {
  const connection = new Connection(init, false);
  connection.open();
  return connection;
};

/** Passive open: a connection in SYN-RECEIVED that has answered `syn` with a SYN-ACK (see {@link AcceptTcpConnection}). */
export const acceptTcpConnection: AcceptTcpConnection = (init, syn) => {
  const connection = new Connection(init, true);
  connection.accept(syn);
  return connection;
};
