import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Writer, decodeWith, encodeWith } from '../../../src/wire/codec.js';
import {
  canonicalAddress,
  decodeRecords,
  encodeRecords,
  formatAddress,
  isNormalisedName,
  parseAddress,
  recordKey,
  MAX_RECORD_VERSION,
  type DnsRecord,
} from '../../../src/wire/dns-records.js';
import { fuzzDecoder, expectDecodeError, rawBytes } from '../../helpers/fuzz.js';

const labelArb = fc.stringMatching(/^[a-z0-9_](?:[a-z0-9_-]{0,8}[a-z0-9_])?$/);
const nameArb = fc.array(labelArb, { minLength: 1, maxLength: 4 }).map((labels) => `${labels.join('.')}.`);
const v4Arb = fc.uint8Array({ minLength: 4, maxLength: 4 });
// Zero-heavy IPv6 so '::' compression is exercised.
const v6Arb = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff])));
const addressArb = fc.oneof(v4Arb, v6Arb).map(formatAddress);
const idArb = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => new TextEncoder().encode(s).byteLength <= 255);

const recordArb: fc.Arbitrary<DnsRecord> = fc.record(
  {
    name: nameArb,
    address: addressArb,
    id: idArb,
    origin: fc.integer({ min: 1, max: 2 ** 48 - 1 }),
    originUid: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
    version: fc.integer({ min: 1, max: MAX_RECORD_VERSION }),
    tombstone: fc.boolean(),
  },
  { noNullPrototype: true },
);
const messageArb = fc.uniqueArray(recordArb, { maxLength: 8, selector: recordKey });

const encode = (records: readonly DnsRecord[]): Uint8Array => encodeWith(encodeRecords, records);
const decode = (bytes: Uint8Array): DnsRecord[] => decodeWith(decodeRecords, bytes);

const sample: DnsRecord = {
  name: 'db.weave.local.',
  address: '10.32.0.1',
  id: 'c1',
  origin: 0x0a0000000001,
  originUid: 7n,
  version: 3,
  tombstone: true,
};

// A valid record's bytes with each field replaceable, for hand-made rejects.
function recordBytes(w: Writer, f: { name?: string; family?: number; address?: number[]; origin?: number; uid?: bigint; version?: bigint; flags?: number } = {}): Writer {
  const address = f.address ?? [10, 32, 0, 1];
  w.str8(f.name ?? 'db.weave.local.').u8(f.family ?? 4);
  for (const b of address) w.u8(b);
  return w.str8('c1').u48(f.origin ?? 5).u64(f.uid ?? 1n).u64(f.version ?? 1n).u8(f.flags ?? 0);
}

test('every message round-trips', () => {
  fc.assert(
    fc.property(messageArb, (records) => {
      assert.equal(decode(encode(records)), records);
    }),
  );
});

test('the layout is the documented one', () => {
  const expected = rawBytes((w) =>
    w.u32(1).str8('db.weave.local.').u8(4).u8(10).u8(32).u8(0).u8(1).str8('c1').u48(0x0a0000000001).u64(7n).u64(3n).u8(1),
  );
  assert.equal(encode([sample]), expected);
  const v6 = encode([{ ...sample, address: 'fd00::1', tombstone: false }]);
  assert.equal(v6.length, expected.length + 12);
  assert.equal(decode(v6)[0]?.address, 'fd00::1');
});

test('an empty message is four zero bytes', () => {
  assert.equal(encode([]), new Uint8Array(4));
  assert.equal(decode(new Uint8Array(4)), []);
});

test('address families other than 4 and 6 are rejected', () => {
  for (const family of [0, 5, 16, 255]) {
    expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { family })), 'bad-value');
  }
});

