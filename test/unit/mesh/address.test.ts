import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { OptionsError } from '../../../src/errors.js';
import { canonicalAddress, parseHostPort, parseListenAddress } from '../../../src/mesh/address.js';

function refused(fn: () => unknown, message: RegExp): void {
  try {
    fn();
    assert.unreachable('accepted');
  } catch (error) {
    assert.instance(error, OptionsError);
    assert.match((error as Error).message, message);
  }
}

test('peer addresses: host names, IPv4, IPv6 bare or in brackets, with or without a port', () => {
  assert.equal(parseHostPort('10.0.0.2'), { host: '10.0.0.2', port: 6783 });
  assert.equal(parseHostPort('10.0.0.2:7000'), { host: '10.0.0.2', port: 7000 });
  assert.equal(parseHostPort('host-1.example.com:1'), { host: 'host-1.example.com', port: 1 });
  assert.equal(parseHostPort('db_1'), { host: 'db_1', port: 6783 });
  assert.equal(parseHostPort('fd00::1'), { host: 'fd00::1', port: 6783 });
  assert.equal(parseHostPort('[fd00::1]:9'), { host: 'fd00::1', port: 9 });
  assert.equal(parseHostPort('[::ffff:10.0.0.1]'), { host: '::ffff:10.0.0.1', port: 6783 });
  assert.is(canonicalAddress('127.0.0.1'), '127.0.0.1:6783');
});

test('peer addresses nobody can dial are refused, saying what is wrong and what to write', () => {
  refused(() => parseHostPort('::::'), /peer address "::::" is not valid: "::::" is neither an IP address nor a host name.*HOST:PORT/);
  refused(() => parseHostPort('[::::]:6783'), /"::::" is not an IPv6 address/);
  refused(() => parseHostPort('[10.0.0.1]:6783'), /"10\.0\.0\.1" is not an IPv6 address/);
  refused(() => parseHostPort(':6783'), /the host is empty/);
  refused(() => parseHostPort('a b:6783'), /neither an IP address nor a host name/);
  refused(() => parseHostPort('host:'), /port "" is not a number/);
  refused(() => parseHostPort('host:0'), /port 0 is out of range 1-65535/);
  refused(() => parseHostPort('host:70000'), /out of range/);
  refused(() => parseHostPort('-bad.example'), /neither an IP address nor a host name/);
  refused(() => parseHostPort('300.1.1.1'), /neither an IP address nor a host name/);
  refused(() => parseHostPort(`${'a'.repeat(64)}.example`), /neither an IP address nor a host name/);
});

test('listen addresses must name a local IP address; "not-an-address" is refused with examples', () => {
  assert.equal(parseListenAddress('0.0.0.0:6783'), { host: '0.0.0.0', port: 6783 });
  assert.equal(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.equal(parseListenAddress('[::]:6783'), { host: '::', port: 6783 });
  assert.equal(parseListenAddress('::1'), { host: '::1', port: 6783 });
  assert.equal(parseListenAddress('localhost:6784', 6784), { host: 'localhost', port: 6784 });
  refused(() => parseListenAddress('not-an-address'), /listen address "not-an-address" is not valid: "not-an-address" is not an IP address.*0\.0\.0\.0:6783/);
  refused(() => parseListenAddress('nope'), /"nope" is not an IP address/);
  refused(() => parseListenAddress('::::'), /"::::" is not an IP address/);
  refused(() => parseListenAddress('10.0.0.1:x'), /port "x" is not a number/);
});

test('fuzz: any text is parsed or refused with an OptionsError, never anything else', () => {
  const text = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.stringMatching(/^[[\]0-9a-f:.]{0,24}$/),
    fc.tuple(fc.ipV6(), fc.integer({ min: -1, max: 70_000 })).map(([h, p]) => `[${h}]:${p}`),
    fc.tuple(fc.domain(), fc.integer({ min: -1, max: 70_000 })).map(([h, p]) => `${h}:${p}`),
  );
  fc.assert(
    fc.property(text, (t) => {
      for (const parse of [parseHostPort, parseListenAddress]) {
        try {
          const { host, port } = parse(t);
          assert.ok(host.length > 0 && Number.isInteger(port) && port >= 0 && port <= 65535);
        } catch (error) {
          if (!(error instanceof OptionsError)) throw error;
        }
      }
    }),
    { numRuns: 3000 },
  );
});

test.run();
