import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { AEAD_TAG_BYTES, loadSodium, type SodiumBackend } from '../../../src/crypto/sodium.js';
import { CryptoError, OptionsError } from '../../../src/errors.js';

const native = await loadSodium({ prefer: 'native' });
const wasm = await loadSodium({ prefer: 'wasm' });
if (native.name !== 'sodium-native') console.warn('sodium-native did not load: cross-backend tests compare WASM with itself');
const backends: readonly SodiumBackend[] = [native, wasm];

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/[\s:]/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const isCryptoError = (code: string) => (e: unknown) => e instanceof CryptoError && e.code === code;

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const nonce12 = fc.uint8Array({ minLength: 12, maxLength: 12 });

test('loadSodium returns the backend asked for and caches it', async () => {
  assert.is(wasm.name, 'libsodium-wrappers-sumo');
  assert.is(await loadSodium({ prefer: 'wasm' }), wasm);
  assert.is(await loadSodium({ prefer: 'native' }), native);
});

test('WEAVE_TS_SODIUM picks the default backend; an unknown value is an OptionsError', async () => {
  const saved = process.env['WEAVE_TS_SODIUM'];
  try {
    process.env['WEAVE_TS_SODIUM'] = 'wasm';
    assert.is(await loadSodium(), wasm);
    process.env['WEAVE_TS_SODIUM'] = 'native';
    assert.is(await loadSodium(), native);
    assert.is(await loadSodium({ prefer: 'wasm' }), wasm, 'an explicit preference wins over the environment');
    process.env['WEAVE_TS_SODIUM'] = 'bogus';
    try {
      await loadSodium();
      assert.unreachable('should have rejected');
    } catch (e) {
      assert.instance(e, OptionsError);
    }
  } finally {
    if (saved === undefined) delete process.env['WEAVE_TS_SODIUM'];
    else process.env['WEAVE_TS_SODIUM'] = saved;
  }
});

test('RFC 8439 §2.8.2 ChaCha20-Poly1305 IETF known answer, on both backends', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const nonce = hex('07000000 40414243 44454647');
  const ad = hex('50515253 c0c1c2c3 c4c5c6c7');
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const ciphertext =
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
    '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116';
  const tag = '1ae10b594f09e26a7e902ecbd0600691';
  for (const s of backends) {
    const out = new Uint8Array(plaintext.length + AEAD_TAG_BYTES);
    assert.is(s.aeadSeal(out, 0, plaintext, nonce, key, ad), out.length, s.name);
    assert.is(toHex(out), ciphertext + tag, s.name);
    const back = new Uint8Array(plaintext.length);
    assert.is(s.aeadOpen(back, 0, out, nonce, key, ad), plaintext.length, s.name);
    assert.equal(back, plaintext, s.name);
  }
});

test('RFC 7748 §6.1 X25519 known answer, on both backends', () => {
  const alicePriv = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bobPub = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const bobPriv = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const alicePub = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  for (const s of backends) {
    assert.is(toHex(s.x25519(alicePriv, bobPub)), shared, s.name);
    assert.is(toHex(s.x25519(bobPriv, alicePub)), shared, s.name);
  }
});

test('BLAKE2b-512("abc") known answer, on both backends', () => {
  const expected =
    'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923';
  for (const s of backends) assert.is(toHex(s.blake2b(64, new TextEncoder().encode('abc'))), expected, s.name);
});

test('both backends agree on X25519 for fresh key pairs', () => {
  for (let i = 0; i < 20; i++) {
    const a = native.x25519Keypair();
    const b = wasm.x25519Keypair();
    assert.is(a.publicKey.length, 32);
    assert.is(b.secretKey.length, 32);
    const shared = native.x25519(a.secretKey, b.publicKey);
    assert.equal(wasm.x25519(b.secretKey, a.publicKey), shared);
    assert.equal(wasm.x25519(a.secretKey, b.publicKey), shared);
    assert.equal(native.x25519(b.secretKey, a.publicKey), shared);
  }
});

test('both backends agree on BLAKE2b, keyed and unkeyed, for every output length', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 16, max: 64 }),
      fc.uint8Array({ maxLength: 300, size: 'max' }),
      fc.option(fc.uint8Array({ minLength: 16, maxLength: 64 }), { nil: undefined }),
      (outLength, input, key) => {
        const a = native.blake2b(outLength, input, key);
        assert.is(a.length, outLength);
        assert.equal(wasm.blake2b(outLength, input, key), a);
      },
    ),
    { numRuns: 300 },
  );
});

