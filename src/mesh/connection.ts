// Connection: one TCP control link to a neighbour peer: handshake, keyed framing, heartbeats, silence timeout.
import { EventEmitter } from 'eventemitter3';
import type { Clock, Timer } from '../clock.js';
import type { Random } from '../random.js';
import { ConnectionError, CryptoError, DecodeError, HandshakeError, WeaveError } from '../errors.js';
import { concatBytes, decodeWith, encodeWith, Writer } from '../wire/codec.js';
import {
  decodeFeatures,
  decodeHeader,
  encodeFeatures,
  encodeHeader,
  HEADER_BYTES,
  negotiateVersion,
  PROTOCOL_MAX_VERSION,
  PROTOCOL_MIN_VERSION,
  PUBLIC_KEY_BYTES,
  type FeatureRecord,
} from '../wire/handshake.js';
import { decodeMessage, encodeMessageBody, MAX_MESSAGE_BYTES, MessageTag, type ControlMessage } from '../wire/messages.js';
import type { SodiumBackend } from '../crypto/sodium.js';
import type { NetworkKey } from '../crypto/network-key.js';
import { handshakeKeys, sessionKeys, type DirectionalKeys } from '../crypto/key-schedule.js';
import { StreamOpener, StreamSealer } from '../crypto/aead.js';
import { AEAD_TAG_BYTES } from '../crypto/sodium.js';
import { ByteQueue } from './byte-queue.js';
import { formatHostPort } from './address.js';
import type { StreamSocket } from './transport.js';
import { withDefaults, type Overrides } from '../options.js';

/** Timing of a control connection; the defaults are the protocol's. */
export interface ConnectionTimings {
  /** The whole handshake must finish within this (default 10 s). */
  handshakeTimeoutMs: number;
  /** A heartbeat is sent this often (default 30 s). */
  heartbeatIntervalMs: number;
  /** The link is dead after this long without any message (default 60 s). */
  silenceTimeoutMs: number;
}

export const DEFAULT_CONNECTION_TIMINGS: ConnectionTimings = {
  handshakeTimeoutMs: 10_000,
  heartbeatIntervalMs: 30_000,
  silenceTimeoutMs: 60_000,
};

/** What we tell the remote about ourselves (the connection id is added per connection). */
export type LocalFeatures = Omit<FeatureRecord, 'connectionId'>;

/** The password-derived material a connection needs to encrypt; absent means plain. */
export interface ConnectionCrypto {
  sodium: SodiumBackend;
  networkKey: NetworkKey;
}

export interface ConnectionOptions {
  socket: StreamSocket;
  outbound: boolean;
  /** The dialled "host:port" (outbound); inbound links take the socket's remote address. */
  address?: string;
  local: LocalFeatures;
  crypto?: ConnectionCrypto;
  clock: Clock;
  random: Random;
  timings?: Overrides<ConnectionTimings>;
}

/** Keys for the data plane of this link, derived in the same handshake (per direction). */
export interface DatagramKeys {
  /** 32-byte key sealing packets we send to the neighbour. */
  send: Uint8Array;
  /** 32-byte key opening packets the neighbour sends us. */
  receive: Uint8Array;
}

interface ConnectionEvents {
  message: (message: ControlMessage) => void;
  close: (error: WeaveError | undefined) => void;
}

/** A feature record is at most ~8.5 KiB; its frame (plus the AEAD tag) must fit in this. */
const MAX_FEATURE_FRAME_BYTES = 16 * 1024;
/** Bytes a not-yet-authenticated remote may make us buffer. */
const MAX_HANDSHAKE_BUFFER_BYTES = 64 * 1024;

const CRYPTO_FLAG_PLAIN = 0;
const CRYPTO_FLAG_ENCRYPTED = 1;

