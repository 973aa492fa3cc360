import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodeWith, encodeWith } from '../../../src/wire/codec.js';
import { decodeTopologyDigest, encodeTopologyDigest, TOPOLOGY_DIGEST_BYTES, TopologyDigestKind, type TopologyDigestMessage } from '../../../src/wire/topology-digest.js';
import { expectDecodeError, fuzzDecoder } from '../../helpers/fuzz.js';

const encode = (m: TopologyDigestMessage): Uint8Array => encodeWith(encodeTopologyDigest, m);
const decode = (b: Uint8Array): TopologyDigestMessage => decodeWith(decodeTopologyDigest, b);
const messageArb: fc.Arbitrary<TopologyDigestMessage> = fc.record({
  kind: fc.constantFrom(TopologyDigestKind.Periodic, TopologyDigestKind.Answer),
  digest: fc.uint8Array({ minLength: TOPOLOGY_DIGEST_BYTES, maxLength: TOPOLOGY_DIGEST_BYTES }),
}).map((m) => ({ ...m }));

test('digest messages round-trip, in the documented layout', () => {
  fc.assert(fc.property(messageArb, (m) => assert.equal(decode(encode(m)), m)), { numRuns: 300 });
  const bytes = encode({ kind: TopologyDigestKind.Answer, digest: new Uint8Array(32).fill(9) });
  assert.equal([...bytes], [2, ...new Array<number>(32).fill(9)]);
});

test('an unknown kind, a short digest or trailing bytes are refused with a DecodeError', () => {
  expectDecodeError(decode, Uint8Array.of(3, ...new Array<number>(32).fill(0)), 'bad-value');
  expectDecodeError(decode, Uint8Array.of(1, 0, 0), 'short-read');
  assert.throws(() => decode(Uint8Array.of(1, ...new Array<number>(33).fill(0))));
  assert.throws(() => encode({ kind: TopologyDigestKind.Periodic, digest: new Uint8Array(31) }), RangeError);
});

test('fuzz: random and mutated bytes only ever give a DecodeError', () => {
  fuzzDecoder(decode, messageArb.map(encode));
});

test.run();
