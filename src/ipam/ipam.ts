// Ipam: conflict-free address allocation over the mesh's gossip: the ring, consensus, donation, reclaim, persistence.
import { EventEmitter } from 'eventemitter3';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { systemRandom, type Random } from '../random.js';
import { NotReadyError, OptionsError, WeaveError } from '../errors.js';
import { checkTimeout, holdOpen, waitUntil, type WaitOptions } from '../wait.js';
import { decodeWith, encodeWith } from '../wire/codec.js';
import { decodeIpamMessage, encodeIpamMessage, IpamMessageKind, type IpamMessage, type SubnetRef } from '../wire/ipam-messages.js';
import { formatPeerName, parsePeerName, type PeerName } from '../wire/peer-name.js';
import type { MeshRouter } from '../mesh/router.js';
import type { GossipChannel } from '../mesh/gossip.js';
import { cidrsInRange, formatCidr, formatIPv4, hostRange, parseCidr, parseIPv4, type Cidr } from './address.js';
import { Ring, type OwnedRange } from './ring.js';
import { PaxosNode } from './paxos.js';
import { Allocations } from './space.js';
import { IpamStore, type IpamSnapshot } from './persistence.js';
import type { FileSystem } from '../persist/file-system.js';

/** The gossip channel IPAM uses. */
export const IPAM_CHANNEL = 'ipam';
/** Version raised on entries taken over from a dead or departing peer, so the takeover beats ordinary updates. */
export const TAKEOVER_BUMP = 1_000_000;
/**
 * Claims of others merged within this window go out together in one gossip to our neighbours (the first
 * after a quiet spell at once); a change of our own claims (a promise, an acceptance) goes out at once.
 */
const CONSENSUS_GOSSIP_WINDOW_MS = 10;
/** A proposal that saw no consensus activity is retried after tickMs × 2^k (k ≤ this), randomized. */
const MAX_PROPOSAL_BACKOFF_EXPONENT = 3;

/** How the ring is first divided. */
export type IpamInit =
  /** Majority consensus among this many expected initial peers (⌊N/2⌋ + 1 must agree). */
  | {
      /** How many peers are expected at first; a majority of them must agree on the division. */
      consensus: number;
    }
  /** The ring is divided among these peers at once, with no consensus (every peer must get the same list). */
  | {
      /** The peers that share the ring, as names or MAC-form strings. */
      seed: readonly (PeerName | string)[];
    }
  /** This peer never owns space until it asks for some. */
  | {
      /** Always true: this peer owns no space until it asks for some. */
      observer: true;
    };

/** Options of an {@link Ipam} allocator; every field has a default. */
export interface IpamOptions {
  /** The allocation range (default 10.32.0.0/12). Every peer must use the same. */
  range?: string | undefined;
  /** The subnet `allocate` uses when none is given (default: the whole range). */
  defaultSubnet?: string | undefined;
  /**
   * Initial division (default, Weave's rule: consensus among the router's initial peers + 1, so a peer
   * given no peers divides the range alone and peers that list each other agree before anyone allocates).
   */
  init?: IpamInit | undefined;
  /** Directory for the persisted ring and allocations (default: none, state lives in memory). */
  dataDir?: string | undefined;
  /** File access for `dataDir` (default: node:fs); tests pass one that fails on purpose. */
  fileSystem?: FileSystem | undefined;
  /** Retry period for space requests and claims, and the base of the randomized backoff before a quiet consensus round is retried (default 5 s). */
  tickMs?: number | undefined;
  /** Reclaim the ranges of a peer unreachable this long (default: never; see docs/ipam.md). */
  autoReclaimAfterMs?: number | undefined;
  /** Time source for retries, conflict times and reclaim (default `systemClock`). */
  clock?: Clock | undefined;
  /** Picks which peer to ask for space, weighted by its free addresses (default `systemRandom`). */
  random?: Random | undefined;
}

/** Where allocation stands. */
export type IpamState = 'idle' | 'awaiting-consensus' | 'ready' | 'waiting-for-space';

/** A detected ownership conflict: one of our allocations sits in a range someone else now owns. */
export interface IpamConflict {
  /** The conflicting address, dotted quad. */
  address: string;
  /** The owner id we allocated it to. */
  id: string;
  /** The peer whose range it now falls in, MAC form. */
  owner: string;
  /** Clock time (ms) the conflict was detected. */
  at: number;
}

/** Typed events of the allocator. */
export interface IpamEvents {
  /** The ring changed (merged, divided, granted, taken over). */
  'ring:changed': () => void;
  /** This peer allocated or recorded `address` (dotted quad, no prefix) for `id`. */
  allocated: (id: string, address: string) => void;
  /** This peer freed `address` (dotted quad) of `id`. */
  released: (id: string, address: string) => void;
  /** One of our addresses is now inside a range another peer owns (rmpeer while we were away, split rings). */
  conflict: (conflict: IpamConflict) => void;
  /** Something an operator should know (state set aside, takeover refused, …). */
  warning: (message: string) => void;
}

