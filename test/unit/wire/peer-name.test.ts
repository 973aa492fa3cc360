import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { formatPeerName, isPeerName, parsePeerName, randomPeerName } from '../../../src/wire/peer-name.js';
import { DecodeError } from '../../../src/errors.js';
import { seededRandom } from '../../../src/random.js';

test('full MAC form parses and formats back', () => {
  assert.is(parsePeerName('aa:bb:cc:dd:ee:ff'), 0xaabbccddeeff);
  assert.is(formatPeerName(0xaabbccddeeff), 'aa:bb:cc:dd:ee:ff');
});

test(':: stands for a run of zero bytes', () => {
  assert.is(parsePeerName('::1'), 1);
  assert.is(parsePeerName('1::'), 0x010000000000);
  assert.is(parsePeerName('a:b::c'), 0x0a0b0000000c);
  assert.is(formatPeerName(parsePeerName('::1')), '00:00:00:00:00:01');
});

test('malformed names are DecodeErrors', () => {
  for (const bad of ['', 'aa:bb', '1::2::3', 'zz:00:00:00:00:00', '1:2:3:4:5:6:7', '1:2:3::4:5:6', 'abc::']) {
    assert.throws(() => parsePeerName(bad), (e: unknown) => e instanceof DecodeError, bad);
  }
});

test('format then parse is the identity for every 48-bit name', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (n) => {
      assert.is(parsePeerName(formatPeerName(n)), n);
    }),
  );
});

test('random names are locally administered unicast', () => {
  const rnd = seededRandom(7);
  for (let i = 0; i < 100; i++) {
    const n = randomPeerName((b) => rnd.fill(b));
    assert.ok(isPeerName(n));
    const first = Math.floor(n / 2 ** 40);
    assert.is(first & 0x02, 0x02);
    assert.is(first & 0x01, 0);
  }
});

test('fuzz: any text either parses to a valid name or is a DecodeError', () => {
  const text = fc.oneof(
    fc.string({ maxLength: 24 }),
    fc.stringMatching(/^[0-9a-fA-F:]{0,20}$/),
    fc.array(fc.stringMatching(/^[0-9a-f]{0,3}$/), { maxLength: 8 }).map((g) => g.join(':')),
  );
  fc.assert(
    fc.property(text, (t) => {
      try {
        const n = parsePeerName(t);
        assert.ok(Number.isInteger(n) && n >= 0 && n < 2 ** 48);
      } catch (e) {
        assert.instance(e, DecodeError);
      }
    }),
    { numRuns: 3000 },
  );
});

test.run();
