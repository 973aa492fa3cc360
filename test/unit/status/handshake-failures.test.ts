import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { HandshakeError, ConnectionError, type WeaveErrorCode } from '../../../src/errors.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import type { LinkFailure } from '../../../src/mesh/router.js';
import { HandshakeFailureLog, isOperatorRelevant, sourceHost } from '../../../src/status/handshake-failures.js';

interface Logged {
  level: 'debug' | 'warn';
  fields: Record<string, unknown>;
  message: string;
}

function setup(options: { maxTrackedSources?: number; maxWarningsPerInterval?: number; maxRecent?: number; retentionMs?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const logged: Logged[] = [];
  const method = (level: Logged['level']) => (fields: object, message?: string): void => {
    logged.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
  };
  const log = new HandshakeFailureLog({
    clock,
    logger: { debug: method('debug'), info: () => undefined, warn: method('warn'), error: () => undefined },
    ...options,
  });
  const warns = (): Logged[] => logged.filter((l) => l.level === 'warn');
  return { clock, log, logged, warns };
}

function failure(address: string, code: WeaveErrorCode = 'bad-password', bytesReceived = 40, peer?: number): LinkFailure {
  return { address, error: new HandshakeError(code, `${address}: ${code}`), bytesReceived, ...(peer !== undefined ? { peer } : {}) };
}

test('only failures where the remote spoke and that are not routine are an operator matter', () => {
  for (const code of ['bad-password', 'crypto-mismatch', 'version-mismatch', 'name-collision', 'bad-magic', 'handshake-timeout', 'too-large'] as const) {
    assert.ok(isOperatorRelevant(failure('10.0.0.1:6783', code)), code);
  }
  for (const code of ['closed', 'duplicate-connection', 'connect-to-self', 'connection-limit'] as const) {
    assert.not.ok(isOperatorRelevant(failure('10.0.0.1:6783', code)), code);
  }
  assert.not.ok(isOperatorRelevant(failure('10.0.0.1:6783', 'handshake-timeout', 0)), 'a silent socket or a dropped SYN');
  assert.not.ok(isOperatorRelevant({ address: 'x:1', error: new ConnectionError('closed', 'refused'), bytesReceived: 0 }));
});

test('the source is the host without the port, for every address form, and never throws', () => {
  assert.is(sourceHost('127.0.0.1:40000'), '127.0.0.1');
  assert.is(sourceHost('[::1]:6783'), '::1');
  assert.is(sourceHost('[fe80::1%eth0]:6783'), 'fe80::1%eth0');
  assert.is(sourceHost('::1'), '::1');
  assert.is(sourceHost('peer.example'), 'peer.example');
  assert.is(sourceHost('peer.example:6783'), 'peer.example');
  assert.is(sourceHost('unknown:0'), 'unknown');
  fc.assert(fc.property(fc.string(), (text) => typeof sourceHost(text) === 'string'));
});

test('one warning per source per interval; the next says how many were not logged; other sources are independent', () => {
  const { clock, log, logged, warns } = setup();
  log.record(failure('10.0.0.1:40001'));
  log.record(failure('10.0.0.1:40002'));
  log.record(failure('10.0.0.1:40003', 'version-mismatch'));
  log.record(failure('10.0.0.2:40001'));
  assert.equal(warns().map((w) => w.fields.source), ['10.0.0.1', '10.0.0.2']);
  assert.is(logged.filter((l) => l.level === 'debug').length, 2, 'the held-back ones go to debug');
  clock.advance(59_999);
  log.record(failure('10.0.0.1:40004'));
  assert.is(warns().length, 2, 'still inside the minute');
  clock.advance(1);
  log.record(failure('10.0.0.1:40005'));
  const last = warns()[2];
  assert.is(last?.fields.suppressed, 3);
  assert.match(last?.message ?? '', /^handshake failed: 10\.0\.0\.1:40005: bad-password \(3 more from 10\.0\.0\.1 since the last warning\)$/);
});

test('routine failures are logged at debug only and not listed', () => {
  const { log, logged } = setup();
  log.record(failure('10.0.0.1:6783', 'closed', 0));
  log.record(failure('10.0.0.1:6783', 'handshake-timeout', 0));
  log.record(failure('10.0.0.1:6783', 'duplicate-connection'));
  assert.equal(logged.map((l) => [l.level, l.fields.code]), [['debug', 'closed'], ['debug', 'handshake-timeout'], ['debug', 'duplicate-connection']]);
  assert.equal(log.recent(), []);
});

test('status lists failures per source and code, newest first, keeps a known peer, and forgets them after the retention', () => {
  const { clock, log } = setup({ retentionMs: 600_000 });
  log.record(failure('10.0.0.1:1', 'name-collision', 40, 0x42));
  clock.advance(1000);
  log.record(failure('10.0.0.2:1'));
  clock.advance(1000);
  log.record(failure('10.0.0.1:2', 'name-collision'));
  const list = log.recent();
  assert.equal(list.map((f) => [f.source, f.code, f.count]), [['10.0.0.1', 'name-collision', 2], ['10.0.0.2', 'bad-password', 1]]);
  assert.is(list[0]?.peer, '00:00:00:00:00:42', 'the peer learned earlier is kept');
  assert.is(list[0]?.address, '10.0.0.1:2');
  assert.is(list[0]?.firstAgoMs, 2000);
  assert.is(list[0]?.lastAgoMs, 0);
  clock.advance(599_001);
  assert.equal(log.recent().map((f) => f.source), ['10.0.0.1'], 'the older entry left after ten minutes');
  clock.advance(1000);
  assert.equal(log.recent(), []);
});

test('many sources at once: warnings stop at the overall budget, and the next one says how many were not logged', () => {
  const { clock, log, warns } = setup({ maxWarningsPerInterval: 5 });
  for (let i = 0; i < 50; i++) log.record(failure(`10.1.0.${i}:1`));
  assert.is(warns().length, 5);
  clock.advance(12_000); // one token back (60 s / 5)
  log.record(failure('10.2.0.1:1'));
  assert.is(warns().length, 6);
  assert.is(warns()[5]?.fields.unloggedFromOthers, 45);
});

test('memory stays bounded whatever the sources, and a source never warns twice within the interval while tracked', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ source: fc.integer({ min: 0, max: 5000 }), step: fc.integer({ min: 0, max: 20_000 }), code: fc.constantFrom<WeaveErrorCode>('bad-password', 'crypto-mismatch', 'closed') }), { maxLength: 400 }),
      (events) => {
        const { clock, log, warns } = setup({ maxTrackedSources: 64, maxRecent: 8, maxWarningsPerInterval: 1000 });
        const lastWarn = new Map<string, number>();
        for (const e of events) {
          clock.advance(e.step);
          const before = warns().length;
          log.record(failure(`10.${e.source >> 8}.${e.source & 255}.1:7`, e.code));
          assert.ok(log.trackedSources <= 64, `tracked ${log.trackedSources}`);
          assert.ok(log.recent().length <= 8);
          if (warns().length > before) {
            const source = warns()[before]?.fields.source as string;
            const previous = lastWarn.get(source);
            // With fewer distinct sources than the cap nothing is evicted, so the interval holds exactly.
            if (previous !== undefined && new Set(events.map((x) => x.source)).size <= 64) assert.ok(clock.now() - previous >= 60_000);
            lastWarn.set(source, clock.now());
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});

test.run();
