// Topology gossip: the peer table as a gossiper: our record after each change of our links, whole state to
// new neighbours, digests for anti-entropy, requests for missing records, garbage collection, and the
// routes computed from the table.
import { createHash } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import { DecodeError } from '../errors.js';
import { decodeWith, encodeWith } from '../wire/codec.js';
import { MessageTag, type ControlMessage } from '../wire/messages.js';
import type { PeerName } from '../wire/peer-name.js';
import {
  decodeTopologyRequest,
  decodeTopologyUpdate,
  encodeTopologyRequest,
  encodeTopologyUpdate,
  MAX_REQUESTED_RECORDS,
  type ConnectionSummary,
  type PeerRecord,
} from '../wire/topology.js';
import { decodeTopologyDigest, encodeTopologyDigest, TOPOLOGY_DIGEST_CHANNEL, TopologyDigestKind } from '../wire/topology-digest.js';
import { Topology, type TopologyChange } from './topology.js';
import { Routes } from './routes.js';
import type { GossipChannels, UnicastMessage } from './gossip-channels.js';
import type { GossipChannelStats } from './gossip.js';

/** The channel name topology gossip uses. */
export const TOPOLOGY_CHANNEL = 'topology';
/** A record asked for is not asked for again (from anyone) within this time. */
const TOPOLOGY_REQUEST_BACKOFF_MS = 1000;
/** A record still missing this long after a neighbour's update named it is requested (ms). */
const TOPOLOGY_REQUEST_DELAY_MS = 100;
/** During a burst of topology changes, `changed()` is reported at most this often (ms). */
const TOPOLOGY_EVENT_BATCH_MS = 100;
/** Our broadcast waits for a new link's data path at most this long after the link came up (ms). */
const ESTABLISH_HOLD_MS = 2000;
/** Topology relays wait at most this long to share one route snapshot (ms). */
const RELAY_BATCH_MS = 10;

/** What topology gossip needs from the router that owns the links, and what it tells it. */
export interface TopologyLinks {
  /** Our links as our own record lists them, sorted by peer. */
  connections(): ConnectionSummary[];
  /** The uid of the peer at the other end of our link to `peer`; undefined when there is no link. */
  linkUid(peer: PeerName): bigint | undefined;
  /**
   * How long until each of our links not yet established is established or has been up for `holdMs`;
   * 0 when none is waiting.
   */
  establishingWaitMs(holdMs: number): number;
  /** Sends over our link to `peer`; false when there is none or the message was not sent. */
  sendTo(peer: PeerName, message: ControlMessage): boolean;
  /** True for a refused incarnation (see incarnations.ts): its records are ignored. */
  isRefused(name: PeerName, uid: bigint): boolean;
  /** False once the router stops: changes are no longer reported. */
  readonly running: boolean;
  /** Peers whose first record just arrived. */
  peersUp(names: readonly PeerName[]): void;
  /** Known peers whose record now has another uid: they restarted. */
  peersRestarted(names: readonly PeerName[]): void;
  /** Peers whose records changed just now: we heard about them. */
  peersHeard(names: readonly PeerName[]): void;
  /** Peers forgotten by garbage collection (sorted), with their last records. */
  peersForgotten(records: ReadonlyMap<PeerName, PeerRecord | undefined>): void;
  /** The topology changed: reported at once after a quiet spell, during a burst once per TOPOLOGY_EVENT_BATCH_MS. */
  changed(): void;
}

/** Options of topology gossip (the router's, see `MeshRouterOptions`). */
export interface TopologyGossipOptions {
  self: { name: PeerName; nickname: string; uid: bigint };
  clock: Clock;
  channels: GossipChannels;
  links: TopologyLinks;
  /** Coalescing delay of our own record's broadcast. */
  topologyDelayMs: number;
  /** How long a peer stays unreachable before it is forgotten. */
  gcDelayMs: number;
  /** Period of the digest (anti-entropy). */
  gossipIntervalMs: number;
}

