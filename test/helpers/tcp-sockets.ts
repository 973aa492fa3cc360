// Helpers for the TCP socket tests: two stacks on one wire with a TCP implementation, driving a fake clock, self-signed certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TcpConfig } from '../../src/stack/tcp/contract.js';
import type { TcpImplementation } from '../../src/stack/tcp/tcp-layer.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { FakeClock } from '../../src/testing/fake-clock.js';
import { wiredPair } from './stack.js';

/** Two stacks (10.32.0.1 and .2) on a memory wire with a fake clock; `implementation` undefined is the built-in TCP. */
export function tcpPair(implementation: TcpImplementation | undefined, config: Partial<TcpConfig> = {}, mtu?: number) {
  const tcp = { ...(implementation ? { implementation } : {}), config };
  return wiredPair({ ...(mtu ? { mtu } : {}), a: { tcp }, b: { tcp } });
}

/** Waits for `work`, moving the fake clock 1 ms per event-loop turn (timers such as delayed ACKs need time to pass). */
export async function drive<T>(clock: FakeClock, work: Promise<T>, maxMs = 120_000): Promise<T> {
  let done = false;
  work.then(
    () => (done = true),
    () => (done = true),
  );
  for (let t = 0; !done && t < maxMs; t++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (!done) clock.advance(1);
  }
  if (!done) throw new Error(`still waiting after ${maxMs} virtual ms`);
  return work;
}

/** Resolves with the first `event` of `emitter` (its first argument), rejects on `'error'` unless that is the event. */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      emitter.removeListener(event, onEvent);
      reject(error);
    };
    const onEvent = (value: T): void => {
      if (event !== 'error') emitter.removeListener('error', onError);
      resolve(value);
    };
    emitter.once(event, onEvent);
    if (event !== 'error') emitter.once('error', onError);
  });
}

/** Every byte a socket delivers until it ends. */
export function readAll(socket: TcpSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** A self-signed certificate for `names` (openssl), as PEM key and certificate. */
export function selfSignedCertificate(names: readonly string[]): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wtk-cert-'));
  try {
    const san = names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${names[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`,
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
