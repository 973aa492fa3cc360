// IPv4 addresses and CIDR blocks as unsigned 32-bit numbers; ranges are half-open [start, end) with end up to 2^32.
import { OptionsError } from '../errors.js';

/** One more than the largest IPv4 address: the exclusive end of the whole address space. */
export const IPV4_SPACE = 2 ** 32;

/** A CIDR block: `start` is the network address (a multiple of `size`), `size` is 2^(32 - prefix). */
export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  start: number;
  /** Prefix length in bits, 0 to 32. */
  prefix: number;
  /** Addresses in the block, network and broadcast included: 2^(32 - prefix). */
  size: number;
}

/** An inclusive range of usable host addresses. */
export interface HostRange {
  first: number;
  last: number;
}

const DECIMAL_OCTET = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Parses dotted-quad IPv4 text (`10.32.0.1`) into an unsigned 32-bit number. Octets are decimal,
 * 0-255, without leading zeros (so `010` is not silently read as octal or decimal); throws OptionsError.
 */
export function parseIPv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) {
    throw new OptionsError(`"${text}" is not an IPv4 address: expected four decimal octets like 10.32.0.1`);
  }
  let n = 0;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) {
      throw new OptionsError(`"${text}" is not an IPv4 address: octet "${part}" must be a decimal number 0-255 without leading zeros`);
    }
    const octet = Number(part);
    if (octet > 255) throw new OptionsError(`"${text}" is not an IPv4 address: octet ${octet} is larger than 255`);
    n = n * 256 + octet;
  }
  return n;
}

/** Formats an unsigned 32-bit number as dotted-quad text; throws RangeError outside 0..2^32-1. */
export function formatIPv4(address: number): string {
  checkAddress(address);
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

/**
 * Parses `a.b.c.d/len`. The address must be the network address of the block (`10.32.0.1/12` is
 * refused with a message naming `10.32.0.0/12`), because a mistyped range should not be guessed at.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) {
    throw new OptionsError(`"${text}" is not a CIDR block: expected ADDRESS/PREFIX like 10.32.0.0/12`);
  }
  const prefixText = text.slice(slash + 1);
  if (!/^(?:0|[1-9]\d?)$/.test(prefixText) || Number(prefixText) > 32) {
    throw new OptionsError(`"${text}" is not a CIDR block: prefix length "${prefixText}" must be a number 0-32`);
  }
  const prefix = Number(prefixText);
  const address = parseIPv4(text.slice(0, slash));
  const size = 2 ** (32 - prefix);
  const start = address - (address % size);
  if (start !== address) {
    throw new OptionsError(
      `"${text}" is not a network address: the /${prefix} block holding ${formatIPv4(address)} is ${formatIPv4(start)}/${prefix}; write that instead`,
    );
  }
  return { start, prefix, size };
}

/** `a.b.c.d/len`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.start)}/${cidr.prefix}`;
}

/** The CIDR block at `start` with `prefix`; throws RangeError if `start` is not aligned to the block size. */
export function cidr(start: number, prefix: number): Cidr {
  checkAddress(start);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`prefix length ${prefix} is not 0-32`);
  const size = 2 ** (32 - prefix);
  if (start % size !== 0) throw new RangeError(`${formatIPv4(start)} is not the network address of a /${prefix} block`);
  return { start, prefix, size };
}

/** The CIDR block of `prefix` that contains `address` (its network address and size). */
export function blockOf(address: number, prefix: number): Cidr {
  checkAddress(address);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`prefix length ${prefix} is not 0-32`);
  const size = 2 ** (32 - prefix);
  return { start: address - (address % size), prefix, size };
}

/**
 * The usable host addresses of a block, inclusive. For prefixes up to /30 the network and broadcast
 * addresses are excluded (RFC 1122); a /31 has two usable addresses (RFC 3021) and a /32 one.
 */
export function hostRange(block: Cidr): HostRange {
  if (block.prefix >= 31) return { first: block.start, last: block.start + block.size - 1 };
  return { first: block.start + 1, last: block.start + block.size - 2 };
}

/** True when `address` is inside `block`. */
export function containsAddress(block: Cidr, address: number): boolean {
  return address >= block.start && address < block.start + block.size;
}

/** True when the two blocks share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.start < b.start + b.size && b.start < a.start + a.size;
}

/**
 * The fewest CIDR-aligned blocks that together cover exactly [start, end), in ascending order
 * (at most 62 blocks). Throws RangeError unless 0 ≤ start ≤ end ≤ 2^32.
 */
export function cidrsInRange(start: number, end: number): Cidr[] {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > IPV4_SPACE || start > end) {
    throw new RangeError(`[${start}, ${end}) is not a range of IPv4 addresses`);
  }
  const blocks: Cidr[] = [];
  let at = start;
  while (at < end) {
    // The largest block that is aligned at `at` and still ends by `end`.
    let size = 1;
    let prefix = 32;
    while (prefix > 0 && at % (size * 2) === 0 && at + size * 2 <= end) {
      size *= 2;
      prefix -= 1;
    }
    blocks.push({ start: at, prefix, size });
    at += size;
  }
  return blocks;
}

function checkAddress(address: number): void {
  if (!Number.isInteger(address) || address < 0 || address >= IPV4_SPACE) {
    throw new RangeError(`${address} is not an IPv4 address (an integer 0 to 2^32-1)`);
  }
}
