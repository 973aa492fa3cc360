// LinkProbe: one sleeve link's liveness and MTU, a state machine of its own (Weave's sleeve heartbeats,
// fragmentation test and PMTU search). Heartbeats until the neighbour acknowledges one over TCP, then the
// fragmentation test: if a 60 001-byte datagram crosses, big datagrams go as one and the kernel fragments
// them; if not, a binary search finds the largest datagram that crosses unfragmented. A link silent for
// the heartbeat timeout starts over. The sleeve sends and receives; this only decides.
import type { Clock, Timer } from '../clock.js';
import { MAX_UDP_PAYLOAD, SleeveControl } from '../wire/sleeve.js';

/** Overlay control message kinds the sleeve sends over the TCP link. */
export const enum SleeveAck {
  /** "Your heartbeat reached me": the sender's UDP path works. Payload: u64 connection id. */
  Heartbeat = 1,
  /** "Your fragmentation test reached me": the path carries fragmented UDP. */
  FragTest = 2,
  /** "Your MTU probe of this size reached me". Payload: u16 size. */
  MtuProbe = 3,
}

/** How frames travel on a link. */
export type LinkMode =
  /** Heartbeats not acknowledged yet. */
  | 'connecting'
  /** Checking whether fragmented UDP crosses the path. */
  | 'testing'
  /** Searching the path MTU (fragments do not cross). */
  | 'searching'
  /** Big frames go as one datagram and the kernel fragments them. */
  | 'fragmenting'
  /** Datagrams stay within the discovered path MTU. */
  | 'pmtu';

/** Timing of heartbeats and probes; the defaults follow Weave. */
export interface SleeveTimings {
  /** Heartbeat interval while the link is not established, in ms (default 500). */
  fastHeartbeatMs: number;
  /** Heartbeat interval once established, in ms (default 10 000). */
  slowHeartbeatMs: number;
  /** With no heartbeat heard for this long (ms, default 60 000) the link drops to `connecting` and stops carrying data. */
  heartbeatTimeoutMs: number;
  /** Wait for the fragmentation test's acknowledgement, per try (ms, default 300; 3 tries). */
  fragTestTimeoutMs: number;
  /** Wait for an MTU probe's acknowledgement, doubled on each of 3 tries (ms, default 100). */
  probeTimeoutMs: number;
}

export const DEFAULT_SLEEVE_TIMINGS: SleeveTimings = {
  fastHeartbeatMs: 500,
  slowHeartbeatMs: 10_000,
  heartbeatTimeoutMs: 60_000,
  fragTestTimeoutMs: 300,
  probeTimeoutMs: 100,
};

const FRAG_TEST_PAYLOAD = 60_001;
const MIN_PATH_PAYLOAD = 552 - 28;
const FRAG_TEST_TRIES = 3;
const PROBE_TRIES = 3;

/** What a {@link LinkProbe} needs from its sleeve. */
export interface LinkProbeHost {
  readonly clock: Clock;
  readonly timings: SleeveTimings;
  /** Never test fragments: search the path MTU straight away. */
  readonly noFragmentation: boolean;
  /** Sends a control entry of at least `minLength` bytes in a datagram padded to `payloadSize` bytes (when larger). */
  sendControl(kind: SleeveControl, minLength: number, payloadSize: number, fill?: (entry: Uint8Array) => void): void;
  /** True once the neighbour's UDP address is known (heartbeats need somewhere to go). */
  hasAddress(): boolean;
  /** Called at every heartbeat (the sleeve retries a failed receive socket then). */
  onHeartbeat(): void;
  /** The link started or stopped carrying data. */
  setEstablished(established: boolean): void;
  /** The mode changed in a way status should report. */
  changed(): void;
}

/** A binary search of the path MTU: the largest payload known to cross, the smallest known not to, the one on trial. */
interface Search {
  good: number;
  bad: number;
  trying: number;
  tries: number;
}

/** The liveness and MTU state machine of one sleeve link. */
export class LinkProbe {
  mode: LinkMode = 'connecting';
  established = false;
  /** Largest UDP payload that crosses the path in one piece (or the UDP maximum when fragments cross). */
  maxPayload = MAX_UDP_PAYLOAD;
  private lastHeard: number;
  private search: Search | undefined;
  private heartbeatTimer: Timer | undefined;
  private testTimer: Timer | undefined;

  constructor(
    private readonly connectionId: bigint,
    private readonly host: LinkProbeHost,
  ) {
    this.lastHeard = host.clock.now();
  }

