// Ethernet frame helpers: MAC addresses as numbers (fast map keys), frame classification.

export { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from '../wire/ethertype.js';
/** The broadcast MAC as a number. */
export const BROADCAST_MAC = 0xffff_ffff_ffff;

/** Reads the 6-byte MAC at `offset` as a number (exact: below 2^53). */
export function macAt(frame: Uint8Array, offset: number): number {
  return (
    ((frame[offset] ?? 0) * 0x100 + (frame[offset + 1] ?? 0)) * 0x1_0000_0000 +
    (((frame[offset + 2] ?? 0) << 24) >>> 0) +
    ((frame[offset + 3] ?? 0) << 16) +
    ((frame[offset + 4] ?? 0) << 8) +
    (frame[offset + 5] ?? 0)
  );
}

/** Destination MAC of a frame, as a number. */
export function destinationMac(frame: Uint8Array): number {
  return macAt(frame, 0);
}

/** Source MAC of a frame, as a number. */
export function sourceMac(frame: Uint8Array): number {
  return macAt(frame, 6);
}

/** True for group (broadcast and multicast) destinations: the I/G bit of the first octet. */
export function isGroupDestination(frame: Uint8Array): boolean {
  return ((frame[0] ?? 0) & 0x01) === 0x01;
}

/** The EtherType (or 802.3 length) field. */
export function etherType(frame: Uint8Array): number {
  return ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
}

/** Frames to the IEEE 802.1D reserved group 01:80:c2:00:00:0x (STP, LACP, …) never cross the overlay. */
export function isLinkLocalControl(frame: Uint8Array): boolean {
  return frame[0] === 0x01 && frame[1] === 0x80 && frame[2] === 0xc2 && frame[3] === 0 && frame[4] === 0 && ((frame[5] ?? 0) & 0xf0) === 0;
}

/** Formats a numeric MAC as aa:bb:cc:dd:ee:ff. */
export function formatMac(mac: number | Uint8Array): string {
  const bytes = typeof mac === 'number' ? macBytes(mac) : mac;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The 6 bytes of a numeric MAC. */
export function macBytes(mac: number): Uint8Array {
  const out = new Uint8Array(6);
  let v = mac;
  for (let i = 5; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

/** Parses aa:bb:cc:dd:ee:ff (or with dashes) into 6 bytes; undefined when malformed. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** A random locally administered unicast MAC. */
export function randomMac(fill: (b: Uint8Array) => void): Uint8Array {
  const mac = new Uint8Array(6);
  fill(mac);
  mac[0] = ((mac[0] ?? 0) | 0x02) & 0xfe;
  return mac;
}
