// Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock, F a keyed hash.
import { createHmac } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Random } from '../../random.js';
import type { TcpFourTuple } from './contract.js';

/** Computes the ISN of a new connection. */
export type IsnGenerator = (tuple: TcpFourTuple) => number;

/**
 * An ISN generator with a fresh 16-byte secret from `random`: predictable neither from outside (the
 * keyed hash) nor reused soon for the same 4-tuple (the 4 µs clock walks through the space in ~4.8 h).
 */
export function createIsnGenerator(clock: Clock, random: Random): IsnGenerator {
  const secret = new Uint8Array(16);
  random.fill(secret);
  const input = Buffer.alloc(12);
  return (tuple) => {
    input.writeUInt32BE(tuple.localAddress >>> 0, 0);
    input.writeUInt16BE(tuple.localPort, 4);
    input.writeUInt32BE(tuple.remoteAddress >>> 0, 6);
    input.writeUInt16BE(tuple.remotePort, 10);
    const f = createHmac('sha256', secret).update(input).digest().readUInt32BE(0);
    const m = Math.floor(clock.now() * 250) % 0x1_0000_0000;
    return (m + f) >>> 0;
  };
}

// One secret per source of randomness (one per stack in practice), drawn on first use.
const generators = new WeakMap<Random, IsnGenerator>();

/** The ISN for `tuple`, keyed by a secret drawn once from `random` (so once per stack). */
export function initialSequenceNumber(clock: Clock, random: Random, tuple: TcpFourTuple): number {
  let generate = generators.get(random);
  if (!generate) {
    generate = createIsnGenerator(clock, random);
    generators.set(random, generate);
  }
  return generate(tuple);
}
