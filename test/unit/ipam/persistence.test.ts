import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, WeaveError } from '../../../src/errors.js';
import { decodeWith, encodeWith, type Writer } from '../../../src/wire/codec.js';
import { encodeRing, encodeSeeds, type RingState } from '../../../src/wire/ipam.js';
import { formatPeerName, type PeerName } from '../../../src/wire/peer-name.js';
import { parseCidr, type Cidr } from '../../../src/ipam/address.js';
import { Ring } from '../../../src/ipam/ring.js';
import { decodeSnapshot, encodeSnapshot, IPAM_FILE, IpamStore, type IpamSnapshot } from '../../../src/ipam/persistence.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

const SELF = 0x0a0000000001;
const OTHER = 0x0a0000000002;
const RANGE = parseCidr('10.45.0.0/24');

const encode = (s: IpamSnapshot): Uint8Array => encodeWith(encodeSnapshot, s);
const decode = (bytes: Uint8Array): IpamSnapshot => decodeWith(decodeSnapshot, bytes);

/** A ring over `range` divided among `peers`, SELF having donated a little to the last of them. */
function ringOver(range: Cidr, peers: PeerName[] = [SELF, OTHER]): RingState {
  const ring = new Ring({ start: range.start, end: range.start + range.size });
  ring.claimForPeers(peers);
  const [mine] = ring.rangesOf(SELF);
  const to = peers[peers.length - 1] as PeerName;
  if (mine && to !== SELF) ring.grant(SELF, { start: mine.end - 4, end: mine.end }, to);
  return ring.toState();
}

function snapshotOf(peer: PeerName, range: Cidr, owned: [number, string][] = []): IpamSnapshot {
  return { peer, ring: ringOver(range), owned };
}

/** Rings made by the Ring itself: divided, then some donations. */
const ringArb: fc.Arbitrary<RingState> = fc
  .tuple(
    fc.integer({ min: 8, max: 30 }),
    fc.nat(),
    fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 48 - 1 }), { minLength: 1, maxLength: 5 }),
    fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 8 }),
    fc.boolean(),
  )
  .map(([prefix, at, peers, grants, divided]) => {
    const size = 2 ** (32 - prefix);
    const start = (at % 2 ** prefix) * size;
    const ring = new Ring({ start, end: start + size });
    if (!divided) return ring.toState();
    ring.claimForPeers(peers);
    for (const [x, y, n] of grants) {
      const address = start + (x % size);
      const owner = ring.ownerOf(address) as PeerName;
      const run = ring.rangesOf(owner).find((r) => r.start <= address && address < r.end);
      if (run) ring.grant(owner, { start: address, end: Math.min(run.end, address + 1 + (n % 32)) }, peers[y % peers.length] as PeerName);
    }
    return ring.toState();
  });

const snapshotArb: fc.Arbitrary<IpamSnapshot> = fc.record(
  {
    peer: fc.integer({ min: 1, max: 2 ** 48 - 1 }),
    ring: ringArb,
    owned: fc.uniqueArray(fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.string({ unit: 'binary', maxLength: 63 })), {
      maxLength: 20,
      selector: ([address]) => address,
    }),
  },
  { noNullPrototype: true },
);