/** JSON status of the allocator. */
export interface IpamStatus {
  /** Where allocation stands: no ring yet, waiting for consensus, ready, or waiting for space. */
  state: IpamState;
  /** The allocation range, CIDR. */
  range: string;
  /** The subnet used when a request names none, CIDR. */
  defaultSubnet: string;
  /** Addresses in the range. */
  size: number;
  /** Per owner: its ranges, free count and reachability. */
  owners: {
    /** The owner, MAC form. */
    peer: string;
    /** Its display name; empty when unknown. */
    nickname: string;
    /** Its ranges as CIDR blocks. */
    ranges: string[];
    /** Addresses it owns. */
    size: number;
    /** Free addresses it last reported. */
    free: number;
    /** Whether it is reachable now. */
    reachable: boolean;
  }[];
  /** Addresses owned by unreachable peers, as a percentage of the range. */
  unreachablePct: number;
  /** Addresses this peer allocated, per owner id. */
  allocated: {
    /** The owner id. */
    id: string;
    /** Its addresses, dotted quad, ascending. */
    addresses: string[];
  }[];
  /** Requests waiting (for consensus, space or the owner's answer). */
  pending: {
    /** Waiting `allocate` calls. */
    allocates: number;
    /** Waiting `claim` calls. */
    claims: number;
  };
  /** Consensus progress; only while the ring is still undivided and a vote is running. */
  consensus?: {
    /** Peers that must agree. */
    quorum: number;
    /** Peers taking part so far. */
    known: number;
  };
  /** The latest conflicts detected (at most 100), oldest first. */
  conflicts: IpamConflict[];
  /** The peers the ring was first divided among (MAC form, ascending); empty until divided, or when unknown. */
  seeds: string[];
  /**
   * Peers whose ring we refuse because it was seeded by different peers (two networks divided apart):
   * their ring is never merged; the link stays up for everything else. At most 100, latest first.
   */
  refusedRings: IpamRefusedRing[];
}

/** A peer whose ring was seeded by different peers, so IPAM refuses to merge it. */
export interface IpamRefusedRing {
  /** The peer that sent the ring, MAC form. */
  peer: string;
  /** Its display name; empty when unknown. */
  nickname: string;
  /** The seeds of its ring (MAC form). */
  seeds: string[];
  /** Clock time (ms) its ring was first refused. */
  since: number;
  /** Clock time (ms) of the latest refusal. */
  last: number;
  /** How many of its states were refused. */
  count: number;
}

interface Pending {
  kind: 'allocate' | 'claim';
  id: string;
  subnet: Cidr;
  address: number | undefined;
  tries: number;
  resolve: (address: number) => void;
  reject: (error: Error) => void;
}

/**
 * IPAM errors with stable codes.
 * @category Errors
 */
export class IpamError extends WeaveError {}

/**
 * Allocates addresses from a ring of ranges shared by all peers: each range has one owner, only the
 * owner allocates from it, and the ring merges as a CRDT over the router's gossip channel, so no
 * cluster store is needed and no address is handed out twice.
 * @category IPAM
 */
export class Ipam extends EventEmitter<IpamEvents> {
  /** The allocation range (default 10.32.0.0/12). */
  readonly range: Cidr;
  /** The subnet `allocate` uses when none is given (default: the whole range). */
  readonly defaultSubnet: Cidr;
  private ring: Ring;
  private readonly init: IpamInit;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly store: IpamStore | undefined;
  private readonly owned = new Allocations();
  /** Addresses recorded whose write is still in flight: not handed out until it succeeds. */
  private readonly unsaved = new Set<number>();
  private readonly pending: Pending[] = [];
  private readonly conflicts: IpamConflict[] = [];
  private readonly unreachableSince = new Map<PeerName, number>();
  private readonly refused = new Map<PeerName, { seeds: string; since: number; last: number; count: number }>();
  /** A grant whose write is in flight (see grantTo). */
  private granting: { requester: PeerName; range: OwnedRange } | undefined;
  private paxos: PaxosNode | undefined;
  private channel: GossipChannel | undefined;
  private tickTimer: Timer | undefined;
  /** Callers of prime() waiting for the ring: like pending requests, they keep consensus going. */
  private primers = 0;
  private broadcastScheduled = false;
  /** A delta of consensus claims is due to our neighbours (see flushConsensus). */
  private consensusFlushTimer: Timer | undefined;
  private consensusFlushQueued = false;
  private lastConsensusFlush = -Infinity;
  /** Clock time of the last consensus change (ours or merged): a round that moves is not retried. */
  private lastConsensusActivity = 0;
  /** Retries of our proposal so far (a round that needed one may be contended): sets the backoff. */
  private proposalRetries = 0;
  private proposalRetryDelay = 0;
  private started = false;
  private stopped = false;

  constructor(
    private readonly router: MeshRouter,
    private readonly options: IpamOptions = {},
  ) {
    super();
    this.range = parseCidr(options.range ?? '10.32.0.0/12');
    if (this.range.prefix > 30) throw new OptionsError(`IPAM range ${formatCidr(this.range)} is too small: use a /30 or larger`);
    this.defaultSubnet = options.defaultSubnet ? parseCidr(options.defaultSubnet) : this.range;
    if (!this.inRange(this.defaultSubnet.start) || !this.inRange(this.defaultSubnet.start + this.defaultSubnet.size - 1)) {
      throw new OptionsError(`default subnet ${formatCidr(this.defaultSubnet)} must lie inside the IPAM range ${formatCidr(this.range)}`);
    }
    this.init = options.init ?? { consensus: new Set(router.initialPeers).size + 1 };
    if ('consensus' in this.init && (!Number.isInteger(this.init.consensus) || this.init.consensus < 1)) {
      throw new OptionsError(`consensus must be the number of expected initial peers (1 or more), got ${this.init.consensus}`);
    }
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.ring = new Ring({ start: this.range.start, end: this.range.start + this.range.size });
    this.store = options.dataDir ? new IpamStore(options.dataDir, options.fileSystem) : undefined;
  }

  private inRange(address: number): boolean {
    return address >= this.range.start && address < this.range.start + this.range.size;
  }

  private get self(): PeerName {
    return this.router.selfName;
  }