test('BLAKE2b keyed and unkeyed differ, and bad lengths are CryptoErrors', () => {
  const input = new Uint8Array([1, 2, 3]);
  for (const s of backends) {
    assert.not.equal(s.blake2b(32, input), s.blake2b(32, input, new Uint8Array(32)));
    assert.throws(() => s.blake2b(15, input), isCryptoError('bad-value'), s.name);
    assert.throws(() => s.blake2b(65, input), isCryptoError('bad-value'), s.name);
    assert.throws(() => s.blake2b(32, input, new Uint8Array(8)), isCryptoError('bad-value'), s.name);
  }
});

test('both backends agree on Argon2id at small parameters, and it depends on every input', async () => {
  const salt = Uint8Array.from({ length: 16 }, (_, i) => i);
  const password = new TextEncoder().encode('correct horse battery staple');
  const a = await native.argon2id(32, password, salt, 1, 8192);
  assert.equal(await wasm.argon2id(32, password, salt, 1, 8192), a);
  const b = await native.argon2id(32, password, salt, 2, 64 * 1024);
  assert.equal(await wasm.argon2id(32, password, salt, 2, 64 * 1024), b);
  assert.not.equal(a, b);
  const otherSalt = salt.slice();
  otherSalt[0] = 99;
  assert.not.equal(await native.argon2id(32, password, otherSalt, 1, 8192), a);
  assert.not.equal(await native.argon2id(32, password.subarray(1), salt, 1, 8192), a);
});

test('Argon2id below libsodium minimums is a CryptoError, not a crash', async () => {
  const salt = new Uint8Array(16);
  for (const s of backends) {
    for (const [ops, mem, saltBytes] of [[0, 8192, salt], [1, 8191, salt], [1, 8192, new Uint8Array(8)]] as const) {
      try {
        await s.argon2id(32, new Uint8Array(1), saltBytes, ops, mem);
        assert.unreachable(`${s.name} accepted ops=${ops} mem=${mem} salt=${saltBytes.length}`);
      } catch (e) {
        assert.ok(isCryptoError('bad-value')(e), String(e));
      }
    }
  }
});

test('each backend opens what the other sealed, for random messages, nonces, keys and AD', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000, size: 'max' }), nonce12, key32, fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }), (m, nonce, key, ad) => {
      const sealedN = new Uint8Array(m.length + AEAD_TAG_BYTES);
      const sealedW = new Uint8Array(m.length + AEAD_TAG_BYTES);
      assert.is(native.aeadSeal(sealedN, 0, m, nonce, key, ad), sealedN.length);
      assert.is(wasm.aeadSeal(sealedW, 0, m, nonce, key, ad), sealedW.length);
      assert.equal(sealedW, sealedN);
      const outN = new Uint8Array(m.length);
      const outW = new Uint8Array(m.length);
      assert.is(native.aeadOpen(outN, 0, sealedW, nonce, key, ad), m.length);
      assert.is(wasm.aeadOpen(outW, 0, sealedN, nonce, key, ad), m.length);
      assert.equal(outN, m);
      assert.equal(outW, m);
    }),
    { numRuns: 300 },
  );
});

test('seal and open work in place at an offset inside a larger buffer', () => {
  for (const s of backends) {
    const key = s.randomBytes(32);
    const nonce = s.randomBytes(12);
    const message = s.randomBytes(100);
    const buf = new Uint8Array(200).fill(0xee);
    buf.set(message, 30);
    const region = buf.subarray(30, 130);
    assert.is(s.aeadSeal(buf, 30, region, nonce, key), 116, s.name);
    assert.is(buf[29], 0xee, `${s.name}: byte before the region untouched`);
    assert.is(buf[146], 0xee, `${s.name}: byte after the region untouched`);
    const separate = new Uint8Array(116);
    s.aeadSeal(separate, 0, message, nonce, key);
    assert.equal(buf.slice(30, 146), separate, `${s.name}: in place gives the same bytes`);
    assert.is(s.aeadOpen(buf, 30, buf.subarray(30, 146), nonce, key), 100, s.name);
    assert.equal(buf.slice(30, 130), message, s.name);
    // Into a separate buffer at an offset, from a view with a non-zero byteOffset.
    const out = new Uint8Array(150);
    assert.is(s.aeadOpen(out, 17, separate.subarray(0), nonce, key), 100, s.name);
    assert.equal(out.slice(17, 117), message, s.name);
  }
});

