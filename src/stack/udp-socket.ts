// StackUdpSocket: a node:dgram-like UDP socket on a NetStack (bind, send, broadcast, multicast membership, message events).
import { EventEmitter } from 'eventemitter3';
import { StackError } from '../errors.js';
import type { Clock } from '../clock.js';
import { checkTimeout, settleWithin } from '../wait.js';
import { formatIPv4 } from '../ipam/address.js';
import { isMulticastAddress } from '../wire/inet.js';
import { tryParseIPv4 } from './address.js';

/** Where a received datagram came from. */
export interface RemoteInfo {
  /** Dotted IPv4 source address. */
  address: string;
  /** UDP source port. */
  port: number;
  /** Payload bytes. */
  size: number;
}

/** Events of a {@link StackUdpSocket}. */
export interface UdpSocketEvents {
  /** A datagram arrived; `msg` is the socket's own copy. */
  message: (msg: Buffer, rinfo: RemoteInfo) => void;
  /** The socket was closed (by `close()` or because its stack closed). */
  close: () => void;
}

/**
 * What a socket needs from its stack.
 * @internal
 */
export interface UdpSocketHost {
  readonly clock: Clock;
  bindSocket(socket: StackUdpSocket, port: number): number;
  unbindSocket(socket: StackUdpSocket, port: number): void;
  sendDatagram(socket: StackUdpSocket, sourcePort: number, data: Uint8Array, port: number, host: string): Promise<void>;
  joinGroup(group: number): void;
  leaveGroup(group: number): void;
}

/** Options of {@link StackUdpSocket.receive}. */
export interface ReceiveOptions {
  /** Give up after this many milliseconds with StackError `timeout` (default: wait until a datagram, an abort or close). */
  timeoutMs?: number | undefined;
  /** Aborting rejects with StackError `aborted`. */
  signal?: AbortSignal | undefined;
}

/** One datagram, as {@link StackUdpSocket.receive} returns it. */
export interface ReceivedDatagram {
  /** The payload (the socket's own copy). */
  message: Buffer;
  /** Where it came from. */
  from: RemoteInfo;
}

/**
 * A UDP socket of a NetStack, created by `stack.createUdpSocket()`; shaped like node:dgram's Socket.
 * @category Endpoints
 */
export class StackUdpSocket extends EventEmitter<UdpSocketEvents> {
  private port = 0;
  private closed = false;
  private broadcast = false;
  private readonly groups = new Set<number>();

  /** @internal */
  constructor(
    private readonly host: UdpSocketHost,
    private readonly localAddress: string,
  ) {
    super();
  }

  /** True once `setBroadcast(true)` allows sends to broadcast addresses. */
  get broadcastAllowed(): boolean {
    return this.broadcast;
  }

  /**
   * Binds the socket to `port` on the stack's address; 0 or omitted picks a free ephemeral port
   * (49152-65535). Rejects with `address-in-use`, `invalid-option` (bad port, already bound) or `closed`.
   */
  async bind(port = 0): Promise<void> {
    if (this.closed) throw new StackError('closed', 'this UDP socket is closed; create a new one');
    if (this.port !== 0) throw new StackError('invalid-option', `this UDP socket is already bound to port ${this.port}`);
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new StackError('invalid-option', `UDP port ${port} is not an integer 0-65535`);
    this.port = this.host.bindSocket(this, port);
  }

  /**
   * Sends one datagram to `port` at `hostOrAddress` (a dotted address or a name the stack's resolve
   * hook knows). An unbound socket is bound to an ephemeral port first. Resolves once the frames
   * are handed to the NIC (after ARP when needed); rejects with a StackError: `unreachable` (outside
   * the subnet, no ARP reply), `not-found` (name), `message-too-big` (over 65507 bytes),
   * `permission-denied` (broadcast without `setBroadcast(true)`), `invalid-option` or `closed`.
   */
  async send(data: Uint8Array, port: number, hostOrAddress: string): Promise<void> {
    if (this.closed) throw new StackError('closed', 'this UDP socket is closed; create a new one');
    if (this.port === 0) await this.bind(0);
    await this.host.sendDatagram(this, this.port, data, port, hostOrAddress);
  }