  /** Loads persisted state and joins the gossip channel; idempotent. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.store) {
      const loaded = await this.store.load(this.self, this.range);
      if (loaded.setAside) this.emit('warning', loaded.setAside);
      if (loaded.warning) this.emit('warning', loaded.warning);
      if (loaded.snapshot) {
        this.ring = Ring.fromState(loaded.snapshot.ring);
        for (const [address, id] of loaded.snapshot.owned) this.owned.set(address, id);
      }
    }
    // A peer the mesh refused (its name is another live peer's) would allocate from that peer's ranges.
    this.router.on('name:collision', this.onCollision);
    this.channel = this.router.registerGossip(IPAM_CHANNEL, {
      // Before a ring or a vote exists there is nothing to say; an empty state is an observer's request.
      gossip: () => (this.ring.isEmpty() && !this.paxos ? undefined : this.encodeState()),
      onGossip: (payload, sender) => {
        // A ring that was news to us is passed on to our neighbours (the first ring after consensus
        // spreads this way, each peer sending it once); consensus deltas go out in flushConsensus.
        const ringChanged = this.onMessage(decodeWith(decodeIpamMessage, payload), sender);
        return ringChanged ? this.encodeState() : undefined;
      },
      onBroadcast: (payload, source) => {
        this.onMessage(decodeWith(decodeIpamMessage, payload), source);
        return payload; // relayed along the source's tree (each peer gets it once): the subtree may not have it yet
      },
      onUnicast: (payload, source) => {
        const adopting = this.ring.isEmpty();
        // The first ring, answered to our consensus gossip: our neighbours may still be voting too.
        if (this.onMessage(decodeWith(decodeIpamMessage, payload), source) && adopting) this.channel?.gossipNeighbours(this.encodeState());
      },
    });
    if ('seed' in this.init && this.ring.isEmpty()) {
      this.ring.claimForPeers(this.init.seed.map((p) => (typeof p === 'string' ? parsePeerName(p) : p)));
      this.ringChanged();
    }
    this.scheduleTick();
  }

  /**
   * Stops the allocator. With `transfer`, our ranges go to a reachable heir first, so they are not
   * stranded; the allocations we made are forgotten with them.
   */
  async stop(options: { transfer?: boolean | undefined } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.router.off('name:collision', this.onCollision);
    this.tickTimer?.cancel();
    this.cancelConsensusFlush();
    for (const p of this.pending.splice(0)) p.reject(new IpamError('closed', 'IPAM stopped before the request completed'));
    if (options.transfer && !this.ring.isEmpty()) {
      const heir = this.heirFor(this.self, (p) => p !== this.self && this.router.isReachable(p));
      if (heir === undefined) this.emit('warning', 'no reachable peer to hand our ranges to: they stay ours until rmpeer');
      else {
        this.ring.transfer(this.self, heir, TAKEOVER_BUMP);
        this.owned.clear();
        this.channel?.broadcast(this.encodeState());
        await this.persist();
      }
    }
    await this.store?.flush();
  }

  private readonly onCollision = (collision: { refused: bigint; message: string }): void => {
    if (collision.refused !== this.router.uid) return;
    for (const p of this.pending.splice(0)) p.reject(new IpamError('name-collision', `no addresses are allocated: ${collision.message}`));
  };

  // ---- public operations ----

  /**
   * Weave's `prime`: makes sure the ring exists, seeking consensus now when nobody has asked for an
   * address yet, and resolves once it does (at once with a persisted or seeded ring). Rejects with
   * NotReadyError (`timeout` after `timeoutMs`, default 30 s; `aborted`) saying how far consensus got,
   * or IpamError `closed` when IPAM is not running.
   */
  prime(options: WaitOptions = {}): Promise<void> {
    if (this.stopped || !this.started) return Promise.reject(new IpamError('closed', 'IPAM is not running: call start() first'));
    const timeoutMs = options.timeoutMs ?? 30_000;
    checkTimeout(timeoutMs, 'ipam.prime');
    if (!this.ring.isEmpty()) return Promise.resolve();
    this.primers += 1;
    this.seekConsensus();
    const missing = (): string[] => [`IPAM: ${this.describeState()}`];
    return waitUntil<true>(
      this.clock,
      {
        timeoutMs,
        signal: options.signal,
        timeout: () => new NotReadyError('timeout', `IPAM has no ring after ${timeoutMs} ms: ${this.describeState()}`, missing()),
        aborted: (reason) => new NotReadyError('aborted', 'waiting for the IPAM ring was aborted', missing(), { cause: reason }),
      },
      {
        check: () => {
          if (this.stopped) throw new IpamError('closed', 'IPAM stopped before the ring was established');
          return this.ring.isEmpty() ? undefined : true;
        },
        subscribe: (onChange) => {
          this.on('ring:changed', onChange);
          return () => this.off('ring:changed', onChange);
        },
        pollMs: 1000, // notices stop()
      },
    ).then(
      () => {
        this.primers -= 1;
      },
      (error: unknown) => {
        this.primers -= 1;
        throw error;
      },
    );
  }

  /** Where allocation stands: no ring yet, waiting for consensus, ready, or waiting for space. */
  get state(): IpamState {
    if (this.ring.isEmpty()) return this.pending.length > 0 || this.primers > 0 ? 'awaiting-consensus' : 'idle';
    return this.pending.length > 0 ? 'waiting-for-space' : 'ready';
  }

  /** The state in words, with how far consensus got: for errors and readiness reports. */
  describeState(): string {
    const state = this.state;
    if (state === 'ready' || state === 'waiting-for-space') return `ready (the ring is established)`;
    if ('observer' in this.init) return `${state}: an observer waits for a voting peer to establish the ring`;
    if ('seed' in this.init) return state;
    const quorum = Math.floor(this.init.consensus / 2) + 1;
    const known = this.paxos?.knownNodes().length ?? 0;
    return `${state === 'idle' ? 'idle (nobody asked for an address yet)' : 'awaiting consensus'}: ${known} of the ${quorum} peers needed (consensus among ${this.init.consensus}) have voted so far`;
  }

