// Links: one TCP connection per neighbour. Accepting (rate and count limits), dialling, the handshake,
// admission (connect-to-self, duplicates, restarts) and closing; what a link carries is the router's.
import type { Clock } from '../clock.js';
import type { Random } from '../random.js';
import { ConnectionError, HandshakeError, WeaveError } from '../errors.js';
import type { ControlMessage } from '../wire/messages.js';
import type { FeatureRecord } from '../wire/handshake.js';
import type { ConnectionSummary } from '../wire/topology.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import { TokenBucket } from '../token-bucket.js';
import { Connection, DEFAULT_CONNECTION_TIMINGS, type ConnectionCrypto, type ConnectionTimings } from './connection.js';
import { parseHostPort } from './address.js';
import type { LinkInfo } from './peer.js';
import type { StreamSocket } from './transport.js';
import type { Overrides } from '../options.js';

/** A link: the admitted connection to a neighbour, its incarnation and what status shows of it. */
export interface Link {
  connection: Connection;
  info: LinkInfo;
  uid: bigint;
}

/** Why a link ended or failed, as reported in events. */
export interface LinkFailure {
  /** The dialled target, or the remote address of an inbound connection ("host:port"). */
  address: string;
  /** The remote peer, when the handshake got far enough to learn it. */
  peer?: PeerName;
  /** What went wrong; `error.code` says why. */
  error: WeaveError;
  /**
   * Bytes the remote sent before the failure: 0 means it never spoke (nothing listening, a dropped SYN,
   * a silent socket); more means something answered, so a refusal is worth an operator's attention.
   */
  bytesReceived: number;
}

/** Counters of the link table (part of the router's stats). */
export interface LinkStats {
  /** Inbound connections closed at once by the accept rate limit (`acceptRate`). */
  acceptsThrottled: number;
  /** Inbound connections closed at once because the connection limit was reached. */
  connectionsRefused: number;
  /** Failed dials and inbound handshakes, by error code. */
  handshakeFailures: Record<string, number>;
  /** Links that closed after being accepted. */
  terminations: number;
}

/** What the link table needs from the router that owns it, and what it tells it. */
export interface LinksHost {
  readonly selfName: PeerName;
  readonly uid: bigint;
  readonly clock: Clock;
  readonly random: Random;
  /** Most links, established or in handshake (0 = unlimited). */
  readonly connectionLimit: number;
  /** Inbound connections allowed at once, then one per `refillMs`. */
  readonly acceptRate: { burst: number; refillMs: number };
  readonly timings: Overrides<ConnectionTimings> | undefined;
  /** What we tell a remote in the handshake. */
  localFeatures(): Omit<FeatureRecord, 'connectionId'>;
  /** Link encryption, once started with a password. */
  crypto(): ConnectionCrypto | undefined;
  /** Opens a socket to a target. */
  connectSocket(host: string, port: number): StreamSocket;
  /** True while the router runs: nothing is admitted before or after. */
  running(): boolean;
  /** Set once the mesh refused us: nothing is dialled or accepted. */
  refusal(): HandshakeError | undefined;
  /** The incarnation check of a handshaken connection (may wait for a probe); throws to refuse it. */
  vet(connection: Connection): Promise<void>;
  /** True with a data plane attached: links start not established and the data plane decides. */
  dataPlane(): boolean;
  /** A message on a link (handlers are in place before the connection starts). */
  message(link: Link, message: ControlMessage): void;
  /** A link was admitted, started, and holds its peer's slot. */
  admitted(link: Link): void;
  /** A link closed (reported first, whether or not it still held its peer's slot). */
  closing(link: Link, error: WeaveError | undefined): void;
  /** A link that held its peer's slot closed; the slot is free. */
  closed(link: Link): void;
  /** A dial or an inbound handshake failed. */
  failed(failure: LinkFailure): void;
}

/**
 * The router's links: at most one per neighbour, plus connections still in handshake. A simultaneous
 * dial from both ends keeps the connection with the lower id on both; a peer that restarted replaces
 * the link to its old incarnation, taking the slot before the old link closes.
 */
