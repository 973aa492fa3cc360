import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Writer, decodeWith, encodeWith } from '../../../src/wire/codec.js';
import {
  HEADER_BYTES,
  MAGIC,
  MAX_CAPABILITIES,
  PROTOCOL_MAX_VERSION,
  PROTOCOL_MIN_VERSION,
  decodeFeatures,
  decodeHeader,
  encodeFeatures,
  encodeHeader,
  negotiateVersion,
  type FeatureRecord,
  type ProtocolHeader,
} from '../../../src/wire/handshake.js';
import { fuzzDecoder, expectDecodeError, rawBytes } from '../../helpers/fuzz.js';

const utf8 = new TextEncoder();

/** Cuts `s` at a code point boundary so its UTF-8 form is at most `max` bytes. */
function fitUtf8(s: string, max: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = utf8.encode(ch).byteLength;
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

// Any code point (a leading U+FEFF included), up to 255 UTF-8 bytes, with the exact-fit edge cases weighted in.
const str8Arb: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 255, size: 'max' }).map((s) => fitUtf8(s, 255)),
    fc.constantFrom('', 'x'.repeat(255), 'é'.repeat(127) + 'x', '€'.repeat(85), '😀'.repeat(63) + 'abc', '\uFEFFalpha'),
  );

const nameArb = fc.integer({ min: 1, max: 2 ** 48 - 1 });
const u64Arb = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const u8Arb = fc.integer({ min: 0, max: 255 });

const headerArb: fc.Arbitrary<ProtocolHeader> = fc
  .tuple(u8Arb, u8Arb)
  .map(([a, b]) => ({ minVersion: Math.min(a, b), maxVersion: Math.max(a, b) }));

const featuresArb: fc.Arbitrary<FeatureRecord> = fc.record(
  {
    name: nameArb,
    nickname: str8Arb,
    uid: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
    connectionId: u64Arb,
    listenPort: fc.integer({ min: 0, max: 0xffff }),
    capabilities: fc.array(str8Arb, { maxLength: MAX_CAPABILITIES }),
  },
  { noNullPrototype: true },
);

const encodeH = (h: ProtocolHeader): Uint8Array => encodeWith(encodeHeader, h);
const decodeH = (bytes: Uint8Array): ProtocolHeader => decodeWith(decodeHeader, bytes);
const encodeF = (f: FeatureRecord): Uint8Array => encodeWith(encodeFeatures, f);
const decodeF = (bytes: Uint8Array): FeatureRecord => decodeWith(decodeFeatures, bytes);

const sample: FeatureRecord = {
  name: 0x0a0000000001,
  nickname: 'alpha',
  uid: 7n,
  connectionId: 0x0102030405060708n,
  listenPort: 6783,
  capabilities: ['gossip', 'overlay'],
};

/** The feature record fields up to (not including) the capability count, with overridable values. */
function featurePrefix(w: Writer, over: { name?: number; uid?: bigint } = {}): Writer {
  return w.u48(over.name ?? 5).str8('n').u64(over.uid ?? 1n).u64(9n).u16(6783);
}

// ---- header ----

test('every version range round-trips through the header', () => {
  fc.assert(
    fc.property(headerArb, (h) => {
      const bytes = encodeH(h);
      assert.is(bytes.byteLength, HEADER_BYTES);
      assert.equal(decodeH(bytes), h);
    }),
  );
});

test('the header is the magic "WVTS" then min and max version', () => {
  assert.equal(encodeH({ minVersion: 1, maxVersion: 3 }), new Uint8Array([0x57, 0x56, 0x54, 0x53, 1, 3]));
  assert.equal(MAGIC, utf8.encode('WVTS'));
  assert.ok(PROTOCOL_MIN_VERSION <= PROTOCOL_MAX_VERSION);
});

test('any change to the magic is a bad-magic DecodeError', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 255 }), (at, delta) => {
      const bytes = encodeH({ minVersion: 1, maxVersion: 1 });
      bytes[at] = ((bytes[at] as number) + delta) & 0xff;
      expectDecodeError(decodeH, bytes, 'bad-magic');
    }),
  );
  expectDecodeError(decodeH, utf8.encode('GET / HTTP/1.1\r\n'), 'bad-magic');
});

