// A bounded HTTP(S) GET: one CA, a deadline, a body cap; what the Kubernetes peer discovery reads the API with.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { DecodeError, DiscoveryError } from '../errors.js';

/** What a GET answered. */
export interface HttpAnswer {
  status: number;
  body: Uint8Array;
}

/** How to GET. */
export interface HttpGetOptions {
  headers: Record<string, string>;
  /** PEM certificates trusted for `https:` instead of the system's (the cluster CA); undefined: the system's. */
  ca?: string | undefined;
  /** A longer body is not read: DecodeError `too-large`. */
  maxBytes: number;
  /** Deadline of the whole request, body included: DiscoveryError `timeout`. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** A GET; rejects with a DiscoveryError (`unreachable`, `timeout`, `aborted`) or a DecodeError (`too-large`). */
export type HttpGet = (url: URL, options: HttpGetOptions) => Promise<HttpAnswer>;

/** The real GET, over node:http and node:https. */
export const httpGet: HttpGet = (url, options) =>
  new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    // Every way out goes through here once: the deadline and the caller's signal are let go of, so a
    // long-lived signal does not collect a listener per request.
    const settle = (error: Error | undefined, answer?: HttpAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      options.signal?.removeEventListener('abort', onAbort);
      if (error) {
        request.destroy();
        reject(error);
      } else resolve(answer as HttpAnswer);
    };
    const onAbort = (): void => settle(new DiscoveryError('aborted', `GET ${url.href} was cancelled`));
    const deadline = setTimeout(() => settle(new DiscoveryError('timeout', `GET ${url.href} got no complete answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'GET', headers: options.headers, ...(options.ca !== undefined ? { ca: options.ca } : {}) }, (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) settle(new DecodeError('too-large', `GET ${url.href}: the answer is over the ${options.maxBytes}-byte limit`));
        else chunks.push(chunk);
      });
      response.on('end', () => settle(undefined, { status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', (cause) => settle(new DiscoveryError('unreachable', `GET ${url.href}: the answer broke off (${cause.message})`, { cause })));
    });
    request.on('error', (cause: NodeJS.ErrnoException) =>
      settle(new DiscoveryError('unreachable', `cannot GET ${url.href}: ${cause.code ?? cause.message}${cause.code ? ` (${cause.message})` : ''}`, { cause })),
    );
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    request.end();
  });
