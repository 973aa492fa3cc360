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
import { FAST, testName, testNetworkKey } from '../helpers/mesh.js';

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

test.run();
