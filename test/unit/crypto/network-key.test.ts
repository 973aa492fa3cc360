import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inspect } from 'node:util';
import { ARGON2ID_MEMLIMIT, ARGON2ID_OPSLIMIT, NETWORK_KEY_SALT, deriveNetworkKey } from '../../../src/crypto/network-key.js';
import { loadSodium } from '../../../src/crypto/sodium.js';
import { OptionsError } from '../../../src/errors.js';

const native = await loadSodium({ prefer: 'native' });
const wasm = await loadSodium({ prefer: 'wasm' });
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** Argon2id("correct horse battery staple") with the protocol parameters; a regression vector for docs/protocol.md. */
const EXPECTED_CORRECT_HORSE = '16f1b05cd12e4f0fe3346432c4feff2c8804e3be7c283cc23664c67c4ec2b9ad';

test('the salt is BLAKE2b-128 of "weave-ts network key v1"', () => {
  const label = new TextEncoder().encode('weave-ts network key v1');
  assert.is(NETWORK_KEY_SALT.length, 16);
  assert.equal(native.blake2b(16, label), NETWORK_KEY_SALT);
  assert.equal(wasm.blake2b(16, label), NETWORK_KEY_SALT);
});

test('the protocol parameters are Argon2id with 3 passes over 64 MiB', () => {
  assert.is(ARGON2ID_OPSLIMIT, 3);
  assert.is(ARGON2ID_MEMLIMIT, 67_108_864);
});

test('the same password gives the same 32-byte key on both backends, as a string or as its UTF-8 bytes', async () => {
  const a = await deriveNetworkKey('correct horse battery staple', native);
  const b = await deriveNetworkKey('correct horse battery staple', wasm);
  const c = await deriveNetworkKey(new TextEncoder().encode('correct horse battery staple'), native);
  assert.is(a.bytes.length, 32);
  assert.equal(b.bytes, a.bytes);
  assert.equal(c.bytes, a.bytes);
  // Changing this value changes the protocol.
  assert.is(toHex(a.bytes), EXPECTED_CORRECT_HORSE);
});

test('different passwords give different keys', async () => {
  const keys = await Promise.all(['secret', 'Secret', 'secret ', 'sécret'].map((p) => deriveNetworkKey(p, native)));
  const distinct = new Set(keys.map((k) => toHex(k.bytes)));
  assert.is(distinct.size, keys.length);
});

test('without a backend argument the default backend is loaded', async () => {
  const a = await deriveNetworkKey('pw');
  assert.equal(a.bytes, (await deriveNetworkKey('pw', wasm)).bytes);
});

test('an empty password is rejected with an OptionsError that says to omit it', async () => {
  for (const empty of ['', new Uint8Array(0)]) {
    try {
      await deriveNetworkKey(empty, native);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, OptionsError);
      assert.is((e as OptionsError).code, 'invalid-option');
      assert.match((e as Error).message, /omit the password/);
    }
  }
});

test("the caller's password bytes are left as they were; the key does not print", async () => {
  const password = new TextEncoder().encode('hunter2');
  const key = await deriveNetworkKey(password, native);
  assert.is(new TextDecoder().decode(password), 'hunter2');
  assert.not.match(inspect(key), toHex(key.bytes).slice(0, 8));
  assert.is(JSON.stringify({ key }), '{"key":"[NetworkKey]"}');
});

test.run();
