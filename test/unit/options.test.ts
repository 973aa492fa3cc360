import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withDefaults } from '../../src/options.js';

const DEFAULTS = { heartbeatMs: 30_000, timeoutMs: 60_000, label: 'x' };

test('an undefined override keeps the default (a spread would erase it)', () => {
  assert.equal(withDefaults(DEFAULTS, { heartbeatMs: undefined, timeoutMs: 5 }), { heartbeatMs: 30_000, timeoutMs: 5, label: 'x' });
  assert.equal({ ...DEFAULTS, ...{ heartbeatMs: undefined } }.heartbeatMs, undefined, 'what withDefaults exists to avoid');
});

test('no overrides: a copy of the defaults, never the defaults object itself', () => {
  const copy = withDefaults(DEFAULTS, undefined);
  assert.equal(copy, DEFAULTS);
  assert.is.not(copy, DEFAULTS);
});

test('falsy values other than undefined override', () => {
  assert.equal(withDefaults(DEFAULTS, { heartbeatMs: 0, label: '' }), { heartbeatMs: 0, timeoutMs: 60_000, label: '' });
});

test.run();
