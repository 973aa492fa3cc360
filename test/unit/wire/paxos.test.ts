import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeWith, encodeWith } from '../../../src/wire/codec.js';
import { decodePaxosState, encodePaxosState, type PaxosState } from '../../../src/wire/paxos.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';
import { paxosStateArb } from '../../helpers/paxos.js';

const stateArb = paxosStateArb;

const encode = (s: PaxosState) => encodeWith(encodePaxosState, s);
const decode = (b: Uint8Array) => decodeWith(decodePaxosState, b);

test('paxos states round-trip', () => {
  fc.assert(
    fc.property(stateArb, (state) => {
      assert.equal([...decode(encode(state))], [...state]);
    }),
    { numRuns: 300 },
  );
});

test('malformed paxos states are rejected', () => {
  expectDecodeError(decode, rawBytes((w) => w.u16(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(0).u64(1n).u8(0)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(2)), 'bad-value'); // accepted without promise
  expectDecodeError(decode, rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(4)), 'bad-value');
  expectDecodeError(decode, rawBytes((w) => w.u16(2).u48(1).u64(1n).u8(0).u48(1).u64(1n).u8(0)), 'bad-value'); // twice
  const unsorted = rawBytes((w) => w.u16(1).u48(1).u64(1n).u8(3).u32(1).u48(1).u64(1n).u32(1).u48(1).u64(1n).u16(2).u48(5).u48(3));
  expectDecodeError(decode, unsorted, 'bad-value');
});

test('fuzz: paxos states only give DecodeErrors', () => {
  fuzzDecoder(decode, stateArb.map(encode));
});

test.run();
