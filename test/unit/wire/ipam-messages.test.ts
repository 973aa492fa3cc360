import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeWith, encodeWith, Reader } from '../../../src/wire/codec.js';
import { decodeIpamMessage, encodeIpamMessage, IpamMessageKind, type IpamMessage } from '../../../src/wire/ipam-messages.js';
import { encodeRing, encodeSeeds, type RingState } from '../../../src/wire/ipam.js';
import { encodePaxosState, type PaxosState } from '../../../src/wire/paxos.js';
import { Ring } from '../../../src/ipam/ring.js';
import { PaxosNode } from '../../../src/ipam/paxos.js';
import { parseCidr } from '../../../src/ipam/address.js';
import type { PeerName } from '../../../src/wire/peer-name.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';
import { paxosStateArb } from '../../helpers/paxos.js';

const A = 0x0a0000000001;
const B = 0x0a0000000002;
const C = 0x0a0000000003;

const encode = (m: IpamMessage): Uint8Array => encodeWith(encodeIpamMessage, m);
const decode = (bytes: Uint8Array): IpamMessage => decodeWith(decodeIpamMessage, bytes);

function rangeOf(text: string): { start: number; end: number } {
  const c = parseCidr(text);
  return { start: c.start, end: c.start + c.size };
}

/** Decoded paxos states are Maps: compare their entries in order (the encoding keeps the order). */
function comparable(m: IpamMessage): unknown {
  return m.kind === IpamMessageKind.State ? { ...m, paxos: m.paxos ? [...m.paxos] : undefined } : m;
}

function assertRoundTrip(m: IpamMessage): void {
  assert.equal(comparable(decode(encode(m))), comparable(m));
}

/** Rings as the allocator makes them: an initial division, then donations, free-count reports and takeovers. */
const ringArb: fc.Arbitrary<RingState> = fc
  .tuple(
    fc.integer({ min: 8, max: 30 }),
    fc.nat(),
    fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 48 - 1 }), { minLength: 1, maxLength: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 3 })), { maxLength: 12 }),
  )
  .map(([prefix, at, peers, steps]) => {
    const size = 2 ** (32 - prefix);
    const start = (at % 2 ** prefix) * size;
    const ring = new Ring({ start, end: start + size });
    ring.claimForPeers(peers);
    for (const [x, y, z, op] of steps) {
      const address = start + (x % size);
      const owner = ring.ownerOf(address) as PeerName;
      const to = peers[y % peers.length] as PeerName;
      if (op === 0 || op === 1) {
        // A donation from inside one of the owner's runs.
        const run = ring.rangesOf(owner).find((r) => r.start <= address && address < r.end);
        if (!run) continue;
        ring.grant(owner, { start: address, end: Math.min(run.end, address + 1 + (z % 64)) }, to);
      } else if (op === 2) {
        const entry = ring.entries()[z % ring.size];
        if (entry) ring.setFree(entry.owner, entry.token, ring.sizeOf(entry.token) - (y % (ring.sizeOf(entry.token) + 1)));
      } else {
        ring.transfer(owner, to, 1_000_000);
      }
    }
    return ring.toState();
  });

const paxosArb = paxosStateArb;

const subnetArb = fc.integer({ min: 0, max: 32 }).chain((prefix) =>
  fc.nat({ max: 2 ** prefix - 1 }).map((i) => ({ start: i * 2 ** (32 - prefix), prefix })),
);

const messageArb: fc.Arbitrary<IpamMessage> = fc.oneof(
  fc
    .tuple(fc.option(ringArb, { nil: undefined }), fc.option(paxosArb, { nil: undefined }))
    .map(([ring, paxos]): IpamMessage => ({ kind: IpamMessageKind.State, ring, paxos })),
  subnetArb.map((subnet): IpamMessage => ({ kind: IpamMessageKind.SpaceRequest, subnet })),
  subnetArb.map((subnet): IpamMessage => ({ kind: IpamMessageKind.SpaceDenied, subnet })),
  fc.nat({ max: 2 ** 32 - 1 }).map((address): IpamMessage => ({ kind: IpamMessageKind.ClaimRequest, address })),
);

