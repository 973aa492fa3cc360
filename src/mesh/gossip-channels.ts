// Gossip channels: the registry of channels with their counters, how each kind of gossip message is sent
// and relayed, and the relaying of channels this peer has not registered (weaveworks/mesh's surrogate gossiper).
import { createHash } from 'node:crypto';
import { OptionsError } from '../errors.js';
import { MessageTag, type ControlMessage } from '../wire/messages.js';
import type { PeerName } from '../wire/peer-name.js';
import type { Random } from '../random.js';
import type { Routes } from './routes.js';
import { isValidChannelName, type GossipChannel, type GossipChannelStats, type GossipHandler } from './gossip.js';

/** Distinct channel names tracked in status before the rest are counted together. */
const MAX_TRACKED_CHANNELS = 64;
/** The status entry that counts channels beyond the bound. */
const OTHER_CHANNELS = '(other)';

/** A channel's handler (none for channels only relayed or handled by the router itself) and counters. */
export interface ChannelState {
  handler: GossipHandler | undefined;
  stats: GossipChannelStats;
}

/** A gossip unicast message. */
export type UnicastMessage = ControlMessage & { tag: MessageTag.GossipUnicast };

/** What the channels need from the router that owns the links and the topology. */
export interface GossipLinks {
  readonly selfName: PeerName;
  readonly random: Random;
  /** The current routes. */
  routes(): Routes;
  /** Peers we have a link to. */
  neighbours(): Iterable<PeerName>;
  /** True when we have a link to `peer`. */
  isNeighbour(peer: PeerName): boolean;
  /** Sends over the link to `peer`; false when there is none or the message was not sent. */
  sendTo(peer: PeerName, message: ControlMessage): boolean;
  /**
   * True when `source`, a neighbour that sent us its own broadcast, restarted and our topology still holds
   * its previous incarnation: the tree our view gives it is the old one's.
   */
  isNewIncarnation(source: PeerName, from: PeerName | undefined): boolean;
  /** A handler threw on a payload from `from`: counted here, reported by the router. */
  rejected(channel: string, from: PeerName, error: Error): void;
  /** A unicast (ours or relayed) had no route. */
  unroutable(): void;
}

/**
 * Every gossip channel of one peer. Channels the router handles itself (topology) are registered without
 * a handler and dispatched by the router; it uses `relayBroadcast`, `gossipToNeighbours` and the counters
 * here like any other channel.
 */
export class GossipChannels {
  private readonly channels = new Map<string, ChannelState>();
  /** Unknown-channel payloads relayed during this gossip interval. */
  private readonly surrogateSeen = new Set<string>();

  constructor(private readonly links: GossipLinks) {}

  /** Registers a channel of the router itself (no handler: the router dispatches its messages). */
  reserve(name: string, handler?: GossipHandler): ChannelState {
    const state: ChannelState = { handler, stats: newChannelStats() };
    this.channels.set(name, state);
    return state;
  }

  /**
   * Registers an application channel (see `MeshRouter.registerGossip`); `reserved` names are refused.
   * Neighbours already linked get our state at once: they never got it on link-up.
   */
  register(name: string, handler: GossipHandler, reserved: readonly string[]): GossipChannel {
    if (!isValidChannelName(name) || reserved.includes(name)) {
      throw new OptionsError(`gossip channel name "${name}" is reserved or invalid: use 1-255 printable ASCII characters`);
    }
    const existing = this.channels.get(name);
    if (existing?.handler) throw new OptionsError(`gossip channel "${name}" is already registered`);
    const state: ChannelState = { handler, stats: existing?.stats ?? newChannelStats() };
    this.channels.set(name, state);
    // A handler that sees a neighbour behind answers with its own state (see GossipHandler).
    const neighbours = [...this.links.neighbours()];
    const initial = neighbours.length > 0 ? this.gossipOf(name, state) : undefined;
    if (initial) {
      for (const peer of neighbours) {
        if (this.links.sendTo(peer, { tag: MessageTag.Gossip, channel: name, sender: this.links.selfName, payload: initial })) state.stats.sent += 1;
      }
    }
    return {
      name,
      broadcast: (payload) => {
        state.stats.sent += this.relayBroadcast(name, this.links.selfName, payload, undefined);
      },
      unicast: (destination, payload) => {
        const ok = this.sendUnicast({ tag: MessageTag.GossipUnicast, channel: name, source: this.links.selfName, destination, payload });
        if (ok) state.stats.sent += 1;
        return ok;
      },
      gossipNeighbours: (payload) => {
        state.stats.sent += this.gossipToNeighbours(name, payload, undefined);
      },
    };
  }

  /** State of a channel; unknown channels beyond a bound share one entry so remote names cannot grow memory. */
  state(name: string): ChannelState {
    let state = this.channels.get(name);
    if (!state) {
      if (this.channels.size >= MAX_TRACKED_CHANNELS) return this.state(OTHER_CHANNELS);
      state = { handler: undefined, stats: newChannelStats() };
      this.channels.set(name, state);
    }
    return state;
  }

  /** Counters of every channel, copied. */
  stats(): Record<string, GossipChannelStats> {
    const out: Record<string, GossipChannelStats> = {};
    for (const [name, state] of this.channels) out[name] = { ...state.stats };
    return out;
  }

