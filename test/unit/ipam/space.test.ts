import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Allocations } from '../../../src/ipam/space.js';

test('allocations: counts, lowest free address and free runs inside a range', () => {
  const a = new Allocations();
  for (const x of [10, 11, 13, 20]) a.set(x, x === 20 ? 'web' : 'db');
  assert.is(a.countIn(10, 14), 3);
  assert.is(a.countIn(14, 20), 0);
  assert.is(a.firstFree(10, 30), 12);
  assert.is(a.firstFree(10, 12), undefined, 'all of [10, 12) is taken');
  assert.equal(a.freeRuns(9, 22), [
    { start: 9, end: 10 },
    { start: 12, end: 13 },
    { start: 14, end: 20 },
    { start: 21, end: 22 },
  ]);
  assert.equal(a.addressesOf('db'), [10, 11, 13]);
  a.set(13, 'web'); // moves to another id
  assert.equal(a.addressesOf('db'), [10, 11]);
  assert.equal(a.addressesOf('web'), [13, 20]);
  assert.ok(a.delete(10));
  assert.not.ok(a.delete(10));
  assert.equal([...a], [[11, 'db'], [13, 'web'], [20, 'web']]);
  a.clear();
  assert.is(a.size, 0);
  assert.equal(a.freeRuns(0, 4), [{ start: 0, end: 4 }]);
});

test('allocations agree with a plain map under random set/delete, for every query', () => {
  const op = fc.record({ kind: fc.constantFrom('set', 'delete'), address: fc.integer({ min: 0, max: 63 }), id: fc.constantFrom('a', 'b', 'c') }, { noNullPrototype: true });
  const range = fc.tuple(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 70 }));
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), fc.array(range, { minLength: 1, maxLength: 8 }), (ops, ranges) => {
      const space = new Allocations();
      const model = new Map<number, string>();
      for (const o of ops) {
        if (o.kind === 'set') {
          space.set(o.address, o.id);
          model.set(o.address, o.id);
        } else assert.is(space.delete(o.address), model.delete(o.address));
      }
      assert.is(space.size, model.size);
      assert.equal([...space], [...model].sort((x, y) => x[0] - y[0]));
      for (const id of ['a', 'b', 'c']) assert.equal(space.addressesOf(id), [...model].filter(([, h]) => h === id).map(([x]) => x).sort((x, y) => x - y));
      for (const [start, end] of ranges) {
        const inRange = Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
        assert.is(space.countIn(start, end), inRange.filter((x) => model.has(x)).length);
        assert.is(space.firstFree(start, end), inRange.find((x) => !model.has(x)));
        const runs: { start: number; end: number }[] = [];
        for (const x of inRange) {
          if (model.has(x)) continue;
          const last = runs[runs.length - 1];
          if (last && last.end === x) last.end = x + 1;
          else runs.push({ start: x, end: x + 1 });
        }
        assert.equal(space.freeRuns(start, end), runs);
      }
    }),
    { numRuns: 300 },
  );
});

test.run();