/** A ring divided among A, B and C, then B donates part of its share to C. */
function dividedRing(): Ring {
  const ring = new Ring(rangeOf('10.32.0.0/24'));
  ring.claimForPeers([C, A, B]);
  const [bRange] = ring.rangesOf(B);
  if (!bRange) throw new Error('B owns nothing');
  ring.grant(B, { start: bRange.end - 16, end: bRange.end }, C);
  return ring;
}

/** Three voters that gossiped until they agreed, and the decided value. */
function decided(): { state: PaxosState; value: PeerName[] } {
  const nodes = [A, B, C].map((name, i) => new PaxosNode({ name, uid: BigInt(100 + i) }, 2));
  (nodes[0] as PaxosNode).propose();
  for (let round = 0; round < 4; round++) {
    for (const x of nodes) {
      for (const y of nodes) {
        if (x === y) continue;
        y.merge(x.snapshot());
        while (y.think());
      }
    }
  }
  const value = (nodes[1] as PaxosNode).consensus();
  assert.ok(value, 'the voters agreed');
  return { state: (nodes[1] as PaxosNode).snapshot(), value };
}

const decidedPaxos = (): PaxosState => decided().state;

test('a state with neither ring nor paxos claims round-trips (an observer asking for the ring)', () => {
  const m: IpamMessage = { kind: IpamMessageKind.State, ring: undefined, paxos: undefined };
  assert.equal(encode(m), Uint8Array.from([1, 0]));
  assertRoundTrip(m);
});

test('a state with a divided ring round-trips', () => {
  const ring = dividedRing();
  const m: IpamMessage = { kind: IpamMessageKind.State, ring: ring.toState(), paxos: undefined };
  assertRoundTrip(m);
  const back = decode(encode(m));
  assert.ok(back.kind === IpamMessageKind.State && back.ring);
  assert.equal(Ring.fromState(back.ring).entries(), ring.entries());
  assert.equal(Ring.fromState(back.ring).rangesOf(C), ring.rangesOf(C));
});

test('a state with an undivided ring keeps the ring (flag set, no entries)', () => {
  const ring = new Ring(rangeOf('10.32.0.0/12'));
  const m: IpamMessage = { kind: IpamMessageKind.State, ring: ring.toState(), paxos: undefined };
  assert.equal(encode(m), rawBytes((w) => w.u8(1).u8(1).u32(ring.start).u32(ring.end - ring.start).u32(0)));
  assertRoundTrip(m);
});

test('a state with paxos claims round-trips, before and after a decision', () => {
  const lone = new PaxosNode({ name: A, uid: 7n }, 2);
  assertRoundTrip({ kind: IpamMessageKind.State, ring: undefined, paxos: lone.snapshot() });
  lone.propose();
  lone.think();
  assertRoundTrip({ kind: IpamMessageKind.State, ring: undefined, paxos: lone.snapshot() });
  const { state, value } = decided();
  const m: IpamMessage = { kind: IpamMessageKind.State, ring: undefined, paxos: state };
  assertRoundTrip(m);
  const back = decode(encode(m));
  assert.ok(back.kind === IpamMessageKind.State && back.paxos);
  const node = new PaxosNode({ name: A, uid: 999n }, 2);
  node.merge(back.paxos);
  assert.equal(node.consensus(), value, 'the decoded claims still carry the decision');
});

test('a state with both a ring and paxos claims round-trips', () => {
  assertRoundTrip({ kind: IpamMessageKind.State, ring: dividedRing().toState(), paxos: decidedPaxos() });
});

