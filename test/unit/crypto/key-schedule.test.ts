import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { handshakeKeys, sessionKeys, transcriptHash } from '../../../src/crypto/key-schedule.js';
import type { NetworkKey } from '../../../src/crypto/network-key.js';
import { loadSodium } from '../../../src/crypto/sodium.js';
import { CryptoError } from '../../../src/errors.js';

const native = await loadSodium({ prefer: 'native' });
const wasm = await loadSodium({ prefer: 'wasm' });
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** tcp d2l for the fixed inputs of the regression test (cross-checked with Python's hashlib.blake2b); changing it changes the protocol. */
const EXPECTED_TCP_D2L = '15f2e7950316d730ccb09c306f3efec4004fd898ba890c9f31ef16befc4becac';
const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed + i * 7) & 0xff);

test('dialer and listener derive the same keys from their own halves, even on different backends', () => {
  const networkKey: NetworkKey = { bytes: native.randomBytes(32) };
  const dialer = native.x25519Keypair();
  const listener = wasm.x25519Keypair();
  const dialerFeatures = new TextEncoder().encode('dialer features');
  const listenerFeatures = new TextEncoder().encode('listener features, longer');
  const dialerShared = native.x25519(dialer.secretKey, listener.publicKey);
  const listenerShared = wasm.x25519(listener.secretKey, dialer.publicKey);
  assert.equal(
    handshakeKeys(wasm, networkKey, listenerShared, dialer.publicKey, listener.publicKey),
    handshakeKeys(native, networkKey, dialerShared, dialer.publicKey, listener.publicKey),
  );
  const onDialer = sessionKeys(native, networkKey, dialerShared, dialer.publicKey, listener.publicKey, dialerFeatures, listenerFeatures);
  const onListener = sessionKeys(wasm, networkKey, listenerShared, dialer.publicKey, listener.publicKey, dialerFeatures, listenerFeatures);
  assert.equal(onListener.tcp.dialerToListener, onDialer.tcp.dialerToListener);
  assert.equal(onListener.tcp.listenerToDialer, onDialer.tcp.listenerToDialer);
  assert.equal(onListener.udp, onDialer.udp);
});

test('the two handshake keys and four session keys are 32 bytes and pairwise distinct', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }),
      (nk, shared, dp, lp, df, lf) => {
        const networkKey = { bytes: nk };
        const hs = handshakeKeys(native, networkKey, shared, dp, lp);
        const s = sessionKeys(native, networkKey, shared, dp, lp, df, lf);
        const all = [hs.dialerToListener, hs.listenerToDialer, s.tcp.dialerToListener, s.tcp.listenerToDialer, s.udp.dialerToListener, s.udp.listenerToDialer];
        for (const k of all) assert.is(k.length, 32);
        assert.is(new Set(all.map(toHex)).size, 6);
      },
    ),
    { numRuns: 100 },
  );
});

type Field = 'networkKey' | 'shared' | 'dialerPublic' | 'listenerPublic' | 'dialerFeatures' | 'listenerFeatures';

test('changing one byte of any input changes every session key', () => {
  const inputs = fc.record(
    {
      networkKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      shared: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      dialerPublic: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      listenerPublic: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      dialerFeatures: fc.uint8Array({ minLength: 1, maxLength: 64 }),
      listenerFeatures: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    },
    { noNullPrototype: true },
  );
  const fields: Field[] = ['networkKey', 'shared', 'dialerPublic', 'listenerPublic', 'dialerFeatures', 'listenerFeatures'];
  fc.assert(
    fc.property(inputs, fc.constantFrom(...fields), fc.nat(), fc.integer({ min: 1, max: 255 }), (x, field, index, xor) => {
      const derive = (v: typeof x) => {
        const s = sessionKeys(native, { bytes: v.networkKey }, v.shared, v.dialerPublic, v.listenerPublic, v.dialerFeatures, v.listenerFeatures);
        return [s.tcp.dialerToListener, s.tcp.listenerToDialer, s.udp.dialerToListener, s.udp.listenerToDialer].map(toHex);
      };
      const before = derive(x);
      const changed = { ...x, [field]: x[field].slice() };
      changed[field][index % changed[field].length]! ^= xor;
      const after = derive(changed);
      for (let i = 0; i < 4; i++) assert.is.not(after[i], before[i], `session key ${i} after changing ${field}`);
    }),
    { numRuns: 300 },
  );
});