test('a header whose minimum version exceeds its maximum is rejected', () => {
  expectDecodeError(decodeH, rawBytes((w) => w.bytes(MAGIC).u8(2).u8(1)), 'bad-value');
  expectDecodeError(decodeH, rawBytes((w) => w.bytes(MAGIC).u8(255).u8(0)), 'bad-value');
  assert.equal(decodeH(rawBytes((w) => w.bytes(MAGIC).u8(4).u8(4))), { minVersion: 4, maxVersion: 4 });
});

test('a truncated header is a short-read and trailing bytes are rejected by decodeWith', () => {
  const bytes = encodeH({ minVersion: 1, maxVersion: 2 });
  for (let n = 0; n < bytes.length; n++) expectDecodeError(decodeH, bytes.subarray(0, n), 'short-read');
  expectDecodeError(decodeH, rawBytes((w) => w.bytes(bytes).u8(0)), 'trailing-bytes');
});

// ---- version negotiation ----

/** The highest version inside both ranges, by trying every version. */
function bruteForceVersion(a: ProtocolHeader, b: ProtocolHeader): number | undefined {
  for (let v = 255; v >= 0; v--) {
    if (v >= a.minVersion && v <= a.maxVersion && v >= b.minVersion && v <= b.maxVersion) return v;
  }
  return undefined;
}

test('overlapping ranges agree on the lower of the two maximums', () => {
  assert.is(negotiateVersion({ minVersion: 1, maxVersion: 3 }, { minVersion: 2, maxVersion: 5 }), 3);
  assert.is(negotiateVersion({ minVersion: 2, maxVersion: 5 }, { minVersion: 1, maxVersion: 3 }), 3);
  assert.is(negotiateVersion({ minVersion: 1, maxVersion: 9 }, { minVersion: 4, maxVersion: 6 }), 6);
  assert.is(negotiateVersion({ minVersion: 1, maxVersion: 2 }, { minVersion: 2, maxVersion: 3 }), 2);
  assert.is(negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 1, maxVersion: 1 }), 1);
  const ours = { minVersion: PROTOCOL_MIN_VERSION, maxVersion: PROTOCOL_MAX_VERSION };
  assert.is(negotiateVersion(ours, ours), PROTOCOL_MAX_VERSION);
});

test('disjoint ranges have no common version', () => {
  assert.is(negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 2, maxVersion: 2 }), undefined);
  assert.is(negotiateVersion({ minVersion: 3, maxVersion: 7 }, { minVersion: 0, maxVersion: 2 }), undefined);
  assert.is(negotiateVersion({ minVersion: 0, maxVersion: 2 }, { minVersion: 3, maxVersion: 7 }), undefined);
});

test('negotiation matches a brute-force search over every version', () => {
  fc.assert(
    fc.property(headerArb, headerArb, (a, b) => {
      assert.is(negotiateVersion(a, b), bruteForceVersion(a, b));
    }),
    { numRuns: 2000 },
  );
  // Small ranges overlap often, so both outcomes are well covered.
  const small = fc
    .tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 }))
    .map(([x, y]) => ({ minVersion: Math.min(x, y), maxVersion: Math.max(x, y) }));
  fc.assert(
    fc.property(small, small, (a, b) => {
      assert.is(negotiateVersion(a, b), bruteForceVersion(a, b));
    }),
    { numRuns: 2000 },
  );
});

// ---- feature record ----

test('every feature record round-trips', () => {
  fc.assert(
    fc.property(featuresArb, (f) => {
      assert.equal(decodeF(encodeF(f)), f);
    }),
    { numRuns: 300 },
  );
});

test('feature records at the limits round-trip', () => {
  const extreme: FeatureRecord = {
    name: 2 ** 48 - 1,
    nickname: 'é'.repeat(127) + 'x',
    uid: 2n ** 64n - 1n,
    connectionId: 2n ** 64n - 1n,
    listenPort: 0xffff,
    capabilities: Array.from({ length: MAX_CAPABILITIES }, (_, i) => String(i % 10).repeat(255)),
  };
  assert.equal(decodeF(encodeF(extreme)), extreme);
  const least: FeatureRecord = { name: 1, nickname: '', uid: 1n, connectionId: 0n, listenPort: 0, capabilities: [] };
  assert.equal(decodeF(encodeF(least)), least);
});

test('the feature record layout is the documented one', () => {
  const expected = rawBytes((w) =>
    w.u48(0x0a0000000001).str8('alpha').u64(7n).u64(0x0102030405060708n).u16(6783).u8(2).str8('gossip').str8('overlay'),
  );
  assert.equal(encodeF(sample), expected);
});