test('space requests, denials and claim requests round-trip, edges included', () => {
  for (const subnet of [
    { start: 0, prefix: 0 },
    { start: 0xffffffff, prefix: 32 },
    { start: 0x0a200000, prefix: 12 },
    { start: 0x0a200100, prefix: 24 },
  ]) {
    assertRoundTrip({ kind: IpamMessageKind.SpaceRequest, subnet });
    assertRoundTrip({ kind: IpamMessageKind.SpaceDenied, subnet });
  }
  for (const address of [0, 1, 0x0a200001, 0xffffffff]) assertRoundTrip({ kind: IpamMessageKind.ClaimRequest, address });
});

test('every message round-trips', () => {
  fc.assert(fc.property(messageArb, (m) => assertRoundTrip(m)), { numRuns: 500 });
});

test('the layouts are the documented ones', () => {
  const ring = dividedRing().toState();
  const paxos = decidedPaxos();
  const ringBytes = encodeWith(encodeRing, ring);
  const paxosBytes = encodeWith(encodePaxosState, paxos);
  const concat = (...parts: (number[] | Uint8Array)[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
  const unseeded = { ...ring, seeds: [] };
  const seedBytes = encodeWith(encodeSeeds, ring.seeds ?? []);
  assert.ok((ring.seeds ?? []).length > 0, 'a divided ring knows its seeds');
  assert.equal(encode({ kind: IpamMessageKind.State, ring: unseeded, paxos: undefined }), concat([1, 1], ringBytes));
  assert.equal(encode({ kind: IpamMessageKind.State, ring, paxos: undefined }), concat([1, 5], ringBytes, seedBytes));
  assert.equal(encode({ kind: IpamMessageKind.State, ring: undefined, paxos }), concat([1, 2], paxosBytes));
  assert.equal(encode({ kind: IpamMessageKind.State, ring, paxos }), concat([1, 7], ringBytes, seedBytes, paxosBytes));
  assert.equal([...seedBytes.subarray(0, 2)], [0, (ring.seeds ?? []).length], 'u16 count, then u48 names');
  assert.equal(encode({ kind: IpamMessageKind.SpaceRequest, subnet: { start: 0x0a200100, prefix: 24 } }), Uint8Array.from([2, 10, 32, 1, 0, 24]));
  assert.equal(encode({ kind: IpamMessageKind.SpaceDenied, subnet: { start: 0x0a200105, prefix: 32 } }), Uint8Array.from([3, 10, 32, 1, 5, 32]));
  assert.equal(encode({ kind: IpamMessageKind.ClaimRequest, address: 0x0a200107 }), Uint8Array.from([4, 10, 32, 1, 7]));
});

test('unknown message kinds are rejected', () => {
  for (const kind of [0, 5, 0x80, 0xff]) expectDecodeError(decode, Uint8Array.from([kind, 0, 0, 0, 0, 0]), 'bad-value');
});

test('state flags other than ring, paxos and seeds are rejected, and seeds need a divided ring', () => {
  for (const flags of [4, 6, 8, 0x80, 0xff]) expectDecodeError(decode, Uint8Array.from([1, flags]), 'bad-value');
  const emptyRing = rawBytes((w) => w.u8(1).u8(5).u32(0x0a000000).u32(64).u32(0).u16(1).u48(A));
  expectDecodeError(decode, emptyRing, 'bad-value');
});

test('seed lists must be ascending, unique and non-zero', () => {
  const ring = encodeWith(encodeRing, dividedRing().toState());
  const withSeeds = (...names: number[]): Uint8Array =>
    Uint8Array.from([1, 5, ...ring, ...rawBytes((w) => {
      w.u16(names.length);
      for (const n of names) w.u48(n);
    })]);
  const ok = decode(withSeeds(A, B));
  assert.equal(ok.kind === IpamMessageKind.State ? ok.ring?.seeds : undefined, [A, B]);
  expectDecodeError(decode, withSeeds(B, A), 'bad-value');
  expectDecodeError(decode, withSeeds(A, A), 'bad-value');
  expectDecodeError(decode, withSeeds(0, A), 'bad-value');
  const short = withSeeds(A, B).subarray(0, -3);
  expectDecodeError(decode, short, 'too-large');
});

test('subnets not aligned to their prefix are rejected', () => {
  for (const kind of [IpamMessageKind.SpaceRequest, IpamMessageKind.SpaceDenied]) {
    expectDecodeError(decode, Uint8Array.from([kind, 10, 32, 1, 1, 24]), 'bad-value');
    expectDecodeError(decode, Uint8Array.from([kind, 10, 48, 0, 0, 11]), 'bad-value'); // 10.48.0.0 is inside 10.32.0.0/11
    assert.ok(decode(Uint8Array.from([kind, 10, 48, 0, 0, 12])), '10.48.0.0/12 is aligned');
    expectDecodeError(decode, Uint8Array.from([kind, 0, 0, 0, 1, 0]), 'bad-value');
    assert.ok(decode(Uint8Array.from([kind, 10, 32, 1, 1, 32])));
  }
});

test('prefix lengths above 32 are rejected', () => {
  for (const kind of [IpamMessageKind.SpaceRequest, IpamMessageKind.SpaceDenied]) {
    for (const prefix of [33, 64, 255]) expectDecodeError(decode, Uint8Array.from([kind, 0, 0, 0, 0, prefix]), 'bad-value');
  }
});

test('a state whose ring or paxos part is invalid is rejected', () => {
  // Flag says ring, but the ring's token lies outside its range.
  const badRing = rawBytes((w) => w.u8(1).u8(1).u32(0x0a000000).u32(64).u32(1).u32(0x0b000000).u48(A).u64(0n).u32(0));
  expectDecodeError(decode, badRing, 'bad-value');
  // Flag says paxos, but it lists no node.
  expectDecodeError(decode, rawBytes((w) => w.u8(1).u8(2).u16(0)), 'bad-value');
  // Flag says ring and paxos, but only the ring is there.
  const ringOnly = encode({ kind: IpamMessageKind.State, ring: dividedRing().toState(), paxos: undefined });
  const claimsMissing = ringOnly.slice();
  claimsMissing[1] = 3;
  expectDecodeError(decode, claimsMissing, 'short-read');
});

test('trailing bytes are rejected by decodeWith; decodeIpamMessage alone stops at the message end', () => {
  const messages: IpamMessage[] = [
    { kind: IpamMessageKind.State, ring: undefined, paxos: undefined },
    { kind: IpamMessageKind.State, ring: dividedRing().toState(), paxos: decidedPaxos() },
    { kind: IpamMessageKind.SpaceRequest, subnet: { start: 0x0a200000, prefix: 16 } },
    { kind: IpamMessageKind.SpaceDenied, subnet: { start: 0x0a200000, prefix: 16 } },
    { kind: IpamMessageKind.ClaimRequest, address: 0x0a200001 },
  ];
  for (const m of messages) {
    const bytes = encode(m);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expectDecodeError(decode, longer, 'trailing-bytes');
    const r = new Reader(longer);
    assert.equal(comparable(decodeIpamMessage(r)), comparable(m));
    assert.is(r.remaining, 1);
  }
});

test('truncated messages are short reads', () => {
  expectDecodeError(decode, new Uint8Array(0), 'short-read');
  expectDecodeError(decode, Uint8Array.from([1]), 'short-read');
  expectDecodeError(decode, Uint8Array.from([2, 10, 32, 0, 0]), 'short-read');
  expectDecodeError(decode, Uint8Array.from([4, 10, 32, 0]), 'short-read');
});

test('fuzz: random and mutated messages only give DecodeErrors', () => {
  fuzzDecoder(decode, messageArb.map(encode));
  // What decodes must also be usable: rings rebuild, paxos claims merge.
  fuzzDecoder((bytes) => {
    const m = decode(bytes);
    if (m.kind === IpamMessageKind.State) {
      if (m.ring) Ring.fromState(m.ring);
      if (m.paxos) new PaxosNode({ name: A, uid: 1n }, 2).merge(m.paxos);
    }
  }, messageArb.map(encode), 500);
});

test.run();
