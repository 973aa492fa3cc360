import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { frameCrypto } from '../../../src/ethernet/frame-crypto.js';
import { loadSodium } from '../../../src/crypto/sodium.js';
import { writeCounterNonce, writePacketNonce, MAX_PACKET_COUNTER } from '../../../src/crypto/aead.js';
import { packetCounter, packetSender, writePacketHeader, PACKET_HEADER_BYTES } from '../../../src/wire/sleeve.js';
import { CryptoError } from '../../../src/errors.js';

const sodium = await loadSodium();
const SENDER = 0x02_00_00_00_00_0a;

/** A datagram as the sleeve builds it: header, then the body right after it, in one buffer with room for the tag. */
function datagram(body: Uint8Array, counter: number): Uint8Array {
  const packet = new Uint8Array(PACKET_HEADER_BYTES + body.length + 16);
  writePacketHeader(packet, SENDER, counter);
  packet.set(body, PACKET_HEADER_BYTES);
  return packet;
}

test('number nonces are the BigInt ones: the wire does not change', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_PACKET_COUNTER }), (counter) => {
      const a = new Uint8Array(12);
      const b = new Uint8Array(12);
      writePacketNonce(a, counter);
      writeCounterNonce(b, BigInt(counter));
      assert.equal(a, b);
    }),
  );
  assert.throws(() => writePacketNonce(new Uint8Array(12), MAX_PACKET_COUNTER + 1), (e: unknown) => e instanceof CryptoError);
  assert.throws(() => writePacketNonce(new Uint8Array(12), -1), (e: unknown) => e instanceof CryptoError);
});

test('packet headers carry 64-bit counters; ones past 2^53 read as -1', () => {
  for (const counter of [0, 1, 0xffff_ffff, 2 ** 32, 2 ** 40 + 12_345, MAX_PACKET_COUNTER]) {
    const packet = new Uint8Array(PACKET_HEADER_BYTES);
    writePacketHeader(packet, SENDER, counter);
    assert.is(packetSender(packet), SENDER);
    assert.is(packetCounter(packet), counter);
  }
  const huge = new Uint8Array(PACKET_HEADER_BYTES);
  writePacketHeader(huge, SENDER, 0);
  huge[6] = 0x00;
  huge[7] = 0x20; // 2^53
  assert.is(packetCounter(huge), -1);
  huge.fill(0xff, 6);
  assert.is(packetCounter(huge), -1);
});

test('sealed in place, opened in place; what was sealed the old way (a separate buffer, BigInt nonce) opens too', () => {
  const keys = { send: sodium.randomBytes(32), receive: sodium.randomBytes(32) };
  const a = frameCrypto(keys, sodium);
  const b = frameCrypto({ send: keys.receive, receive: keys.send }, sodium);
  assert.ok(a.sealer.encrypted && b.opener.encrypted);
  const body = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
  const counter = 2 ** 33 + 7;
  const packet = datagram(body, counter);
  const length = a.sealer.seal(packet, body.length, counter);
  assert.is(length, PACKET_HEADER_BYTES + body.length + 16);
  // The old sleeve: seal from a separate body into the packet with a BigInt nonce.
  const old = new Uint8Array(length);
  writePacketHeader(old, SENDER, counter);
  const nonce = new Uint8Array(12);
  writeCounterNonce(nonce, BigInt(counter));
  sodium.aeadSeal(old, PACKET_HEADER_BYTES, body, nonce, keys.send, old.subarray(0, PACKET_HEADER_BYTES));
  assert.equal(packet.subarray(0, length), old, 'byte for byte what the old sleeve sent');
  assert.ok(b.opener.isFresh(counter));
  const opened = b.opener.open(packet.subarray(0, length), counter);
  assert.equal(opened, body);
  b.opener.accept(counter);
  assert.not.ok(b.opener.isFresh(counter), 'a replay is refused');
  assert.ok(b.opener.isFresh(counter - 1), 'an older one inside the window is not');
});

test('a tampered byte, header or counter fails to open', () => {
  const keys = { send: sodium.randomBytes(32), receive: sodium.randomBytes(32) };
  const a = frameCrypto(keys, sodium);
  const b = frameCrypto({ send: keys.receive, receive: keys.send }, sodium);
  const body = new Uint8Array(200).fill(9);
  for (const tamper of [3, PACKET_HEADER_BYTES + 5, PACKET_HEADER_BYTES + 200 + 3]) {
    const packet = datagram(body, 5);
    const length = a.sealer.seal(packet, body.length, 5);
    packet[tamper]! ^= 1;
    assert.is(b.opener.open(packet.subarray(0, length), 5), undefined, `byte ${tamper}`);
  }
  const packet = datagram(body, 5);
  const length = a.sealer.seal(packet, body.length, 5);
  assert.is(b.opener.open(packet.subarray(0, length), 6), undefined, 'another counter');
});

test('plain links: no overhead, the body as it is, every counter fresh', () => {
  const { sealer, opener } = frameCrypto(undefined, undefined);
  assert.is(sealer.encrypted, false);
  assert.is(sealer.overhead, 0);
  const body = new Uint8Array(50).fill(4);
  const packet = datagram(body, 1);
  assert.is(sealer.seal(packet, body.length, 1), PACKET_HEADER_BYTES + 50);
  assert.equal(opener.open(packet.subarray(0, PACKET_HEADER_BYTES + 50), 1), body);
  opener.accept(1);
  assert.ok(opener.isFresh(1));
  assert.throws(() => frameCrypto({ send: new Uint8Array(32), receive: new Uint8Array(32) }, undefined));
});

test.run();