  /**
   * The next datagram, as a promise (every pending `receive` and every `message` listener gets it). Rejects
   * with StackError `timeout` after `timeoutMs`, `aborted`, `closed` (also when the socket closes while
   * waiting) or `not-bound`. While it waits, the process stays alive (with the real clock).
   */
  receive(options: ReceiveOptions = {}): Promise<ReceivedDatagram> {
    if (this.closed) return Promise.reject(new StackError('closed', 'this UDP socket is closed; create a new one'));
    if (this.port === 0) return Promise.reject(new StackError('not-bound', 'this UDP socket is not bound, so nothing can arrive: call bind() first'));
    const timeoutMs = options.timeoutMs ?? Infinity;
    try {
      checkTimeout(timeoutMs, 'receive');
    } catch (error) {
      return Promise.reject(error);
    }
    const port = this.port;
    return settleWithin<ReceivedDatagram>(
      this.host.clock,
      {
        timeoutMs,
        signal: options.signal,
        timeout: () => new StackError('timeout', `no datagram arrived on UDP port ${port} within ${timeoutMs} ms`),
        aborted: (reason) => new StackError('aborted', `receive on UDP port ${port} was aborted`, { cause: reason }),
      },
      (resolve, reject) => {
        const onMessage = (message: Buffer, from: RemoteInfo): void => resolve({ message, from });
        const onClose = (): void => reject(new StackError('closed', `UDP port ${port} was closed while receive() waited`));
        this.on('message', onMessage);
        this.on('close', onClose);
        return () => {
          this.off('message', onMessage);
          this.off('close', onClose);
        };
      },
    );
  }

  /** Allows (or forbids again) sends to 255.255.255.255 and the subnet broadcast address, as SO_BROADCAST does. */
  setBroadcast(on: boolean): void {
    this.broadcast = on;
  }

  /** Joins an IPv4 multicast group (224.0.0.0/4): datagrams to it and to this socket's port are delivered. */
  addMembership(group: string): void {
    const address = this.multicastGroup(group);
    if (this.groups.has(address)) return;
    this.groups.add(address);
    this.host.joinGroup(address);
  }

  /** Leaves a group joined with `addMembership`; `invalid-option` when the socket is not a member. */
  dropMembership(group: string): void {
    const address = this.multicastGroup(group);
    if (!this.groups.delete(address)) throw new StackError('invalid-option', `this socket is not a member of ${group}`);
    this.host.leaveGroup(address);
  }

  /**
   * True when the socket joined the multicast `group` (a 32-bit address).
   * @internal
   */
  isMember(group: number): boolean {
    return this.groups.has(group);
  }

  /** The bound address and port; `not-bound` before `bind()` (or the first send). */
  address(): {
    /** The stack's IPv4 address (dotted quad). */
    address: string;
    /** The bound UDP port. */
    port: number;
  } {
    if (this.port === 0) throw new StackError('not-bound', 'this UDP socket is not bound; call bind() or send() first');
    return { address: this.localAddress, port: this.port };
  }

  /** Leaves every group, frees the port and emits `close`; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const group of this.groups) this.host.leaveGroup(group);
    this.groups.clear();
    if (this.port !== 0) this.host.unbindSocket(this, this.port);
    this.emit('close');
    this.removeAllListeners();
  }

  /**
   * Hands a received datagram to the listeners (copied: the frame it came in is reused).
   * @internal
   */
  deliver(payload: Uint8Array, source: number, sourcePort: number): void {
    if (this.closed) return;
    this.emit('message', Buffer.from(payload), { address: formatIPv4(source), port: sourcePort, size: payload.byteLength });
  }

  private multicastGroup(group: string): number {
    if (this.closed) throw new StackError('closed', 'this UDP socket is closed; create a new one');
    const address = tryParseIPv4(group);
    if (address === undefined || !isMulticastAddress(address)) {
      throw new StackError('invalid-option', `"${group}" is not an IPv4 multicast group: expected an address in 224.0.0.0/4 like 239.1.2.3`);
    }
    return address;
  }
}
