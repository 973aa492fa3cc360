import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { MAX_COUNTER, StreamOpener, StreamSealer, writeCounterNonce } from '../../../src/crypto/aead.js';
import { AEAD_TAG_BYTES, loadSodium, type SodiumBackend } from '../../../src/crypto/sodium.js';
import { CryptoError } from '../../../src/errors.js';

const native = await loadSodium({ prefer: 'native' });
const wasm = await loadSodium({ prefer: 'wasm' });
const backends: readonly SodiumBackend[] = [native, wasm];
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const isDecryptFailed = (e: unknown) => e instanceof CryptoError && e.code === 'decrypt-failed';
const messages = (n: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`message ${i} `.repeat(i)));

function pair(s: SodiumBackend, other: SodiumBackend = s): { sealer: StreamSealer; opener: StreamOpener } {
  const key = s.randomBytes(32);
  return { sealer: new StreamSealer(s, key), opener: new StreamOpener(other, key) };
}

/** Asserts that the opener throws decrypt-failed for `sealed` and for everything after, including valid input. */
function assertBroken(opener: StreamOpener, sealed: Uint8Array, valid: Uint8Array): void {
  assert.throws(() => opener.open(sealed), isDecryptFailed);
  assert.ok(opener.isBroken);
  assert.throws(() => opener.open(valid), isDecryptFailed, 'a broken stream stays broken');
}

test('the nonce is 4 zero bytes then the counter big-endian', () => {
  const nonce = new Uint8Array(12).fill(0xff);
  writeCounterNonce(nonce, 0x0102030405060708n);
  assert.is(toHex(nonce), '000000000102030405060708');
  writeCounterNonce(nonce, 0n);
  assert.is(toHex(nonce), '000000000000000000000000');
  writeCounterNonce(nonce, MAX_COUNTER);
  assert.is(toHex(nonce), '00000000ffffffffffffffff');
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: MAX_COUNTER }), (c) => {
      writeCounterNonce(nonce, c);
      assert.is(new DataView(nonce.buffer).getBigUint64(4), c);
      assert.is(new DataView(nonce.buffer).getUint32(0), 0);
    }),
  );
});

test('counters outside 64 bits and wrong nonce sizes are CryptoErrors', () => {
  const isBadValue = (e: unknown) => e instanceof CryptoError && e.code === 'bad-value';
  assert.throws(() => writeCounterNonce(new Uint8Array(12), MAX_COUNTER + 1n), isBadValue);
  assert.throws(() => writeCounterNonce(new Uint8Array(12), -1n), isBadValue);
  assert.throws(() => writeCounterNonce(new Uint8Array(8), 0n), isBadValue);
  assert.throws(() => new StreamSealer(native, new Uint8Array(16)), isBadValue);
});

test('a sequence round-trips, across backends, and each message is plaintext + 16 bytes', () => {
  for (const [a, b] of [[native, native], [native, wasm], [wasm, native], [wasm, wasm]] as const) {
    const { sealer, opener } = pair(a, b);
    for (const m of messages(20)) {
      const sealed = sealer.seal(m);
      assert.is(sealed.length, m.length + AEAD_TAG_BYTES);
      assert.equal(opener.open(sealed), m, `${a.name} -> ${b.name}`);
    }
  }
});

test('message i is sealed with counter i', () => {
  const key = native.randomBytes(32);
  const sealer = new StreamSealer(native, key);
  const nonce = new Uint8Array(12);
  for (let i = 0n; i < 5n; i++) {
    const m = Uint8Array.of(Number(i));
    const expected = new Uint8Array(17);
    writeCounterNonce(nonce, i);
    native.aeadSeal(expected, 0, m, nonce, key);
    assert.equal(sealer.seal(m), expected);
  }
});

test('sealer and opener copy the key, so the caller may wipe it', () => {
  const key = native.randomBytes(32);
  const sealer = new StreamSealer(native, key);
  const opener = new StreamOpener(native, key.slice());
  key.fill(0);
  assert.equal(opener.open(sealer.seal(Uint8Array.of(1, 2, 3))), Uint8Array.of(1, 2, 3));
});