/**
 * The topology channel. Changes of our links go to every peer along our broadcast tree (coalesced);
 * broadcasts are relayed whole along the source's tree, news of a lost connection floods; a new
 * neighbour gets every record; every gossip interval each neighbour gets a digest, and a neighbour whose
 * digest differs gets every record. See docs/protocol.md §9.
 */
export class TopologyGossip {
  /** The peer table. */
  readonly topology: Topology;
  /** Periodic digests left unanswered once while our topology was changing. */
  digestsDeferred = 0;

  private readonly selfName: PeerName;
  private readonly clock: Clock;
  private readonly channels: GossipChannels;
  private readonly links: TopologyLinks;
  private readonly options: TopologyGossipOptions;
  private routesCache: Routes | undefined;
  /** The topology changed since `routesCache` was computed. */
  private routesStale = false;
  /** A topology change not yet reported with `changed()`. */
  private changePending = false;
  private changeReportedAt = -Infinity;
  private changeTimer: Timer | undefined;
  /** Clock time of the last change to our topology. */
  private changedAt = -Infinity;
  private broadcastTimer: Timer | undefined;
  /** The version of our record in our last broadcast. */
  private broadcastVersion: bigint | undefined;
  /** `broadcastTimer` waits for a link's data path (see broadcastOwnRecord), not the coalescing delay. */
  private holding = false;
  private gcTimer: Timer | undefined;
  /** Records that join our next broadcast (ours always). */
  private readonly dirtyPeers = new Set<PeerName>();
  /**
   * Records a neighbour's whole state brought from beyond our reach (a healed partition, the far side of a
   * new link), as they were then: they join our next broadcast unless a broadcast brings them first.
   */
  private readonly learned = new Map<PeerName, PeerRecord>();
  /** A link of ours closed since our last broadcast: the next one floods. */
  private ownLinkLost = false;
  /** Broadcasts handled during this gossip interval, by source and payload hash. */
  private readonly broadcastSeen = new Set<string>();
  private unreachableSince = new Map<PeerName, number>();
  /** Neighbours whose last differing periodic digest we left unanswered. */
  private readonly digestDeferred = new Set<PeerName>();
  private readonly requestedAt = new Map<PeerName, number>();
  /** Missing records to request when TOPOLOGY_REQUEST_DELAY_MS has passed, with the neighbour that named each. */
  private readonly toRequest = new Map<PeerName, PeerName>();
  private requestTimer: Timer | undefined;
  /** Broadcasts waiting to be relayed along one route snapshot (see onBroadcast). */
  private readonly pendingRelays: { source: PeerName; payload: Uint8Array; from: PeerName }[] = [];
  private relayTimer: Timer | undefined;

  constructor(options: TopologyGossipOptions) {
    this.options = options;
    this.selfName = options.self.name;
    this.clock = options.clock;
    this.channels = options.channels;
    this.links = options.links;
    this.topology = new Topology(options.self);
    this.channels.reserve(TOPOLOGY_CHANNEL);
  }

  /** The current routes (recomputed lazily after topology changes). */
  get routes(): Routes {
    if (!this.routesCache || this.routesStale) {
      this.routesCache = Routes.compute(this.topology, this.routesCache);
      this.routesStale = false;
    }
    return this.routesCache;
  }

  /** Counters of the topology channel. */
  get stats(): GossipChannelStats {
    return this.channels.state(TOPOLOGY_CHANNEL).stats;
  }

  /**
   * Republishes our connection list after a change of our links, coalesced. The neighbour's record travels
   * with ours while the link is up: a peer that learns of the link without the neighbour's record could not
   * reach it, and would garbage-collect that record if it arrived separately. A neighbour that went away
   * (`lost`) stays behind: its last record would revive it where it is forgotten.
   */
  linksChanged(neighbour: PeerName, lost = false): void {
    if (lost) {
      this.ownLinkLost = true;
      this.digestDeferred.delete(neighbour);
    } else if (this.topology.has(neighbour)) this.dirtyPeers.add(neighbour);
    if (this.topology.setLocalConnections(this.links.connections())) {
      this.changed([]);
      this.scheduleOwnRecordBroadcast();
    }
    if (lost) this.garbageCollect();
  }