  /** Runs a handler; a throw is a rejected payload: counted and reported, never fatal to the link. */
  guarded<T>(channel: string, from: PeerName, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      const state = this.state(channel);
      state.stats.rejected += 1;
      state.stats.lastError = err.message;
      this.links.rejected(channel, from, err);
      return undefined;
    }
  }

  /** Periodic gossip: every handler's full state to the fan-out neighbours; unknown payloads may pass again. */
  gossipAll(): void {
    this.surrogateSeen.clear();
    for (const [name, state] of this.channels) {
      const payload = this.gossipOf(name, state);
      if (payload) state.stats.sent += this.gossipToNeighbours(name, payload, undefined);
    }
  }

  /** Every handler's full state down a new link. */
  gossipAllTo(peer: PeerName): void {
    for (const [name, state] of this.channels) {
      const payload = this.gossipOf(name, state);
      if (payload && this.links.sendTo(peer, { tag: MessageTag.Gossip, channel: name, sender: this.links.selfName, payload })) state.stats.sent += 1;
    }
  }

  /** Sends `payload` to the fan-out neighbours (see `Routes.randomNeighbours`); returns how many. */
  gossipToNeighbours(channel: string, payload: Uint8Array, except: PeerName | undefined): number {
    let sent = 0;
    for (const peer of this.links.routes().randomNeighbours(this.links.random, except)) {
      if (this.links.sendTo(peer, { tag: MessageTag.Gossip, channel, sender: this.links.selfName, payload })) sent += 1;
    }
    return sent;
  }

  /**
   * Passes a broadcast from `source` on along its tree (every link with `flood`); returns how many
   * neighbours it went to.
   */
  relayBroadcast(channel: string, source: PeerName, payload: Uint8Array, from: PeerName | undefined, flood = false): number {
    // A source we cannot reach in our (stale) view has no tree here, and a neighbour that restarted is not
    // yet the peer our view's tree starts from: flood rather than drop. A flood needs no routes (a
    // snapshot per flooded message would cost O(N) each while news of a lost peer floods).
    const routes = flood ? undefined : this.links.routes();
    const tree = routes !== undefined && routes.hasTreeFrom(source) && !this.links.isNewIncarnation(source, from);
    const hops = tree ? routes.broadcastAll(source) : [...this.links.neighbours()];
    let sent = 0;
    for (const peer of hops) {
      if (peer !== from && this.links.sendTo(peer, { tag: MessageTag.GossipBroadcast, channel, source, payload })) sent += 1;
    }
    return sent;
  }

  /** Sends a unicast one hop towards its destination; false when there is no route. */
  sendUnicast(message: UnicastMessage): boolean {
    // A neighbour is reached over its link even before the topology lists that link on both ends.
    const hop = this.links.isNeighbour(message.destination) ? message.destination : this.links.routes().unicastAll(message.destination);
    if (hop === undefined || !this.links.isNeighbour(hop)) {
      this.links.unroutable();
      return false;
    }
    return this.links.sendTo(hop, message);
  }

  /** Gossip on an application or unknown channel: merged by its handler, or relayed once per interval. */
  onGossip(from: PeerName, channel: string, payload: Uint8Array): void {
    const state = this.state(channel);
    state.stats.received += 1;
    let delta: Uint8Array | undefined;
    const handler = state.handler;
    if (handler) {
      delta = this.guarded(channel, from, () => handler.onGossip?.(payload, from));
    } else {
      const key = `${channel}\0${createHash('sha1').update(payload).digest('base64')}`;
      if (this.surrogateSeen.has(key)) return;
      this.surrogateSeen.add(key);
      delta = payload;
    }
    if (delta) state.stats.relayed += this.gossipToNeighbours(channel, delta, from);
  }

  /** A broadcast on an application or unknown channel: what the handler returns (or all of it) goes on. */
  onBroadcast(from: PeerName, channel: string, source: PeerName, payload: Uint8Array): void {
    const state = this.state(channel);
    state.stats.received += 1;
    if (source === this.links.selfName) return;
    const handler = state.handler;
    const relay = handler ? this.guarded(channel, from, () => handler.onBroadcast?.(payload, source)) : payload;
    if (relay) state.stats.relayed += this.relayBroadcast(channel, source, relay, from);
  }

  /** A unicast on an application or unknown channel: relayed towards its destination, or handled here. */
  onUnicast(from: PeerName, message: UnicastMessage, dropped: () => void): void {
    const state = this.state(message.channel);
    if (message.destination !== this.links.selfName) {
      if (this.sendUnicast(message)) state.stats.relayed += 1;
      return;
    }
    state.stats.received += 1;
    const handler = state.handler;
    if (!handler) {
      dropped();
      return;
    }
    this.guarded(message.channel, from, () => handler.onUnicast?.(message.payload, message.source));
  }

  private gossipOf(name: string, state: ChannelState): Uint8Array | undefined {
    try {
      return state.handler?.gossip?.();
    } catch (error) {
      state.stats.lastError = `gossip() of channel ${name} threw: ${String(error)}`;
      return undefined;
    }
  }
}

function newChannelStats(): GossipChannelStats {
  return { received: 0, sent: 0, relayed: 0, rejected: 0 };
}
