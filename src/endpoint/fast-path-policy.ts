// Which links may take the fast path: the tunnels carry frames in plain VXLAN, so a network with a password
// only uses them towards peers inside its trusted subnets (Weave Net's --trusted-subnets). IPsec ESP, Weave's
// way to encrypt the fast path, is probed once so status can say whether the kernel could do it at all.
import { containsAddress, parseCidr, parseIPv4, type Cidr } from '../ipam/address.js';
import { OptionsError } from '../errors.js';
import type { NetCommand } from '../ethernet/net-command.js';

/** Parses `trustedSubnets`; an OptionsError names the bad entry. */
export function parseTrustedSubnets(subnets: readonly string[]): Cidr[] {
  return subnets.map((text, i) => {
    try {
      return parseCidr(text);
    } catch (error) {
      throw new OptionsError(`trustedSubnets[${i}]: ${(error as Error).message}`, { cause: error });
    }
  });
}

/** True when `address` (IPv4) lies in one of `subnets`. */
export function isTrusted(subnets: readonly Cidr[], address: string): boolean {
  const ip = parseIPv4(address);
  return subnets.some((s) => containsAddress(s, ip));
}

/**
 * Says whether this kernel takes an IPsec ESP state of the kind Weave Net's encrypted fast path uses
 * (AES-GCM, rfc4106), by adding one on loopback and deleting it again: '' when it does, else the
 * kernel's answer. weave-ts does not encrypt the fast path either way; the answer is for status.
 */
export async function probeEsp(run: NetCommand): Promise<string> {
  const spi = '0x7774e5b1';
  const state = ['src', '127.0.0.1', 'dst', '127.0.0.1', 'proto', 'esp', 'spi', spi];
  try {
    await run(['ip', 'xfrm', 'state', 'add', ...state, 'reqid', '1', 'mode', 'transport', 'aead', 'rfc4106(gcm(aes))', `0x${'00'.repeat(36)}`, '128']);
  } catch (error) {
    return (error as Error).message.replace(/^ip xfrm state add [^:]*: /, '');
  }
  await run(['ip', 'xfrm', 'state', 'del', ...state]).catch(() => undefined);
  return '';
}

/** Why a network with a password keeps links outside its trusted subnets on the sleeve. */
export function encryptedRefusal(espRefused: string): string {
  const why = espRefused
    ? `this kernel refuses IPsec ESP (${espRefused}), which would encrypt the fast path`
    : 'weave-ts does not encrypt the fast path with IPsec ESP';
  return `the network has a password and the peer is not in trustedSubnets (--trusted-subnets): its frames stay encrypted on the sleeve; ${why}`;
}