/** A fresh directory under the OS temp dir, removed afterwards whatever happens. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wt-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function expectCorrupt(store: IpamStore): Promise<WeaveError> {
  try {
    await store.load(SELF, RANGE);
  } catch (e) {
    assert.instance(e, WeaveError);
    assert.is((e as WeaveError).code, 'corrupt-state');
    assert.ok((e as WeaveError).message.includes(store.path), `the message names the file: ${(e as Error).message}`);
    return e as WeaveError;
  }
  return assert.unreachable('a corrupt file must not load') as never;
}

// ---- codec ----

test('every snapshot round-trips', () => {
  fc.assert(
    fc.property(snapshotArb, (s) => {
      assert.equal(decode(encode(s)), s);
    }),
    { numRuns: 300 },
  );
});

test('the layout is the documented one: magic, version, peer, ring, allocations, seeds', () => {
  const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db'], [RANGE.start + 2, '']]);
  assert.ok((s.ring.seeds ?? []).length > 0);
  const expected = rawBytes((w) => {
    w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(2).u48(SELF);
    encodeRing(w, s.ring);
    w.u32(2).u32(RANGE.start + 1).str8('db').u32(RANGE.start + 2).str8('');
    encodeSeeds(w, s.ring.seeds ?? []);
  });
  assert.equal(encode(s), expected);
  assert.equal([...encode(s).subarray(0, 4)], [...Buffer.from('WTIP')]);
});

test('a format 1 file (before seeds were recorded) still loads, with unknown seeds', () => {
  const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]);
  const v1 = rawBytes((w) => {
    w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(1).u48(SELF);
    encodeRing(w, s.ring);
    w.u32(1).u32(RANGE.start + 1).str8('db');
  });
  const decoded = decode(v1);
  assert.equal(decoded.ring.seeds, undefined);
  assert.equal(decoded.ring.entries, s.ring.entries);
  assert.equal(decoded.owned, s.owned);
});

test('a bad magic is bad-magic', () => {
  const bytes = encode(snapshotOf(SELF, RANGE));
  for (let i = 0; i < 4; i++) {
    const copy = bytes.slice();
    copy[i] = (copy[i] ?? 0) ^ 0x20;
    expectDecodeError(decode, copy, 'bad-magic');
  }
  expectDecodeError(decode, Buffer.from('WTIQ'), 'bad-magic');
});

test('an unknown format version is version-mismatch', () => {
  const bytes = encode(snapshotOf(SELF, RANGE));
  for (const version of [0, 3, 0xff]) {
    const copy = bytes.slice();
    copy[4] = version;
    expectDecodeError(decode, copy, 'version-mismatch');
  }
});

test('an address allocated twice is rejected', () => {
  const bytes = encode({ peer: SELF, ring: ringOver(RANGE), owned: [[RANGE.start + 5, 'a'], [RANGE.start + 5, 'b']] });
  expectDecodeError(decode, bytes, 'bad-value');
  // The same id twice with different addresses is fine.
  assert.is(decode(encode({ peer: SELF, ring: ringOver(RANGE), owned: [[RANGE.start + 5, 'a'], [RANGE.start + 6, 'a']] })).owned.length, 2);
});

test('peer name 0 is rejected', () => {
  const bytes = encode(snapshotOf(SELF, RANGE));
  bytes.fill(0, 5, 11);
  expectDecodeError(decode, bytes, 'bad-value');
});

test('an invalid ring, a count larger than the bytes, bad UTF-8, truncation and trailing bytes are rejected', () => {
  const header = (w: Writer) => w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(1).u48(SELF); // format 1: no seeds
  // A ring token outside its range.
  expectDecodeError(decode, rawBytes((w) => header(w).u32(RANGE.start).u32(256).u32(1).u32(RANGE.start + 256).u48(SELF).u64(0n).u32(0).u32(0)), 'bad-value');
  const emptyRing = (w: Writer) => header(w).u32(RANGE.start).u32(256).u32(0);
  expectDecodeError(decode, rawBytes((w) => emptyRing(w).u32(2).u32(RANGE.start + 1).str8('x')), 'too-large');
  expectDecodeError(decode, rawBytes((w) => emptyRing(w).u32(1).u32(RANGE.start + 1).u8(2).u8(0xc3).u8(0x28)), 'bad-value');
  const bytes = encode(snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'web']]));
  expectDecodeError(decode, bytes.subarray(0, bytes.length - 1), 'too-large'); // the seed count says more than is left
  expectDecodeError(decode, bytes.subarray(0, 3), 'short-read');
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  expectDecodeError(decode, longer, 'trailing-bytes');
});

test('fuzz: random and mutated state files only give DecodeErrors', () => {
  fuzzDecoder(decode, snapshotArb.map(encode));
  fuzzDecoder((bytes) => Ring.fromState(decode(bytes).ring), snapshotArb.map(encode), 500);
});

// ---- the store ----

test('a missing file is a fresh start (and so is a missing directory)', async () => {
  await inTempDir(async (dir) => {
    assert.equal(await new IpamStore(dir).load(SELF, RANGE), {});
    assert.equal(await new IpamStore(join(dir, 'not', 'yet')).load(SELF, RANGE), {});
  });
});

test('save then load returns the same snapshot', async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(join(dir, 'created-on-save'));
    const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db'], [RANGE.start + 9, 'web'], [0x01020304, 'outside the ring']]);
    await store.save(s);
    assert.is(store.path, join(dir, 'created-on-save', IPAM_FILE));
    assert.equal(await new IpamStore(store.dir).load(SELF, RANGE), { snapshot: s });
    assert.equal(new Uint8Array(await readFile(store.path)), encode(s));
    assert.is((await stat(store.path)).mode & 0o077, 0, 'only the owner may read the state');
  });
});

test('many saves in a row leave the latest on disk and no temp files behind', async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(dir);
    const snapshots = Array.from({ length: 40 }, (_, i) => snapshotOf(SELF, RANGE, [[RANGE.start + 1 + i, `c${i}`]]));
    // Not awaited one by one: saves queue up and coalesce.
    const saves = snapshots.map((s) => store.save(s));
    await Promise.all(saves);
    await store.flush();
    assert.equal(await store.load(SELF, RANGE), { snapshot: snapshots[snapshots.length - 1] });
    assert.equal(await readdir(dir), [IPAM_FILE]);
    // Awaited one by one.
    for (const s of snapshots.slice(0, 10)) await store.save(s);
    assert.equal(await store.load(SELF, RANGE), { snapshot: snapshots[9] });
    // Interleaved with flushes.
    void store.save(snapshots[20] as IpamSnapshot);
    await store.flush();
    void store.save(snapshots[21] as IpamSnapshot);
    void store.save(snapshots[22] as IpamSnapshot);
    await store.flush();
    assert.equal(await store.load(SELF, RANGE), { snapshot: snapshots[22] });
    assert.equal(await readdir(dir), [IPAM_FILE]);
  });
});

test("a file for another peer name is moved aside, naming both peers", async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(dir);
    const theirs = snapshotOf(OTHER, RANGE, [[RANGE.start + 1, 'theirs']]);
    await store.save(theirs);
    const saved = await readFile(store.path);
    const result = await store.load(SELF, RANGE);
    assert.is(result.snapshot, undefined);
    assert.type(result.setAside, 'string');
    const message = result.setAside as string;
    assert.ok(message.includes(formatPeerName(OTHER)), message);
    assert.ok(message.includes(formatPeerName(SELF)), message);
    const files = await readdir(dir);
    assert.not.ok(files.includes(IPAM_FILE), 'the original file is gone');
    const aside = files.filter((f) => f.startsWith(`${IPAM_FILE}.set-aside-`));
    assert.is(aside.length, 1, files.join(' '));
    assert.ok(message.includes(aside[0] as string), message);
    assert.equal(await readFile(join(dir, aside[0] as string)), saved, 'set aside, not rewritten');
    assert.equal(await store.load(SELF, RANGE), {}, 'after that, a fresh start');
  });
});

test('a file for a different range is moved aside', async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(dir);
    await store.save(snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]));
    const other = parseCidr('10.45.0.0/23'); // same start, different size
    const result = await store.load(SELF, other);
    assert.is(result.snapshot, undefined);
    assert.ok(result.setAside?.includes('10.45.0.0/23'), result.setAside);
    const files = await readdir(dir);
    assert.not.ok(files.includes(IPAM_FILE));
    assert.is(files.filter((f) => f.startsWith(`${IPAM_FILE}.set-aside-`)).length, 1, files.join(' '));

    await store.save(snapshotOf(SELF, RANGE));
    const moved = await store.load(SELF, parseCidr('10.46.0.0/24')); // same size, different start
    assert.ok(moved.setAside?.includes('10.46.0.0/24'), moved.setAside);
    assert.not.ok((await readdir(dir)).includes(IPAM_FILE));
  });
});

test('a corrupt file is a corrupt-state error naming the path, and stays where it is', async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(dir);
    const good = encode(snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]));
    const corruptions: Uint8Array[] = [
      Buffer.from('WTIP garbage'),
      new Uint8Array(0),
      good.subarray(0, good.length - 2),
      Uint8Array.from([...good, 0]),
      Uint8Array.from([0x7b, 0x7d]), // "{}"
    ];
    for (const bytes of corruptions) {
      await writeFile(store.path, bytes);
      const error = await expectCorrupt(store);
      assert.instance(error.cause, DecodeError);
      assert.equal(new Uint8Array(await readFile(store.path)), new Uint8Array(bytes), 'the corrupt file is left for the operator');
    }
    await writeFile(store.path, good);
    assert.ok((await store.load(SELF, RANGE)).snapshot, 'the intact file loads again');
  });
});

test.run();
