// The Internet checksum (RFC 1071), shared by the IPv4/ICMP/UDP codecs and the data plane's ICMP answers.

/** The Internet checksum (RFC 1071) of `b[start, end)`. */
export function internetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) {
    sum += ((b[i] as number) << 8) | (b[i + 1] as number);
    if (sum > 0xffff) sum = (sum & 0xffff) + 1; // fold as we go: the total never outgrows 32-bit operations
  }
  if ((end - start) % 2 === 1) sum += (b[end - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
