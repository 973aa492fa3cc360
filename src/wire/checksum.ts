// The Internet checksum (RFC 1071), shared by the IPv4/ICMP/UDP codecs and the data plane's ICMP answers.
//
// Every TCP segment is summed twice (when sent and when received), so this is the data path's inner loop.
// The ones'-complement sum is byte-order independent (RFC 1071 §2(B)): summed as native 16-bit words through a
// Uint16Array view (one load per word) and byte-swapped at the end on little-endian hosts. Partial sums are folded
// once per 32 768 words (32 768 × 0xffff < 2³¹ keeps them small integers) instead of a compare per word.

/** 16-bit words summed before a fold. */
const WORDS_PER_FOLD = 32_768;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The Internet checksum (RFC 1071) of `b[start, end)`. */
export function internetChecksum(b: Uint8Array, start: number, end: number): number {
  if (end <= start) return 0xffff;
  const offset = b.byteOffset + start;
  let sum = (offset & 1) === 0 ? wordSum(b, offset, (end - start) >>> 1) : byteSum(b, start, end - ((end - start) & 1));
  if (((end - start) & 1) !== 0) sum += (b[end - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Folded big-endian sum of `words` 16-bit words at an even byte `offset` of b's buffer. */
function wordSum(b: Uint8Array, offset: number, words: number): number {
  const w = new Uint16Array(b.buffer, offset, words);
  let sum = 0;
  let i = 0;
  while (i < words) {
    const stop = Math.min(words, i + WORDS_PER_FOLD);
    let partial = 0;
    for (; i + 4 <= stop; i += 4) partial += (w[i] as number) + (w[i + 1] as number) + (w[i + 2] as number) + (w[i + 3] as number);
    for (; i < stop; i++) partial += w[i] as number;
    sum += partial;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return LITTLE_ENDIAN ? ((sum & 0xff) << 8) | (sum >>> 8) : sum;
}

/** Folded big-endian sum of the bytes `b[start, end)` (an even count) taken in pairs: for odd-aligned views. */
function byteSum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  while (i < end) {
    const stop = Math.min(end, i + 2 * WORDS_PER_FOLD);
    let partial = 0;
    for (; i + 4 <= stop; i += 4) {
      partial += (((b[i] as number) << 8) | (b[i + 1] as number)) + (((b[i + 2] as number) << 8) | (b[i + 3] as number));
    }
    for (; i < stop; i += 2) partial += ((b[i] as number) << 8) | (b[i + 1] as number);
    sum += partial;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}
