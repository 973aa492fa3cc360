import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { isLocalPort, MacTable } from '../../../src/ethernet/mac-table.js';

const M1 = 0x02_00_00_00_00_01;
const M2 = 0x02_00_00_00_00_02;
const LOCAL_A = -1;
const LOCAL_B = -2;
const PEER = 0x0a;

test('local ports are negative, peers positive', () => {
  assert.ok(isLocalPort(-1));
  assert.ok(isLocalPort(-1000));
  assert.not.ok(isLocalPort(1));
  assert.not.ok(isLocalPort(2 ** 48 - 1));
});

test('learn reports new, refreshed and moved', () => {
  const t = new MacTable(1000);
  assert.is(t.learn(M1, LOCAL_A, 0), 'new');
  assert.is(t.learn(M1, LOCAL_A, 10), 'refreshed');
  assert.is(t.learn(M1, PEER, 20), 'moved');
  assert.is(t.learn(M1, PEER, 30), 'refreshed');
  assert.is(t.learn(M2, PEER, 30), 'new');
  assert.is(t.size, 2);
});

test('a MAC that moves is re-learned at once (no hold-down)', () => {
  const t = new MacTable(1000);
  t.learn(M1, LOCAL_A, 0);
  assert.is(t.lookup(M1, 0), LOCAL_A);
  assert.is(t.learn(M1, PEER, 0), 'moved');
  assert.is(t.lookup(M1, 0), PEER);
  assert.is(t.learn(M1, LOCAL_B, 1), 'moved');
  assert.is(t.lookup(M1, 1), LOCAL_B);
  assert.equal(t.list(), [{ mac: M1, port: LOCAL_B, seen: 1 }]);
});

test('lookup of an unknown MAC is undefined', () => {
  const t = new MacTable();
  assert.is(t.lookup(M1, 0), undefined);
  t.learn(M2, LOCAL_A, 0);
  assert.is(t.lookup(M1, 0), undefined);
});

test('an entry lives maxAge and expires just after, via lookup', () => {
  const t = new MacTable(1000);
  t.learn(M1, LOCAL_A, 5000);
  assert.is(t.lookup(M1, 6000), LOCAL_A);
  assert.is(t.size, 1);
  assert.is(t.lookup(M1, 6001), undefined);
  assert.is(t.size, 0, 'the expired entry is removed');
  assert.is(t.lookup(M1, 6000), undefined, 'and stays gone');
});

test('refreshing an entry extends its life', () => {
  const t = new MacTable(1000);
  t.learn(M1, LOCAL_A, 0);
  t.learn(M1, LOCAL_A, 900);
  assert.is(t.lookup(M1, 1900), LOCAL_A);
  assert.is(t.lookup(M1, 1901), undefined);
});

test('the default maximum age is 10 minutes', () => {
  const t = new MacTable();
  t.learn(M1, LOCAL_A, 0);
  assert.is(t.lookup(M1, 600_000), LOCAL_A);
  assert.is(t.lookup(M1, 600_001), undefined);
});

test('sweep drops only entries older than maxAge', () => {
  const t = new MacTable(1000);
  t.learn(M1, LOCAL_A, 0);
  t.learn(M2, PEER, 500);
  t.sweep(1000);
  assert.is(t.size, 2);
  t.sweep(1001);
  assert.is(t.size, 1);
  assert.equal(t.list(), [{ mac: M2, port: PEER, seen: 500 }]);
  t.sweep(1501);
  assert.is(t.size, 0);
});

test('forgetPort forgets every MAC behind that port and nothing else', () => {
  const t = new MacTable();
  t.learn(M1, PEER, 0);
  t.learn(M2, PEER, 0);
  t.learn(3, LOCAL_A, 0);
  t.learn(4, PEER + 1, 0);
  t.forgetPort(PEER);
  assert.is(t.lookup(M1, 0), undefined);
  assert.is(t.lookup(M2, 0), undefined);
  assert.is(t.lookup(3, 0), LOCAL_A);
  assert.is(t.lookup(4, 0), PEER + 1);
  t.forgetPort(LOCAL_A);
  assert.equal(t.list(), [{ mac: 4, port: PEER + 1, seen: 0 }]);
});

test('the table agrees with a model map under random learn/lookup/forget', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('learn' as const), mac: fc.integer({ min: 0, max: 5 }), port: fc.integer({ min: -3, max: 3 }), dt: fc.integer({ min: 0, max: 600 }) }, { noNullPrototype: true }),
    fc.record({ kind: fc.constant('lookup' as const), mac: fc.integer({ min: 0, max: 5 }), port: fc.constant(0), dt: fc.integer({ min: 0, max: 600 }) }, { noNullPrototype: true }),
    fc.record({ kind: fc.constant('forget' as const), mac: fc.constant(0), port: fc.integer({ min: -3, max: 3 }), dt: fc.constant(0) }, { noNullPrototype: true }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const t = new MacTable(1000);
      const model = new Map<number, { port: number; seen: number }>();
      let now = 0;
      for (const o of ops) {
        now += o.dt;
        if (o.kind === 'learn') {
          const prev = model.get(o.mac);
          const result = t.learn(o.mac, o.port, now);
          // Re-learning an expired entry that nothing has removed yet is left unspecified.
          if (prev === undefined || now - prev.seen <= 1000) {
            assert.is(result, prev === undefined ? 'new' : prev.port === o.port ? 'refreshed' : 'moved');
          }
          model.set(o.mac, { port: o.port, seen: now });
        } else if (o.kind === 'lookup') {
          const m = model.get(o.mac);
          const live = m !== undefined && now - m.seen <= 1000 ? m.port : undefined;
          if (m !== undefined && live === undefined) model.delete(o.mac);
          assert.is(t.lookup(o.mac, now), live);
        } else {
          for (const [mac, e] of model) if (e.port === o.port) model.delete(mac);
          t.forgetPort(o.port);
        }
      }
    }),
  );
});

test.run();