  /** Forgets a refused incarnation's record (it must not stand in for the one that keeps the name). */
  discard(name: PeerName, uid: bigint): void {
    if (this.topology.discard(name, uid)) this.changed([]);
  }

  /** Every record down a new link. */
  sendAllTo(peer: PeerName): void {
    const all = this.encode([...this.topology.records()].map((r) => r.name));
    if (this.links.sendTo(peer, { tag: MessageTag.Gossip, channel: TOPOLOGY_CHANNEL, sender: this.selfName, payload: all })) this.stats.sent += 1;
  }

  /** Every gossip interval: repeats may be handled again, and the fan-out neighbours get our digest. */
  periodic(): void {
    this.broadcastSeen.clear();
    // Anti-entropy in O(1) bytes: a neighbour whose digest differs exchanges whole state with us.
    const digest = this.encodeDigest(TopologyDigestKind.Periodic);
    this.channels.state(TOPOLOGY_DIGEST_CHANNEL).stats.sent += this.channels.gossipToNeighbours(TOPOLOGY_DIGEST_CHANNEL, digest, undefined);
  }

  /** Topology gossip from a neighbour (whole state, an answer to a request or to a digest). */
  onGossip(from: PeerName, payload: Uint8Array): void {
    this.stats.received += 1;
    // A record a neighbour's full state brings from beyond our reach (a healed partition, the far side of
    // a new link) reaches the other peers with our next coalesced broadcast: its owner has no reason to
    // broadcast it again. Records within reach, and records listing a link not yet established (its owner
    // is about to broadcast the change), are on their way from their owners: repeated to every peer by
    // each peer that got them by gossip first, they would cost a converging mesh O(N) records per peer per
    // peer. Relayed epidemically instead, each peer that found them new would pass them to O(log N)
    // neighbours, for every new link.
    const reach = this.routes;
    const change = this.channels.guarded(TOPOLOGY_CHANNEL, from, () => this.apply(payload, from));
    if (!change) return;
    const added = new Set(change.added);
    let news = false;
    for (const name of change.changed) {
      const record = this.topology.get(name);
      if (name === this.selfName || record === undefined) continue;
      // A peer we held no record of was beyond reach even when a listed link made it a leaf of our graph.
      if (!added.has(name) && reach.unicastAll(name) !== undefined) continue;
      if (record.connections.some((c) => !c.established)) continue;
      this.learned.set(name, record);
      news = true;
    }
    if (news) this.scheduleOwnRecordBroadcast();
  }

  /** A topology broadcast from `source`, received from the neighbour `from`. */
  onBroadcast(from: PeerName, source: PeerName, payload: Uint8Array): void {
    this.stats.received += 1;
    if (source === this.selfName) return;
    // Floods while views disagree can bring a payload back; each one is handled once per interval.
    const key = `${source}\0${createHash('sha1').update(payload).digest('base64')}`;
    if (this.broadcastSeen.has(key)) return;
    this.broadcastSeen.add(key);
    // Relayed whole along the source's tree even when nothing was new here: the subtree may not know it.
    // News of a lost connection floods instead: every tree that ran through the peer that went away is
    // broken until each peer has heard it, and the peers behind it would wait for anti-entropy.
    const change = this.channels.guarded(TOPOLOGY_CHANNEL, from, () => this.apply(payload, from, true));
    if (!change) return;
    if (change.shrunk.length > 0) {
      this.stats.relayed += this.channels.relayBroadcast(TOPOLOGY_CHANNEL, source, payload, from, true);
      return;
    }
    // Trees are only as good as the view they are computed from: relayed along a stale one, a broadcast
    // misses peers until anti-entropy. A fresh route snapshot per broadcast would cost O(N) each, and a
    // converging mesh brings every peer O(N) broadcasts in bursts: relays wait briefly and share one.
    this.pendingRelays.push({ source, payload, from });
    this.relayTimer ??= this.clock.setTimer(RELAY_BATCH_MS, () => this.relayPending());
  }

