import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { OptionsError } from '../../../src/errors.js';
import {
  cidr,
  cidrsInRange,
  containsAddress,
  formatCidr,
  formatIPv4,
  hostRange,
  IPV4_SPACE,
  overlaps,
  parseCidr,
  parseIPv4,
  type Cidr,
} from '../../../src/ipam/address.js';

const addressArb = fc.integer({ min: 0, max: IPV4_SPACE - 1 });
const blockArb: fc.Arbitrary<Cidr> = fc
  .tuple(addressArb, fc.integer({ min: 0, max: 32 }))
  .map(([a, prefix]) => {
    const size = 2 ** (32 - prefix);
    return { start: a - (a % size), prefix, size };
  });

function expectOptionsError(fn: () => unknown, mentions?: string): void {
  try {
    fn();
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, OptionsError);
    assert.is((e as OptionsError).code, 'invalid-option');
    if (mentions !== undefined) assert.ok((e as Error).message.includes(mentions), `"${(e as Error).message}" should mention ${mentions}`);
  }
}

test('every address formats and parses back to itself', () => {
  fc.assert(
    fc.property(addressArb, (n) => {
      assert.is(parseIPv4(formatIPv4(n)), n);
    }),
    { numRuns: 2000 },
  );
  for (const n of [0, 1, 255, 256, 2 ** 24, IPV4_SPACE - 1]) assert.is(parseIPv4(formatIPv4(n)), n);
});

test('canonical dotted quads parse and format back to the same text', () => {
  fc.assert(
    fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), (octets) => {
      const text = octets.join('.');
      assert.is(formatIPv4(parseIPv4(text)), text);
    }),
  );
  assert.is(parseIPv4('10.32.0.1'), 0x0a200001);
  assert.is(parseIPv4('255.255.255.255'), IPV4_SPACE - 1);
  assert.is(formatIPv4(0xc0a80101), '192.168.1.1');
});

test('malformed IPv4 text is an OptionsError', () => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.999', '01.2.3.4', '1.2.3.00', ' 1.2.3.4', '1.2.3.4 ', '1..2.3', 'a.b.c.d', '-1.2.3.4', '+1.2.3.4', '1.2.3.4/24', '0x1.2.3.4', '1e2.0.0.1', '1.2.3.٣']) {
    expectOptionsError(() => parseIPv4(bad));
  }
});

test('formatIPv4 refuses numbers that are not addresses', () => {
  for (const bad of [-1, IPV4_SPACE, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => formatIPv4(bad), (e: unknown) => e instanceof RangeError);
  }
});

test('every CIDR block formats and parses back to itself', () => {
  fc.assert(
    fc.property(blockArb, (block) => {
      assert.equal(parseCidr(formatCidr(block)), block);
    }),
    { numRuns: 2000 },
  );
  assert.equal(parseCidr('10.32.0.0/12'), { start: 0x0a200000, prefix: 12, size: 2 ** 20 });
  assert.equal(parseCidr('0.0.0.0/0'), { start: 0, prefix: 0, size: IPV4_SPACE });
  assert.equal(parseCidr('255.255.255.255/32'), { start: IPV4_SPACE - 1, prefix: 32, size: 1 });
});

test('a CIDR whose address is not the network address names the right one', () => {
  expectOptionsError(() => parseCidr('10.32.0.1/12'), '10.32.0.0/12');
  expectOptionsError(() => parseCidr('10.47.255.255/12'), '10.32.0.0/12');
  expectOptionsError(() => parseCidr('1.0.0.0/0'), '0.0.0.0/0');
  fc.assert(
    fc.property(blockArb.filter((b) => b.size > 1), fc.nat(), (block, k) => {
      const inside = block.start + 1 + (k % (block.size - 1));
      expectOptionsError(() => parseCidr(`${formatIPv4(inside)}/${block.prefix}`), formatCidr(block));
    }),
  );
});

test('malformed CIDR text is an OptionsError', () => {
  for (const bad of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/08', '10.0.0.0/1/2', '/8', '10.0.0/8', '10.0.0.0/-1', '10.0.0.0/ 8', '10.0.0.0/8 ']) {
    expectOptionsError(() => parseCidr(bad));
  }
});

test('cidr() builds aligned blocks and refuses unaligned ones', () => {
  assert.equal(cidr(0x0a200000, 12), { start: 0x0a200000, prefix: 12, size: 2 ** 20 });
  assert.throws(() => cidr(0x0a200001, 12), (e: unknown) => e instanceof RangeError);
  assert.throws(() => cidr(0, 33), (e: unknown) => e instanceof RangeError);
  assert.throws(() => cidr(IPV4_SPACE, 32), (e: unknown) => e instanceof RangeError);
});

