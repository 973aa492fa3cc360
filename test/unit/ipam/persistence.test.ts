import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, StateFileError, WeaveError } from '../../../src/errors.js';
import type { Writer } from '../../../src/wire/codec.js';
import { encodeRing, encodeSeeds, type RingState } from '../../../src/wire/ipam.js';
import { formatPeerName, type PeerName } from '../../../src/wire/peer-name.js';
import { parseCidr, type Cidr } from '../../../src/ipam/address.js';
import { Ring } from '../../../src/ipam/ring.js';
import { decodeSnapshot, encodeSnapshot, encodeSnapshotBody, IPAM_FILE, IpamStore, type IpamSnapshot } from '../../../src/ipam/persistence.js';
import { sealStateFile } from '../../../src/wire/state-file.js';
import { IPAM_FILE_KIND } from '../../../src/ipam/persistence.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';
import { FaultPlan, MemoryFileSystem } from '../../helpers/fault-world.js';

const SELF = 0x0a0000000001;
const OTHER = 0x0a0000000002;
const RANGE = parseCidr('10.45.0.0/24');

const encode = (s: IpamSnapshot): Uint8Array => encodeSnapshot(s);
const decode = (bytes: Uint8Array): IpamSnapshot => decodeSnapshot(bytes);
/** The format-2 file (before checksums): magic, version 2, body. */
const encodeLegacy = (s: IpamSnapshot): Uint8Array => rawBytes((w) => {
  w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(2);
  encodeSnapshotBody(w, s);
});
/** The format-1 file (before checksums and seeds): magic, version 1, body without seeds. */
const encodeFormat1 = (s: IpamSnapshot): Uint8Array => rawBytes((w) => {
  w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(1).u48(s.peer);
  encodeRing(w, s.ring);
  w.u32(s.owned.length);
  for (const [address, id] of s.owned) w.u32(address).str8(id);
});
const withoutSeeds = (s: IpamSnapshot): IpamSnapshot => ({ ...s, ring: { start: s.ring.start, end: s.ring.end, entries: s.ring.entries } });
/** A format-2 file around hand-made body bytes (valid checksum), to test the body's own checks. */
const sealed = (write: (w: Writer) => void): Uint8Array => sealStateFile(IPAM_FILE_KIND, rawBytes(write));

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

test('every snapshot round-trips, and so does every format-1 and format-2 file', () => {
  fc.assert(
    fc.property(snapshotArb, (s) => {
      assert.equal(decode(encode(s)), s);
      assert.equal(decode(encodeLegacy(s)), s);
      assert.equal(decode(encodeFormat1(s)), withoutSeeds(s));
    }),
    { numRuns: 300 },
  );
});

test('the layout is the documented one: envelope (magic, format 3, length) around peer, ring, allocations, seeds, then SHA-256', () => {
  const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db'], [RANGE.start + 2, '']]);
  assert.ok((s.ring.seeds ?? []).length > 0);
  const body = rawBytes((w) => {
    w.u48(SELF);
    encodeRing(w, s.ring);
    w.u32(2).u32(RANGE.start + 1).str8('db').u32(RANGE.start + 2).str8('');
    encodeSeeds(w, s.ring.seeds ?? []);
  });
  const head = rawBytes((w) => w.u8(0x57).u8(0x54).u8(0x49).u8(0x50).u8(3).u32(body.length).bytes(body));
  const expected = Uint8Array.from([...head, ...createHash('sha256').update(head).digest()]);
  assert.equal(encode(s), expected);
  assert.equal([...encode(s).subarray(0, 4)], [...Buffer.from('WTIP')]);
});

test('a flipped bit anywhere in the file is refused: nothing of a damaged file is used', () => {
  const bytes = encode(snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db'], [RANGE.start + 9, 'web']]));
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = bytes.slice();
      copy[i] = (copy[i] as number) ^ (1 << bit);
      assert.throws(() => decode(copy), (e: unknown) => e instanceof DecodeError, `bit ${bit} of byte ${i}`);
    }
  }
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
  for (const version of [0, 4, 0xff]) {
    const copy = bytes.slice();
    copy[4] = version;
    expectDecodeError(decode, copy, 'version-mismatch');
  }
});