  /** Relays the broadcasts that waited, along trees of the current topology (see onBroadcast). */
  private relayPending(): void {
    this.relayTimer = undefined;
    for (const { source, payload, from } of this.pendingRelays.splice(0)) {
      this.stats.relayed += this.channels.relayBroadcast(TOPOLOGY_CHANNEL, source, payload, from, false);
    }
  }

  /** A neighbour's request for records (see requestMissing). */
  onRequest(from: PeerName, message: UnicastMessage): void {
    this.stats.received += 1;
    this.channels.guarded(TOPOLOGY_CHANNEL, from, () => {
      if (message.destination !== this.selfName || message.source !== from) {
        throw new DecodeError('protocol', 'topology requests go to a direct neighbour only and are never relayed');
      }
      const names = decodeWith(decodeTopologyRequest, message.payload);
      this.stats.sent += 1;
      this.links.sendTo(from, { tag: MessageTag.Gossip, channel: TOPOLOGY_CHANNEL, sender: this.selfName, payload: this.encode([...names, this.selfName]) });
    });
  }

  /**
   * A neighbour's digest: when it differs from ours, it gets our whole topology (and a periodic one our
   * digest). While our topology changed during the last gossip interval the mesh is still converging and
   * updates in flight explain the difference: whole states from every peer to every neighbour would cost
   * O(N) records per link for nothing, so one periodic digest in a row per link goes unanswered. A real
   * divergence is repaired by the next one at the latest.
   */
  onDigest(from: PeerName, payload: Uint8Array): void {
    const digestStats = this.channels.state(TOPOLOGY_DIGEST_CHANNEL).stats;
    digestStats.received += 1;
    this.channels.guarded(TOPOLOGY_DIGEST_CHANNEL, from, () => {
      const theirs = decodeWith(decodeTopologyDigest, payload);
      const digest = this.digest();
      if (Buffer.compare(digest, theirs.digest) === 0) {
        this.digestDeferred.delete(from);
        return;
      }
      const converging = this.clock.now() - this.changedAt < this.options.gossipIntervalMs;
      if (theirs.kind === TopologyDigestKind.Periodic && converging && !this.digestDeferred.has(from)) {
        this.digestDeferred.add(from);
        this.digestsDeferred += 1;
        return;
      }
      this.digestDeferred.delete(from);
      this.sendAllTo(from);
      if (theirs.kind !== TopologyDigestKind.Periodic) return;
      const answer = encodeWith(encodeTopologyDigest, { kind: TopologyDigestKind.Answer, digest });
      if (this.links.sendTo(from, { tag: MessageTag.Gossip, channel: TOPOLOGY_DIGEST_CHANNEL, sender: this.selfName, payload: answer })) digestStats.sent += 1;
    });
  }

  /**
   * Forgets peers that have been unreachable for the whole GC delay (never one we have a link to). The
   * grace period matters: records can arrive before the update that makes them reachable (they travel
   * different paths), and a record forgotten too early is not sent again until the next periodic gossip.
   */
  garbageCollect(): void {
    const now = this.clock.now();
    const grace = this.options.gcDelayMs;
    const unreachable = new Map<PeerName, number>();
    const lastRecords = new Map<PeerName, PeerRecord | undefined>();
    const removed = this.topology.garbageCollect((name) => {
      if (this.links.linkUid(name) !== undefined) return true;
      const since = this.unreachableSince.get(name) ?? now;
      if (now - since < grace) {
        unreachable.set(name, since);
        return true;
      }
      lastRecords.set(name, this.topology.get(name));
      return false;
    });
    this.unreachableSince = unreachable;
    if (unreachable.size > 0) {
      const due = Math.min(...unreachable.values()) + grace - now;
      this.scheduleGarbageCollection(Math.max(1, due));
    }
    if (removed.length === 0) return;
    this.links.peersForgotten(new Map(removed.map((name) => [name, lastRecords.get(name)])));
    this.changed([]);
  }