test('handshake keys depend on the secret, the network key and both public keys but not on the feature records', () => {
  const nk = { bytes: bytes(32, 1) };
  const [shared, dp, lp] = [bytes(32, 2), bytes(32, 3), bytes(32, 4)];
  const base = handshakeKeys(native, nk, shared, dp, lp);
  const flip = (b: Uint8Array) => Uint8Array.from(b, (v, i) => (i === 5 ? v ^ 1 : v));
  for (const other of [
    handshakeKeys(native, { bytes: flip(nk.bytes) }, shared, dp, lp),
    handshakeKeys(native, nk, flip(shared), dp, lp),
    handshakeKeys(native, nk, shared, flip(dp), lp),
    handshakeKeys(native, nk, shared, lp, dp),
  ]) {
    assert.is.not(toHex(other.dialerToListener), toHex(base.dialerToListener));
    assert.is.not(toHex(other.listenerToDialer), toHex(base.listenerToDialer));
  }
});

test('the transcript hash length-prefixes the feature records, so moving a byte across the boundary changes it', () => {
  const [dp, lp] = [bytes(32, 3), bytes(32, 4)];
  const a = transcriptHash(native, dp, lp, Uint8Array.of(1, 2), Uint8Array.of(3));
  const b = transcriptHash(native, dp, lp, Uint8Array.of(1), Uint8Array.of(2, 3));
  assert.is.not(toHex(a), toHex(b));
});

test('the schedule matches its written definition (regression vectors for docs/protocol.md)', () => {
  const nk = { bytes: bytes(32, 1) };
  const [shared, dp, lp] = [bytes(32, 2), bytes(32, 3), bytes(32, 4)];
  const df = new TextEncoder().encode('dialer');
  const lf = new TextEncoder().encode('listener');
  const ascii = (s: string) => new TextEncoder().encode(s);
  const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
  const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  const th = wasm.blake2b(32, cat(dp, lp, u32(df.length), df, u32(lf.length), lf));
  const key = (label: string, withTranscript: boolean) =>
    toHex(wasm.blake2b(32, withTranscript ? cat(ascii(label), shared, dp, lp, th) : cat(ascii(label), shared, dp, lp), nk.bytes));
  const hs = handshakeKeys(native, nk, shared, dp, lp);
  const s = sessionKeys(native, nk, shared, dp, lp, df, lf);
  assert.is(toHex(transcriptHash(native, dp, lp, df, lf)), toHex(th));
  assert.is(toHex(hs.dialerToListener), key('wvts hs d2l', false));
  assert.is(toHex(hs.listenerToDialer), key('wvts hs l2d', false));
  assert.is(toHex(s.tcp.dialerToListener), key('wvts tcp d2l', true));
  assert.is(toHex(s.tcp.listenerToDialer), key('wvts tcp l2d', true));
  assert.is(toHex(s.udp.dialerToListener), key('wvts udp d2l', true));
  assert.is(toHex(s.udp.listenerToDialer), key('wvts udp l2d', true));
  assert.is(toHex(s.tcp.dialerToListener), EXPECTED_TCP_D2L);
});

test('wrong-length keys and secrets are CryptoErrors', () => {
  const ok = bytes(32, 0);
  const short = bytes(31, 0);
  const isBadValue = (e: unknown) => e instanceof CryptoError && e.code === 'bad-value';
  assert.throws(() => handshakeKeys(native, { bytes: short }, ok, ok, ok), isBadValue);
  assert.throws(() => handshakeKeys(native, { bytes: ok }, short, ok, ok), isBadValue);
  assert.throws(() => sessionKeys(native, { bytes: ok }, ok, short, ok, ok, ok), isBadValue);
  assert.throws(() => sessionKeys(native, { bytes: ok }, ok, ok, short, ok, ok), isBadValue);
});

test.run();