  /** Stops every timer (the link went down). */
  stop(): void {
    this.heartbeatTimer?.cancel();
    this.testTimer?.cancel();
  }

  /** A valid heartbeat from the neighbour arrived. */
  heard(): void {
    this.lastHeard = this.host.clock.now();
  }

  /** Sends a heartbeat now and schedules the next (also the start, and when the neighbour's address is first known). */
  heartbeat(): void {
    const { clock, timings } = this.host;
    this.heartbeatTimer?.cancel();
    if (clock.now() - this.lastHeard > timings.heartbeatTimeoutMs) {
      this.setEstablished(false);
      this.mode = 'connecting';
      this.lastHeard = clock.now();
      this.host.changed();
    }
    this.host.onHeartbeat();
    if (this.host.hasAddress()) {
      const id = this.connectionId;
      this.host.sendControl(SleeveControl.Heartbeat, 9, 0, (entry) => {
        new DataView(entry.buffer, entry.byteOffset).setBigUint64(1, id);
      });
    }
    const every = this.established ? timings.slowHeartbeatMs : timings.fastHeartbeatMs;
    this.heartbeatTimer = clock.setTimer(every, () => this.heartbeat());
  }

  /** The neighbour acknowledged one of our control entries over TCP. */
  onAck(kind: number, payload: Uint8Array): void {
    if (kind === SleeveAck.Heartbeat) {
      if (payload.byteLength !== 8 || new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0) !== this.connectionId) return;
      if (this.mode === 'connecting') this.startFragTest();
    } else if (kind === SleeveAck.FragTest) {
      if (this.mode !== 'testing') return;
      this.testTimer?.cancel();
      this.maxPayload = MAX_UDP_PAYLOAD;
      this.ready('fragmenting');
    } else if (kind === SleeveAck.MtuProbe) {
      const search = this.search;
      if (this.mode !== 'searching' || !search || payload.byteLength !== 2) return;
      const size = (payload[0] as number) * 256 + (payload[1] as number);
      if (size !== search.trying) return;
      this.testTimer?.cancel();
      search.good = size;
      this.nextProbe();
    }
  }

  private startFragTest(tries = 0): void {
    if (this.host.noFragmentation) {
      this.startSearch();
      return;
    }
    this.mode = 'testing';
    this.host.sendControl(SleeveControl.FragTest, 1, FRAG_TEST_PAYLOAD);
    this.testTimer = this.host.clock.setTimer(this.host.timings.fragTestTimeoutMs, () => {
      if (tries + 1 < FRAG_TEST_TRIES) this.startFragTest(tries + 1);
      else this.startSearch();
    });
  }

  /** Binary search of the largest datagram that crosses unfragmented (fragments are being dropped). */
  private startSearch(): void {
    this.mode = 'searching';
    this.search = { good: MIN_PATH_PAYLOAD, bad: MAX_UDP_PAYLOAD + 1, trying: 0, tries: 0 };
    this.nextProbe();
  }

  private nextProbe(): void {
    const search = this.search;
    if (!search) return;
    if (search.good + 1 >= search.bad) {
      this.maxPayload = search.good;
      this.search = undefined;
      this.ready('pmtu');
      return;
    }
    // Common MTUs first: most paths are 1500 (payload 1472) or jumbo.
    const guess = search.trying === 0 && 1472 > search.good && 1472 < search.bad ? 1472 : Math.floor((search.good + search.bad) / 2);
    search.trying = guess;
    search.tries = 0;
    this.sendProbe();
  }

  private sendProbe(): void {
    const search = this.search;
    if (!search) return;
    const size = search.trying;
    this.host.sendControl(SleeveControl.MtuProbe, 3, size, (entry) => {
      entry[1] = size >>> 8;
      entry[2] = size & 0xff;
    });
    this.testTimer = this.host.clock.setTimer(this.host.timings.probeTimeoutMs * 2 ** search.tries, () => {
      if (++search.tries < PROBE_TRIES) this.sendProbe();
      else {
        search.bad = size;
        this.nextProbe();
      }
    });
  }

  private ready(mode: 'fragmenting' | 'pmtu'): void {
    this.mode = mode;
    this.setEstablished(true);
    this.host.changed();
  }

  private setEstablished(established: boolean): void {
    if (this.established === established) return;
    this.established = established;
    this.host.setEstablished(established);
  }
}
