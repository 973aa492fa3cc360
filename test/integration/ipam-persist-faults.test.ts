// IPAM persistence under faults: a write that fails undoes the allocation, a damaged file is refused, every step can fail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam, type IpamOptions } from '../../src/ipam/ipam.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { WeaveError } from '../../src/errors.js';
import { parseIPv4 } from '../../src/ipam/address.js';
import { FAST, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { decodeSnapshot } from '../../src/ipam/persistence.js';
import { nodeFileSystem, type FileSystem } from '../../src/persist/file-system.js';
import { Ring } from '../../src/ipam/ring.js';

const RANGE = '10.45.0.0/24';
const bounded = () => ({ signal: AbortSignal.timeout(8000) });

/** One peer with its IPAM on `dir`; `stop` ends both. */
async function peer(dir: string, extra: Partial<IpamOptions> = {}) {
  const router = new MeshRouter({ ...FAST, name: testName(0), networkKey: await testNetworkKey() });
  await router.start();
  const ipam = new Ipam(router, { tickMs: 100, range: RANGE, dataDir: dir, ...extra });
  try {
    await ipam.start();
  } catch (error) {
    await router.stop();
    throw error;
  }
  return {
    ipam,
    stop: async () => {
      try {
        await ipam.stop();
      } finally {
        await router.stop();
      }
    },
  };
}

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wtj-ipam-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function rejection(promise: Promise<unknown>): Promise<WeaveError> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, WeaveError);
    return error as WeaveError;
  }
  return assert.unreachable('expected a rejection') as never;
}

test('an allocation that cannot be saved is refused naming the file, and is not kept', async () => {
  await inTempDir(async (dir) => {
    const { ipam, stop } = await peer(dir);
    try {
      assert.is(await ipam.allocate('saved', bounded()), '10.45.0.1/24');
      // The file's place is taken by a non-empty directory: every later write fails at the rename.
      const path = join(dir, 'ipam.db');
      await rm(path);
      await mkdir(join(path, 'blocker'), { recursive: true });
      const refused = await rejection(ipam.allocate('unsaved', bounded()));
      assert.is(refused.code, 'write-failed');
      assert.ok(refused.message.includes(path), refused.message);
      assert.equal(ipam.lookup('unsaved'), [], 'the address did not reach anyone and is not kept');
      const outside = await rejection(ipam.claim('manual', '192.0.2.7/24'));
      assert.is(outside.code, 'write-failed');
      assert.equal(ipam.lookup('manual'), []);
      await rm(path, { recursive: true });
      assert.is(await ipam.allocate('later', bounded()), '10.45.0.2/24', 'the refused address is free again');
      assert.equal(ipam.status().allocated.map((a) => a.id), ['saved', 'later']);
    } finally {
      await stop();
    }
  });
});

test('a bit flip in a saved allocation is refused at start, naming the file', async () => {
  await inTempDir(async (dir) => {
    const first = await peer(dir);
    const address = await first.ipam.allocate('victim', bounded());
    await first.stop();
    const path = join(dir, 'ipam.db');
    const bytes = new Uint8Array(await readFile(path));
    // The allocation is u32 address then str8 id: find it and flip the lowest bit of the address.
    const needle = Buffer.alloc(4 + 1 + 6);
    needle.writeUInt32BE(parseIPv4(address.split('/')[0] as string));
    needle.writeUInt8(6, 4);
    needle.write('victim', 5);
    const at = Buffer.from(bytes).indexOf(needle);
    assert.ok(at > 0, 'the allocation is in the file');
    bytes[at + 3] = (bytes[at + 3] as number) ^ 1;
    await writeFile(path, bytes);
    const refused = await rejection(peer(dir));
    assert.is(refused.code, 'corrupt-state');
    assert.ok(refused.message.includes(path), refused.message);
  });
});

test('a donor gives space away only once its disk says so; a grant it cannot save is never sent', async () => {
  await inTempDir(async (dir) => {
    const networkKey = await testNetworkKey();
    let delayMs = 0;
    let failing = false;
    // The donor's disk: slow, and for a while failing.
    const slowDisk: FileSystem = {
      ...nodeFileSystem,
      writeFile: async (path, data, mode) => {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (failing) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC' });
        return nodeFileSystem.writeFile(path, data, mode);
      },
    };
    const routers = [0, 1].map((i) => new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, networkKey }));
    await Promise.all(routers.map((r) => r.start()));
    const [donorRouter, askerRouter] = routers as [MeshRouter, MeshRouter];
    const seed = { seed: [testName(0)] };
    const donor = new Ipam(donorRouter, { tickMs: 100, range: RANGE, init: seed, dataDir: dir, fileSystem: slowDisk });
    const asker = new Ipam(askerRouter, { tickMs: 100, range: RANGE, init: seed });
    try {
      await donor.start();
      await asker.start();
      askerRouter.connect(`127.0.0.1:${donorRouter.port}`);
      await waitUntil(routers, () => askerRouter.isReachable(donorRouter.selfName), 5000);
      await waitUntil(routers, () => asker.status().owners.length === 1, 5000, () => 'the asker to learn the ring');
      const onDisk = async (): Promise<Ring> => Ring.fromState(decodeSnapshot(await readFile(join(dir, 'ipam.db'))).ring);
      await donor.allocate('own', bounded()); // resolves once the donor's state is on disk

      // A grant the donor cannot save is not given: the asker keeps waiting.
      failing = true;
      const waiting = asker.allocate('x', { signal: AbortSignal.timeout(800) }).catch((error: Error) => error);
      assert.instance(await waiting, Error, 'no space arrives while the donor cannot save the grant');
      assert.equal((await onDisk()).owners(), [testName(0)]);
      assert.equal(donor.status().owners.map((o) => o.peer), [donorRouter.self.id], 'the donor still owns everything');

      // A slow disk: the address reaches the asker only after the grant is in the donor's file.
      failing = false;
      delayMs = 300;
      const address = await asker.allocate('y', bounded());
      const saved = await onDisk();
      assert.is(saved.ownerOf(parseIPv4(address.split('/')[0] as string)), testName(1), `the donor's file gives ${address} to the asker already`);
    } finally {
      await asker.stop();
      await donor.stop();
      await Promise.all(routers.map((r) => r.stop()));
    }
  });
});

test.run();
