// Peer names: 48-bit permanent identities written like MAC addresses, with `::` zero-run shorthand.
import { DecodeError } from '../errors.js';

/** A peer's permanent 48-bit identity (0 is reserved for "unknown"). */
export type PeerName = number;

/** The reserved "no peer" name. */
export const UNKNOWN_PEER: PeerName = 0;

const MAX_PEER_NAME = 2 ** 48 - 1;

/**
 * Parses `aa:bb:cc:dd:ee:ff`, or a shorter form with one `::` standing for a run of zero bytes
 * (`::1` is 00:00:00:00:00:01, `1::` is 01:00:00:00:00:00).
 */
export function parsePeerName(text: string): PeerName {
  const bad = (why: string) => new DecodeError('bad-value', `peer name "${text}" is not valid: ${why}`);
  const halves = text.split('::');
  if (halves.length > 2) throw bad('more than one "::"');
  const parseGroups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').map((g) => {
          if (!/^[0-9a-fA-F]{1,2}$/.test(g)) throw bad(`"${g}" is not one or two hex digits`);
          return parseInt(g, 16);
        });
  const head = parseGroups(halves[0] ?? '');
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  let bytes: number[];
  if (halves.length === 2) {
    const zeros = 6 - head.length - tail.length;
    if (zeros < 1) throw bad('"::" must stand for at least one zero byte');
    bytes = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  } else {
    if (head.length !== 6) throw bad('expected six bytes');
    bytes = head;
  }
  return bytes.reduce((acc, b) => acc * 256 + b, 0);
}

/** Formats a name as six colon-separated lower-case hex bytes. */
export function formatPeerName(name: PeerName): string {
  const parts: string[] = [];
  let v = name;
  for (let i = 0; i < 6; i++) {
    parts.unshift((v % 256).toString(16).padStart(2, '0'));
    v = Math.floor(v / 256);
  }
  return parts.join(':');
}

/** True when `n` is a valid, non-reserved peer name. */
export function isPeerName(n: number): n is PeerName {
  return Number.isInteger(n) && n > 0 && n <= MAX_PEER_NAME;
}

/**
 * A random name with the locally-administered bit set and the multicast bit cleared, as for a MAC.
 * `fill` supplies random bytes.
 */
export function randomPeerName(fill: (b: Uint8Array) => void): PeerName {
  const b = new Uint8Array(6);
  fill(b);
  b[0] = ((b[0] ?? 0) | 0x02) & 0xfe;
  return b.reduce((acc, x) => acc * 256 + x, 0);
}