test('a format 1 file (before seeds were recorded) still loads, with unknown seeds', () => {
  const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]);
  const decoded = decode(encodeFormat1(s));
  assert.equal(decoded.ring.seeds, undefined);
  assert.equal(decoded.ring.entries, s.ring.entries);
  assert.equal(decoded.owned, s.owned);
});

test('an address allocated twice is rejected, in every format', () => {
  const twice: IpamSnapshot = { peer: SELF, ring: ringOver(RANGE), owned: [[RANGE.start + 5, 'a'], [RANGE.start + 5, 'b']] };
  expectDecodeError(decode, encode(twice), 'bad-value');
  expectDecodeError(decode, encodeLegacy(twice), 'bad-value');
  expectDecodeError(decode, encodeFormat1(twice), 'bad-value');
  // The same id twice with different addresses is fine.
  assert.is(decode(encode({ peer: SELF, ring: ringOver(RANGE), owned: [[RANGE.start + 5, 'a'], [RANGE.start + 6, 'a']] })).owned.length, 2);
});

test('peer name 0 is rejected', () => {
  expectDecodeError(decode, encode(snapshotOf(0, RANGE)), 'bad-value');
  const legacy = encodeLegacy(snapshotOf(SELF, RANGE));
  legacy.fill(0, 5, 11);
  expectDecodeError(decode, legacy, 'bad-value');
});

test('an invalid ring, a count larger than the bytes, bad UTF-8, truncation and trailing bytes are rejected', () => {
  // A ring token outside its range.
  expectDecodeError(decode, sealed((w) => w.u48(SELF).u32(RANGE.start).u32(256).u32(1).u32(RANGE.start + 256).u48(SELF).u64(0n).u32(0).u32(0)), 'bad-value');
  const emptyRing = (w: Writer) => w.u48(SELF).u32(RANGE.start).u32(256).u32(0);
  expectDecodeError(decode, sealed((w) => emptyRing(w).u32(2).u32(RANGE.start + 1).str8('x')), 'too-large');
  expectDecodeError(decode, sealed((w) => emptyRing(w).u32(1).u32(RANGE.start + 1).u8(2).u8(0xc3).u8(0x28)), 'bad-value');
  expectDecodeError(decode, sealed((w) => emptyRing(w).u32(0).u16(0).u8(0)), 'trailing-bytes');
  expectDecodeError(decode, sealed((w) => emptyRing(w).u32(0).u16(1).u48(SELF)), 'bad-value'); // seeds for an undivided ring
  const web = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'web']]);
  const legacy = encodeLegacy(web);
  expectDecodeError(decode, legacy.subarray(0, legacy.length - 1), 'too-large'); // the seed count says more than is left
  for (const bytes of [encode(web), encodeFormat1(web)]) {
    expectDecodeError(decode, bytes.subarray(0, bytes.length - 1), 'short-read');
    expectDecodeError(decode, bytes.subarray(0, 3), 'short-read');
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expectDecodeError(decode, longer, 'trailing-bytes');
  }
});

test('fuzz: random and mutated state files only give DecodeErrors', () => {
  fuzzDecoder(decode, snapshotArb.map(encode));
  fuzzDecoder(decode, snapshotArb.map(encodeLegacy), 500);
  fuzzDecoder(decode, snapshotArb.map(encodeFormat1), 500);
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
    const flipped = good.slice();
    const at = Buffer.from(good).indexOf(Buffer.from(rawBytes((w) => w.u32(RANGE.start + 1).str8('db'))));
    assert.ok(at > 0);
    flipped[at + 3] = (flipped[at + 3] as number) ^ 1; // the lowest bit of the allocation's address (the case)
    const corruptions: Uint8Array[] = [
      flipped,
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

test('a file of format 1 or 2 (no checksum) loads and is rewritten as format 3 at once', async () => {
  await inTempDir(async (dir) => {
    const store = new IpamStore(dir);
    const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]);
    await writeFile(store.path, encodeLegacy(s));
    assert.equal(await store.load(SELF, RANGE), { snapshot: s });
    assert.equal(new Uint8Array(await readFile(store.path)), encode(s), 'upgraded on disk');
    await writeFile(store.path, encodeFormat1(s));
    assert.equal(await store.load(SELF, RANGE), { snapshot: withoutSeeds(s) });
    assert.equal(new Uint8Array(await readFile(store.path)), encode(withoutSeeds(s)), 'upgraded on disk, seeds still unknown');
  });
  // When the upgrade cannot be written, the state still loads, with a warning naming the file.
  const plan = new FaultPlan();
  const fs = new MemoryFileSystem(plan);
  fs.dirs.add('/data');
  const s = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'db']]);
  fs.files.set('/data/ipam.db', encodeLegacy(s));
  plan.diskFull = true;
  const result = await new IpamStore('/data', fs).load(SELF, RANGE);
  assert.equal(result.snapshot, s);
  assert.match(result.warning ?? '', /\/data\/ipam\.db/);
  assert.match(result.warning ?? '', /ENOSPC/);
});