test('host ranges exclude network and broadcast up to /30, not for /31 and /32', () => {
  assert.equal(hostRange(parseCidr('10.0.0.0/24')), { first: parseIPv4('10.0.0.1'), last: parseIPv4('10.0.0.254') });
  assert.equal(hostRange(parseCidr('10.0.0.4/30')), { first: parseIPv4('10.0.0.5'), last: parseIPv4('10.0.0.6') });
  assert.equal(hostRange(parseCidr('10.0.0.4/31')), { first: parseIPv4('10.0.0.4'), last: parseIPv4('10.0.0.5') });
  assert.equal(hostRange(parseCidr('10.0.0.4/32')), { first: parseIPv4('10.0.0.4'), last: parseIPv4('10.0.0.4') });
  assert.equal(hostRange(parseCidr('0.0.0.0/0')), { first: 1, last: IPV4_SPACE - 2 });
  assert.equal(hostRange(parseCidr('10.32.0.0/12')), { first: parseIPv4('10.32.0.1'), last: parseIPv4('10.47.255.254') });
});

test('containsAddress and overlaps agree with a brute-force check', () => {
  const smallBlock = fc.tuple(fc.nat(63), fc.integer({ min: 26, max: 32 })).map(([a, prefix]) => cidr(a - (a % 2 ** (32 - prefix)), prefix));
  fc.assert(
    fc.property(smallBlock, smallBlock, fc.nat(70), (a, b, address) => {
      assert.is(containsAddress(a, address), address >= a.start && address <= a.start + a.size - 1);
      let shared = false;
      for (let x = 0; x < 64; x++) if (containsAddress(a, x) && containsAddress(b, x)) shared = true;
      assert.is(overlaps(a, b), shared);
      assert.is(overlaps(b, a), shared);
    }),
  );
  assert.ok(overlaps(parseCidr('0.0.0.0/0'), parseCidr('255.255.255.255/32')));
  assert.not.ok(overlaps(parseCidr('10.32.0.0/12'), parseCidr('10.48.0.0/12')));
  assert.ok(containsAddress(parseCidr('0.0.0.0/0'), IPV4_SPACE - 1));
});

/** The fewest aligned blocks covering [start, end), by dynamic programming over every choice. */
function bruteForceMinBlocks(start: number, end: number): number {
  const best = new Array<number>(end - start + 1).fill(Infinity);
  best[end - start] = 0;
  for (let at = end - 1; at >= start; at--) {
    for (let size = 1; at + size <= end; size *= 2) {
      if (at % size === 0) best[at - start] = Math.min(best[at - start] as number, 1 + (best[at + size - start] as number));
    }
  }
  return best[0] as number;
}

test('cidrsInRange covers exactly [start, end) with the fewest aligned blocks', () => {
  fc.assert(
    fc.property(fc.nat(600), fc.nat(300), (start, length) => {
      const end = start + length;
      const blocks = cidrsInRange(start, end);
      let at = start;
      for (const b of blocks) {
        assert.is(b.start, at, 'blocks are consecutive');
        assert.is(b.size, 2 ** (32 - b.prefix));
        assert.is(b.start % b.size, 0, 'blocks are aligned');
        at += b.size;
      }
      assert.is(at, end, 'blocks end at end');
      assert.is(blocks.length, bruteForceMinBlocks(start, end));
    }),
    { numRuns: 500 },
  );
});

test('cidrsInRange handles the edges of the address space', () => {
  assert.equal(cidrsInRange(0, IPV4_SPACE), [{ start: 0, prefix: 0, size: IPV4_SPACE }]);
  assert.equal(cidrsInRange(5, 5), []);
  assert.equal(cidrsInRange(IPV4_SPACE - 1, IPV4_SPACE), [{ start: IPV4_SPACE - 1, prefix: 32, size: 1 }]);
  assert.equal(cidrsInRange(1, IPV4_SPACE).length, 32);
  assert.equal(cidrsInRange(1, IPV4_SPACE - 1).length, 62);
  const ten = parseCidr('10.32.0.0/12');
  assert.equal(cidrsInRange(ten.start, ten.start + ten.size), [ten]);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: IPV4_SPACE }), fc.integer({ min: 0, max: IPV4_SPACE }), (x, y) => {
      const [start, end] = x <= y ? [x, y] : [y, x];
      const blocks = cidrsInRange(start, end);
      let at = start;
      for (const b of blocks) {
        assert.is(b.start, at);
        assert.is(b.start % b.size, 0);
        at += b.size;
      }
      assert.is(at, end);
      assert.ok(blocks.length <= 62);
    }),
  );
  for (const [s, e] of [[-1, 5], [5, 4], [0, IPV4_SPACE + 1], [0.5, 2]] as const) {
    assert.throws(() => cidrsInRange(s, e), (err: unknown) => err instanceof RangeError);
  }
});

test.run();
