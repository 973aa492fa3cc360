import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Writer, decodeWith, encodeWith } from '../../../src/wire/codec.js';
import {
  decodeTopologyUpdate,
  encodeTopologyUpdate,
  type ConnectionSummary,
  type PeerRecord,
  decodeTopologyRequest,
  encodeTopologyRequest,
  MAX_REQUESTED_RECORDS,
} from '../../../src/wire/topology.js';
import { fuzzDecoder, expectDecodeError, rawBytes } from '../../helpers/fuzz.js';

const nameArb = fc.integer({ min: 1, max: 2 ** 48 - 1 });
const u64Arb = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

// Strings whose UTF-8 form fits str8.
const str8Arb = fc.string({ unit: 'grapheme', maxLength: 60 }).filter((s) => new TextEncoder().encode(s).byteLength <= 255);

const connectionArb = (peer: number): fc.Arbitrary<ConnectionSummary> =>
  fc.record({ peer: fc.constant(peer), address: str8Arb, outbound: fc.boolean(), established: fc.boolean() }, { noNullPrototype: true });

const recordArb = (name: number): fc.Arbitrary<PeerRecord> =>
  fc
    .uniqueArray(nameArb.filter((p) => p !== name), { maxLength: 6 })
    .chain((peers) =>
      fc.record(
        {
          name: fc.constant(name),
          nickname: str8Arb,
          uid: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
          version: u64Arb,
          connections: fc.tuple(...peers.map(connectionArb)),
        },
        { noNullPrototype: true },
      ),
    );

const updateArb: fc.Arbitrary<PeerRecord[]> = fc
  .uniqueArray(nameArb, { maxLength: 5 })
  .chain((names) => fc.tuple(...names.map(recordArb)));

const encode = (records: readonly PeerRecord[]): Uint8Array => encodeWith(encodeTopologyUpdate, records);
const decode = (bytes: Uint8Array): PeerRecord[] => decodeWith(decodeTopologyUpdate, bytes);

const sample: PeerRecord[] = [
  {
    name: 0x0a0000000001,
    nickname: 'alpha',
    uid: 7n,
    version: 3n,
    connections: [{ peer: 0x0a0000000002, address: '10.0.0.2:6783', outbound: true, established: true }],
  },
  { name: 0x0a0000000002, nickname: 'beta', uid: 9n, version: 1n, connections: [] },
];

test('every record round-trips', () => {
  fc.assert(
    fc.property(updateArb, (records) => {
      assert.equal(decode(encode(records)), records);
    }),
  );
});

test('the layout is the documented one', () => {
  const bytes = encode([sample[0] as PeerRecord]);
  const expected = rawBytes((w) =>
    w.u32(1).u48(0x0a0000000001).str8('alpha').u64(7n).u64(3n).u16(1).u48(0x0a0000000002).str8('10.0.0.2:6783').u8(0b11),
  );
  assert.equal(bytes, expected);
});

test('an empty update is four zero bytes', () => {
  assert.equal(encode([]), new Uint8Array(4));
  assert.equal(decode(new Uint8Array(4)), []);
});

test('a zero peer name is rejected', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(0).str8('x').u64(1n).u64(1n).u16(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(5).str8('x').u64(1n).u64(1n).u16(1).u48(0).str8('a').u8(0)), 'bad-value');
});

test('a zero uid is rejected', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(5).str8('x').u64(0n).u64(1n).u16(0)), 'bad-value');
});

test('unknown connection flag bits are rejected', () => {
  for (const flags of [0x04, 0x80, 0xff]) {
    expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(5).str8('x').u64(1n).u64(1n).u16(1).u48(6).str8('a').u8(flags)), 'bad-value');
  }
});

test('the same peer twice in one update is rejected', () => {
  const one = (w: Writer): Writer => w.u48(5).str8('x').u64(1n).u64(1n).u16(0);
  expectDecodeError(decode, rawBytes((w) => one(one(w.u32(2)))), 'bad-value');
});

test('the same peer twice in one connection list is rejected', () => {
  expectDecodeError(decode, 
    rawBytes((w) => w.u32(1).u48(5).str8('x').u64(1n).u64(1n).u16(2).u48(6).str8('a').u8(0).u48(6).str8('b').u8(0)),
    'bad-value',
  );
});

test('a peer listing a connection to itself is rejected', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(5).str8('x').u64(1n).u64(1n).u16(1).u48(5).str8('a').u8(0)), 'bad-value');
});

test('record and connection counts larger than the bytes could hold are rejected before allocating', () => {
  expectDecodeError(decode, rawBytes((w) => w.u32(0xffffffff)), 'too-large');
  expectDecodeError(decode, rawBytes((w) => w.u32(1).u48(5).str8('x').u64(1n).u64(1n).u16(0xffff).u48(6).str8('a').u8(0)), 'too-large');
});

test('truncation is a short-read and trailing bytes are rejected by decodeWith', () => {
  const bytes = encode(sample);
  expectDecodeError(decode, bytes.subarray(0, bytes.length - 1), 'short-read');
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  expectDecodeError(decode, longer, 'trailing-bytes');
});

test('the encoder refuses what the layout cannot hold', () => {
  const tooManyConnections: PeerRecord = {
    ...(sample[1] as PeerRecord),
    connections: Array.from({ length: 65536 }, (_, i) => ({ peer: i + 100, address: '', outbound: false, established: false })),
  };
  assert.throws(() => encode([tooManyConnections]), (e: unknown) => e instanceof RangeError);
  assert.throws(() => encode([{ ...(sample[1] as PeerRecord), nickname: 'n'.repeat(256) }]), (e: unknown) => e instanceof RangeError);
});

test('fuzz: random and mutated bytes only give DecodeErrors', () => {
  fuzzDecoder(decode, updateArb.map(encode));
});

const requestArb = fc.array(fc.integer({ min: 1, max: 2 ** 48 - 1 }), { minLength: 1, maxLength: 50 });

test('topology requests round-trip', () => {
  fc.assert(
    fc.property(requestArb, (names) => {
      assert.equal(decodeWith(decodeTopologyRequest, encodeWith(encodeTopologyRequest, names)), names);
    }),
  );
});

test('topology requests reject empty, oversized and zero-name lists', () => {
  const decodeRequest = (b: Uint8Array) => decodeWith(decodeTopologyRequest, b);
  expectDecodeError(decodeRequest, rawBytes((w) => w.u16(0)), 'bad-value');
  expectDecodeError(decodeRequest, rawBytes((w) => w.u16(MAX_REQUESTED_RECORDS + 1)), 'bad-value');
  expectDecodeError(decodeRequest, rawBytes((w) => w.u16(1).u48(0)), 'bad-value');
  expectDecodeError(decodeRequest, rawBytes((w) => w.u16(2).u48(5)), 'short-read');
  assert.throws(() => encodeWith(encodeTopologyRequest, []), (e: unknown) => e instanceof RangeError);
});

test('fuzz: topology requests only give DecodeErrors', () => {
  fuzzDecoder((b) => decodeWith(decodeTopologyRequest, b), requestArb.map((names) => encodeWith(encodeTopologyRequest, names)));
});

test.run();
