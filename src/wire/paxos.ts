// Paxos claims codec: the consensus state IPAM peers gossip until the first ring exists.
//
// | field | type | rules |
// |---|---|---|
// | node count | u16 | 1..1024 |
// | per node: name, uid | u48, u64 | non-zero, unique nodes |
// | flags | u8 | bit 0: has a promise, bit 1: has an accepted proposal (needs a promise); other bits 0 |
// | promise | u32 round, u48 name, u64 uid | when bit 0 |
// | accepted | u32 round, u48 name, u64 uid, u16 count, u48 × count | when bit 1: the accepted proposal and its value, 1..1024 names, strictly increasing |
import { DecodeError } from '../errors.js';
import type { Reader, Writer } from './codec.js';
import type { PeerName } from './peer-name.js';

/** A voting node: a peer incarnation (name and uid). */
export interface NodeId {
  name: PeerName;
  uid: bigint;
}

/** A proposal number: higher rounds win, ties broken by the proposer's identity. */
export interface ProposalId {
  round: number;
  proposer: NodeId;
}

/** What one node has promised and accepted. */
export interface NodeClaims {
  promise: ProposalId | undefined;
  accepted: ProposalId | undefined;
  /** The value accepted with `accepted`: the sorted peer names that will own the initial ring. */
  value: PeerName[] | undefined;
}

/** Every node's claims, keyed by `nodeKey`. */
export type PaxosState = Map<string, { node: NodeId; claims: NodeClaims }>;

export const MAX_PAXOS_NODES = 1024;

export function nodeKey(node: NodeId): string {
  return `${node.name}/${node.uid}`;
}

function writeNode(w: Writer, node: NodeId): void {
  w.u48(node.name).u64(node.uid);
}

function readNode(r: Reader): NodeId {
  const name = r.u48();
  const uid = r.u64();
  if (name === 0 || uid === 0n) throw new DecodeError('bad-value', 'paxos node with a zero name or uid');
  return { name, uid };
}

function writeProposal(w: Writer, p: ProposalId): void {
  w.u32(p.round);
  writeNode(w, p.proposer);
}

function readProposal(r: Reader): ProposalId {
  return { round: r.u32(), proposer: readNode(r) };
}

export function encodePaxosState(w: Writer, state: PaxosState): void {
  w.u16(state.size);
  for (const { node, claims } of state.values()) {
    writeNode(w, node);
    const accepted = claims.promise !== undefined && claims.accepted !== undefined && claims.value !== undefined;
    w.u8((claims.promise ? 1 : 0) | (accepted ? 2 : 0));
    if (claims.promise) writeProposal(w, claims.promise);
    if (accepted && claims.accepted && claims.value) {
      writeProposal(w, claims.accepted);
      w.u16(claims.value.length);
      for (const name of claims.value) w.u48(name);
    }
  }
}

export function decodePaxosState(r: Reader): PaxosState {
  const count = r.u16();
  if (count === 0 || count > MAX_PAXOS_NODES) throw new DecodeError('bad-value', `paxos state with ${count} nodes`);
  const state: PaxosState = new Map();
  for (let i = 0; i < count; i++) {
    const node = readNode(r);
    const key = nodeKey(node);
    if (state.has(key)) throw new DecodeError('bad-value', `paxos node ${key} listed twice`);
    const flags = r.u8();
    if ((flags & ~3) !== 0 || flags === 2) throw new DecodeError('bad-value', `paxos claim flags 0x${flags.toString(16)}`);
    const promise = flags & 1 ? readProposal(r) : undefined;
    let accepted: ProposalId | undefined;
    let value: PeerName[] | undefined;
    if (flags & 2) {
      accepted = readProposal(r);
      const n = r.u16();
      if (n === 0 || n > MAX_PAXOS_NODES) throw new DecodeError('bad-value', `paxos value with ${n} names`);
      value = [];
      for (let j = 0; j < n; j++) {
        const name = r.u48();
        if (name === 0 || (j > 0 && name <= (value[j - 1] as number))) {
          throw new DecodeError('bad-value', 'paxos value names must be non-zero and strictly increasing');
        }
        value.push(name);
      }
    }
    state.set(key, { node, claims: { promise, accepted, value } });
  }
  return state;
}
