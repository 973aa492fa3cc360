// Gossip channels: the contract between the mesh and an application that gossips mergeable state.
import type { PeerName } from '../wire/peer-name.js';

/**
 * What an application implements to gossip state over the mesh. Every method is optional.
 * Payloads that do not decode must throw (a `DecodeError`): the mesh counts and reports the rejection
 * and keeps the link up, because bad data must never become a partition.
 */
export interface GossipHandler {
  /** This peer's full state, sent periodically to random neighbours and to every new neighbour. */
  gossip?(): Uint8Array | undefined;
  /** Merges state from periodic gossip; returns only what was new (relayed onward), or undefined. */
  onGossip?(payload: Uint8Array, sender: PeerName): Uint8Array | undefined;
  /** Merges a broadcast from `source`; returns what to relay along the broadcast tree, or undefined to stop. */
  onBroadcast?(payload: Uint8Array, source: PeerName): Uint8Array | undefined;
  /** Receives a message addressed to this peer. */
  onUnicast?(payload: Uint8Array, source: PeerName): void;
}

/** The sending side of a registered channel. */
export interface GossipChannel {
  /** The channel name it was registered under. */
  readonly name: string;
  /** Sends to every reachable peer, each receiving it once, along this peer's broadcast tree. */
  broadcast(payload: Uint8Array): void;
  /** Sends to one peer hop by hop; false when no route to it is known. */
  unicast(destination: PeerName, payload: Uint8Array): boolean;
  /** Sends to ⌊2·log2 N⌋ weighted-random neighbours, which relay only what is new to them. */
  gossipNeighbours(payload: Uint8Array): void;
}

/** Per-channel counters. */
export interface GossipChannelStats {
  /** Messages that arrived on the channel (gossip, broadcast, unicast), including ones only passing through. */
  received: number;
  /** Messages this peer originated, counted once per neighbour sent to. */
  sent: number;
  /** Messages passed on for other peers, counted once per neighbour sent to. */
  relayed: number;
  /** Payloads the handler threw on (each also emits `gossip:rejected`). */
  rejected: number;
  /** The latest rejection's message (or a `gossip()` failure); absent if there was none. */
  lastError?: string;
}

export { isValidChannelName } from '../wire/messages.js';