test('a failure at any step of a save rejects it naming the file, leaves the old file whole, and later saves work', async () => {
  const before = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'old']]);
  const after = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'old'], [RANGE.start + 2, 'new']]);
  const probe = new FaultPlan();
  const probeFs = new MemoryFileSystem(probe);
  await new IpamStore('/data', probeFs).save(before);
  const stepsPerSave = probe.steps;
  assert.ok(stepsPerSave >= 4, `mkdir, write, rename, fsync: ${probe.log.join('; ')}`);
  for (let at = 1; at <= stepsPerSave; at++) {
    for (const code of ['ENOSPC', 'EIO']) {
      const plan = new FaultPlan();
      const fs = new MemoryFileSystem(plan);
      const store = new IpamStore('/data', fs);
      await store.save(before);
      plan.failAt(plan.steps + at, code);
      try {
        await store.save(after);
        assert.unreachable(`step ${at} failed but the save resolved`);
      } catch (error) {
        assert.instance(error, StateFileError);
        assert.is((error as StateFileError).code, 'write-failed');
        assert.ok((error as Error).message.includes('/data/ipam.db'), (error as Error).message);
        assert.ok((error as Error).message.includes(code), (error as Error).message);
      }
      const onDisk = await new IpamStore('/data', fs).load(SELF, RANGE);
      // A failed directory fsync comes after the rename: the new file is there, only its durability is unknown.
      assert.ok(onDisk.snapshot?.owned.length === 1 || probe.log[at - 1]?.startsWith('fsync'), `step ${at} (${probe.log[at - 1]}): ${JSON.stringify(onDisk.snapshot?.owned)}`);
      assert.equal([...fs.files.keys()], ['/data/ipam.db'], 'no temporary file is left');
      await store.save(after);
      assert.equal((await new IpamStore('/data', fs).load(SELF, RANGE)).snapshot, after);
    }
  }
});

test('a crash at any step of a save leaves the old file or the new one, never a mixture', async () => {
  const before = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'old']]);
  const after = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'old'], [RANGE.start + 2, 'new']]);
  for (let at = 1; at <= 5; at++) {
    const plan = new FaultPlan();
    const fs = new MemoryFileSystem(plan);
    await new IpamStore('/data', fs).save(before);
    plan.crashAt(plan.steps + at);
    void new IpamStore('/data', fs).save(after);
    await new Promise((resolve) => setImmediate(resolve));
    plan.reset(); // the restarted process
    const { snapshot } = await new IpamStore('/data', fs).load(SELF, RANGE);
    assert.ok(JSON.stringify(snapshot) === JSON.stringify(before) || JSON.stringify(snapshot) === JSON.stringify(after), `crash at step ${at}`);
  }
});

test('a save resolves only with a write that started after it, and rejects with that write', async () => {
  const plan = new FaultPlan();
  const fs = new MemoryFileSystem(plan);
  const store = new IpamStore('/data', fs);
  let current = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'a']]);
  const first = store.save(() => current);
  // Recorded while the first write is in flight: it rides on the next write, which fails.
  current = snapshotOf(SELF, RANGE, [[RANGE.start + 1, 'a'], [RANGE.start + 2, 'b']]);
  plan.failAt(plan.steps + 5, 'ENOSPC');
  const second = store.save(() => current);
  await first;
  const outcome = await second.then(() => 'saved', (e: unknown) => (e as Error).message);
  assert.match(outcome, /ENOSPC/);
  assert.equal((await store.load(SELF, RANGE)).snapshot?.owned, [[RANGE.start + 1, 'a']]);
  await store.save(() => current);
  assert.equal((await store.load(SELF, RANGE)).snapshot?.owned.length, 2);
  await store.flush();
});

test.run();
