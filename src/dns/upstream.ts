// Upstream resolvers: where queries outside the domain go, and one exchange with one of them over UDP or TCP.
import { createSocket } from 'node:dgram';
import { connect, isIP, type Socket } from 'node:net';
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
 * How one exchange with one upstream ended: the answering message, or why there is none (`error`: a socket
 * operation failed, e.g. no route, connection refused or reset; `timeout`: no answer in time; `aborted`: the
 * server is stopping).
 */
export type ExchangeResult = { response: Uint8Array } | { failure: 'error'; error: Error } | { failure: 'timeout' | 'aborted' };

/**
 * Sends `query` from a fresh socket (a random source port) connected to `upstream`, and resolves with the first
 * datagram that answers it. Never rejects and never throws: every socket error (no route, a failed connect, ICMP
 * port unreachable) ends the exchange with `failure: 'error'`.
 */
export function exchangeUdp(query: Uint8Array, question: Uint8Array, upstream: Upstream, options: ExchangeOptions): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve({ failure: 'aborted' });
      return;
    }
    let done = false;
    const finish = (result: ExchangeResult): void => {
      if (done) return;
      done = true;
      timer?.cancel();
      options.signal?.removeEventListener('abort', onAbort);
      try {
        socket?.close();
      } catch {
        // already closed, or never bound
      }
      resolve(result);
    };
    const onAbort = (): void => finish({ failure: 'aborted' });
    const onError = (error: Error): void => finish({ failure: 'error', error });
    let socket: ReturnType<typeof createSocket> | undefined;
    let timer: ReturnType<Clock['setTimer']> | undefined;
    try {
      socket = createSocket(upstream.host.includes(':') ? 'udp6' : 'udp4');
      const connected = socket;
      timer = options.clock.setTimer(options.timeoutMs, () => finish({ failure: 'timeout' }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      connected.on('error', onError);
      connected.on('message', (message: Buffer) => {
        if (isResponseTo(query, question, message)) finish({ response: new Uint8Array(message.buffer, message.byteOffset, message.byteLength) });
      });
      // With a callback, a failed connect (no route, EINVAL…) is reported there, not as an 'error' event; the
      // socket is then unconnected and a send without a port would throw.
      connected.connect(upstream.port, upstream.host, (error?: Error) => {
        if (done) return;
        if (error) {
          onError(error);
          return;
        }
        try {
          connected.send(query, (sendError) => {
            if (sendError) onError(sendError);
          });
        } catch (sendError) {
          onError(sendError as Error);
        }
      });
    } catch (error) {
      onError(error as Error);
    }
  });
}

/** Sends `query` over a new TCP connection (2-byte length framing) and resolves with the answering message; never rejects. */
export function exchangeTcp(query: Uint8Array, question: Uint8Array, upstream: Upstream, options: ExchangeOptions): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve({ failure: 'aborted' });
      return;
    }
    if (query.byteLength > 0xffff) {
      resolve({ failure: 'error', error: new RangeError(`a ${query.byteLength}-byte query does not fit TCP framing`) });
      return;
    }
    const queue = new ByteQueue();
    let length: number | undefined;
    let done = false;
    let socket: Socket | undefined;
    let timer: ReturnType<Clock['setTimer']> | undefined;
    const finish = (result: ExchangeResult): void => {
      if (done) return;
      done = true;
      timer?.cancel();
      options.signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish({ failure: 'aborted' });
    const onError = (error: Error): void => finish({ failure: 'error', error });
    try {
      socket = connect({ host: upstream.host, port: upstream.port, noDelay: true });
      const stream = socket;
      timer = options.clock.setTimer(options.timeoutMs, () => finish({ failure: 'timeout' }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      stream.on('error', onError);
      stream.on('close', () => onError(new Error(`upstream ${formatUpstream(upstream)} closed the TCP connection without an answer`)));
      stream.on('connect', () => {
        const frame = new Uint8Array(2 + query.byteLength);
        frame[0] = query.byteLength >> 8;
        frame[1] = query.byteLength & 0xff;
        frame.set(query, 2);
        stream.write(frame);
      });
      stream.on('data', (chunk: Buffer) => {
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
            finish({ response: Uint8Array.from(message) });
            return;
          }
        }
      });
    } catch (error) {
      onError(error as Error);
    }
  });
}
