// randomTopology: connected, the asked average degree, no self-loops or duplicates, the same graph per seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomTopology } from '../../../src/testing/index.js';
import { OptionsError } from '../../../src/errors.js';

function connected(peers: number, edges: readonly [number, number][]): boolean {
  const seen = new Set([0]);
  const work = [0];
  for (let cur = work.pop(); cur !== undefined; cur = work.pop()) {
    for (const [a, b] of edges) {
      const other = a === cur ? b : b === cur ? a : undefined;
      if (other !== undefined && !seen.has(other)) {
        seen.add(other);
        work.push(other);
      }
    }
  }
  return seen.size === peers;
}

test('a connected graph of the asked average degree, without self-loops or duplicate edges', () => {
  for (const [peers, degree] of [[2, 5], [5, 2], [25, 5], [100, 5], [200, 3]] as const) {
    const edges = randomTopology(peers, { degree, seed: peers });
    assert.ok(connected(peers, edges), `${peers} peers connected`);
    assert.is(edges.length, Math.round((peers * Math.min(degree, peers - 1)) / 2), `${peers} peers, degree ${degree}`);
    assert.ok(edges.every(([a, b]) => a !== b && a >= 0 && b < peers));
    assert.is(new Set(edges.map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`)).size, edges.length);
  }
});

test('the same seed gives the same graph, another seed another', () => {
  assert.equal(randomTopology(50, { seed: 7 }), randomTopology(50, { seed: 7 }));
  assert.not.equal(randomTopology(50, { seed: 7 }), randomTopology(50, { seed: 8 }));
});

test('fewer than two peers is refused', () => {
  assert.throws(() => randomTopology(1), (e: unknown) => e instanceof OptionsError);
});

test.run();
