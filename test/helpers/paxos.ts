// Paxos test data: claims states as real nodes produce them.
import fc from 'fast-check';
import { PaxosNode } from '../../src/ipam/paxos.js';
import type { PaxosState } from '../../src/wire/paxos.js';

/** Paxos states as real nodes produce them: some proposals, some gossip. */
export const paxosStateArb: fc.Arbitrary<PaxosState> = fc
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