test('a zero peer name is rejected', () => {
  expectDecodeError(decodeF, rawBytes((w) => featurePrefix(w, { name: 0 }).u8(0)), 'bad-value');
  expectDecodeError(decodeF, encodeF({ ...sample, name: 0 }), 'bad-value');
});

test('a zero uid is rejected', () => {
  expectDecodeError(decodeF, rawBytes((w) => featurePrefix(w, { uid: 0n }).u8(0)), 'bad-value');
  expectDecodeError(decodeF, encodeF({ ...sample, uid: 0n }), 'bad-value');
});

test('more than 32 capabilities are rejected before reading them', () => {
  const caps = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${i}`);
  assert.is(decodeF(encodeF({ ...sample, capabilities: caps(32) })).capabilities.length, 32);
  expectDecodeError(
    decodeF,
    rawBytes((w) => {
      featurePrefix(w).u8(33);
      for (const c of caps(33)) w.str8(c);
    }),
    'too-large',
  );
  // The count alone is enough: nothing follows it.
  expectDecodeError(decodeF, rawBytes((w) => featurePrefix(w).u8(33)), 'too-large');
  expectDecodeError(decodeF, rawBytes((w) => featurePrefix(w).u8(255)), 'too-large');
});

test('invalid UTF-8 in the nickname or a capability is a bad-value DecodeError', () => {
  const invalid = [
    [0xc3, 0x28], // bad continuation byte
    [0xff], // never valid
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xc0, 0xaf], // overlong "/"
    [0xe2, 0x82], // truncated sequence
  ];
  for (const bad of invalid) {
    const nick = new Uint8Array(bad);
    expectDecodeError(decodeF, rawBytes((w) => w.u48(5).u8(nick.length).bytes(nick).u64(1n).u64(0n).u16(0).u8(0)), 'bad-value');
    expectDecodeError(decodeF, rawBytes((w) => featurePrefix(w).u8(2).str8('ok').u8(nick.length).bytes(nick)), 'bad-value');
  }
});

test('every truncation is a short-read and trailing bytes are rejected by decodeWith', () => {
  fc.assert(
    fc.property(featuresArb, fc.nat(), (f, cut) => {
      const bytes = encodeF(f);
      expectDecodeError(decodeF, bytes.subarray(0, cut % bytes.length), 'short-read');
    }),
    { numRuns: 300 },
  );
  expectDecodeError(decodeF, rawBytes((w) => w.bytes(encodeF(sample)).u8(0)), 'trailing-bytes');
  expectDecodeError(decodeF, rawBytes((w) => w.bytes(encodeF({ ...sample, capabilities: [] })).str8('extra')), 'trailing-bytes');
});

test('the encoder refuses strings longer than 255 bytes', () => {
  assert.throws(() => encodeF({ ...sample, nickname: 'n'.repeat(256) }), (e: unknown) => e instanceof RangeError);
  assert.throws(() => encodeF({ ...sample, capabilities: ['€'.repeat(86)] }), (e: unknown) => e instanceof RangeError);
});

// ---- fuzz ----

test('fuzz: the header decoder only gives DecodeErrors', () => {
  fuzzDecoder(decodeH, headerArb.map(encodeH));
});

test('fuzz: the feature record decoder only gives DecodeErrors', () => {
  fuzzDecoder(decodeF, featuresArb.map(encodeF), 1000);
});

test('the feature encoder refuses what the layout cannot hold instead of wrapping', () => {
  const caps = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);
  assert.throws(() => encodeWith(encodeFeatures, { ...sample, capabilities: caps(33) }), (e: unknown) => e instanceof RangeError);
  assert.throws(() => encodeWith(encodeFeatures, { ...sample, capabilities: caps(256) }), (e: unknown) => e instanceof RangeError);
  assert.throws(() => encodeWith(encodeFeatures, { ...sample, listenPort: 70000 }), (e: unknown) => e instanceof RangeError);
  assert.throws(() => encodeWith(encodeFeatures, { ...sample, name: 2 ** 48 + 5 }), (e: unknown) => e instanceof RangeError);
});

test('a string starting with U+FEFF round-trips (it is content, not a byte-order mark)', () => {
  const f = { ...sample, nickname: '\uFEFFalpha' };
  assert.equal(decodeWith(decodeFeatures, encodeWith(encodeFeatures, f)), f);
});

test.run();
