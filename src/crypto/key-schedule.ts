// Key schedule: per-connection handshake and session keys from the X25519 secret, bound to the network key and the transcript.
//
// Inputs (all lengths in bytes):
//   networkKey        32  Argon2id-stretched network password (see network-key.ts)
//   shared            32  X25519(own secret key, peer public key); equal on both ends
//   dialerPublic      32  ephemeral X25519 public key of the peer that opened the TCP connection
//   listenerPublic    32  ephemeral X25519 public key of the peer that accepted it
//   dialerFeatures     n  encoded feature record the dialer sent (the exact bytes on the wire, before sealing)
//   listenerFeatures   m  encoded feature record the listener sent
//
// BLAKE2b-256(x) is unkeyed crypto_generichash with a 32-byte output; BLAKE2b-256(k, x) is keyed with k.
// ‖ is concatenation, u32be(v) a 4-byte big-endian length, labels are ASCII without a terminator.
//
//   transcriptHash = BLAKE2b-256(dialerPublic ‖ listenerPublic
//                                ‖ u32be(n) ‖ dialerFeatures ‖ u32be(m) ‖ listenerFeatures)
//
//   handshake keys (seal only the feature records):
//     hs d2l  = BLAKE2b-256(networkKey, "wvts hs d2l"  ‖ shared ‖ dialerPublic ‖ listenerPublic)
//     hs l2d  = BLAKE2b-256(networkKey, "wvts hs l2d"  ‖ shared ‖ dialerPublic ‖ listenerPublic)
//
//   session keys (everything after the feature records):
//     tcp d2l = BLAKE2b-256(networkKey, "wvts tcp d2l" ‖ shared ‖ dialerPublic ‖ listenerPublic ‖ transcriptHash)
//     tcp l2d = BLAKE2b-256(networkKey, "wvts tcp l2d" ‖ shared ‖ dialerPublic ‖ listenerPublic ‖ transcriptHash)
//     udp d2l = BLAKE2b-256(networkKey, "wvts udp d2l" ‖ shared ‖ dialerPublic ‖ listenerPublic ‖ transcriptHash)
//     udp l2d = BLAKE2b-256(networkKey, "wvts udp l2d" ‖ shared ‖ dialerPublic ‖ listenerPublic ‖ transcriptHash)
//
// d2l keys seal what the dialer sends, l2d keys what the listener sends. Each key has its own nonce
// counter starting at 0, so no (key, nonce) pair repeats across directions or channels. Keying with the
// network key means only holders of the password can derive any key (authentication); the fresh
// X25519 pair per connection gives forward secrecy; the transcript hash makes a man in the middle who
// altered a feature record or a public key end up with session keys that do not match.
import { CryptoError } from '../errors.js';
import type { NetworkKey } from './network-key.js';
import { X25519_BYTES, type SodiumBackend } from './sodium.js';
import { concatBytes } from '../wire/codec.js';

/** One key per direction of a connection, named by who sends. */
export interface DirectionalKeys {
  /** Seals what the dialer sends and opens what the listener receives. */
  dialerToListener: Uint8Array;
  /** Seals what the listener sends and opens what the dialer receives. */
  listenerToDialer: Uint8Array;
}

const KEY_BYTES = 32;
const HASH_BYTES = 32;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const LABEL_HS_D2L = ascii('wvts hs d2l');
const LABEL_HS_L2D = ascii('wvts hs l2d');
const LABEL_TCP_D2L = ascii('wvts tcp d2l');
const LABEL_TCP_L2D = ascii('wvts tcp l2d');
const LABEL_UDP_D2L = ascii('wvts udp d2l');
const LABEL_UDP_L2D = ascii('wvts udp l2d');

function checkLength(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.length !== expected) throw new CryptoError('bad-value', `${what} is ${bytes.length} bytes, expected ${expected}`);
}

function checkInputs(networkKey: NetworkKey, shared: Uint8Array, dialerPublic: Uint8Array, listenerPublic: Uint8Array): void {
  checkLength('network key', networkKey.bytes, KEY_BYTES);
  checkLength('X25519 shared secret', shared, X25519_BYTES);
  checkLength('dialer public key', dialerPublic, X25519_BYTES);
  checkLength('listener public key', listenerPublic, X25519_BYTES);
}

function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function deriveKey(sodium: SodiumBackend, networkKey: NetworkKey, label: Uint8Array, rest: readonly Uint8Array[]): Uint8Array {
  const input = concatBytes([label, ...rest]);
  try {
    return sodium.blake2b(KEY_BYTES, input, networkKey.bytes);
  } finally {
    input.fill(0); // it holds the shared secret
  }
}

/** BLAKE2b-256 of both public keys and both length-prefixed feature records (see the schedule above). */
export function transcriptHash(
  sodium: SodiumBackend,
  dialerPublic: Uint8Array,
  listenerPublic: Uint8Array,
  dialerFeatures: Uint8Array,
  listenerFeatures: Uint8Array,
): Uint8Array {
  return sodium.blake2b(
    HASH_BYTES,
    concatBytes([dialerPublic, listenerPublic, u32be(dialerFeatures.length), dialerFeatures, u32be(listenerFeatures.length), listenerFeatures]),
  );
}

/** Keys that protect only the feature-record exchange. */
export function handshakeKeys(
  sodium: SodiumBackend,
  networkKey: NetworkKey,
  shared: Uint8Array,
  dialerPublic: Uint8Array,
  listenerPublic: Uint8Array,
): DirectionalKeys {
  checkInputs(networkKey, shared, dialerPublic, listenerPublic);
  const rest = [shared, dialerPublic, listenerPublic];
  return {
    dialerToListener: deriveKey(sodium, networkKey, LABEL_HS_D2L, rest),
    listenerToDialer: deriveKey(sodium, networkKey, LABEL_HS_L2D, rest),
  };
}

/** Session keys, bound to the whole transcript (both public keys and both encoded feature records), separate per direction and per channel. */
export function sessionKeys(
  sodium: SodiumBackend,
  networkKey: NetworkKey,
  shared: Uint8Array,
  dialerPublic: Uint8Array,
  listenerPublic: Uint8Array,
  dialerFeatures: Uint8Array,
  listenerFeatures: Uint8Array,
): { tcp: DirectionalKeys; udp: DirectionalKeys } {
  checkInputs(networkKey, shared, dialerPublic, listenerPublic);
  const rest = [shared, dialerPublic, listenerPublic, transcriptHash(sodium, dialerPublic, listenerPublic, dialerFeatures, listenerFeatures)];
  return {
    tcp: {
      dialerToListener: deriveKey(sodium, networkKey, LABEL_TCP_D2L, rest),
      listenerToDialer: deriveKey(sodium, networkKey, LABEL_TCP_L2D, rest),
    },
    udp: {
      dialerToListener: deriveKey(sodium, networkKey, LABEL_UDP_D2L, rest),
      listenerToDialer: deriveKey(sodium, networkKey, LABEL_UDP_L2D, rest),
    },
  };
}