test('names that are not normalised are rejected', () => {
  const bad = ['', '.', 'db.weave.local', 'DB.weave.local.', 'db..local.', '-db.local.', 'db-.local.', 'db local.', 'dé.local.', `${'a'.repeat(64)}.local.`, `${'abcdefghi.'.repeat(25)}abcd.`];
  for (const name of bad) {
    assert.not.ok(isNormalisedName(name), name);
    expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { name })), 'bad-value');
  }
  // The longest names allowed: 63-character labels, 253 characters before the final dot.
  const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.`;
  assert.is(longest.length, 254);
  assert.ok(isNormalisedName(longest));
  assert.equal(decode(rawBytes((w) => recordBytes(w.u32(1), { name: longest })))[0]?.name, longest);
});

test('origin 0, uid 0, version 0 and versions past 2^53 - 1 are rejected', () => {
  expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { origin: 0 })), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { uid: 0n })), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { version: 0n })), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { version: 2n ** 53n })), 'bad-value');
  assert.is(decode(rawBytes((w) => recordBytes(w.u32(1), { version: 2n ** 53n - 1n })))[0]?.version, MAX_RECORD_VERSION);
});

test('unknown flag bits are rejected', () => {
  for (const flags of [0x02, 0x80, 0xff]) {
    expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(1), { flags })), 'bad-value');
  }
});

test('the same record key twice in one message is rejected, whatever the versions', () => {
  expectDecodeError(decode, rawBytes((w) => recordBytes(recordBytes(w.u32(2)), { version: 2n, flags: 1 })), 'bad-value');
  // Same name and address from another origin is another record.
  assert.is(decode(rawBytes((w) => recordBytes(recordBytes(w.u32(2)), { origin: 6 }))).length, 2);
});

test('a count larger than the bytes could hold is rejected before allocating', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(0xffffffff)), 'too-large');
  expectDecodeError(decode, rawBytes((w) => recordBytes(w.u32(2))), 'too-large');
});

test('truncation is a short-read and trailing bytes are rejected by decodeWith', () => {
  const bytes = encode([sample, { ...sample, origin: 9 }]);
  expectDecodeError(decode, bytes.subarray(0, bytes.length - 1), 'short-read');
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  expectDecodeError(decode, longer, 'trailing-bytes');
});

test('the encoder refuses records peers would reject', () => {
  const refuses = (r: DnsRecord): void => {
    assert.throws(() => encode([r]), (e: unknown) => e instanceof RangeError);
  };
  refuses({ ...sample, name: 'DB.weave.local.' });
  refuses({ ...sample, name: 'db.weave.local' });
  refuses({ ...sample, address: '10.32.0.01' });
  refuses({ ...sample, address: 'FD00::1' }); // not canonical
  refuses({ ...sample, address: 'fd00:0::1' });
  refuses({ ...sample, id: 'x'.repeat(256) });
  refuses({ ...sample, id: '\ud800' });
  refuses({ ...sample, version: 0 });
  refuses({ ...sample, version: 1.5 });
  refuses({ ...sample, version: 2 ** 53 });
  refuses({ ...sample, origin: 0 });
  refuses({ ...sample, originUid: 0n });
});

test('addresses: strict parsing and RFC 5952 canonical text', () => {
  const cases: Array<[string, string | undefined]> = [
    ['10.32.0.1', '10.32.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['010.0.0.1', undefined],
    ['256.0.0.1', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of equal runs
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['1::2::3', undefined],
    ['12345::', undefined],
    ['::g', undefined],
    ['1:2:3:4:5:6:7:8::', undefined],
    ['::1.2.3.4:5', undefined],
    ['fe80::1%eth0', undefined],
    ['', undefined],
  ];
  for (const [text, canonical] of cases) assert.is(canonicalAddress(text), canonical, text);
});

test('IPv6 canonical text agrees with WHATWG URL serialisation and parses back', () => {
  fc.assert(
    fc.property(v6Arb, (bytes) => {
      const text = formatAddress(bytes);
      assert.is(`[${text}]`, new URL(`http://[${text}]/`).hostname);
      assert.equal(parseAddress(text), bytes);
    }),
  );
});

test('fuzz: random and mutated bytes only give DecodeErrors', () => {
  fuzzDecoder(decode, messageArb.map(encode));
});

test.run();
