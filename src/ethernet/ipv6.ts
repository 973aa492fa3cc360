// IPv6 helpers for path-MTU handling: answering an oversized packet with ICMPv6 "packet too big" (RFC 4443 §3.2).
// IPv6 packets are never fragmented on the way (RFC 8200 §5): only the sender can make them fit.
import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV6, etherType } from './frame.js';
import { internetChecksum } from '../wire/checksum.js';

const IP = ETHERNET_HEADER_BYTES;
const IPV6_HEADER_BYTES = 40;
const NEXT_HEADER_ICMPV6 = 58;
const PACKET_TOO_BIG = 2;
/** The smallest MTU of an IPv6 link: an ICMPv6 error never makes a packet larger (RFC 4443 §2.4(c)). */
const IPV6_MIN_MTU = 1280;

/**
 * An ICMPv6 "packet too big" frame answering `frame` as if sent by its destination, telling the sender that at most
 * `mtu` bytes fit, quoting as much of the packet as a 1280-byte answer holds. Undefined when no answer is due: not
 * IPv6, a multicast or unspecified address, or an ICMPv6 error itself (RFC 4443 §2.4(e)).
 */
export function packetTooBig(frame: Uint8Array, mtu: number): Uint8Array | undefined {
  if (frame.byteLength < IP + IPV6_HEADER_BYTES || etherType(frame) !== ETHERTYPE_IPV6 || (frame[IP] as number) >> 4 !== 6) return undefined;
  const source = IP + 8;
  const destination = IP + 24;
  if (frame[source] === 0xff || frame[destination] === 0xff || isUnspecified(frame, source)) return undefined;
  if (frame[IP + 6] === NEXT_HEADER_ICMPV6 && (frame[IP + IPV6_HEADER_BYTES] ?? 0) < 128) return undefined;
  const quoted = Math.min(frame.byteLength - IP, IPV6_MIN_MTU - IPV6_HEADER_BYTES - 8);
  const icmpLength = 8 + quoted;
  const out = new Uint8Array(IP + IPV6_HEADER_BYTES + icmpLength);
  out.set(frame.subarray(6, 12), 0); // to the sender's MAC
  out.set(frame.subarray(0, 6), 6); // from the destination's MAC
  out[12] = ETHERTYPE_IPV6 >>> 8;
  out[13] = ETHERTYPE_IPV6 & 0xff;
  out[IP] = 0x60;
  out[IP + 4] = icmpLength >>> 8;
  out[IP + 5] = icmpLength & 0xff;
  out[IP + 6] = NEXT_HEADER_ICMPV6;
  out[IP + 7] = 64;
  out.set(frame.subarray(destination, destination + 16), source); // source: the original destination
  out.set(frame.subarray(source, source + 16), destination); // destination: the original source
  const icmp = IP + IPV6_HEADER_BYTES;
  out[icmp] = PACKET_TOO_BIG;
  out[icmp + 4] = (mtu >>> 24) & 0xff;
  out[icmp + 5] = (mtu >>> 16) & 0xff;
  out[icmp + 6] = (mtu >>> 8) & 0xff;
  out[icmp + 7] = mtu & 0xff;
  out.set(frame.subarray(IP, IP + quoted), icmp + 8);
  // The checksum covers a pseudo-header: both addresses, the ICMPv6 length and next header 58.
  const pseudo = new Uint8Array(40 + icmpLength);
  pseudo.set(out.subarray(IP + 8, IP + 40), 0);
  pseudo[34] = icmpLength >>> 8;
  pseudo[35] = icmpLength & 0xff;
  pseudo[39] = NEXT_HEADER_ICMPV6;
  pseudo.set(out.subarray(icmp), 40);
  const sum = internetChecksum(pseudo, 0, pseudo.length);
  out[icmp + 2] = sum >>> 8;
  out[icmp + 3] = sum & 0xff;
  return out;
}

function isUnspecified(b: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 16; i++) if (b[i] !== 0) return false;
  return true;
}