  /** Cancels every timer (the router is stopping). */
  stop(): void {
    for (const timer of [this.broadcastTimer, this.changeTimer, this.gcTimer, this.requestTimer, this.relayTimer]) timer?.cancel();
  }

  /** Sends our record (and the dirty neighbours' records) to every peer along our tree, coalesced. */
  private scheduleOwnRecordBroadcast(): void {
    this.dirtyPeers.add(this.selfName);
    // Holding for a data path that has just come up ends with the usual coalescing delay.
    if (this.holding) {
      this.broadcastTimer?.cancel();
      this.broadcastTimer = undefined;
      this.holding = false;
    }
    this.broadcastTimer ??= this.clock.setTimer(this.options.topologyDelayMs, () => this.broadcastOwnRecord());
  }

  private broadcastOwnRecord(): void {
    this.broadcastTimer = undefined;
    // A new link is up before its data path is: the link and, moments later, its being established would be
    // two broadcasts to every peer. While the data path is being tested (up to ESTABLISH_HOLD_MS: one that
    // never works is published as not established) ours waits, so one broadcast says both. News of a lost
    // link does not wait.
    const hold = this.ownLinkLost ? 0 : this.links.establishingWaitMs(ESTABLISH_HOLD_MS);
    if (hold > 0) {
      this.broadcastTimer = this.clock.setTimer(hold, () => this.broadcastOwnRecord());
      this.holding = true;
      return;
    }
    this.holding = false;
    const names = new Set([...this.dirtyPeers, ...this.learned.keys()]);
    this.dirtyPeers.clear();
    this.learned.clear();
    // A local change goes to every peer exactly once, along our broadcast tree; a lost link floods (see onBroadcast).
    const flood = this.ownLinkLost;
    this.ownLinkLost = false;
    // Scheduled for learned records that broadcasts have brought everywhere since: nothing left to say.
    const version = this.topology.get(this.selfName)?.version;
    if (!flood && names.size === 1 && version === this.broadcastVersion) return;
    this.broadcastVersion = version;
    this.stats.sent += this.channels.relayBroadcast(TOPOLOGY_CHANNEL, this.selfName, this.encode(names), undefined, flood);
  }

  private encode(names: Iterable<PeerName>): Uint8Array {
    return encodeWith(encodeTopologyUpdate, this.topology.select(names));
  }

  /** SHA-256 over every record's (name, uid, version), by name: equal digests, equal topologies. */
  private digest(): Uint8Array {
    const records = [...this.topology.records()].sort((a, b) => a.name - b.name);
    const entry = Buffer.alloc(22);
    const hash = createHash('sha256');
    for (const r of records) {
      entry.writeUIntBE(r.name, 0, 6);
      entry.writeBigUInt64BE(r.uid, 6);
      entry.writeBigUInt64BE(r.version, 14);
      hash.update(entry);
    }
    return hash.digest();
  }

  private encodeDigest(kind: TopologyDigestKind): Uint8Array {
    return encodeWith(encodeTopologyDigest, { kind, digest: this.digest() });
  }

  /**
   * Applies received topology; returns what changed (ourselves in `changed` when our version was bumped).
   * A broadcast reaches every peer: records it carries need not join ours.
   */
  private apply(payload: Uint8Array, from: PeerName, broadcast = false): TopologyChange {
    // Records of refused incarnations are ignored: they would displace the incarnation that keeps the name.
    const records = decodeWith(decodeTopologyUpdate, payload).filter((r) => !this.links.isRefused(r.name, r.uid));
    if (broadcast && this.learned.size > 0) {
      for (const r of records) {
        const queued = this.learned.get(r.name);
        if (queued && queued.uid === r.uid && queued.version <= r.version) this.learned.delete(r.name);
      }
    }
    const change = this.topology.applyUpdate(records);
    this.requestMissing(records, from);
    if (change.changed.length === 0) return change;
    // Our version was bumped past a previous incarnation's record: everyone, the sender included, must
    // get ours, or peers that hold the stale record keep it (the relayed delta skips the sender).
    if (change.changed.includes(this.selfName)) this.scheduleOwnRecordBroadcast();
    this.links.peersHeard(change.changed.filter((name) => name !== this.selfName));
    this.changed(change.added);
    if (change.restarted.length > 0) this.links.peersRestarted(change.restarted);
    this.scheduleGarbageCollection(this.options.gcDelayMs);
    return change;
  }

