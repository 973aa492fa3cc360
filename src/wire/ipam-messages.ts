// IPAM gossip messages on the "ipam" channel: a kind byte, then its fields.
//
// | kind | message | fields | sent as |
// |---|---|---|---|
// | 1 | state | u8 flags (bit 0 ring, bit 1 paxos, bit 2 seeds), then the ring (see ipam.ts), its seeds (only with a ring), then the paxos claims (see paxos.ts) | periodic gossip, broadcast after every change, unicast answer |
// | 2 | space request | u32 subnet start, u8 prefix | unicast to a peer with free space there |
// | 3 | space denied | u32 subnet start, u8 prefix | unicast answer when nothing can be given |
// | 4 | claim request | u32 address | unicast to the owner of an address someone wants to claim |
import { DecodeError } from '../errors.js';
import type { Reader, Writer } from './codec.js';
import { decodeRing, decodeSeeds, encodeRing, encodeSeeds, type RingState } from './ipam.js';
import { decodePaxosState, encodePaxosState, type PaxosState } from './paxos.js';

export const enum IpamMessageKind {
  State = 1,
  SpaceRequest = 2,
  SpaceDenied = 3,
  ClaimRequest = 4,
}

/** A subnet as start address and prefix length. */
export interface SubnetRef {
  start: number;
  prefix: number;
}

export type IpamMessage =
  | { kind: IpamMessageKind.State; ring: RingState | undefined; paxos: PaxosState | undefined }
  | { kind: IpamMessageKind.SpaceRequest; subnet: SubnetRef }
  | { kind: IpamMessageKind.SpaceDenied; subnet: SubnetRef }
  | { kind: IpamMessageKind.ClaimRequest; address: number };

export function encodeIpamMessage(w: Writer, m: IpamMessage): void {
  w.u8(m.kind);
  switch (m.kind) {
    case IpamMessageKind.State:
      const seeds = m.ring?.seeds ?? [];
      w.u8((m.ring ? 1 : 0) | (m.paxos ? 2 : 0) | (seeds.length > 0 ? 4 : 0));
      if (m.ring) encodeRing(w, m.ring);
      if (seeds.length > 0) encodeSeeds(w, seeds);
      if (m.paxos && m.paxos.size === 0) throw new RangeError('an empty paxos state is not sent');
      if (m.paxos) encodePaxosState(w, m.paxos);
      return;
    case IpamMessageKind.SpaceRequest:
    case IpamMessageKind.SpaceDenied:
      if (m.subnet.prefix > 32 || m.subnet.start % 2 ** (32 - m.subnet.prefix) !== 0) {
        throw new RangeError(`subnet ${m.subnet.start}/${m.subnet.prefix} is not an aligned CIDR block`);
      }
      w.u32(m.subnet.start).u8(m.subnet.prefix);
      return;
    case IpamMessageKind.ClaimRequest:
      w.u32(m.address);
      return;
  }
}

function readSubnet(r: Reader): SubnetRef {
  const start = r.u32();
  const prefix = r.u8();
  if (prefix > 32) throw new DecodeError('bad-value', `subnet prefix /${prefix}`);
  const size = 2 ** (32 - prefix);
  if (start % size !== 0) throw new DecodeError('bad-value', 'subnet start is not aligned to its prefix');
  return { start, prefix };
}

export function decodeIpamMessage(r: Reader): IpamMessage {
  const kind = r.u8();
  switch (kind) {
    case IpamMessageKind.State: {
      const flags = r.u8();
      if ((flags & ~7) !== 0) throw new DecodeError('bad-value', `ipam state flags 0x${flags.toString(16)}`);
      if ((flags & 5) === 4) throw new DecodeError('bad-value', 'ipam state carries seeds without a ring');
      const entries = flags & 1 ? decodeRing(r) : undefined;
      if (entries && entries.entries.length === 0 && flags & 4) throw new DecodeError('bad-value', 'ipam state carries seeds for an undivided ring');
      const ring = entries && flags & 4 ? { ...entries, seeds: decodeSeeds(r) } : entries;
      const paxos = flags & 2 ? decodePaxosState(r) : undefined;
      return { kind, ring, paxos };
    }
    case IpamMessageKind.SpaceRequest:
    case IpamMessageKind.SpaceDenied:
      return { kind, subnet: readSubnet(r) };
    case IpamMessageKind.ClaimRequest:
      return { kind, address: r.u32() };
    default:
      throw new DecodeError('bad-value', `unknown ipam message kind ${kind}`);
  }
}