export class Links {
  /** Admitted links by neighbour. */
  readonly byPeer = new Map<PeerName, Link>();
  /** Connections in handshake. */
  readonly pending = new Set<Connection>();
  readonly stats: LinkStats = { acceptsThrottled: 0, connectionsRefused: 0, handshakeFailures: {}, terminations: 0 };
  private readonly acceptBucket: TokenBucket;

  constructor(private readonly host: LinksHost) {
    this.acceptBucket = new TokenBucket(host.clock, host.acceptRate.burst, host.acceptRate.refillMs);
  }

  /** An inbound socket: refused at once when stopping, refused, throttled or at the limit. */
  accept(socket: StreamSocket): void {
    if (!this.host.running() || this.host.refusal()) {
      socket.destroy();
      return;
    }
    if (!this.acceptBucket.tryTake()) {
      this.stats.acceptsThrottled += 1;
      socket.destroy();
      return;
    }
    if (this.atLimit()) {
      this.stats.connectionsRefused += 1;
      socket.destroy();
      return;
    }
    const connection = this.newConnection(socket, false);
    connection
      .handshake()
      .then(() => this.host.vet(connection))
      .then(
        () => {
          try {
            this.admit(connection);
          } catch (error) {
            this.reportFailure(connection.remoteAddress, error, connection);
          }
        },
        (error: unknown) => this.reportFailure(connection.remoteAddress, error, connection),
      );
  }

  /** Dials one target; resolves with the remote peer once a link to it is up. */
  async dial(address: string): Promise<PeerName> {
    const refusal = this.host.refusal();
    if (refusal) throw refusal;
    if (!this.host.running()) throw new ConnectionError('closed', 'router is not running');
    if (this.atLimit()) {
      throw new ConnectionError('connection-limit', `not dialling ${address}: the connection limit of ${this.host.connectionLimit} is reached`);
    }
    const { host, port } = parseHostPort(address);
    const socket = this.host.connectSocket(host, port);
    const connection = this.newConnection(socket, true, address);
    try {
      const connectTimeoutMs = this.host.timings?.handshakeTimeoutMs ?? DEFAULT_CONNECTION_TIMINGS.handshakeTimeoutMs;
      await new Promise<void>((resolve, reject) => {
        if (!socket.connecting && socket.remoteAddress !== undefined) {
          resolve(); // an injected socket that is already connected
          return;
        }
        // A silently dropped SYN would otherwise hold a pending slot for minutes.
        const deadline = this.host.clock.setTimer(connectTimeoutMs, () =>
          connection.close(new ConnectionError('handshake-timeout', `connecting to ${address} timed out after ${connectTimeoutMs} ms`)),
        );
        socket.once('connect', () => {
          deadline.cancel();
          resolve();
        });
        connection.once('close', (error) => {
          deadline.cancel();
          reject(error ?? new ConnectionError('closed', `connection to ${address} closed`));
        });
      });
      await connection.handshake();
      await this.host.vet(connection);
      return this.admit(connection);
    } catch (error) {
      const failure = this.reportFailure(address, error, connection);
      // A duplicate means a link to that peer is up after all: the dial's goal is met.
      const remote = connection.remoteIfKnown;
      if (failure.code === 'duplicate-connection' && remote && this.byPeer.has(remote.name)) return remote.name;
      throw failure;
    }
  }

  /** Our links as our own topology record lists them, sorted by peer. */
  connections(): ConnectionSummary[] {
    return [...this.byPeer.values()]
      .map((l) => ({ peer: l.info.peer, address: l.info.listenAddress, outbound: l.info.outbound, established: l.info.established }))
      .sort((a, b) => a.peer - b.peer);
  }

  /** How long until each link not yet established is established or has been up for `holdMs`; 0 when none waits. */
  establishingWaitMs(holdMs: number): number {
    const now = this.host.clock.now();
    let wait = 0;
    for (const l of this.byPeer.values()) if (!l.info.established) wait = Math.max(wait, l.info.since + holdMs - now);
    return wait;
  }

  /** Closes every link and every connection in handshake. */
  closeAll(error: WeaveError): void {
    for (const connection of [...this.pending]) connection.close(error);
    for (const link of [...this.byPeer.values()]) link.connection.close(error);
  }