  /**
   * Notes the peers that `records` list but we hold no record of, to ask `from` for them. Records can
   * arrive before the update that makes them reachable and be garbage-collected; without this pull they
   * would only come back with anti-entropy. Most missing records are on their way from their owners, so
   * only those still missing after TOPOLOGY_REQUEST_DELAY_MS are asked for.
   */
  private requestMissing(records: readonly PeerRecord[], from: PeerName): void {
    const now = this.clock.now();
    // Only unanswered requests hold back a repeat; a record that arrived may be needed again later.
    for (const [name, at] of this.requestedAt) {
      if (this.topology.has(name) || now - at >= TOPOLOGY_REQUEST_BACKOFF_MS) this.requestedAt.delete(name);
    }
    for (const record of records) {
      for (const c of record.connections) {
        if (c.peer === this.selfName || this.topology.has(c.peer) || this.toRequest.has(c.peer) || this.requestedAt.has(c.peer)) continue;
        this.toRequest.set(c.peer, from);
      }
    }
    if (this.toRequest.size > 0) this.requestTimer ??= this.clock.setTimer(TOPOLOGY_REQUEST_DELAY_MS, () => this.sendRequests());
  }

  private sendRequests(): void {
    this.requestTimer = undefined;
    const now = this.clock.now();
    const byNeighbour = new Map<PeerName, PeerName[]>();
    for (const [name, neighbour] of this.toRequest) {
      if (this.topology.has(name) || this.links.linkUid(neighbour) === undefined) continue;
      const names = byNeighbour.get(neighbour) ?? [];
      if (names.length < MAX_REQUESTED_RECORDS) names.push(name);
      byNeighbour.set(neighbour, names);
    }
    this.toRequest.clear();
    for (const [neighbour, names] of byNeighbour) {
      for (const name of names) this.requestedAt.set(name, now);
      const payload = encodeWith(encodeTopologyRequest, names);
      this.links.sendTo(neighbour, { tag: MessageTag.GossipUnicast, channel: TOPOLOGY_CHANNEL, source: this.selfName, destination: neighbour, payload });
    }
  }

  private scheduleGarbageCollection(delayMs: number): void {
    this.gcTimer ??= this.clock.setTimer(delayMs, () => {
      this.gcTimer = undefined;
      this.garbageCollect();
    });
  }

  /**
   * Every change: routes go stale, new peers are reported at once, and `changed()` in batches: the first
   * change after a quiet spell at once, a burst once per TOPOLOGY_EVENT_BATCH_MS. Listeners compare views over all peers, and a converging mesh brings
   * every peer O(N) updates.
   */
  private changed(added: PeerName[]): void {
    this.changedAt = this.clock.now();
    if (added.length > 0) this.links.peersUp(added);
    this.routesStale = true;
    this.changePending = true;
    if (this.changeTimer || !this.links.running) return;
    const wait = this.changeReportedAt + TOPOLOGY_EVENT_BATCH_MS - this.clock.now();
    if (wait <= 0) this.reportChange();
    else this.changeTimer = this.clock.setTimer(wait, () => this.reportChange());
  }

  private reportChange(): void {
    this.changeTimer = undefined;
    if (!this.changePending) return;
    this.changePending = false;
    this.changeReportedAt = this.clock.now();
    this.links.changed();
  }
}