  /**
   * Allocates the lowest free address of `subnet` for `id` (the same id gets the same address again).
   * With a data dir it resolves only once the allocation is on disk; when it cannot be saved, it is
   * undone and the promise rejects with the `StateFileError('write-failed')` naming the file.
   */
  allocate(id: string, options: { subnet?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<string> {
    const subnet = options.subnet ? parseCidr(options.subnet) : this.defaultSubnet;
    this.checkSubnet(subnet);
    const existing = this.addressesOf(id).find((a) => a >= subnet.start && a < subnet.start + subnet.size);
    // An address recorded by a write still in flight is only handed out again once that write succeeded.
    if (existing !== undefined && !this.unsaved.has(existing)) return Promise.resolve(`${formatIPv4(existing)}/${subnet.prefix}`);
    return this.enqueue({ kind: 'allocate', id, subnet, address: undefined }, options.signal).then(
      (a) => `${formatIPv4(a)}/${subnet.prefix}`,
    );
  }

  /**
   * Records that `id` uses `address` (restarts, manual addresses); asks its owner for it when needed.
   * Like `allocate`, it resolves only once the claim is on disk, and is undone when it cannot be saved.
   */
  async claim(id: string, address: string, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    const a = parseIPv4(address.split('/')[0] ?? address);
    const holder = this.owned.get(a);
    if (holder !== undefined && holder !== id) throw new IpamError('address-in-use', `${address} is already allocated to ${holder}`);
    if (!this.inRange(a)) {
      // Outside the ring: nobody else allocates it; recorded only once it is on disk.
      if (holder !== undefined && !this.unsaved.has(a)) return;
      if (holder === undefined) this.record(id, a);
      this.unsaved.add(a);
      const error = await this.persist();
      this.unsaved.delete(a);
      if (error) {
        if (holder === undefined) this.unrecord(id, a);
        throw error;
      }
      return;
    }
    await this.enqueue({ kind: 'claim', id, subnet: this.defaultSubnet, address: a }, options.signal);
  }

  /**
   * Frees every address of `id`, or only `address`; returns how many were freed. The addresses are free
   * at once; when the state cannot be saved, a `warning` says so and the next successful write drops them
   * (until then the file still holds them, so a crash can only keep an address too long, never give it twice).
   */
  async release(id: string, address?: string): Promise<number> {
    const targets = address ? [parseIPv4(address.split('/')[0] ?? address)] : this.addressesOf(id);
    let freed = 0;
    for (const a of targets) {
      if (this.owned.get(a) !== id) continue;
      this.owned.delete(a);
      freed += 1;
      this.emit('released', id, formatIPv4(a));
    }
    if (freed > 0) {
      this.updateFree();
      await this.persist();
    }
    return freed;
  }

  /** The addresses allocated to `id` on this peer. */
  lookup(id: string): string[] {
    return this.addressesOf(id).map(formatIPv4);
  }

  /**
   * Hands every range of a dead peer to an heir that every peer computes the same way (the next owner
   * after it by name), so running it on several peers at once converges with no conflict. Refuses a
   * peer that is reachable. Returns how many addresses moved.
   */
  rmpeer(peer: PeerName | string): number {
    const name = typeof peer === 'string' ? parsePeerName(peer) : peer;
    if (name === this.self) throw new IpamError('invalid-option', 'rmpeer of this peer itself: a peer hands its own ranges over when it stops with transfer (Overlay.stop({ transfer: true }))');
    if (this.router.isReachable(name)) {
      throw new IpamError('peer-reachable', `${formatPeerName(name)} is reachable: rmpeer is only for dead peers (stop it first)`);
    }
    // When the dead peer owned the whole ring, the heir is the next known peer by name: every peer that
    // knows the same peers picks the same one, so concurrent takeovers agree.
    const heir = this.heirFor(name, () => true) ?? nextByName(name, this.router.peers().map((p) => p.name)) ?? this.self;
    const moved = this.ring.transfer(name, heir, TAKEOVER_BUMP);
    if (moved > 0) this.ringChanged();
    return moved;
  }

  /** A JSON-ready snapshot of the ring, our allocations, waiting requests and conflicts. */
  status(): IpamStatus {
    const owners = this.ring.owners().map((peer) => {
      const ranges = this.ring.rangesOf(peer);
      const size = ranges.reduce((n, r) => n + r.end - r.start, 0);
      return {
        peer: formatPeerName(peer),
        nickname: this.router.peer(peer)?.nickname ?? '',
        ranges: ranges.flatMap((r) => cidrsInRange(r.start, r.end).map(formatCidr)),
        size,
        free: this.ring.freeOf(peer),
        reachable: this.router.isReachable(peer),
      };
    });
    const unreachable = owners.filter((o) => !o.reachable).reduce((n, o) => n + o.size, 0);
    const byId = new Map<string, string[]>();
    for (const [a, id] of this.owned) byId.set(id, [...(byId.get(id) ?? []), formatIPv4(a)]);
    return {
      state: this.state,
      range: formatCidr(this.range),
      defaultSubnet: formatCidr(this.defaultSubnet),
      size: this.range.size,
      owners,
      unreachablePct: Math.round((unreachable / this.range.size) * 10_000) / 100,
      allocated: [...byId].map(([id, addresses]) => ({ id, addresses })),
      pending: {
        allocates: this.pending.filter((p) => p.kind === 'allocate').length,
        claims: this.pending.filter((p) => p.kind === 'claim').length,
      },
      ...(this.paxos && this.ring.isEmpty() ? { consensus: { quorum: this.paxos.quorum, known: this.paxos.knownNodes().length } } : {}),
      conflicts: [...this.conflicts],
      seeds: this.ring.seeds.map(formatPeerName),
      refusedRings: [...this.refused]
        .sort((a, b) => b[1].last - a[1].last)
        .map(([peer, r]) => ({
          peer: formatPeerName(peer),
          nickname: this.router.peer(peer)?.nickname ?? '',
          seeds: r.seeds.split(','),
          since: r.since,
          last: r.last,
          count: r.count,
        })),
    };
  }

  // ---- requests ----

  private checkSubnet(subnet: Cidr): void {
    if (!this.inRange(subnet.start) || !this.inRange(subnet.start + subnet.size - 1)) {
      throw new OptionsError(`subnet ${formatCidr(subnet)} is not inside the IPAM range ${formatCidr(this.range)}`);
    }
  }

  private addressesOf(id: string): number[] {
    return this.owned.addressesOf(id);
  }

  private enqueue(request: Omit<Pending, 'resolve' | 'reject' | 'tries'>, signal: AbortSignal | undefined): Promise<number> {
    if (this.stopped || !this.started) return Promise.reject(new IpamError('closed', 'IPAM is not running: call start() first'));
    const refusal = this.router.refusal;
    if (refusal) return Promise.reject(new IpamError('name-collision', `no addresses are allocated: ${refusal.message}`));
    signal?.throwIfAborted();
    return new Promise<number>((resolve, reject) => {
      const p: Pending = { ...request, tries: 0, resolve, reject };
      // The caller awaits this request (an attach, say): with the real clock it holds the process until settled.
      const hold = holdOpen(this.clock);
      const onAbort = (): void => {
        const i = this.pending.indexOf(p);
        if (i >= 0) this.pending.splice(i, 1);
        hold.release();
        reject(signal?.reason ?? new IpamError('closed', 'aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      p.resolve = (a) => {
        signal?.removeEventListener('abort', onAbort);
        hold.release();
        resolve(a);
      };
      p.reject = (e) => {
        signal?.removeEventListener('abort', onAbort);
        hold.release();
        reject(e);
      };
      this.pending.push(p);
      this.progress();
    });
  }

  /** Moves every pending request as far as it can go now. */
  private progress(): void {
    if (this.ring.isEmpty()) {
      this.seekConsensus();
      return;
    }
    const done: [Pending, number, boolean][] = [];
    for (const p of [...this.pending]) {
      // Two waiting allocations for one id get one address.
      const already = p.kind === 'allocate' ? this.addressesOf(p.id).find((a) => a >= p.subnet.start && a < p.subnet.start + p.subnet.size) : undefined;
      const address = already ?? (p.kind === 'allocate' ? this.freeAddress(p.subnet) : this.claimable(p));
      if (address === undefined) {
        // Ask at once the first time; the tick repeats the request until space arrives.
        if (p.tries === 0 && this.pending.includes(p)) {
          p.tries = 1;
          if (p.kind === 'allocate') this.requestSpace(p);
          else this.requestClaim(p);
        }
        continue;
      }
      this.pending.splice(this.pending.indexOf(p), 1);
      const fresh = this.owned.get(address) !== p.id;
      if (fresh) this.record(p.id, address);
      this.unsaved.add(address);
      done.push([p, address, fresh]);
    }
    if (done.length > 0) void this.persist().then((error) => this.settle(done, error));
  }

  /**
   * An address is handed out only once it is on disk, so a crash cannot forget it after the caller has
   * it. When the write failed, what this batch recorded is undone and the callers get the write error.
   */
  private settle(done: readonly [Pending, number, boolean][], error: Error | undefined): void {
    for (const [, address] of done) this.unsaved.delete(address);
    if (error) {
      for (const [p, address, fresh] of done) {
        if (fresh && this.owned.get(address) === p.id) this.unrecord(p.id, address);
        p.reject(error);
      }
      return;
    }
    let requeued = false;
    for (const [p, address] of done) {
      if (this.owned.get(address) === p.id) p.resolve(address);
      else {
        // Undone by a failed write of another batch after ours had started: ask again.
        this.pending.push(p);
        requeued = true;
      }
    }
    if (requeued) this.progress();
  }

  private record(id: string, address: number): void {
    this.owned.set(address, id);
    this.emit('allocated', id, formatIPv4(address));
    this.updateFree();
  }

  /** Takes back an allocation that could not be saved. */
  private unrecord(id: string, address: number): void {
    this.owned.delete(address);
    this.emit('released', id, formatIPv4(address));
    this.updateFree();
  }

  /** The lowest free address of `subnet` in our ranges, excluding its network and broadcast addresses. */
  private freeAddress(subnet: Cidr): number | undefined {
    const { first, last } = hostRange(subnet);
    const g = this.granting?.range;
    for (const r of this.ring.rangesOf(this.self)) {
      const end = Math.min(r.end, last + 1);
      let a = this.owned.firstFree(Math.max(r.start, first), end);
      // A grant being saved is no longer ours to hand out: look again after it.
      if (a !== undefined && g && a >= g.start && a < g.end) a = this.owned.firstFree(g.end, end);
      if (a !== undefined) return a;
    }
    return undefined;
  }

  /** True for an address of a grant that is being saved: it is no longer ours to hand out. */
  private beingGranted(address: number): boolean {
    const g = this.granting;
    return g !== undefined && address >= g.range.start && address < g.range.end;
  }

  /** For a claim: the address when we own it and it is free (or already this id's). */
  private claimable(p: Pending): number | undefined {
    const a = p.address as number;
    if (this.ring.ownerOf(a) !== this.self || this.beingGranted(a)) return undefined;
    const holder = this.owned.get(a);
    if (holder !== undefined && holder !== p.id) {
      this.pending.splice(this.pending.indexOf(p), 1);
      p.reject(new IpamError('address-in-use', `${formatIPv4(a)} is already allocated to ${holder}`));
      return undefined;
    }
    return a;
  }

  /** Runs every tick: retries consensus, space and claim requests, and automatic reclaim. */
  private scheduleTick(): void {
    this.tickTimer = this.clock.setTimer(this.options.tickMs ?? 5000, () => {
      this.tick();
      this.scheduleTick();
    });
  }

  private tick(): void {
    if (this.stopped) return;
    this.autoReclaim();
    // A refusal matters while that peer is around; one that went away is forgotten.
    for (const peer of this.refused.keys()) if (!this.router.isReachable(peer)) this.refused.delete(peer);
    if (this.ring.isEmpty()) {
      if (this.pending.length > 0 || this.primers > 0) this.retryProposal();
      return;
    }
    this.progress();
    for (const p of this.pending) {
      if (p.kind === 'allocate') this.requestSpace(p);
      else this.requestClaim(p);
    }
  }

  // ---- consensus ----

  private seekConsensus(): void {
    if ('seed' in this.init) return; // the ring was created at start
    if ('observer' in this.init) {
      // Observers never vote: announcing an empty state makes voters establish the ring.
      this.channel?.broadcast(this.encodeState());
      return;
    }
    if (!this.paxos) {
      this.paxos = new PaxosNode({ name: this.self, uid: this.router.uid }, Math.floor(this.init.consensus / 2) + 1);
      this.paxos.propose();
      this.consensusChanged(true, true);
      return;
    }
    this.consensusChanged(false);
  }

  /**
   * A proposal is retried only when consensus went quiet for a randomized, doubling delay: retrying
   * on every tick superseded our own proposal whenever a quorum answered later than one tick (slow
   * links, a busy process), so no round ever finished; a fixed period also kept competing proposers
   * in step. A round that is still moving (claims arriving) is left to finish.
   */
  private retryProposal(): void {
    if (!this.paxos) {
      this.seekConsensus();
      return;
    }
    if ('observer' in this.init) {
      this.seekConsensus();
      return;
    }
    const now = this.clock.now();
    if (now - this.lastConsensusActivity < this.proposalRetryDelay) return;
    this.proposalRetries = Math.min(this.proposalRetries + 1, MAX_PROPOSAL_BACKOFF_EXPONENT);
    this.paxos.propose();
    this.consensusChanged(true, true);
  }

  /**
   * After claims changed (`activity`; `ownChanged` when ours did, e.g. a new proposal): think, maybe
   * decide, and gossip what changed.
   */
  private consensusChanged(activity = true, ownChanged = false): void {
    if (!this.paxos) return;
    let urgent = ownChanged;
    while (this.paxos.think()) urgent = true;
    if (activity) {
      this.lastConsensusActivity = this.clock.now();
      const tickMs = this.options.tickMs ?? 5000;
      this.proposalRetryDelay = tickMs * 2 ** this.proposalRetries * (1 + this.random.float());
    }
    this.checkConsensus();
    if (this.ring.isEmpty()) this.scheduleConsensusFlush(urgent);
  }

  private checkConsensus(): void {
    const value = this.paxos?.consensus();
    if (!value || !this.ring.isEmpty()) return;
    this.ring.claimForPeers(value);
    this.cancelConsensusFlush();
    // Every voter derives the same ring, so it is not broadcast: each peer tells its neighbours once
    // (and those it was news to pass it on), which also ends their vote.
    this.ringChanged(false);
    this.channel?.gossipNeighbours(this.encodeState());
  }

  /**
   * Sends the consensus claims that changed to a few neighbours (the router's ⌊2·log2 N⌋): at once when
   * our own claims changed (a few times per round) or after a quiet spell, else at most once per window;
   * each neighbour merges and passes on only what was new to it. Before, the whole state was broadcast
   * by every peer after every change: O(N³) messages.
   */
  private scheduleConsensusFlush(urgent: boolean): void {
    if (this.consensusFlushQueued) return;
    if (urgent) this.cancelConsensusFlush();
    else if (this.consensusFlushTimer) return;
    const wait = this.lastConsensusFlush + CONSENSUS_GOSSIP_WINDOW_MS - this.clock.now();
    if (urgent || wait <= 0) {
      this.consensusFlushQueued = true;
      queueMicrotask(() => {
        this.consensusFlushQueued = false;
        this.flushConsensus();
      });
    } else {
      this.consensusFlushTimer = this.clock.setTimer(wait, () => {
        this.consensusFlushTimer = undefined;
        this.flushConsensus();
      });
    }
  }

  private cancelConsensusFlush(): void {
    this.consensusFlushTimer?.cancel();
    this.consensusFlushTimer = undefined;
  }

  private flushConsensus(): void {
    if (this.stopped || !this.paxos || !this.ring.isEmpty()) return;
    const delta = this.paxos.takeChanges();
    if (!delta) return;
    this.lastConsensusFlush = this.clock.now();
    this.channel?.gossipNeighbours(encodeWith(encodeIpamMessage, { kind: IpamMessageKind.State, ring: undefined, paxos: delta }));
  }

  // ---- gossip ----

  private stateMessage(): IpamMessage {
    return {
      kind: IpamMessageKind.State,
      ring: this.ring.isEmpty() ? undefined : this.ring.toState(),
      paxos: this.ring.isEmpty() ? this.paxos?.snapshot() : undefined,
    };
  }

  private encodeState(): Uint8Array {
    return encodeWith(encodeIpamMessage, this.stateMessage());
  }

  private send(peer: PeerName, message: IpamMessage): void {
    this.channel?.unicast(peer, encodeWith(encodeIpamMessage, message));
  }

  /** Broadcasts our state once per turn however many changes there were. */
  private scheduleBroadcast(): void {
    if (this.broadcastScheduled) return;
    this.broadcastScheduled = true;
    queueMicrotask(() => {
      this.broadcastScheduled = false;
      if (!this.stopped) this.channel?.broadcast(this.encodeState());
    });
  }

  /** Handles a message; true when it was a ring that changed ours. */
  private onMessage(message: IpamMessage, from: PeerName): boolean {
    if (this.stopped) return false;
    switch (message.kind) {
      case IpamMessageKind.State:
        return this.onState(message, from);
      case IpamMessageKind.SpaceRequest:
        this.donate(from, message.subnet);
        return false;
      case IpamMessageKind.ClaimRequest:
        this.donateAddress(from, message.address);
        return false;
      case IpamMessageKind.SpaceDenied:
        this.onDenied(from, message.subnet);
        return false;
    }
  }

  private onState(message: IpamMessage & { kind: IpamMessageKind.State }, from: PeerName): boolean {
    if (message.ring) {
      if (message.ring.start !== this.ring.start || message.ring.end !== this.ring.end) {
        throw new IpamError(
          'bad-value',
          `${formatPeerName(from)} uses IPAM range ${formatIPv4(message.ring.start)}+${message.ring.end - message.ring.start}, we use ${formatCidr(this.range)}: every peer must use the same range`,
        );
      }
      const ours = [...this.owned].filter(([a]) => this.ring.ownerOf(a) === this.self);
      let result;
      try {
        result = this.ring.merge(Ring.fromState(message.ring));
      } catch (error) {
        if (!(error instanceof WeaveError && error.code === 'different-seeds')) throw error;
        this.refuseRing(from, message.ring.seeds ?? [], error.message);
        return false;
      }
      this.refused.delete(from);
      if (result.changed) {
        this.checkConflicts(ours);
        this.ringChanged(false);
      }
      // A sender that is behind (a restart, a channel joined after its links came up) gets ours back:
      // gossip alone would leave it stale until the next periodic round.
      if (Ring.fromState(message.ring).merge(this.ring).changed) this.send(from, this.stateMessage());
      return result.changed;
    }
    if (!this.ring.isEmpty()) {
      // A voter still seeking consensus: our ring ends its vote sooner than the remaining rounds would.
      if (message.paxos) this.send(from, this.stateMessage());
      return false;
    }
    if (message.paxos && this.paxos && 'consensus' in this.init) {
      if (this.paxos.merge(message.paxos)) this.consensusChanged();
    } else if ('consensus' in this.init && (message.paxos || !message.ring)) {
      // Someone (a voter, or an observer that needs space) wants the ring: join the vote.
      let proposed = false;
      if (!this.paxos) {
        this.paxos = new PaxosNode({ name: this.self, uid: this.router.uid }, Math.floor(this.init.consensus / 2) + 1);
        if (!message.paxos) this.paxos.propose();
        proposed = !message.paxos;
      }
      if (message.paxos) this.paxos.merge(message.paxos);
      this.consensusChanged(true, proposed);
    }
    return false;
  }

  /**
   * A ring divided apart from ours (different seeds) is never merged: both sides would own the same
   * addresses. Weave drops the connection; we keep the link for everything else and say it loudly, once
   * per foreign ring (its state arrives again with every gossip round, from each of its peers).
   */
  private refuseRing(from: PeerName, seeds: readonly PeerName[], reason: string): void {
    const key = seeds.map(formatPeerName).join(',');
    const now = this.clock.now();
    const known = this.refused.get(from);
    if (known && known.seeds === key) {
      known.last = now;
      known.count += 1;
      return;
    }
    this.refused.set(from, { seeds: key, since: now, last: now, count: 1 });
    if (this.refused.size > 100) this.refused.delete(this.refused.keys().next().value as PeerName);
    if ([...this.refused.values()].some((r) => r !== this.refused.get(from) && r.seeds === key)) return;
    this.emit(
      'warning',
      `${reason}. The ring of ${formatPeerName(from)} is refused (the link stays up): the two groups divided the range apart, so they may hold the same addresses. Give every peer the same --ipalloc-init (or the peers of the whole network) and wipe the IPAM state of one group (see docs/ipam.md).`,
    );
  }

  /**
   * Our allocations that were in our ranges before a merge and are in someone else's after it are
   * conflicts: reported once, never silent (and never a dropped link).
   */
  private checkConflicts(oursBefore: readonly [number, string][]): void {
    for (const [address, id] of oursBefore) {
      const owner = this.ring.ownerOf(address);
      if (owner === undefined || owner === this.self) continue;
      const conflict = { address: formatIPv4(address), id, owner: formatPeerName(owner), at: this.clock.now() };
      this.conflicts.push(conflict);
      if (this.conflicts.length > 100) this.conflicts.shift();
      this.emit('conflict', conflict);
    }
  }

  /** After any ring change: free counts, persistence, waiting requests, and (for local changes) a broadcast. */
  private ringChanged(local = true): void {
    this.updateFree();
    if (local) this.scheduleBroadcast();
    void this.persist();
    this.emit('ring:changed');
    this.progress();
  }

  /** Publishes how many addresses of each of our entries are free (so others pick donors well). */
  private updateFree(): void {
    let changed = false;
    for (const e of this.ring.entries()) {
      if (e.owner !== this.self) continue;
      let used = 0;
      for (const r of this.ring.rangesOfEntry(e.token)) used += this.owned.countIn(r.start, r.end);
      if (this.ring.setFree(this.self, e.token, this.ring.sizeOf(e.token) - used)) changed = true;
    }
    if (changed) this.scheduleBroadcast();
  }

  // ---- donation ----

  /** Asks a reachable peer with free space in the subnet, picked at random weighted by its free count. */
  private requestSpace(p: Pending): void {
    const candidates = new Map<PeerName, number>();
    for (const e of this.ring.entries()) {
      if (e.owner === this.self || e.free === 0 || !this.router.isReachable(e.owner)) continue;
      if (this.ring.rangesOfEntry(e.token).some((r) => r.start < p.subnet.start + p.subnet.size && p.subnet.start < r.end)) {
        candidates.set(e.owner, (candidates.get(e.owner) ?? 0) + e.free);
      }
    }
    let best: PeerName | undefined;
    let bestScore = -1;
    for (const [peer, free] of candidates) {
      const score = free * this.random.float();
      if (score > bestScore) [best, bestScore] = [peer, score];
    }
    if (best === undefined) return; // nobody reachable has space: keep waiting (status says why)
    this.send(best, { kind: IpamMessageKind.SpaceRequest, subnet: { start: p.subnet.start, prefix: p.subnet.prefix } });
  }

  private requestClaim(p: Pending): void {
    const a = p.address as number;
    const owner = this.ring.ownerOf(a);
    if (owner === undefined || owner === this.self) return;
    p.tries += 1;
    if (!this.router.isReachable(owner) && p.tries >= 5) {
      this.pending.splice(this.pending.indexOf(p), 1);
      p.reject(new IpamError('unknown-peer', `${formatIPv4(a)} belongs to ${formatPeerName(owner)}, which is unreachable`));
      return;
    }
    this.send(owner, { kind: IpamMessageKind.ClaimRequest, address: a });
  }

  /** Donor: gives the largest CIDR-aligned free block in the subnet, at most half our free space there. */
  private donate(requester: PeerName, ref: SubnetRef): void {
    if (this.granting) return; // one grant at a time: the requester asks again on its next tick
    const size = 2 ** (32 - ref.prefix);
    const blocks: Cidr[] = [];
    let free = 0;
    for (const r of this.ring.rangesOf(this.self)) {
      const start = Math.max(r.start, ref.start);
      const end = Math.min(r.end, ref.start + size);
      for (const run of this.owned.freeRuns(start, end)) {
        free += run.end - run.start;
        blocks.push(...cidrsInRange(run.start, run.end));
      }
    }
    const limit = Math.max(1, Math.floor(free / 2));
    const cap = 2 ** Math.floor(Math.log2(limit)); // the largest aligned block size within the limit
    let best: { start: number; size: number } | undefined;
    for (const b of blocks) {
      // A block over the cap gives its upper aligned part (the lower part stays with us).
      const candidate = b.size <= cap ? { start: b.start, size: b.size } : { start: b.start + b.size - cap, size: cap };
      if (!best || candidate.size > best.size || (candidate.size === best.size && candidate.start > best.start)) best = candidate;
    }
    if (!best) {
      this.send(requester, { kind: IpamMessageKind.SpaceDenied, subnet: ref });
      return;
    }
    this.grantTo(requester, { start: best.start, end: best.start + best.size });
  }

  /** Owner of a claimed address: hands over that one address if it is free. */
  private donateAddress(requester: PeerName, address: number): void {
    if (this.granting) return; // asked again on the claimer's next tick
    if (this.ring.ownerOf(address) !== this.self) return; // not ours (any more): the ring will tell them
    if (this.owned.has(address)) {
      this.send(requester, { kind: IpamMessageKind.SpaceDenied, subnet: { start: address, prefix: 32 } });
      return;
    }
    this.grantTo(requester, { start: address, end: address + 1 });
  }

  /**
   * Gives `range` away only once the grant is on disk: a donor that crashed after telling the requester
   * but before saving would restart owning the range and hand its addresses out a second time. Until the
   * write lands, the ring (and so gossip) does not show the grant, its addresses are not allocated here,
   * and no other grant starts; a grant that cannot be saved is never made (the requester asks again).
   */
  private grantTo(requester: PeerName, range: OwnedRange): void {
    if (!this.store) {
      this.commitGrant(requester, range);
      return;
    }
    this.granting = { requester, range };
    void this.persist().then((error) => {
      this.granting = undefined;
      if (error === undefined && !this.stopped) this.commitGrant(requester, range);
    });
  }

  private commitGrant(requester: PeerName, range: OwnedRange): void {
    try {
      this.ring.grant(this.self, range, requester);
    } catch {
      return; // the range changed hands meanwhile (rmpeer of us elsewhere): the ring tells the requester
    }
    this.ringChanged();
    this.send(requester, { kind: IpamMessageKind.State, ring: this.ring.toState(), paxos: undefined });
  }

  private onDenied(from: PeerName, ref: SubnetRef): void {
    if (ref.prefix !== 32) return; // a space request was refused: the tick asks another peer
    for (const p of [...this.pending]) {
      if (p.kind === 'claim' && p.address === ref.start) {
        this.pending.splice(this.pending.indexOf(p), 1);
        p.reject(new IpamError('address-in-use', `${formatIPv4(ref.start)} is in use on ${formatPeerName(from)}`));
      }
    }
  }

  // ---- dead peers ----

  /** The next ring owner after `peer` by name (wrapping), among those `eligible` allows. */
  private heirFor(peer: PeerName, eligible: (p: PeerName) => boolean): PeerName | undefined {
    const owners = this.ring.owners().filter((p) => p !== peer && eligible(p));
    return owners.find((p) => p > peer) ?? owners[0];
  }

  private autoReclaim(): void {
    const after = this.options.autoReclaimAfterMs;
    if (after === undefined) return;
    const now = this.clock.now();
    for (const owner of this.ring.owners()) {
      if (owner === this.self || this.router.isReachable(owner)) {
        this.unreachableSince.delete(owner);
        continue;
      }
      const since = this.unreachableSince.get(owner) ?? now;
      this.unreachableSince.set(owner, since);
      if (now - since >= after) {
        const moved = this.rmpeer(owner);
        this.emit('warning', `reclaimed ${moved} addresses of ${formatPeerName(owner)}, unreachable for ${Math.round((now - since) / 1000)} s`);
        this.unreachableSince.delete(owner);
      }
    }
  }

  // ---- persistence ----

  private snapshot(): IpamSnapshot {
    return { peer: this.self, ring: this.ringToSave().toState(), owned: [...this.owned] };
  }

  /** The ring with the grant being saved applied (a write saves the grant before it is made). */
  private ringToSave(): Ring {
    const g = this.granting;
    if (!g) return this.ring;
    const ring = this.ring.clone();
    try {
      ring.grant(this.self, g.range, g.requester);
    } catch {
      return this.ring;
    }
    return ring;
  }

  /**
   * Saves the state (the snapshot is taken when the write starts). A failed write is reported as a
   * warning and returned: allocations undo themselves with it; ring changes and releases are saved by
   * the next write that succeeds.
   */
  private async persist(): Promise<Error | undefined> {
    if (!this.store) return undefined;
    try {
      await this.store.save(() => this.snapshot());
      return undefined;
    } catch (error) {
      this.emit('warning', error instanceof Error ? error.message : String(error));
      return error instanceof Error ? error : new Error(String(error));
    }
  }
}

/** The first name after `peer` in ascending order (wrapping), `peer` itself excluded. */
function nextByName(peer: PeerName, names: readonly PeerName[]): PeerName | undefined {
  const others = [...new Set(names)].filter((n) => n !== peer).sort((a, b) => a - b);
  return others.find((n) => n > peer) ?? others[0];
}