  private atLimit(): boolean {
    return this.host.connectionLimit > 0 && this.byPeer.size + this.pending.size >= this.host.connectionLimit;
  }

  private newConnection(socket: StreamSocket, outbound: boolean, address?: string): Connection {
    const crypto = this.host.crypto();
    const connection = new Connection({
      socket,
      outbound,
      ...(address !== undefined ? { address } : {}),
      local: this.host.localFeatures(),
      ...(crypto ? { crypto } : {}),
      clock: this.host.clock,
      random: this.host.random,
      ...(this.host.timings ? { timings: this.host.timings } : {}),
    });
    this.pending.add(connection);
    connection.once('close', () => this.pending.delete(connection));
    return connection;
  }

  private reportFailure(address: string, error: unknown, connection: Connection): WeaveError {
    const failure = error instanceof WeaveError ? error : new ConnectionError('protocol', String(error), { cause: error });
    connection.close(failure);
    this.stats.handshakeFailures[failure.code] = (this.stats.handshakeFailures[failure.code] ?? 0) + 1;
    const peer = connection.remoteIfKnown?.name;
    this.host.failed({ address, ...(peer !== undefined ? { peer } : {}), error: failure, bytesReceived: connection.bytesReceived });
    return failure;
  }

  /** Decides whether a handshaken connection becomes the link to its peer; throws if not. */
  private admit(connection: Connection): PeerName {
    const remote = connection.remote;
    if (!this.host.running()) throw new ConnectionError('closed', 'router is stopping');
    if (remote.name === this.host.selfName) {
      if (remote.uid === this.host.uid) throw new HandshakeError('connect-to-self', `${connection.remoteAddress} is this peer itself`);
      throw new HandshakeError(
        'name-collision',
        `${connection.remoteAddress} uses our peer name ${formatPeerName(this.host.selfName)}: give every peer a unique name (cloned machine id?)`,
      );
    }
    const existing = this.byPeer.get(remote.name);
    let replaced: { link: Link; error: WeaveError } | undefined;
    if (existing) {
      if (existing.uid === remote.uid) {
        // Both ends compare the same ids, so both keep the same connection.
        const why = `a link to ${formatPeerName(remote.name)} already exists`;
        if (connection.id === existing.connection.id) {
          existing.connection.close(new ConnectionError('duplicate-connection', `${why} with an equal id: closing both`));
        }
        if (connection.id >= existing.connection.id) throw new ConnectionError('duplicate-connection', why);
        replaced = { link: existing, error: new ConnectionError('duplicate-connection', 'replaced by a simultaneous link with a lower id') };
      } else {
        const why = `${formatPeerName(remote.name)} restarted: replacing the link to its old incarnation`;
        replaced = { link: existing, error: new ConnectionError('closed', why) };
      }
    }
    this.pending.delete(connection);
    const now = this.host.clock.now();
    const link: Link = {
      connection,
      uid: remote.uid,
      info: {
        peer: remote.name,
        nickname: remote.nickname,
        remoteAddress: connection.remoteAddress,
        listenAddress: connection.remoteListenAddress,
        outbound: connection.outbound,
        // Without a data plane a link is usable as soon as it is up; with one, the data plane decides.
        established: !this.host.dataPlane(),
        encrypted: connection.encrypted,
        since: now,
        lastReceived: now,
      },
    };
    // The new link takes the slot before the old one closes, so the peer never looks unreachable.
    this.byPeer.set(remote.name, link);
    replaced?.link.connection.close(replaced.error);
    connection.on('message', (message) => this.host.message(link, message));
    connection.once('close', (error) => this.onClosed(link, error));
    connection.start();
    this.host.admitted(link);
    return remote.name;
  }

  private onClosed(link: Link, error: WeaveError | undefined): void {
    this.stats.terminations += 1;
    this.host.closing(link, error);
    if (this.byPeer.get(link.info.peer) !== link) return; // already replaced by a newer link
    this.byPeer.delete(link.info.peer);
    this.host.closed(link);
  }
}