/**
 * A control connection. `handshake()` authenticates and learns the remote's features; the owner then
 * decides whether to keep it and calls `start()` to begin heartbeats and message delivery.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly outbound: boolean;
  /** "host:port" of the remote end of the TCP socket. */
  readonly remoteAddress: string;
  private readonly socket: StreamSocket;
  private readonly local: LocalFeatures;
  private readonly cryptoParams: ConnectionCrypto | undefined;
  private readonly clock: Clock;
  private readonly timings: ConnectionTimings;
  private readonly queue = new ByteQueue();
  private readonly localConnectionId: bigint;
  private remoteFeatures: FeatureRecord | undefined;
  private sealer: StreamSealer | undefined;
  private opener: StreamOpener | undefined;
  private udpKeys: DatagramKeys | undefined;
  private waiting: (() => void) | undefined;
  private started = false;
  private closedWith: { error: WeaveError | undefined } | undefined;
  private heartbeatTimer: Timer | undefined;
  private silenceTimer: Timer | undefined;
  private lastReceived = 0;
  private negotiatedVersion = 0;
  private received = 0;

  constructor(options: ConnectionOptions) {
    super();
    this.socket = options.socket;
    this.outbound = options.outbound;
    this.local = options.local;
    this.cryptoParams = options.crypto;
    this.clock = options.clock;
    this.timings = withDefaults(DEFAULT_CONNECTION_TIMINGS, options.timings);
    this.localConnectionId = options.random.u64();
    this.remoteAddress = options.address ?? formatHostPort(this.socket.remoteAddress ?? 'unknown', this.socket.remotePort ?? 0);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (cause: Error) =>
      this.close(new ConnectionError('closed', `connection to ${this.remoteAddress} failed: ${cause.message}`, { cause })),
    );
    this.socket.on('close', () => this.close(new ConnectionError('closed', `connection to ${this.remoteAddress} was closed by the remote`)));
  }

  /** The remote's feature record (after the handshake). */
  get remote(): FeatureRecord {
    if (this.remoteFeatures === undefined) throw new Error('handshake not finished');
    return this.remoteFeatures;
  }

  /** The remote's feature record, or undefined before the handshake got that far. */
  get remoteIfKnown(): FeatureRecord | undefined {
    return this.remoteFeatures;
  }

  /** Both ends compute the same id (local XOR remote connection id); the lower id wins duplicate links. */
  get id(): bigint {
    return this.localConnectionId ^ this.remote.connectionId;
  }

  get encrypted(): boolean {
    return this.cryptoParams !== undefined;
  }

  get protocolVersion(): number {
    return this.negotiatedVersion;
  }

  /** The remote's listening address: its IP with the port from its feature record. */
  get remoteListenAddress(): string {
    const host = this.socket.remoteAddress ?? 'unknown';
    return formatHostPort(host, this.remote.listenPort);
  }

  /** The remote's IP address (IPv4-mapped IPv6 written as IPv4). */
  get remoteHost(): string {
    const host = this.socket.remoteAddress ?? 'unknown';
    return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  }

  get localAddress(): string {
    return formatHostPort(this.socket.localAddress ?? 'unknown', this.socket.localPort ?? 0);
  }

  /** Data-plane keys for this link, or undefined when the mesh runs without a password. */
  get datagramKeys(): DatagramKeys | undefined {
    return this.udpKeys;
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Bytes the remote has sent on this connection (0: it never spoke, as with a dropped SYN or a silent socket). */
  get bytesReceived(): number {
    return this.received;
  }

  /** Runs the handshake under its deadline; rejects with a HandshakeError and closes on any failure. */
  async handshake(): Promise<FeatureRecord> {
    const deadline = this.clock.setTimer(this.timings.handshakeTimeoutMs, () =>
      this.close(
        new HandshakeError('handshake-timeout', `handshake with ${this.remoteAddress} did not finish within ${this.timings.handshakeTimeoutMs} ms`),
      ),
    );
    try {
      return await this.runHandshake();
    } catch (error) {
      const failure = asHandshakeError(error, this.remoteAddress);
      this.close(failure);
      throw failure;
    } finally {
      deadline.cancel();
    }
  }

  private async runHandshake(): Promise<FeatureRecord> {
    const ours = { minVersion: PROTOCOL_MIN_VERSION, maxVersion: PROTOCOL_MAX_VERSION };
    const keypair = this.cryptoParams?.sodium.x25519Keypair();
    // Header and hello go out together: the hello's layout is the same in every protocol version.
    const hello = new Writer(64);
    encodeHeader(hello, ours);
    hello.u8(keypair ? CRYPTO_FLAG_ENCRYPTED : CRYPTO_FLAG_PLAIN);
    if (keypair) hello.bytes(keypair.publicKey);
    const ourHello = hello.finish();
    this.write(ourHello);

    const theirHeader = (await this.read(HEADER_BYTES)).slice();
    const theirs = decodeWith(decodeHeader, theirHeader);
    const version = negotiateVersion(ours, theirs);
    if (version === undefined) {
      throw new HandshakeError(
        'version-mismatch',
        `${this.remoteAddress} speaks protocol ${theirs.minVersion}..${theirs.maxVersion}, we speak ${ours.minVersion}..${ours.maxVersion}: upgrade the older peer`,
      );
    }
    this.negotiatedVersion = version;
    const flag = (await this.read(1))[0];
    if (flag !== CRYPTO_FLAG_PLAIN && flag !== CRYPTO_FLAG_ENCRYPTED) {
      throw new HandshakeError('protocol', `${this.remoteAddress} sent crypto flag ${String(flag)}`);
    }
    if (flag === CRYPTO_FLAG_ENCRYPTED && !keypair) {
      throw new HandshakeError('crypto-mismatch', `${this.remoteAddress} uses a network password but this peer has none: set the same password on every peer`);
    }
    if (flag === CRYPTO_FLAG_PLAIN && keypair) {
      throw new HandshakeError('crypto-mismatch', `${this.remoteAddress} has no network password but this peer has one: set the same password on every peer`);
    }
    const features: FeatureRecord = { ...this.local, connectionId: this.localConnectionId };
    const ourFeatures = encodeWith(encodeFeatures, features);
    let theirFeatures: Uint8Array;
    if (keypair && this.cryptoParams) {
      const { sodium, networkKey } = this.cryptoParams;
      const remotePublic = (await this.read(PUBLIC_KEY_BYTES)).slice();
      const shared = sodium.x25519(keypair.secretKey, remotePublic);
      const dialerPublic = this.outbound ? keypair.publicKey : remotePublic;
      const listenerPublic = this.outbound ? remotePublic : keypair.publicKey;
      const hs = this.directional(handshakeKeys(sodium, networkKey, shared, dialerPublic, listenerPublic));
      this.writeFrame(new StreamSealer(sodium, hs.send).seal(ourFeatures));
      const sealed = await this.readFrame(MAX_FEATURE_FRAME_BYTES);
      try {
        theirFeatures = new StreamOpener(sodium, hs.receive).open(sealed);
      } catch (cause) {
        throw new HandshakeError(
          'bad-password',
          `${this.remoteAddress} failed to authenticate: its network password differs from ours (or the link is tampered with)`,
          { cause },
        );
      }
      // Each side's transcript part is its clear header and crypto flag, then its feature record, so a
      // man in the middle cannot rewrite the version range or the flag without breaking the keys.
      const ourPart = concatBytes([ourHello.subarray(0, HEADER_BYTES + 1), ourFeatures]);
      const theirPart = concatBytes([theirHeader, Uint8Array.of(flag), theirFeatures]);
      const keys = sessionKeys(
        sodium,
        networkKey,
        shared,
        dialerPublic,
        listenerPublic,
        this.outbound ? ourPart : theirPart,
        this.outbound ? theirPart : ourPart,
      );
      shared.fill(0);
      keypair.secretKey.fill(0);
      const tcp = this.directional(keys.tcp);
      this.sealer = new StreamSealer(sodium, tcp.send);
      this.opener = new StreamOpener(sodium, tcp.receive);
      this.udpKeys = this.directional(keys.udp);
    } else {
      this.writeFrame(ourFeatures);
      theirFeatures = await this.readFrame(MAX_FEATURE_FRAME_BYTES);
    }
    this.remoteFeatures = decodeWith(decodeFeatures, theirFeatures);
    return this.remoteFeatures;
  }

  private directional(keys: DirectionalKeys): DatagramKeys {
    return this.outbound
      ? { send: keys.dialerToListener, receive: keys.listenerToDialer }
      : { send: keys.listenerToDialer, receive: keys.dialerToListener };
  }

  /** Begins heartbeats, the silence timeout and delivery of messages (including any already buffered). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.lastReceived = this.clock.now();
    this.scheduleHeartbeat();
    this.scheduleSilenceCheck(this.timings.silenceTimeoutMs);
    this.deliver();
  }

  /**
   * Sends one message. Returns false, sending nothing, when the link is closed (the close event already
   * told the owner) or the message is over the 10 MiB cap (the caller counts it).
   */
  send(message: ControlMessage): boolean {
    if (this.closed) return false;
    const body = encodeMessageBody(message);
    if (body.byteLength > MAX_MESSAGE_BYTES) return false;
    this.writeFrame(this.sealer ? this.sealer.seal(body) : body);
    return true;
  }

  /** Closes the link once; the first error given is the one reported. */
  close(error?: WeaveError): void {
    if (this.closedWith) return;
    this.closedWith = { error };
    this.heartbeatTimer?.cancel();
    this.silenceTimer?.cancel();
    this.socket.destroy();
    const wake = this.waiting;
    this.waiting = undefined;
    wake?.();
    this.emit('close', error);
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = this.clock.setTimer(this.timings.heartbeatIntervalMs, () => {
      this.send({ tag: MessageTag.Heartbeat });
      this.scheduleHeartbeat();
    });
  }

  private scheduleSilenceCheck(ms: number): void {
    this.silenceTimer = this.clock.setTimer(ms, () => {
      const silent = this.clock.now() - this.lastReceived;
      if (silent >= this.timings.silenceTimeoutMs) {
        this.close(new ConnectionError('heartbeat-timeout', `${this.remoteAddress} sent nothing for ${Math.round(silent)} ms`));
      } else {
        this.scheduleSilenceCheck(this.timings.silenceTimeoutMs - silent);
      }
    });
  }

  private write(bytes: Uint8Array): void {
    if (!this.closed) this.socket.write(bytes);
  }

  private writeFrame(body: Uint8Array): void {
    const frame = Buffer.allocUnsafe(4 + body.byteLength);
    frame.writeUInt32BE(body.byteLength, 0);
    frame.set(body, 4);
    this.write(frame);
  }

  private onData(chunk: Buffer): void {
    this.received += chunk.byteLength;
    this.queue.push(chunk);
    if (!this.started && this.queue.length > MAX_HANDSHAKE_BUFFER_BYTES) {
      // Before authentication nobody gets to make us buffer much.
      this.close(new HandshakeError('too-large', `${this.remoteAddress} sent over ${MAX_HANDSHAKE_BUFFER_BYTES} bytes during the handshake`));
      return;
    }
    if (this.started) this.deliver();
    else {
      const wake = this.waiting;
      this.waiting = undefined;
      wake?.();
    }
  }

  /** Decodes and emits every complete message; any bad frame closes the link. */
  private deliver(): void {
    while (!this.closed) {
      let message: ControlMessage;
      try {
        const frame = this.queue.takeFrame(this.opener ? MAX_MESSAGE_BYTES + AEAD_TAG_BYTES : MAX_MESSAGE_BYTES);
        if (frame === undefined) return;
        const body = this.opener ? this.opener.open(frame) : frame;
        message = decodeMessage(body);
      } catch (error) {
        this.close(asConnectionError(error, this.remoteAddress));
        return;
      }
      this.lastReceived = this.clock.now();
      try {
        this.emit('message', message);
      } catch (error) {
        // A throwing listener is a bug, but it must cost this link, not the process.
        this.close(new ConnectionError('protocol', `handling a message from ${this.remoteAddress} failed: ${String(error)}`, { cause: error }));
      }
    }
  }

  private async read(n: number): Promise<Uint8Array> {
    for (;;) {
      // Bytes that arrived before a close are still read: the remote's last word explains the close.
      const bytes = this.queue.take(n);
      if (bytes !== undefined) return bytes;
      if (this.closedWith) throw this.closedWith.error ?? new HandshakeError('closed', `connection to ${this.remoteAddress} closed`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  private async readFrame(max: number): Promise<Uint8Array> {
    for (;;) {
      const frame = this.queue.takeFrame(max);
      if (frame !== undefined) return frame;
      if (this.closedWith) throw this.closedWith.error ?? new HandshakeError('closed', `connection to ${this.remoteAddress} closed`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

function asHandshakeError(error: unknown, address: string): WeaveError {
  if (error instanceof HandshakeError) return error;
  if (error instanceof WeaveError) {
    return new HandshakeError(error.code, `handshake with ${address} failed: ${error.message}`, { cause: error });
  }
  return new HandshakeError('protocol', `handshake with ${address} failed: ${String(error)}`, { cause: error });
}

function asConnectionError(error: unknown, address: string): WeaveError {
  if (error instanceof CryptoError) {
    return new ConnectionError('decrypt-failed', `message from ${address} failed authentication (tampered, dropped or replayed): closing the link`, {
      cause: error,
    });
  }
  if (error instanceof DecodeError) {
    return new ConnectionError(error.code, `message from ${address} is malformed: ${error.message}`, { cause: error });
  }
  return new ConnectionError('protocol', `message from ${address} could not be handled: ${String(error)}`, { cause: error });
}

