// Random: randomness as a parameter, so tests can pass a seeded source.
import { randomFillSync } from 'node:crypto';

/** The source of randomness for every component. */
export interface Random {
  /** Uniform in [0, 1). */
  float(): number;
  /** Uniformly random 64-bit unsigned integer. */
  u64(): bigint;
  /** Fills `bytes` with random bytes. */
  fill(bytes: Uint8Array): void;
}

const scratch = new BigUint64Array(1);

/** Cryptographically strong randomness from the OS. */
export const systemRandom: Random = {
  float: () => Math.random(),
  u64() {
    randomFillSync(scratch);
    return scratch[0] ?? 0n;
  },
  fill: (bytes) => {
    randomFillSync(bytes);
  },
};

/** A deterministic generator (xorshift128+) for tests; never use it for keys. */
export function seededRandom(seed: number): Random {
  let s0 = BigInt(seed >>> 0) | 1n;
  let s1 = 0x9e3779b97f4a7c15n ^ BigInt(seed);
  const mask = (1n << 64n) - 1n;
  const next = (): bigint => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = (x ^ (x << 23n)) & mask;
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (s1 + y) & mask;
  };
  return {
    float: () => Number(next() >> 11n) / 2 ** 53,
    u64: next,
    fill(bytes) {
      for (let i = 0; i < bytes.length; i++) bytes[i] = Number(next() & 0xffn);
    },
  };
}
