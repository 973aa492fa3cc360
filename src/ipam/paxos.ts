// Paxos: single-decree consensus over gossip on the initial set of ring owners (as Weave does it).
//
// Every voting peer keeps its own claims (a promise and maybe an accepted proposal with its value) and
// gossips the claims of every node it knows. After merging, each node `think`s: it promises the highest
// proposal it has seen, accepts its own proposal once a quorum promised it, and accepts a proposal it
// promised once that proposal's proposer accepted it. The value is decided when a quorum accepted the
// same proposal. Only the owner of claims changes them, so the merge is a per-node last-writer-wins.
// The node remembers which claims changed since they were last taken (`takeChanges`), so gossip carries
// only what is new: a claim version crosses each link about once instead of riding in every message.
import type { PeerName } from '../wire/peer-name.js';
import { nodeKey, type NodeClaims, type NodeId, type PaxosState, type ProposalId } from '../wire/paxos.js';

export { nodeKey, type NodeClaims, type NodeId, type PaxosState, type ProposalId };

function compareNodes(a: NodeId, b: NodeId): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.uid === b.uid ? 0 : a.uid < b.uid ? -1 : 1;
}

/** Orders proposals; undefined is lower than any proposal. */
export function compareProposals(a: ProposalId | undefined, b: ProposalId | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  if (a.round !== b.round) return a.round < b.round ? -1 : 1;
  return compareNodes(a.proposer, b.proposer);
}

function sameProposal(a: ProposalId | undefined, b: ProposalId | undefined): boolean {
  return a !== undefined && b !== undefined && compareProposals(a, b) === 0;
}

/** Claims order: by promise, then by accepted proposal (an owner only ever moves them forward). */
function compareClaims(a: NodeClaims, b: NodeClaims): number {
  return compareProposals(a.promise, b.promise) || compareProposals(a.accepted, b.accepted);
}

function normalize(names: Iterable<PeerName>): PeerName[] {
  return [...new Set(names)].sort((a, b) => a - b);
}

/** One node's view of the consensus. */
export class PaxosNode {
  private readonly state: PaxosState = new Map();
  /** Keys of claims that changed (merged or our own) since `takeChanges`. */
  private readonly changed = new Set<string>();

  constructor(
    readonly self: NodeId,
    /** Nodes needed for a decision: ⌊N/2⌋ + 1 of the N expected initial peers. */
    readonly quorum: number,
  ) {
    this.state.set(nodeKey(self), { node: self, claims: { promise: undefined, accepted: undefined, value: undefined } });
    this.changed.add(nodeKey(self));
  }

  private get own(): NodeClaims {
    return (this.state.get(nodeKey(this.self)) as { claims: NodeClaims }).claims;
  }

  /** A copy of every node's claims (or only those whose keys are given), for gossip. */
  snapshot(keys?: Iterable<string>): PaxosState {
    const copy: PaxosState = new Map();
    for (const key of keys ?? this.state.keys()) {
      const entry = this.state.get(key);
      if (!entry) continue;
      const { node, claims } = entry;
      copy.set(key, { node, claims: { ...claims, value: claims.value ? [...claims.value] : undefined } });
    }
    return copy;
  }

  /** The claims that changed since the last call (a delta for gossip), or undefined when none did. */
  takeChanges(): PaxosState | undefined {
    if (this.changed.size === 0) return undefined;
    const delta = this.snapshot(this.changed);
    this.changed.clear();
    return delta;
  }

  /** Nodes known to vote (everyone whose claims we have seen). */
  knownNodes(): NodeId[] {
    return [...this.state.values()].map((e) => e.node);
  }

  /** Merges received claims; returns true when anything changed. Claims about ourselves are ours alone. */
  merge(received: PaxosState): boolean {
    let changed = false;
    for (const [key, { node, claims }] of received) {
      if (key === nodeKey(this.self)) continue;
      const held = this.state.get(key);
      if (!held || compareClaims(claims, held.claims) > 0) {
        this.state.set(key, { node, claims: { ...claims, value: claims.value ? normalize(claims.value) : undefined } });
        this.changed.add(key);
        changed = true;
      }
    }
    return changed;
  }

  /** Starts (or restarts) a proposal with a round above every one seen. */
  propose(): void {
    let round = 0;
    for (const { claims } of this.state.values()) round = Math.max(round, claims.promise?.round ?? 0, claims.accepted?.round ?? 0);
    this.own.promise = { round: round + 1, proposer: this.self };
    this.changed.add(nodeKey(this.self));
  }

  /** Applies the rules once; returns true when our own claims changed (they should then be gossiped). */
  think(): boolean {
    const changed = this.applyRules();
    if (changed) this.changed.add(nodeKey(this.self));
    return changed;
  }

  private applyRules(): boolean {
    const own = this.own;
    let changed = false;
    // Promise the highest proposal seen.
    for (const { claims } of this.state.values()) {
      if (compareProposals(claims.promise, own.promise) > 0) {
        own.promise = claims.promise;
        changed = true;
      }
    }
    const promise = own.promise;
    if (promise === undefined || sameProposal(own.accepted, promise)) return changed;
    if (compareNodes(promise.proposer, this.self) === 0) {
      // Our proposal: accept it once a quorum promised it, with the value of the highest proposal any of
      // them already accepted (so an earlier decision cannot be overturned), else every voter we know.
      const promisers = [...this.state.values()].filter((e) => sameProposal(e.claims.promise, promise));
      if (promisers.length >= this.quorum) {
        let best: NodeClaims | undefined;
        for (const { claims } of promisers) if (claims.accepted && (!best || compareProposals(claims.accepted, best.accepted) > 0)) best = claims;
        own.accepted = promise;
        own.value = best?.value ? [...best.value] : normalize(this.knownNodes().map((n) => n.name));
        return true;
      }
    } else {
      // Someone else's proposal we promised: accept it once its proposer has.
      for (const { claims } of this.state.values()) {
        if (sameProposal(claims.accepted, promise) && claims.value) {
          own.accepted = promise;
          own.value = [...claims.value];
          return true;
        }
      }
    }
    return changed;
  }

  /** The decided value once a quorum accepted the same proposal, else undefined. */
  consensus(): PeerName[] | undefined {
    const counts = new Map<string, { n: number; value: PeerName[] }>();
    for (const { claims } of this.state.values()) {
      if (!claims.accepted || !claims.value) continue;
      const key = `${claims.accepted.round}/${nodeKey(claims.accepted.proposer)}`;
      const entry = counts.get(key) ?? { n: 0, value: claims.value };
      entry.n += 1;
      counts.set(key, entry);
      if (entry.n >= this.quorum) return [...entry.value];
    }
    return undefined;
  }
}
