import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Writer } from '../../../src/wire/codec.js';
import { DecodeError } from '../../../src/errors.js';
import {
  MessageTag,
  decodeMessage,
  encodeMessageBody,
  type ControlMessage,
} from '../../../src/wire/messages.js';
import { fuzzDecoder, expectDecodeError, rawBytes } from '../../helpers/fuzz.js';

// Channel names: 1 to 255 printable ASCII characters.
const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const channelArb: fc.Arbitrary<string> = fc.oneof(
  fc.array(printable, { minLength: 1, maxLength: 255 }).map((cs) => cs.join('')),
  fc.constantFrom('topology', 'c'.repeat(255), 'IPallocation', '~!'),
);
const nameArb = fc.integer({ min: 1, max: 2 ** 48 - 1 });
const payloadArb = fc.uint8Array({ maxLength: 300 });

const messageArb: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.constant({ tag: MessageTag.Heartbeat } as ControlMessage),
  fc.record(
    { tag: fc.constant(MessageTag.Gossip as const), channel: channelArb, sender: nameArb, payload: payloadArb },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      tag: fc.constant(MessageTag.GossipUnicast as const),
      channel: channelArb,
      source: nameArb,
      destination: nameArb,
      payload: payloadArb,
    },
    { noNullPrototype: true },
  ),
  fc.record(
    { tag: fc.constant(MessageTag.GossipBroadcast as const), channel: channelArb, source: nameArb, payload: payloadArb },
    { noNullPrototype: true },
  ),
  fc.record(
    { tag: fc.constant(MessageTag.OverlayControl as const), kind: fc.integer({ min: 0, max: 255 }), payload: payloadArb },
    { noNullPrototype: true },
  ),
);

/** The message with its payload (if any) copied into a plain, exact-size Uint8Array. */
function normalized(m: ControlMessage): ControlMessage {
  return 'payload' in m ? { ...m, payload: Uint8Array.from(m.payload) } : { ...m };
}

test('every message kind round-trips, payload byte for byte', () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const decoded = decodeMessage(encodeMessageBody(m));
      assert.equal(normalized(decoded), normalized(m));
    }),
    { numRuns: 500 },
  );
});

test('each kind round-trips with an empty payload and with a large one', () => {
  const big = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31) & 0xff);
  for (const payload of [new Uint8Array(0), big]) {
    const messages: ControlMessage[] = [
      { tag: MessageTag.Gossip, channel: 'topology', sender: 2 ** 48 - 1, payload },
      { tag: MessageTag.GossipUnicast, channel: 'dns', source: 1, destination: 2 ** 48 - 1, payload },
      { tag: MessageTag.GossipBroadcast, channel: 'ipam', source: 0x0a0000000001, payload },
      { tag: MessageTag.OverlayControl, kind: 255, payload },
    ];
    for (const m of messages) assert.equal(normalized(decodeMessage(encodeMessageBody(m))), m);
  }
});

test('the body layouts are the documented ones', () => {
  const payload = new Uint8Array([0xaa, 0xbb]);
  assert.equal(encodeMessageBody({ tag: MessageTag.Heartbeat }), new Uint8Array([0]));
  assert.equal(
    encodeMessageBody({ tag: MessageTag.Gossip, channel: 'ch', sender: 0x010203040506, payload }),
    rawBytes((w) => w.u8(1).str8('ch').u48(0x010203040506).bytes(payload)),
  );
  assert.equal(
    encodeMessageBody({ tag: MessageTag.GossipUnicast, channel: 'ch', source: 5, destination: 6, payload }),
    rawBytes((w) => w.u8(2).str8('ch').u48(5).u48(6).bytes(payload)),
  );
  assert.equal(
    encodeMessageBody({ tag: MessageTag.GossipBroadcast, channel: 'ch', source: 5, payload }),
    rawBytes((w) => w.u8(3).str8('ch').u48(5).bytes(payload)),
  );
  assert.equal(
    encodeMessageBody({ tag: MessageTag.OverlayControl, kind: 9, payload }),
    rawBytes((w) => w.u8(4).u8(9).bytes(payload)),
  );
});

test('a decoded payload is a view into the received body, running to its end', () => {
  const body = rawBytes((w) => w.u8(1).str8('ch').u48(5).bytes(new Uint8Array([1, 2, 3])));
  const m = decodeMessage(body);
  assert.is(m.tag, MessageTag.Gossip);
  if (m.tag !== MessageTag.Gossip) return;
  assert.is(m.payload.buffer, body.buffer);
  assert.is(m.payload.byteOffset, body.byteLength - 3);
  assert.equal(Array.from(m.payload), [1, 2, 3]);
});

test('unknown tags are rejected', () => {
  for (let tag = 5; tag <= 255; tag++) {
    expectDecodeError(decodeMessage, new Uint8Array([tag]), 'bad-value');
    expectDecodeError(decodeMessage, rawBytes((w) => w.u8(tag).str8('ch').u48(5)), 'bad-value');
  }
});

test('an empty body is a short-read', () => {
  expectDecodeError(decodeMessage, new Uint8Array(0), 'short-read');
});

test('an empty channel name is rejected for every gossip kind', () => {
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.Gossip).str8('').u48(5)), 'bad-value');
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.GossipUnicast).str8('').u48(5).u48(6)), 'bad-value');
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.GossipBroadcast).str8('').u48(5)), 'bad-value');
});

test('the reserved peer name 0 is rejected in every name field', () => {
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.Gossip).str8('ch').u48(0).u8(1)), 'bad-value');
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.GossipUnicast).str8('ch').u48(0).u48(6)), 'bad-value');
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.GossipUnicast).str8('ch').u48(5).u48(0)), 'bad-value');
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.GossipBroadcast).str8('ch').u48(0)), 'bad-value');
});

test('invalid UTF-8 in a channel name is rejected', () => {
  expectDecodeError(decodeMessage, rawBytes((w) => w.u8(MessageTag.Gossip).u8(2).u8(0xc3).u8(0x28).u48(5)), 'bad-value');
});

test('a heartbeat with trailing bytes is rejected', () => {
  expectDecodeError(decodeMessage, new Uint8Array([MessageTag.Heartbeat, 0]), 'trailing-bytes');
  expectDecodeError(decodeMessage, new Uint8Array([MessageTag.Heartbeat, 1, 2, 3]), 'trailing-bytes');
});

test('a body cut before the payload is a short-read', () => {
  fc.assert(
    fc.property(messageArb.filter((m) => m.tag !== MessageTag.Heartbeat), fc.nat(), (m, cut) => {
      const body = encodeMessageBody(m);
      const headerLength = body.byteLength - ('payload' in m ? m.payload.byteLength : 0);
      expectDecodeError(decodeMessage, body.subarray(0, cut % headerLength), 'short-read');
    }),
    { numRuns: 300 },
  );
});

test('fuzz: random and mutated bodies only give DecodeErrors', () => {
  fuzzDecoder(decodeMessage, messageArb.map(encodeMessageBody));
});

test('channel names outside 1-255 printable ASCII are rejected', () => {
  for (const bad of ['\uFEFFdns', 'é', 'has space', 'tab\t', '']) {
    const w = new Writer();
    w.u8(MessageTag.Gossip).str8(bad).u48(1);
    assert.throws(
      () => decodeMessage(w.finish()),
      (e: unknown) => e instanceof DecodeError && e.code === 'bad-value',
      JSON.stringify(bad),
    );
  }
});

test.run();