test('a dropped message breaks the stream', () => {
  for (const s of backends) {
    const { sealer, opener } = pair(s);
    const sealed = messages(4).map((m) => sealer.seal(m));
    opener.open(sealed[0]!);
    assertBroken(opener, sealed[2]!, sealed[1]!);
  }
});

test('a replayed message breaks the stream', () => {
  for (const s of backends) {
    const { sealer, opener } = pair(s);
    const sealed = messages(3).map((m) => sealer.seal(m));
    opener.open(sealed[0]!);
    opener.open(sealed[1]!);
    assertBroken(opener, sealed[1]!, sealed[2]!);
  }
});

test('reordered messages break the stream', () => {
  for (const s of backends) {
    const { sealer, opener } = pair(s);
    const sealed = messages(3).map((m) => sealer.seal(m));
    assertBroken(opener, sealed[1]!, sealed[0]!);
  }
});

test('a tampered byte anywhere breaks the stream', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100, size: 'max' }), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.constantFrom(...backends), (m, index, xor, s) => {
      const { sealer, opener } = pair(s);
      const sealed = sealer.seal(m);
      const next = sealer.seal(m);
      const tampered = sealed.slice();
      tampered[index % tampered.length]! ^= xor;
      assertBroken(opener, tampered, sealed);
      assert.throws(() => opener.open(next), isDecryptFailed);
    }),
    { numRuns: 200 },
  );
});

test('a message sealed with the other direction key or a truncated message breaks the stream', () => {
  const { sealer, opener } = pair(native);
  const { sealer: otherSealer } = pair(native);
  const good = sealer.seal(Uint8Array.of(1));
  assertBroken(opener, otherSealer.seal(Uint8Array.of(1)), good);
  const second = pair(native);
  const sealed = second.sealer.seal(Uint8Array.of(1, 2, 3));
  assertBroken(second.opener, sealed.subarray(0, 10), sealed);
});

test('sealInto and openInto work in place at an offset', () => {
  for (const s of backends) {
    const { sealer, opener } = pair(s);
    const buf = new Uint8Array(64);
    buf.set([1, 2, 3, 4, 5], 8);
    assert.is(sealer.sealInto(buf, 8, buf.subarray(8, 13)), 21);
    assert.is(opener.openInto(buf, 8, buf.subarray(8, 29)), 5);
    assert.equal(buf.slice(8, 13), Uint8Array.of(1, 2, 3, 4, 5));
  }
});

test('fuzz: random bytes given to an opener only ever give CryptoErrors', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200, size: 'max' }), { minLength: 1, maxLength: 4 }), fc.constantFrom(...backends), (inputs, s) => {
      const opener = new StreamOpener(s, s.randomBytes(32));
      for (const bytes of inputs) {
        try {
          opener.open(bytes);
          assert.unreachable('random bytes authenticated');
        } catch (e) {
          if (!isDecryptFailed(e)) throw new Error(`open threw ${String(e)} instead of CryptoError('decrypt-failed')`, { cause: e });
        }
      }
    }),
    { numRuns: 1000 },
  );
});

/** Test-only access to the counters, to reach the end of the 64-bit space. */
class LateSealer extends StreamSealer {
  constructor(s: SodiumBackend, key: Uint8Array, at: bigint) {
    super(s, key);
    this.counter = at;
  }
}
class LateOpener extends StreamOpener {
  constructor(s: SodiumBackend, key: Uint8Array, at: bigint) {
    super(s, key);
    this.counter = at;
  }
}

test('counters never wrap: the last counter is 2^64-1, then both ends refuse', () => {
  const key = native.randomBytes(32);
  const sealer = new LateSealer(native, key, MAX_COUNTER - 1n);
  const opener = new LateOpener(native, key, MAX_COUNTER - 1n);
  assert.equal(opener.open(sealer.seal(Uint8Array.of(1))), Uint8Array.of(1));
  const last = sealer.seal(Uint8Array.of(2));
  assert.equal(opener.open(last), Uint8Array.of(2));
  assert.throws(() => sealer.seal(Uint8Array.of(3)), (e: unknown) => e instanceof CryptoError);
  assert.throws(() => opener.open(last), (e: unknown) => e instanceof CryptoError);
  assert.ok(opener.isBroken);
});

test.run();
