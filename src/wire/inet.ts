// Internet packets in Ethernet frames: ARP, IPv4, ICMP and UDP codecs for the userspace stack of in-process endpoints.
//
// Decoders take the bytes after the 14-byte Ethernet header and return views into them (copy what
// you keep). Bytes past the IPv4 total length or past the 28 ARP bytes are Ethernet padding and are
// ignored; everything else that does not decode is a DecodeError. Encoders write complete frames.
import { DecodeError } from '../errors.js';
import { ETHERNET_HEADER_BYTES, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethertype.js';
import { internetChecksum } from './checksum.js';
import { Reader } from './codec.js';

/** IPv4 protocol number of ICMP. */
export const IP_PROTOCOL_ICMP = 1;
/** IPv4 protocol number of IGMP. */
export const IP_PROTOCOL_IGMP = 2;
/** IPv4 protocol number of UDP. */
export const IP_PROTOCOL_UDP = 17;
/** Length of an IPv4 header without options. */
export const IPV4_HEADER_BYTES = 20;
/** Largest IPv4 packet (header included), and so the largest reassembled datagram. */
export const MAX_IPV4_PACKET = 0xffff;
/** Length of the UDP header. */
export const UDP_HEADER_BYTES = 8;
/** Length of the ICMP header (type, code, checksum and the 4-byte rest of header). */
export const ICMP_HEADER_BYTES = 8;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_BYTES = 28;

/** ARP operation: who has `targetIp`? */
export const ARP_REQUEST = 1;
/** ARP operation: `senderIp` is at `senderMac`. */
export const ARP_REPLY = 2;

/** ICMP destination-unreachable code: no socket bound to the UDP port. */
export const ICMP_PORT_UNREACHABLE = 3;
/** ICMP destination-unreachable code: fragmentation needed and DF set (carries the next-hop MTU). */
export const ICMP_FRAGMENTATION_NEEDED = 4;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const OFFSET_MASK = 0x1fff;

/** A checksum that does not match: a DecodeError (`bad-value`) the stack counts separately. */
export class ChecksumError extends DecodeError {
  constructor(what: string) {
    super('bad-value', `${what} checksum does not match the bytes: the packet was corrupted; it is dropped`);
  }
}

/** The two MAC addresses of an Ethernet header (6 bytes each). */
export interface EthernetAddresses {
  destination: Uint8Array;
  source: Uint8Array;
}

/** An Ethernet/IPv4 ARP request or reply (RFC 826); addresses are unsigned 32-bit numbers. */
export interface ArpPacket {
  operation: typeof ARP_REQUEST | typeof ARP_REPLY;
  senderMac: Uint8Array;
  senderIp: number;
  /** All zeros in a request. */
  targetMac: Uint8Array;
  targetIp: number;
}

/** The fields of an IPv4 header that the stack uses (options are skipped on decode, not kept). */
export interface Ipv4Header {
  /** Type of service / DSCP+ECN byte. */
  tos: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** Offset of this fragment's payload in the datagram, in bytes (a multiple of 8). */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  source: number;
  destination: number;
}

/** An IPv4 packet: header fields and a view of the payload (exactly total length minus header length). */
export interface Ipv4Packet extends Ipv4Header {
  payload: Uint8Array;
}

/** An ICMP echo request or reply. */
export interface IcmpEcho {
  type: 'echo-request' | 'echo-reply';
  identifier: number;
  sequence: number;
  data: Uint8Array;
}

/** An ICMP destination unreachable message. */
export interface IcmpUnreachable {
  type: 'destination-unreachable';
  /** 0-15; 3 is port unreachable, 4 fragmentation needed. */
  code: number;
  /** The next-hop MTU of a fragmentation-needed message (RFC 1191), else 0. */
  nextHopMtu: number;
  /** The quoted start of the packet that could not be delivered (its IPv4 header and at least 8 bytes). */
  original: Uint8Array;
}

/** The ICMP messages the stack understands. */
export type IcmpMessage = IcmpEcho | IcmpUnreachable;

/** A UDP datagram; `payload` is a view on decode. */
export interface UdpDatagram {
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function checkField(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${v} does not fit in the ${field} field`);
}

function checkMac(mac: Uint8Array, field: string): void {
  if (mac.byteLength !== 6) throw new RangeError(`${field} is ${mac.byteLength} bytes, a MAC address is 6`);
}

function writeEthernet(frame: Uint8Array, eth: EthernetAddresses, type: number): void {
  checkMac(eth.destination, 'destination MAC');
  checkMac(eth.source, 'source MAC');
  frame.set(eth.destination, 0);
  frame.set(eth.source, 6);
  setU16(frame, 12, type);
}

/**
 * The UDP (or TCP) checksum of `b[start, end)` with the IPv4 pseudo-header (RFC 768): 0 when
 * the range already holds a correct checksum field.
 */
export function transportChecksum(b: Uint8Array, start: number, end: number, source: number, destination: number, protocol: number): number {
  let sum = ~internetChecksum(b, start, end) & 0xffff;
  sum += (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff) + protocol + (end - start);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// ARP

/** Decodes an Ethernet/IPv4 ARP packet (the bytes after the Ethernet header); MACs are copies. */
export function decodeArp(bytes: Uint8Array): ArpPacket {
  const r = new Reader(bytes);
  const hardware = r.u16();
  const protocol = r.u16();
  const hardwareLength = r.u8();
  const protocolLength = r.u8();
  if (hardware !== 1 || protocol !== ETHERTYPE_IPV4 || hardwareLength !== 6 || protocolLength !== 4) {
    throw new DecodeError('bad-value', `ARP for hardware ${hardware}/${hardwareLength} and protocol 0x${protocol.toString(16)}/${protocolLength}; only Ethernet/IPv4 is understood`);
  }
  const operation = r.u16();
  if (operation !== ARP_REQUEST && operation !== ARP_REPLY) throw new DecodeError('bad-value', `ARP operation ${operation} is neither request (1) nor reply (2)`);
  const senderMac = r.bytesView(6).slice();
  const senderIp = r.u32();
  const targetMac = r.bytesView(6).slice();
  const targetIp = r.u32();
  return { operation, senderMac, senderIp, targetMac, targetIp };
}

/** A complete Ethernet frame carrying `arp` to `destination` (broadcast for requests); the source MAC is `arp.senderMac`. */
export function encodeArpFrame(destination: Uint8Array, arp: ArpPacket): Uint8Array {
  checkMac(arp.senderMac, 'ARP sender MAC');
  checkMac(arp.targetMac, 'ARP target MAC');
  checkField(arp.senderIp, 0xffff_ffff, 'ARP sender address');
  checkField(arp.targetIp, 0xffff_ffff, 'ARP target address');
  const frame = new Uint8Array(ETHERNET_HEADER_BYTES + ARP_BYTES);
  writeEthernet(frame, { destination, source: arp.senderMac }, ETHERTYPE_ARP);
  const a = ETHERNET_HEADER_BYTES;
  setU16(frame, a, 1);
  setU16(frame, a + 2, ETHERTYPE_IPV4);
  frame[a + 4] = 6;
  frame[a + 5] = 4;
  setU16(frame, a + 6, arp.operation);
  frame.set(arp.senderMac, a + 8);
  setU32(frame, a + 14, arp.senderIp);
  frame.set(arp.targetMac, a + 18);
  setU32(frame, a + 24, arp.targetIp);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// IPv4

/**
 * Decodes an IPv4 packet (the bytes after the Ethernet header): version 4, a header of at least 20
 * bytes whose checksum verifies (ChecksumError otherwise), options skipped, a total length that
 * covers the header and fits the bytes, and a fragment that does not end past 65535 bytes.
 */
export function decodeIpv4(bytes: Uint8Array): Ipv4Packet {
  const r = new Reader(bytes);
  const versionIhl = r.u8();
  if (versionIhl >> 4 !== 4) throw new DecodeError('bad-value', `IP version ${versionIhl >> 4} is not 4`);
  const headerLength = (versionIhl & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_BYTES) throw new DecodeError('bad-value', `IPv4 header length ${headerLength} is shorter than 20 bytes`);
  const tos = r.u8();
  const totalLength = r.u16();
  if (totalLength < headerLength) throw new DecodeError('bad-value', `IPv4 total length ${totalLength} is shorter than its ${headerLength}-byte header`);
  if (totalLength > bytes.byteLength) throw new DecodeError('short-read', `IPv4 total length ${totalLength} exceeds the ${bytes.byteLength} bytes received`);
  const identification = r.u16();
  const flagsOffset = r.u16();
  const ttl = r.u8();
  const protocol = r.u8();
  r.u16(); // header checksum: verified over the whole header below
  const source = r.u32();
  const destination = r.u32();
  r.bytesView(headerLength - IPV4_HEADER_BYTES); // options are skipped
  if (internetChecksum(bytes, 0, headerLength) !== 0) throw new ChecksumError('IPv4 header');
  const fragmentOffset = (flagsOffset & OFFSET_MASK) * 8;
  if (fragmentOffset + totalLength - headerLength > MAX_IPV4_PACKET - IPV4_HEADER_BYTES) {
    throw new DecodeError('too-large', `IPv4 fragment at offset ${fragmentOffset} would end past the 65535-byte datagram limit`);
  }
  return {
    tos,
    identification,
    dontFragment: (flagsOffset & FLAG_DF) !== 0,
    moreFragments: (flagsOffset & FLAG_MF) !== 0,
    fragmentOffset,
    ttl,
    protocol,
    source,
    destination,
    payload: bytes.subarray(headerLength, totalLength),
  };
}

/** Writes a 20-byte IPv4 header (plus `options`) with its checksum at `at`. */
function writeIpv4Header(b: Uint8Array, at: number, h: Ipv4Header, payloadLength: number, options?: Uint8Array): number {
  const optionBytes = options?.byteLength ?? 0;
  if (optionBytes % 4 !== 0 || optionBytes > 40) throw new RangeError(`IPv4 options are ${optionBytes} bytes; they must be a multiple of 4, at most 40`);
  const headerLength = IPV4_HEADER_BYTES + optionBytes;
  checkField(headerLength + payloadLength, MAX_IPV4_PACKET, 'IPv4 total length');
  checkField(h.tos, 0xff, 'IPv4 TOS');
  checkField(h.identification, 0xffff, 'IPv4 identification');
  checkField(h.ttl, 0xff, 'IPv4 TTL');
  checkField(h.protocol, 0xff, 'IPv4 protocol');
  checkField(h.source, 0xffff_ffff, 'IPv4 source');
  checkField(h.destination, 0xffff_ffff, 'IPv4 destination');
  if (h.fragmentOffset % 8 !== 0) throw new RangeError(`IPv4 fragment offset ${h.fragmentOffset} is not a multiple of 8`);
  checkField(h.fragmentOffset / 8, OFFSET_MASK, 'IPv4 fragment offset');
  b[at] = 0x40 | (headerLength / 4);
  b[at + 1] = h.tos;
  setU16(b, at + 2, headerLength + payloadLength);
  setU16(b, at + 4, h.identification);
  setU16(b, at + 6, (h.dontFragment ? FLAG_DF : 0) | (h.moreFragments ? FLAG_MF : 0) | (h.fragmentOffset / 8));
  b[at + 8] = h.ttl;
  b[at + 9] = h.protocol;
  setU16(b, at + 10, 0);
  setU32(b, at + 12, h.source);
  setU32(b, at + 16, h.destination);
  if (options) b.set(options, at + IPV4_HEADER_BYTES);
  setU16(b, at + 10, internetChecksum(b, at, at + headerLength));
  return headerLength;
}

/**
 * The bytes of an IPv4 header (no options, checksum filled in) for a packet with `payloadLength`
 * bytes of payload: what an ICMP error quotes of a packet that arrived in fragments.
 */
export function encodeIpv4Header(header: Ipv4Header, payloadLength: number): Uint8Array {
  const out = new Uint8Array(IPV4_HEADER_BYTES);
  writeIpv4Header(out, 0, header, payloadLength);
  return out;
}

/** A complete Ethernet frame carrying the IPv4 packet; `options` (a multiple of 4 bytes, at most 40) go into the header. */
export function encodeIpv4Frame(eth: EthernetAddresses, packet: Ipv4Packet, options?: Uint8Array): Uint8Array {
  const headerLength = IPV4_HEADER_BYTES + (options?.byteLength ?? 0);
  const frame = new Uint8Array(ETHERNET_HEADER_BYTES + headerLength + packet.payload.byteLength);
  writeEthernet(frame, eth, ETHERTYPE_IPV4);
  writeIpv4Header(frame, ETHERNET_HEADER_BYTES, packet, packet.payload.byteLength, options);
  frame.set(packet.payload, ETHERNET_HEADER_BYTES + headerLength);
  return frame;
}

/** Bytes in front of an IPv4 payload in a frame without IP options: Ethernet and IPv4 headers. */
export const IPV4_FRAME_HEADROOM = ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES;

/**
 * Writes the Ethernet and IPv4 headers (no options) into the first {@link IPV4_FRAME_HEADROOM} bytes of `frame`,
 * whose payload is already in place after them: encodeIpv4Frame without copying the payload. Returns `frame`.
 */
export function writeIpv4FrameHeaders(frame: Uint8Array, eth: EthernetAddresses, header: Ipv4Header): Uint8Array {
  writeEthernet(frame, eth, ETHERTYPE_IPV4);
  writeIpv4Header(frame, ETHERNET_HEADER_BYTES, header, frame.byteLength - IPV4_FRAME_HEADROOM);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// ICMP

const ICMP_ECHO_REPLY = 0;
const ICMP_DESTINATION_UNREACHABLE = 3;
const ICMP_ECHO_REQUEST = 8;

/** Decodes an ICMP message (an IPv4 payload): checksum verified, echo and destination unreachable only. */
export function decodeIcmp(bytes: Uint8Array): IcmpMessage {
  const r = new Reader(bytes);
  const type = r.u8();
  const code = r.u8();
  r.u16(); // checksum: verified over the whole message below
  const rest1 = r.u16();
  const rest2 = r.u16();
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    if (code !== 0) throw new DecodeError('bad-value', `ICMP echo with code ${code}, expected 0`);
    if (internetChecksum(bytes, 0, bytes.byteLength) !== 0) throw new ChecksumError('ICMP');
    return { type: type === ICMP_ECHO_REQUEST ? 'echo-request' : 'echo-reply', identifier: rest1, sequence: rest2, data: r.bytesView(r.remaining) };
  }
  if (type === ICMP_DESTINATION_UNREACHABLE) {
    if (code > 15) throw new DecodeError('bad-value', `ICMP destination unreachable with code ${code}, expected 0-15`);
    if (r.remaining < IPV4_HEADER_BYTES + 8) throw new DecodeError('short-read', `ICMP destination unreachable quotes ${r.remaining} bytes, fewer than an IPv4 header and 8 bytes`);
    if (internetChecksum(bytes, 0, bytes.byteLength) !== 0) throw new ChecksumError('ICMP');
    return { type: 'destination-unreachable', code, nextHopMtu: code === ICMP_FRAGMENTATION_NEEDED ? rest2 : 0, original: r.bytesView(r.remaining) };
  }
  throw new DecodeError('bad-value', `ICMP type ${type} is not understood (only echo and destination unreachable)`);
}

/** The bytes of an ICMP message, checksum filled in. */
export function encodeIcmp(message: IcmpMessage): Uint8Array {
  const body = message.type === 'destination-unreachable' ? message.original : message.data;
  const out = new Uint8Array(ICMP_HEADER_BYTES + body.byteLength);
  if (message.type === 'destination-unreachable') {
    checkField(message.code, 15, 'ICMP unreachable code');
    checkField(message.nextHopMtu, 0xffff, 'ICMP next-hop MTU');
    out[0] = ICMP_DESTINATION_UNREACHABLE;
    out[1] = message.code;
    if (message.code === ICMP_FRAGMENTATION_NEEDED) setU16(out, 6, message.nextHopMtu);
  } else {
    checkField(message.identifier, 0xffff, 'ICMP echo identifier');
    checkField(message.sequence, 0xffff, 'ICMP echo sequence');
    out[0] = message.type === 'echo-request' ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY;
    setU16(out, 4, message.identifier);
    setU16(out, 6, message.sequence);
  }
  out.set(body, ICMP_HEADER_BYTES);
  setU16(out, 2, internetChecksum(out, 0, out.byteLength));
  return out;
}

/** A complete Ethernet frame carrying an ICMP message in IPv4 (the protocol field is set to ICMP). */
export function encodeIcmpFrame(eth: EthernetAddresses, ip: Omit<Ipv4Header, 'protocol'>, message: IcmpMessage): Uint8Array {
  return encodeIpv4Frame(eth, { ...ip, protocol: IP_PROTOCOL_ICMP, payload: encodeIcmp(message) });
}

// ---------------------------------------------------------------------------------------------
// UDP

/**
 * Decodes a UDP datagram (an IPv4 payload) sent from `source` to `destination`: the length field
 * must equal the bytes given, and a non-zero checksum must verify over the pseudo-header (0 means
 * the sender computed none, which IPv4 allows).
 */
export function decodeUdp(bytes: Uint8Array, source: number, destination: number): UdpDatagram {
  const r = new Reader(bytes);
  const sourcePort = r.u16();
  const destinationPort = r.u16();
  const length = r.u16();
  const checksum = r.u16();
  if (length < UDP_HEADER_BYTES) throw new DecodeError('bad-value', `UDP length ${length} is shorter than its 8-byte header`);
  if (length > bytes.byteLength) throw new DecodeError('short-read', `UDP length ${length} exceeds the ${bytes.byteLength} bytes of the IP payload`);
  if (length < bytes.byteLength) throw new DecodeError('trailing-bytes', `UDP length ${length} leaves ${bytes.byteLength - length} bytes of the IP payload unexplained`);
  if (checksum !== 0 && transportChecksum(bytes, 0, length, source, destination, IP_PROTOCOL_UDP) !== 0) throw new ChecksumError('UDP');
  return { sourcePort, destinationPort, payload: r.bytesView(r.remaining) };
}

/**
 * A complete Ethernet frame carrying a UDP datagram in one IPv4 packet (fragment it afterwards if
 * it exceeds the MTU). The UDP checksum is always computed (0 is sent as 0xffff).
 */
export function encodeUdpFrame(eth: EthernetAddresses, ip: Omit<Ipv4Header, 'protocol'>, udp: UdpDatagram): Uint8Array {
  checkField(udp.sourcePort, 0xffff, 'UDP source port');
  checkField(udp.destinationPort, 0xffff, 'UDP destination port');
  const udpLength = UDP_HEADER_BYTES + udp.payload.byteLength;
  checkField(IPV4_HEADER_BYTES + udpLength, MAX_IPV4_PACKET, 'IPv4 total length');
  const frame = new Uint8Array(ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES + udpLength);
  writeEthernet(frame, eth, ETHERTYPE_IPV4);
  writeIpv4Header(frame, ETHERNET_HEADER_BYTES, { ...ip, protocol: IP_PROTOCOL_UDP }, udpLength);
  const u = ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES;
  setU16(frame, u, udp.sourcePort);
  setU16(frame, u + 2, udp.destinationPort);
  setU16(frame, u + 4, udpLength);
  frame.set(udp.payload, u + UDP_HEADER_BYTES);
  const checksum = transportChecksum(frame, u, u + udpLength, ip.source, ip.destination, IP_PROTOCOL_UDP);
  setU16(frame, u + 6, checksum === 0 ? 0xffff : checksum);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** True for 224.0.0.0/4. */
export function isMulticastAddress(address: number): boolean {
  return address >>> 28 === 0xe;
}

/** The Ethernet MAC of an IPv4 multicast group (RFC 1112: 01:00:5e and the low 23 bits). */
export function multicastMac(group: number): Uint8Array {
  return Uint8Array.of(0x01, 0x00, 0x5e, (group >>> 16) & 0x7f, (group >>> 8) & 0xff, group & 0xff);
}
