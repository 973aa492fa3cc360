import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeWith, encodeWith } from '../../../src/wire/codec.js';
import { decodePaxosState, encodePaxosState, type PaxosState } from '../../../src/wire/paxos.js';
import { PaxosNode } from '../../../src/ipam/paxos.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

/** Paxos states as real nodes produce them: some proposals, some gossip. */
const stateArb: fc.Arbitrary<PaxosState> = fc
  .tuple(fc.integer({ min: 1, max: 6 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }), fc.nat())
  .map(([n, steps, pick]) => {
    const nodes = Array.from({ length: n }, (_, i) => new PaxosNode({ name: i + 1, uid: BigInt(i + 7) }, Math.floor(n / 2) + 1));
    for (const [a, b] of steps) {
      const x = nodes[a % n] as PaxosNode;
      const y = nodes[b % n] as PaxosNode;
      if (a % 3 === 0) x.propose();
      y.merge(x.snapshot());
      while (y.think());
    }
    return (nodes[pick % n] as PaxosNode).snapshot();
  });

const encode = (s: PaxosState) => encodeWith(encodePaxosState, s);
const decode = (b: Uint8Array) => decodeWith(decodePaxosState, b);

test('paxos states round-trip', () => {
  fc.assert(
    fc.property(stateArb, (state) => {
      assert.equal([...decode(encode(state))], [...state]);
    }),
    { numRuns: 300 },
  );
});

test('malformed paxos states are rejected', () => {
  expectDecodeError(decode, rawBytes((w) => w.u16(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(0).u64(1n).u8(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(2)), 'bad-value'); // accepted without promise
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(4)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(2).u48(1).u64(1n).u8(0).u48(1).u64(1n).u8(0)), 'bad-value'); // twice
  const unsorted = rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(3).u32(1).u48(1).u64(1n).u32(1).u48(1).u64(1n).u16(2).u48(5).u48(3));
  expectDecodeError(decode, unsorted, 'bad-value');
});

test('fuzz: paxos states only give DecodeErrors', () => {
  fuzzDecoder(decode, stateArb.map(encode));
});

test.run();
