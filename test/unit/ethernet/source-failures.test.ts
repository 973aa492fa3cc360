import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { SourceFailures } from '../../../src/ethernet/source-failures.js';

test('failures are counted per address and reason; decryption failures spend that address budget only', () => {
  const table = new SourceFailures({ decryptBurst: 3, decryptEveryMs: 1000 });
  for (let i = 0; i < 3; i++) table.record('192.0.2.7', 'auth-failed', 0, true);
  table.record('192.0.2.7', 'unknown-peer', 0);
  table.record('198.51.100.1', 'malformed', 0);
  assert.not.ok(table.mayDecrypt('192.0.2.7', 0), 'three failed decryptions spent the budget');
  assert.ok(table.mayDecrypt('198.51.100.1', 0), 'cheap failures do not');
  assert.ok(table.mayDecrypt('203.0.113.9', 0), 'an address never seen may decrypt');
  const [worst, other] = table.status(0);
  assert.equal(worst, { address: '192.0.2.7', failures: 4, reasons: { 'auth-failed': 3, 'unknown-peer': 1 }, lastAt: 0, blocked: true });
  assert.equal(other?.address, '198.51.100.1');
  assert.is(other?.blocked, false);
  // The budget comes back at one decryption per second.
  assert.not.ok(table.mayDecrypt('192.0.2.7', 999));
  assert.ok(table.mayDecrypt('192.0.2.7', 1000));
  table.record('192.0.2.7', 'auth-failed', 1000, true);
  assert.not.ok(table.mayDecrypt('192.0.2.7', 1500));
});

test('the table stays bounded: the least recently failing address makes room', () => {
  const table = new SourceFailures({ maxSources: 3 });
  table.record('10.0.0.1', 'unknown-peer', 0);
  table.record('10.0.0.2', 'unknown-peer', 1);
  table.record('10.0.0.3', 'unknown-peer', 2);
  table.record('10.0.0.1', 'unknown-peer', 3); // now the most recent
  table.record('10.0.0.4', 'unknown-peer', 4); // evicts 10.0.0.2
  assert.is(table.size, 3);
  assert.equal(table.status(5).map((s) => s.address).sort(), ['10.0.0.1', '10.0.0.3', '10.0.0.4']);
  assert.is(table.status(5, 1)[0]?.failures, 2, 'status is sorted by failures and limited');
});

test('property: any sequence of failures keeps the table within bounds and every count consistent', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom('auth-failed', 'unknown-peer', 'malformed'), fc.boolean()), { maxLength: 300 }),
      (events) => {
        const table = new SourceFailures({ maxSources: 16, decryptBurst: 2 });
        let now = 0;
        for (const [source, reason, decryption] of events) table.record(`10.1.0.${source}`, reason, (now += 10), decryption);
        assert.ok(table.size <= 16);
        for (const s of table.status(now, 100)) {
          assert.is(Object.values(s.reasons).reduce((a, b) => a + b, 0), s.failures);
          assert.is(s.blocked, !table.mayDecrypt(s.address, now));
        }
      },
    ),
  );
});

test.run();