test('an output region that is too small or partially overlaps the input is a CryptoError', () => {
  for (const s of backends) {
    const key = new Uint8Array(32);
    const nonce = new Uint8Array(12);
    const buf = new Uint8Array(64);
    assert.throws(() => s.aeadSeal(buf, 40, new Uint8Array(10), nonce, key), isCryptoError('bad-value'), s.name);
    assert.throws(() => s.aeadSeal(buf, 4, buf.subarray(0, 20), nonce, key), isCryptoError('bad-value'), s.name);
    assert.throws(() => s.aeadSeal(buf, 0, new Uint8Array(4), nonce, new Uint8Array(16)), isCryptoError('bad-value'), s.name);
    assert.throws(() => s.aeadSeal(buf, 0, new Uint8Array(4), new Uint8Array(8), key), isCryptoError('bad-value'), s.name);
  }
});

test('tampering with any byte of ciphertext, tag, nonce or AD makes aeadOpen return -1', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64, size: 'max' }),
      fc.uint8Array({ minLength: 1, maxLength: 16 }),
      fc.constantFrom('sealed', 'nonce', 'ad'),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (m, ad, where, index, xor) => {
        for (const s of backends) {
          const key = s.randomBytes(32);
          const nonce = s.randomBytes(12);
          const sealed = new Uint8Array(m.length + AEAD_TAG_BYTES);
          s.aeadSeal(sealed, 0, m, nonce, key, ad);
          const target = where === 'sealed' ? sealed : where === 'nonce' ? nonce : ad;
          target[index % target.length]! ^= xor;
          const out = new Uint8Array(m.length).fill(0xaa);
          assert.is(s.aeadOpen(out, 0, sealed, nonce, key, ad), -1, `${s.name} ${where}`);
          assert.ok(out.every((b) => b === 0), `${s.name}: output is zeroed on failure`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a wrong key, missing AD or input shorter than a tag makes aeadOpen return -1', () => {
  for (const s of backends) {
    const key = s.randomBytes(32);
    const nonce = s.randomBytes(12);
    const sealed = new Uint8Array(20);
    s.aeadSeal(sealed, 0, new Uint8Array(4), nonce, key, new Uint8Array([1]));
    assert.is(s.aeadOpen(new Uint8Array(4), 0, sealed, nonce, s.randomBytes(32), new Uint8Array([1])), -1, s.name);
    assert.is(s.aeadOpen(new Uint8Array(4), 0, sealed, nonce, key), -1, s.name);
    assert.is(s.aeadOpen(new Uint8Array(4), 0, sealed.subarray(0, 15), nonce, key), -1, s.name);
    assert.is(s.aeadOpen(new Uint8Array(4), 0, sealed, nonce, key, new Uint8Array([1])), 4, s.name);
  }
});

test('X25519 with a low-order (all-zero) public key or wrong lengths throws CryptoError', () => {
  // 0 and 1 are low-order points; so is the order-8 point below (from the libsodium blacklist).
  const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31)), hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')];
  for (const s of backends) {
    const { secretKey } = s.x25519Keypair();
    for (const p of lowOrder) assert.throws(() => s.x25519(secretKey, p), isCryptoError('decrypt-failed'), s.name);
    assert.throws(() => s.x25519(secretKey, new Uint8Array(31)), isCryptoError('decrypt-failed'), s.name);
    assert.throws(() => s.x25519(new Uint8Array(33), new Uint8Array(32).fill(9)), isCryptoError('decrypt-failed'), s.name);
  }
});

test('randomBytes gives plain Uint8Arrays of the asked length that differ', () => {
  for (const s of backends) {
    const a = s.randomBytes(32);
    assert.is(a.constructor, Uint8Array, s.name);
    assert.is(a.length, 32);
    assert.not.equal(a, s.randomBytes(32));
    assert.is(s.randomBytes(0).length, 0);
  }
});

test.run();
