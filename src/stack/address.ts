// Stack addressing: the endpoint's address and prefix from CIDR text, and the subnet they imply.
import { OptionsError } from '../errors.js';
import { parseIPv4 } from '../ipam/address.js';

/** Dotted IPv4 text as a 32-bit number, or undefined when it is not an address. */
export function tryParseIPv4(text: string): number | undefined {
  try {
    return parseIPv4(text);
  } catch {
    return undefined;
  }
}

/** An interface address and the subnet it sits in. */
export interface InterfaceAddress {
  address: number;
  prefixLength: number;
  /** The subnet mask as an unsigned 32-bit number. */
  mask: number;
  network: number;
  /** The subnet broadcast address; undefined for /31 and /32, which have none. */
  broadcast: number | undefined;
}

/** Parses `10.32.0.5/12` (a host address with its prefix length); throws OptionsError saying what to fix. */
export function parseInterfaceAddress(text: string): InterfaceAddress {
  const slash = text.indexOf('/');
  if (slash < 0) throw new OptionsError(`address "${text}" has no prefix length: write it as ADDRESS/PREFIX like 10.32.0.5/12`);
  const prefixText = text.slice(slash + 1);
  if (!/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(prefixText)) {
    throw new OptionsError(`address "${text}": prefix length "${prefixText}" must be a number 0-32`);
  }
  const prefixLength = Number(prefixText);
  const address = parseIPv4(text.slice(0, slash));
  const mask = prefixLength === 0 ? 0 : (0xffff_ffff << (32 - prefixLength)) >>> 0;
  const network = (address & mask) >>> 0;
  const broadcast = prefixLength <= 30 ? (network | ~mask) >>> 0 : undefined;
  if (prefixLength <= 30 && (address === network || address === broadcast)) {
    throw new OptionsError(`address "${text}" is the ${address === network ? 'network' : 'broadcast'} address of its subnet; pick a host address inside it`);
  }
  if (address === 0 || address >>> 28 >= 0xe) {
    throw new OptionsError(`address "${text}" cannot be an endpoint's address (unspecified, multicast or reserved); pick a unicast address`);
  }
  return { address, prefixLength, mask, network, broadcast };
}

/** True when `address` is inside the subnet of `iface`. */
export function inSubnet(iface: InterfaceAddress, address: number): boolean {
  return ((address & iface.mask) >>> 0) === iface.network;
}
