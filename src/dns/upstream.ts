// Upstream resolvers: where queries outside the domain go, and one exchange with one of them over UDP or TCP.
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import type { Clock } from '../clock.js';
import { OptionsError } from '../errors.js';
import { ByteQueue } from '../mesh/byte-queue.js';
import { FLAG_QR, FLAG_TC, HEADER_SIZE, Rcode, readHeader } from './message.js';

/** The DNS port. */
export const DNS_PORT = 53;

/** A resolver to forward to. */
export interface Upstream {
  host: string;
  port: number;
}

/** Parses `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port` (a bare IPv6 address has no port). */
export function parseUpstream(spec: string): Upstream {
  const text = spec.trim();
  let host = text;
  let port = DNS_PORT;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const v4WithPort = /^([^:]+):(\d+)$/.exec(text);
  if (bracketed) {
    host = bracketed[1] as string;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (v4WithPort) {
    host = v4WithPort[1] as string;
    port = Number(v4WithPort[2]);
  }
  if (isIP(host.split('%')[0] as string) === 0 || !Number.isInteger(port) || port < 1 || port > 0xffff) {
    throw new OptionsError(`upstream resolver ${JSON.stringify(spec)} is not an IP address with an optional port ("1.1.1.1", "10.0.0.2:5353", "[::1]:53")`);
  }
  return { host, port };
}

/** `host:port`, bracketing IPv6. */
export function formatUpstream(upstream: Upstream): string {
  return upstream.host.includes(':') ? `[${upstream.host}]:${upstream.port}` : `${upstream.host}:${upstream.port}`;
}

/** True when `response` answers `query`: same id, QR set, and the same question (ASCII case ignored) when it carries one. */
export function isResponseTo(query: Uint8Array, question: Uint8Array, response: Uint8Array): boolean {
  const header = readHeader(response);
  if (!header || (header.flags & FLAG_QR) === 0) return false;
  if (response[0] !== query[0] || response[1] !== query[1]) return false;
  if (header.qdcount === 0) return true;
  if (header.qdcount !== 1 || response.byteLength < HEADER_SIZE + question.byteLength) return false;
  for (let i = 0; i < question.byteLength; i++) {
    if (foldCase(response[HEADER_SIZE + i] as number) !== foldCase(question[i] as number)) return false;
  }
  return true;
}

function foldCase(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

/** True when the TC flag is set. */
export function isTruncated(response: Uint8Array): boolean {
  return ((readHeader(response)?.flags ?? 0) & FLAG_TC) !== 0;
}

/** True when a response should not be relayed while other upstreams remain (SERVFAIL, REFUSED). */
export function isUnusable(response: Uint8Array): boolean {
  const rcode = (readHeader(response)?.flags ?? 0) & 0xf;
  return rcode === Rcode.servFail || rcode === Rcode.refused;
}

/** How an exchange is bounded. */
export interface ExchangeOptions {
  timeoutMs: number;
  clock: Clock;
  signal?: AbortSignal;
}

/**
 * Sends `query` from a fresh socket (a random source port) connected to `upstream`, and resolves with the first
 * datagram that answers it, or undefined on timeout, abort, or an error such as ICMP port unreachable.
 */
export function exchangeUdp(query: Uint8Array, question: Uint8Array, upstream: Upstream, options: ExchangeOptions): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve(undefined);
      return;
    }
    const socket = createSocket(upstream.host.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    const finish = (response: Uint8Array | undefined): void => {
      if (done) return;
      done = true;
      timer.cancel();
      options.signal?.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve(response);
    };
    const onAbort = (): void => finish(undefined);
    const timer = options.clock.setTimer(options.timeoutMs, onAbort);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onAbort);
    socket.on('message', (message: Buffer) => {
      if (isResponseTo(query, question, message)) finish(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
    });
    socket.connect(upstream.port, upstream.host, () => {
      if (done) return;
      socket.send(query, (error) => {
        if (error) finish(undefined);
      });
    });
  });
}

/** Sends `query` over a new TCP connection (2-byte length framing) and resolves with the answering message, or undefined. */
export function exchangeTcp(query: Uint8Array, question: Uint8Array, upstream: Upstream, options: ExchangeOptions): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    if (options.signal?.aborted || query.byteLength > 0xffff) {
      resolve(undefined);
      return;
    }
    const socket = connect({ host: upstream.host, port: upstream.port, noDelay: true });
    const queue = new ByteQueue();
    let length: number | undefined;
    let done = false;
    const finish = (response: Uint8Array | undefined): void => {
      if (done) return;
      done = true;
      timer.cancel();
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(response);
    };
    const onAbort = (): void => finish(undefined);
    const timer = options.clock.setTimer(options.timeoutMs, onAbort);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onAbort);
    socket.on('close', onAbort);
    socket.on('connect', () => {
      const frame = new Uint8Array(2 + query.byteLength);
      frame[0] = query.byteLength >> 8;
      frame[1] = query.byteLength & 0xff;
      frame.set(query, 2);
      socket.write(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      for (;;) {
        if (length === undefined) {
          const prefix = queue.take(2);
          if (!prefix) return;
          length = ((prefix[0] as number) << 8) | (prefix[1] as number);
        }
        const message = queue.take(length);
        if (!message) return;
        length = undefined;
        if (isResponseTo(query, question, message)) {
          finish(Uint8Array.from(message));
          return;
        }
      }
    });
  });
}
