// Incarnations: which incarnation of a peer name is alive, and the mesh-wide refusals of a second one.
//
// A peer name must have one live incarnation (name + uid). A new one is normally a restart; it is a
// collision when the incarnation we know answers a probe. Then the newer one (the later start: uids begin
// with the start time) is refused, and the refusal is gossiped so every peer refuses it without asking.
import type { Clock, Timer } from '../clock.js';
import type { Random } from '../random.js';
import { decodeWith, encodeWith } from '../wire/codec.js';
import {
  decodeIncarnationMessage,
  encodeIncarnationMessage,
  IncarnationKind,
  MAX_REFUSALS,
  type IncarnationMessage,
  type Refusal,
} from '../wire/incarnation.js';
import type { PeerName } from '../wire/peer-name.js';
import type { GossipHandler } from './gossip.js';

export type { Refusal } from '../wire/incarnation.js';

/** What the tracker needs from its router. */
export interface IncarnationHost {
  readonly selfName: PeerName;
  readonly uid: bigint;
  readonly clock: Clock;
  readonly random: Random;
  /** Sends an incarnation message to a peer name along the routes; false when there is no route. */
  unicast(destination: PeerName, payload: Uint8Array): boolean;
  /** Sends an incarnation message to every reachable peer along our broadcast tree. */
  broadcast(payload: Uint8Array): void;
  /** True once this peer itself has been refused: it answers no probes. */
  readonly refused: boolean;
  /** Acts on refusals new to this peer (close links, step down, tell the owner). */
  onRefusals(refusals: readonly Refusal[], from: PeerName): void;
}

/**
 * The refusals this peer knows (a grow-only set, merged by union, the newest MAX_REFUSALS kept) and the
 * probes it has in flight. Implements the gossip handler of the reserved "incarnation" channel.
 */
export class Incarnations implements GossipHandler {
  private readonly refusals = new Map<string, Refusal>();
  private readonly probes = new Map<bigint, { name: PeerName; resolve: (uid: bigint | undefined) => void; timer: Timer }>();

  constructor(private readonly host: IncarnationHost) {}

  /** True when the incarnation `uid` of `name` is refused. */
  isRefused(name: PeerName, uid: bigint): boolean {
    return this.refusals.has(key(name, uid));
  }

  /** The refusal of that incarnation, if any. */
  refusalOf(name: PeerName, uid: bigint): Refusal | undefined {
    return this.refusals.get(key(name, uid));
  }

  /** Every refusal known, oldest first. */
  list(): Refusal[] {
    return [...this.refusals.values()];
  }

  /** Records a refusal decided here and tells every peer; false when it was known already. */
  refuse(refusal: Refusal): boolean {
    if (!this.add(refusal)) return false;
    this.host.broadcast(encode({ kind: IncarnationKind.Refusals, refusals: [refusal] }));
    return true;
  }

  /** The encoded message that tells an incarnation it is refused (sent to it directly). */
  encodeRefusal(refusal: Refusal): Uint8Array {
    return encode({ kind: IncarnationKind.Refusals, refusals: [refusal] });
  }

  /**
   * Asks whoever holds `name` along the routes which incarnation it is; resolves with the uid that
   * answered, or undefined when nothing answered within `timeoutMs` (no route, a dead or frozen peer).
   */
  probe(name: PeerName, timeoutMs: number): Promise<bigint | undefined> {
    let nonce = this.host.random.u64();
    while (this.probes.has(nonce)) nonce = this.host.random.u64();
    return new Promise((resolve) => {
      const timer = this.host.clock.setTimer(timeoutMs, () => this.settle(nonce, undefined));
      this.probes.set(nonce, { name, resolve, timer });
      if (!this.host.unicast(name, encode({ kind: IncarnationKind.Probe, nonce }))) this.settle(nonce, undefined);
    });
  }

  /** Ends, unanswered, the probes of names `gone` says cannot be reached any more (their holder is dead). */
  abandon(gone: (name: PeerName) => boolean): void {
    for (const [nonce, probe] of [...this.probes]) if (gone(probe.name)) this.settle(nonce, undefined);
  }

  /** Ends every probe in flight (unanswered): the router is stopping. */
  close(): void {
    for (const nonce of [...this.probes.keys()]) this.settle(nonce, undefined);
  }

  // ---- GossipHandler ----

  /** Every known refusal, so peers that join later refuse the same incarnations. */
  gossip(): Uint8Array | undefined {
    const refusals = this.list();
    return refusals.length === 0 ? undefined : encode({ kind: IncarnationKind.Refusals, refusals });
  }

  /** Merges refusals from periodic gossip; relays what was new. */
  onGossip(payload: Uint8Array, sender: PeerName): Uint8Array | undefined {
    return this.merge(decode(payload), sender);
  }

  /** Merges a broadcast refusal; relays it along the tree only when it was new here. */
  onBroadcast(payload: Uint8Array, source: PeerName): Uint8Array | undefined {
    return this.merge(decode(payload), source);
  }

  /** Answers probes; takes answers to our own probes and refusals addressed to us. */
  onUnicast(payload: Uint8Array, source: PeerName): void {
    const message = decode(payload);
    switch (message.kind) {
      case IncarnationKind.Probe:
        if (!this.host.refused) this.host.unicast(source, encode({ kind: IncarnationKind.Answer, nonce: message.nonce, uid: this.host.uid }));
        return;
      case IncarnationKind.Answer:
        this.settle(message.nonce, message.uid);
        return;
      case IncarnationKind.Refusals:
        this.merge(message, source);
        return;
    }
  }

  private merge(message: IncarnationMessage, from: PeerName): Uint8Array | undefined {
    if (message.kind !== IncarnationKind.Refusals) return undefined; // probes and answers are unicast only
    const fresh = message.refusals.filter((r) => this.add(r));
    if (fresh.length === 0) return undefined;
    this.host.onRefusals(fresh, from);
    return encode({ kind: IncarnationKind.Refusals, refusals: fresh });
  }

  private add(refusal: Refusal): boolean {
    const k = key(refusal.name, refusal.refused);
    if (this.refusals.has(k)) return false;
    this.refusals.set(k, refusal);
    if (this.refusals.size > MAX_REFUSALS) this.refusals.delete(this.refusals.keys().next().value as string);
    return true;
  }

  private settle(nonce: bigint, uid: bigint | undefined): void {
    const probe = this.probes.get(nonce);
    if (!probe) return;
    this.probes.delete(nonce);
    probe.timer.cancel();
    probe.resolve(uid);
  }
}

function key(name: PeerName, uid: bigint): string {
  return `${name}/${uid}`;
}

function encode(message: IncarnationMessage): Uint8Array {
  return encodeWith(encodeIncarnationMessage, message);
}

function decode(payload: Uint8Array): IncarnationMessage {
  return decodeWith(decodeIncarnationMessage, payload);
}
