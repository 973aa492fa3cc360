// Frame crypto: how one link's datagrams are protected, kept apart from the sleeve as Weave keeps frame_crypto.go
// apart from its forwarder. A plain codec and a sealed one (ChaCha20-Poly1305 IETF; nonce = 4 zero bytes + the
// packet counter; additional data = the 14-byte packet header) behind one interface. Both work in place: the sleeve
// builds the body right after the header in the datagram buffer, the sealer seals it there, and the opener opens a
// received datagram where it arrived, so crypto copies no frame byte.
import { writePacketNonce } from '../crypto/aead.js';
import { ReplayWindow } from '../crypto/replay-window.js';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, type SodiumBackend } from '../crypto/sodium.js';
import { PACKET_HEADER_BYTES } from '../wire/sleeve.js';

/** The sending half of a link. */
export interface FrameSealer {
  /** True when datagrams are sealed. */
  readonly encrypted: boolean;
  /** Bytes sealing adds after the body (the AEAD tag; 0 when plain). */
  readonly overhead: number;
  /**
   * Protects the body at `packet[14, 14 + bodyLength)` in place; the header (already written, `counter` in it) is
   * the additional data. Returns the datagram's length.
   */
  seal(packet: Uint8Array, bodyLength: number, counter: number): number;
}

/** The receiving half of a link. */
export interface FrameOpener {
  /** True when datagrams are sealed (and replays are refused). */
  readonly encrypted: boolean;
  /** False when `counter` was accepted before or is behind the replay window (a plain link takes every counter). */
  isFresh(counter: number): boolean;
  /** The body of `packet`, opened in place; undefined when it does not authenticate. */
  open(packet: Uint8Array, counter: number): Uint8Array | undefined;
  /** Records the counter of an authentic datagram (only then does the replay window move). */
  accept(counter: number): void;
}

const PLAIN_SEALER: FrameSealer = {
  encrypted: false,
  overhead: 0,
  seal: (_packet, bodyLength) => PACKET_HEADER_BYTES + bodyLength,
};

const PLAIN_OPENER: FrameOpener = {
  encrypted: false,
  isFresh: () => true,
  open: (packet) => packet.subarray(PACKET_HEADER_BYTES),
  accept: () => undefined,
};

class SealedSealer implements FrameSealer {
  readonly encrypted = true;
  readonly overhead = AEAD_TAG_BYTES;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);

  constructor(
    private readonly sodium: SodiumBackend,
    private readonly key: Uint8Array,
  ) {}

  seal(packet: Uint8Array, bodyLength: number, counter: number): number {
    writePacketNonce(this.nonce, counter);
    const body = packet.subarray(PACKET_HEADER_BYTES, PACKET_HEADER_BYTES + bodyLength);
    return PACKET_HEADER_BYTES + this.sodium.aeadSeal(packet, PACKET_HEADER_BYTES, body, this.nonce, this.key, packet.subarray(0, PACKET_HEADER_BYTES));
  }
}

class SealedOpener implements FrameOpener {
  readonly encrypted = true;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  private readonly window = new ReplayWindow();

  constructor(
    private readonly sodium: SodiumBackend,
    private readonly key: Uint8Array,
  ) {}

  isFresh(counter: number): boolean {
    return this.window.isFresh(counter);
  }

  open(packet: Uint8Array, counter: number): Uint8Array | undefined {
    writePacketNonce(this.nonce, counter);
    const sealed = packet.subarray(PACKET_HEADER_BYTES);
    const n = this.sodium.aeadOpen(packet, PACKET_HEADER_BYTES, sealed, this.nonce, this.key, packet.subarray(0, PACKET_HEADER_BYTES));
    return n < 0 ? undefined : packet.subarray(PACKET_HEADER_BYTES, PACKET_HEADER_BYTES + n);
  }

  accept(counter: number): void {
    this.window.accept(counter);
  }
}

/** The two halves for a link: sealed with its per-direction keys, or plain without them. */
export function frameCrypto(keys: { send: Uint8Array; receive: Uint8Array } | undefined, sodium: SodiumBackend | undefined): { sealer: FrameSealer; opener: FrameOpener } {
  if (!keys) return { sealer: PLAIN_SEALER, opener: PLAIN_OPENER };
  if (!sodium) throw new Error('frame crypto: the link carries keys but no libsodium binding was given');
  return { sealer: new SealedSealer(sodium, keys.send), opener: new SealedOpener(sodium, keys.receive) };
}
