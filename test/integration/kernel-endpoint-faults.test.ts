// Kernel endpoints under injected faults: an overlay over a model of the kernel (`ip`) and an in-memory data dir, failed or
// crashed at every numbered step of attach, detach, expose, hide and their writes, then restarted from the same data dir.
// Invariant after every operation and every restart: ps, the kernel and IPAM agree, no address has two holders, every
// allocation belongs to a live endpoint, and no veth is left that no endpoint owns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { WeaveError } from '../../src/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { EndpointRegistry } from '../../src/endpoint/registry.js';
import { decodeSnapshot } from '../../src/ipam/persistence.js';
import { FakeKernel, FaultPlan, MemoryFileSystem } from '../helpers/fault-world.js';

const BRIDGE = 'wtjbr';
const DATA = '/data';
const NAME = '0a:00:00:00:00:01';
/** Loopback, so the DNS server can bind the exposed address on any host. */
const RANGE = '127.77.0.0/27';
const DNS_PORT = 20_000 + (process.pid % 20_000);

/** The data dir, the kernel and the namespaces one run after another share. */
class World {
  readonly plan = new FaultPlan();
  readonly fs = new MemoryFileSystem(this.plan);
  readonly root = mkdtempSync(join(tmpdir(), 'wtj-kernel-'));
  readonly runDir = join(this.root, 'run');
  readonly configDir = join(this.root, 'etc');
  readonly kernel = new FakeKernel(this.plan, this.runDir);
  readonly warnings: string[] = [];
  /** The overlay last booted, even one whose start never finished. */
  last: Overlay | undefined;

  /** A container's namespace, given by path as a runtime gives it (`/proc/PID/ns/net`). */
  readonly containerNetns = join(this.runDir, 'container-ns');

  constructor(readonly namespaces: string[]) {
    mkdirSync(this.runDir);
    for (const ns of namespaces) writeFileSync(join(this.runDir, ns), '');
    writeFileSync(this.containerNetns, '');
  }

  options(extra: Partial<OverlayOptions> = {}): OverlayOptions {
    const kernel = this.kernel.view();
    return {
      name: NAME,
      listen: false,
      dataDir: DATA,
      fileSystem: this.fs.view(),
      ipCommand: kernel.ip,
      bridge: BRIDGE,
      ipam: { range: RANGE, init: { consensus: 1 } },
      dns: { exposedPort: DNS_PORT },
      clock: new FakeClock(),
      kernel: { netnsRunDir: this.runDir, netnsConfigDir: this.configDir, openTap: kernel.openTap },
      ...extra,
    };
  }

  async boot(extra: Partial<OverlayOptions> = {}): Promise<Overlay> {
    containerNetns = this.containerNetns;
    const overlay = new Overlay(this.options(extra));
    this.last = overlay;
    overlay.on('warning', (message) => this.warnings.push(message));
    await overlay.start();
    return overlay;
  }

  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** What a killed process leaves: its sockets close, and nothing it had started touches the world again. */
async function kill(world: World, overlay: Overlay): Promise<void> {
  world.plan.epoch += 1;
  await overlay.dns?.stop();
  await overlay.router.stop();
}

const hostPart = (cidr: string): string => cidr.split('/')[0] as string;

/** ps, the kernel and IPAM agree (see the file's header). */
function checkInvariants(world: World, overlay: Overlay, when: string): void {
  const { kernel } = world;
  const endpoints = overlay.endpoints().filter((e) => e.kind === 'netns');
  const status = overlay.status();
  for (const e of endpoints) {
    assert.equal(kernel.addressesOf(e.netns as string, e.ifname as string), [e.address], `${e.netns} has exactly ${e.address} (${when})`);
    const veth = kernel.hostVeths().find((v) => v.name === e.hostIfname);
    assert.is(veth?.master, BRIDGE, `${e.netns}'s host end is on the bridge (${when})`);
    if (e.container === undefined) assert.ok(existsSync(join(world.configDir, e.netns as string, 'resolv.conf')), `${e.netns} has its resolver file (${when})`);
    else assert.ok(kernel.routes.has(`${e.netns} default via ${hostPart(status.exposed ?? '?')} dev ${e.ifname}`), `container ${e.container} routes through the host (${when})`);
  }
  const known = new Set(endpoints.map((e) => e.hostIfname));
  assert.equal(kernel.hostVeths().filter((v) => !known.has(v.name)), [], `no veth that no endpoint owns (${when})`);
  for (const ns of world.namespaces) {
    const attached = endpoints.some((e) => e.netns === ns);
    if (!attached) {
      assert.is(kernel.addressesOf(ns, 'ethwe'), undefined, `${ns} is not in ps and has no ethwe (${when})`);
      const resolv = join(world.configDir, ns, 'resolv.conf');
      assert.not.ok(existsSync(resolv) && readFileSync(resolv, 'utf8').startsWith('# written by weave-ts'), `${ns} keeps no resolver file of ours (${when})`);
    }
  }
  assert.equal(kernel.addressesOf('', BRIDGE) ?? [], status.exposed ? [status.exposed] : [], `the bridge holds exactly the exposed address (${when})`);
  const expected = new Map<string, string[]>(endpoints.map((e) => [e.id, [hostPart(e.address)]]));
  if (status.exposed) expected.set('weave:expose', [hostPart(status.exposed)]);
  const allocated = new Map((status.ipam?.allocated ?? []).map((a) => [a.id, a.addresses]));
  assert.equal([...allocated].sort(), [...expected].sort(), `allocations are exactly those of live endpoints (${when})`);
  const addresses = [...expected.values()].flat();
  assert.is(new Set(addresses).size, addresses.length, `no address is held twice (${when}): ${addresses.join(' ')}`);
}

/** Whatever is on disk decodes (after recovery: with an empty journal) and agrees with memory. */
async function checkDisk(world: World, overlay: Overlay, when: string): Promise<void> {
  const { state } = await new EndpointRegistry(join(DATA, 'endpoints.json'), world.fs).load();
  assert.equal(state.pending, [], `the journal is empty after recovery (${when})`);
  assert.equal(state.endpoints.map((e) => `${e.netns}=${e.address}`).sort(), overlay.endpoints().map((e) => `${e.netns}=${e.address}`).sort(), `the registry matches ps (${when})`);
  const ipam = world.fs.files.get(join(DATA, 'ipam.db'));
  if (ipam) {
    const saved = decodeSnapshot(ipam).owned.map(([a, id]) => `${id}=${a}`);
    assert.is(new Set(saved.map((x) => x.split('=')[1])).size, saved.length, `ipam.db holds each address once (${when})`);
  }
}

type Op =
  | { op: 'attach'; ns: string; ip?: string }
  | { op: 'detach'; ns: string }
  | { op: 'expose' }
  | { op: 'hide' }
  // A container runtime's (the CNI plugin's) attach: keyed by the container id, its namespace by path.
  | { op: 'attach-container'; id: string }
  | { op: 'detach-container'; id: string };

const SCRIPT: Op[] = [
  { op: 'attach', ns: 'n0' },
  { op: 'attach-container', id: 'c0' },
  { op: 'attach', ns: 'n1' },
  { op: 'detach', ns: 'n0' },
  { op: 'attach-container', id: 'c0' }, // the runtime repeats its ADD
  { op: 'attach', ns: 'n2', ip: '127.77.0.20/27' },
  { op: 'detach-container', id: 'c0' },
  { op: 'hide' },
  { op: 'attach', ns: 'n0' },
  { op: 'attach-container', id: 'c1' },
  { op: 'detach', ns: 'n1' },
  { op: 'expose' },
];

/** The container ids attached over `containerNetns` (one at a time: they share its eth0). */
let containerNetns = '';

function run(overlay: Overlay, step: Op): Promise<unknown> {
  switch (step.op) {
    case 'attach-container':
      return overlay.attach({ name: step.id, netns: containerNetns, container: step.id, ifname: 'eth0' });
    case 'detach-container':
      return overlay.detach({ container: step.id });
    case 'attach':
      return overlay.attach({ name: step.ns, netns: step.ns, ...(step.ip ? { ip: step.ip } : {}) });
    case 'detach':
      return overlay.detach(step.ns);
    case 'expose':
      return overlay.expose();
    case 'hide':
      return overlay.hide();
  }
}

/** Resolves true once the world has crashed, false once `promise` settles. */
async function settledOrCrashed(world: World, promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled && !world.plan.crashed) await new Promise((resolve) => setImmediate(resolve));
  return !settled;
}

/** After a restart every namespace can be attached (none is stuck as "already exists"), with unique addresses. */
async function attachEverything(world: World, overlay: Overlay, when: string): Promise<void> {
  for (const ns of world.namespaces) {
    if (overlay.endpoints().some((e) => e.netns === ns)) continue;
    await overlay.attach({ name: ns, netns: ns }).catch((error: unknown) => assert.unreachable(`attach of ${ns} after recovery (${when}): ${(error as Error).message}`));
  }
  checkInvariants(world, overlay, `${when}, everything attached`);
}

let stepsInScript = 0;

test('without faults the script runs and every invariant holds throughout', async () => {
  const world = new World(['n0', 'n1', 'n2']);
  try {
    const overlay = await world.boot();
    for (const step of SCRIPT) {
      await run(overlay, step);
      checkInvariants(world, overlay, JSON.stringify(step));
    }
    stepsInScript = world.plan.steps;
    assert.ok(stepsInScript > 60, `the script takes ${stepsInScript} steps`);
    await kill(world, overlay);
    const again = await world.boot();
    checkInvariants(world, again, 'restart');
    await checkDisk(world, again, 'restart');
    assert.equal(again.endpoints().map((e) => e.container ?? e.netns).sort(), ['c1', 'n0', 'n2']);
    await again.stop();
  } finally {
    world.dispose();
  }
});

for (const code of ['ENOSPC', 'EIO']) {
  test(`an ${code} at every step: the operation fails whole, the invariants hold at once and after a restart`, async () => {
    let failures = 0;
    for (let at = 1; at <= stepsInScript; at++) {
      const world = new World(['n0', 'n1', 'n2']);
      try {
        world.plan.failAt(at, code);
        let overlay: Overlay;
        try {
          overlay = await world.boot();
        } catch {
          continue; // the fault hit the start itself (on a fresh data dir nothing can be half-done)
        }
        for (const step of SCRIPT) {
          const failed = await run(overlay, step).then(
            () => false,
            (error: unknown) => {
              assert.instance(error, WeaveError, `step ${at}: ${String(error)}`);
              return true;
            },
          );
          if (failed) failures += 1;
          checkInvariants(world, overlay, `${code} at step ${at} (${world.plan.log[at - 1]}), after ${JSON.stringify(step)}`);
        }
        await kill(world, overlay);
        const restarted = await world.boot();
        const when = `${code} at step ${at} (${world.plan.log[at - 1]}), after a restart`;
        checkInvariants(world, restarted, when);
        await checkDisk(world, restarted, when);
        await attachEverything(world, restarted, when);
        await restarted.stop();
      } finally {
        world.dispose();
      }
    }
    console.log(`${code} at each of ${stepsInScript} steps: ${failures} operations failed whole`);
    assert.ok(failures > stepsInScript / 3, `most faults made an operation fail (${failures} of ${stepsInScript})`);
  });
}

test('a crash at every step: the restart rolls the interrupted operation forward or back, and the invariants hold', async () => {
  let completed = 0;
  let undone = 0;
  for (let at = 1; at <= stepsInScript; at++) {
    const world = new World(['n0', 'n1', 'n2']);
    try {
      world.plan.crashAt(at);
      const starting = world.boot();
      if (await settledOrCrashed(world, starting)) {
        await kill(world, world.last as Overlay); // crashed during the first start
      } else {
        const overlay = await starting;
        for (const step of SCRIPT) {
          if (await settledOrCrashed(world, run(overlay, step).catch(() => undefined))) break;
        }
        assert.ok(world.plan.crashed, `step ${at} was reached`);
        await kill(world, overlay);
      }
      world.plan.reset();
      world.warnings.length = 0;
      const restarted = await world.boot();
      completed += world.warnings.filter((w) => /completed with|was being set up .* kept/.test(w)).length;
      undone += world.warnings.filter((w) => /interrupted .* undone/.test(w)).length;
      const when = `crash at step ${at} (${world.plan.log[at - 1]})`;
      checkInvariants(world, restarted, when);
      await checkDisk(world, restarted, when);
      await attachEverything(world, restarted, when);
      await restarted.stop();
    } finally {
      world.dispose();
    }
  }
  console.log(`crash at each of ${stepsInScript} steps: ${completed} interrupted operations rolled forward, ${undone} rolled back`);
  assert.ok(completed > 0, 'some interrupted operations were rolled forward');
  assert.ok(undone > 0, 'some interrupted operations were rolled back');
});

type FaultOp =
  | { kind: 'op'; op: Op }
  | { kind: 'fail'; in: number; code: 'ENOSPC' | 'EIO' }
  | { kind: 'crash'; in: number }
  | { kind: 'disk'; full: boolean }
  | { kind: 'restart' };

const nsArb = fc.constantFrom('n0', 'n1', 'n2', 'n3');
const faultOpArb: fc.Arbitrary<FaultOp> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .oneof(
        nsArb.map((ns): Op => ({ op: 'attach', ns })),
        nsArb.map((ns): Op => ({ op: 'detach', ns })),
        fc.constant<Op>({ op: 'expose' }),
        fc.constant<Op>({ op: 'hide' }),
        fc.constantFrom('c0', 'c1').map((id): Op => ({ op: 'attach-container', id })),
        fc.constantFrom('c0', 'c1').map((id): Op => ({ op: 'detach-container', id })),
      )
      .map((op): FaultOp => ({ kind: 'op', op })),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail' as const), in: fc.integer({ min: 1, max: 30 }), code: fc.constantFrom('ENOSPC' as const, 'EIO' as const) }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('crash' as const), in: fc.integer({ min: 1, max: 30 }) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disk' as const), full: fc.boolean() }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.constant<FaultOp>({ kind: 'restart' }) },
);

test('property: random operations, faults (also during recovery), full disks and restarts never break the invariants', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(faultOpArb, { minLength: 5, maxLength: 30 }), async (ops) => {
      const world = new World(['n0', 'n1', 'n2', 'n3']);
      /** Boots until a start completes: a crash armed for recovery ends that start, and the next one recovers again. */
      const bootUntilRunning = async (): Promise<Overlay> => {
        for (;;) {
          const starting = world.boot();
          const crashed = await settledOrCrashed(world, starting);
          if (!crashed) {
            try {
              return await starting;
            } catch {
              // A failed start (fault or full disk) stopped itself; the next start tries again without faults.
              world.plan.reset();
              continue;
            }
          }
          await kill(world, world.last as Overlay);
          world.plan.reset();
        }
      };
      let overlay: Overlay | undefined;
      try {
        overlay = await bootUntilRunning();
        for (const [i, step] of ops.entries()) {
          const when = `step ${i} ${JSON.stringify(step)} of ${JSON.stringify(ops)}`;
          if (step.kind === 'fail') world.plan.failAt(world.plan.steps + step.in, step.code);
          else if (step.kind === 'crash') world.plan.crashAt(world.plan.steps + step.in);
          else if (step.kind === 'disk') world.plan.diskFull = step.full;
          else if (step.kind === 'restart') {
            await kill(world, overlay);
            overlay = await bootUntilRunning();
          } else if (await settledOrCrashed(world, run(overlay, step.op).catch(() => undefined))) {
            await kill(world, overlay);
            world.plan.crashAt(world.plan.steps + 1 + (i % 7)); // sometimes the recovery crashes too
            world.plan.crashed = false;
            overlay = await bootUntilRunning();
            await checkDisk(world, overlay, when);
          }
          checkInvariants(world, overlay, when);
        }
        world.plan.reset();
        await kill(world, overlay);
        overlay = await bootUntilRunning();
        checkInvariants(world, overlay, 'final restart');
        await checkDisk(world, overlay, 'final restart');
        await attachEverything(world, overlay, 'final restart');
      } finally {
        if (overlay) await kill(world, overlay);
        world.dispose();
      }
    }),
    { numRuns: 60, endOnFailure: true },
  );
});

test('disk full: attach and detach are refused naming the file, nothing is half-applied; start on a full disk names the file', async () => {
  const world = new World(['n0', 'n1', 'n2']);
  try {
    const overlay = await world.boot();
    const first = await overlay.attach({ name: 'n0', netns: 'n0' });
    world.plan.diskFull = true;
    for (const attempt of [() => overlay.attach({ name: 'n1', netns: 'n1' }), () => overlay.detach('n0'), () => overlay.hide()]) {
      try {
        await attempt();
        assert.unreachable('a change that cannot be saved must fail');
      } catch (error) {
        assert.is((error as WeaveError).code, 'write-failed');
        assert.match((error as Error).message, /\/data\/(endpoints\.json|ipam\.db)/);
        assert.match((error as Error).message, /ENOSPC/);
      }
      checkInvariants(world, overlay, 'disk full');
    }
    assert.equal(overlay.endpoints().map((e) => e.netns), ['n0']);
    await kill(world, overlay);
    try {
      await world.boot();
      assert.unreachable('start on a full disk must fail');
    } catch (error) {
      assert.is((error as WeaveError).code, 'write-failed');
      assert.match((error as Error).message, /\/data\/endpoints\.json/);
    }
    world.plan.diskFull = false;
    const restarted = await world.boot();
    checkInvariants(world, restarted, 'after the disk has space again');
    assert.equal(restarted.endpoints().map((e) => `${e.netns}=${e.address}`), [`n0=${first.info.address}`]);
    const next = await restarted.attach({ name: 'n1', netns: 'n1' });
    assert.is.not(next.info.address, first.info.address);
    await restarted.stop();
  } finally {
    world.dispose();
  }
});

test('an undo that fails too keeps the address allocated (it is still in use), and the next start finishes it', async () => {
  const world = new World(['n0', 'n1']);
  // The DNS port on the address the host will get is taken, so exposing fails; removing the address again fails too.
  const blocker = createSocket('udp4');
  await new Promise<void>((resolve) => blocker.bind(DNS_PORT, '127.77.0.2', () => resolve()));
  let blocked = true;
  try {
    const overlay = await world.boot();
    world.plan.failOn(/^ip addr del 127\.77\.0\.2/);
    try {
      await overlay.attach({ name: 'n0', netns: 'n0' });
      assert.unreachable('the attach cannot expose the host');
    } catch (error) {
      assert.match((error as Error).message, /in use/);
    }
    assert.equal(overlay.endpoints(), []);
    assert.equal(world.kernel.addressesOf('', BRIDGE), ['127.77.0.2/27'], 'the address stayed on the bridge');
    assert.equal(overlay.ipam?.lookup('weave:expose'), ['127.77.0.2'], 'so it stays allocated: nobody else gets it');
    assert.equal(world.kernel.hostVeths(), [], 'the veth was removed');
    await kill(world, overlay);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    blocked = false;
    const restarted = await world.boot();
    checkInvariants(world, restarted, 'after the restart');
    await checkDisk(world, restarted, 'after the restart');
    await attachEverything(world, restarted, 'after the restart');
    await restarted.stop();
  } finally {
    if (blocked) blocker.close();
    world.dispose();
  }
});

test('a namespace deleted while the agent was down is released; a corrupt registry is refused naming the file', async () => {
  const world = new World(['n0', 'n1']);
  try {
    const overlay = await world.boot();
    await overlay.attach({ name: 'n0', netns: 'n0' });
    await overlay.attach({ name: 'n1', netns: 'n1' });
    await kill(world, overlay);
    world.kernel.deleteNamespace('n1');
    world.namespaces.pop();
    const restarted = await world.boot();
    checkInvariants(world, restarted, 'n1 deleted');
    assert.equal(restarted.endpoints().map((e) => e.netns), ['n0']);
    assert.ok(world.warnings.some((w) => /n1.*gone since the last run/.test(w)), world.warnings.join('\n'));
    await kill(world, restarted);

    const path = join(DATA, 'endpoints.json');
    const bytes = world.fs.files.get(path) as Uint8Array;
    const flipped = bytes.slice();
    flipped[20] = (flipped[20] as number) ^ 4;
    world.fs.files.set(path, flipped);
    try {
      await world.boot();
      assert.unreachable('a damaged registry must not be used');
    } catch (error) {
      assert.is((error as WeaveError).code, 'corrupt-state');
      assert.ok((error as Error).message.includes(path), (error as Error).message);
    }
  } finally {
    world.dispose();
  }
});

test('upgrade: files in the old formats load, the state resumes, and leftovers of an old crash (veth, allocation) are cleaned up', async () => {
  const world = new World(['n0', 'n1']);
  try {
    const overlay = await world.boot();
    const kept = await overlay.attach({ name: 'n0', netns: 'n0' });
    await overlay.attach({ name: 'n1', netns: 'n1' });
    await kill(world, overlay);
    // What an older version left after a kill -9 mid-attach: n1's veth and allocation, but n1 not in the registry.
    // (Its resolver file is not among them: a file of ours in /etc/netns cannot be told apart from another agent's.)
    rmSync(join(world.configDir, 'n1'), { recursive: true, force: true });
    const registry = await new EndpointRegistry(join(DATA, 'endpoints.json'), world.fs).load();
    const legacyJson = { version: 1, exposed: registry.state.exposed, endpoints: registry.state.endpoints.filter((e) => e.netns === 'n0') };
    world.fs.files.set(join(DATA, 'endpoints.json'), new TextEncoder().encode(JSON.stringify(legacyJson)));
    const ipam = world.fs.files.get(join(DATA, 'ipam.db')) as Uint8Array;
    const body = ipam.subarray(9, ipam.length - 32);
    world.fs.files.set(join(DATA, 'ipam.db'), Uint8Array.from([0x57, 0x54, 0x49, 0x50, 2, ...body])); // format 2: no envelope

    const restarted = await world.boot();
    checkInvariants(world, restarted, 'after the upgrade');
    assert.equal(restarted.endpoints().map((e) => `${e.netns}=${e.address}`), [`n0=${kept.info.address}`]);
    assert.ok(world.warnings.some((w) => /removed veth .* no endpoint owns it/.test(w)), world.warnings.join('\n'));
    assert.ok(world.warnings.some((w) => /released .* netns:n1/.test(w)), world.warnings.join('\n'));
    const files = world.fs.files;
    assert.is(Buffer.from((files.get(join(DATA, 'endpoints.json')) as Uint8Array).subarray(0, 4)).toString(), 'WTEP', 'the registry is rewritten in format 2');
    assert.is((files.get(join(DATA, 'ipam.db')) as Uint8Array)[4], 3, 'ipam.db is rewritten in format 3');
    await checkDisk(world, restarted, 'after the upgrade');
    await attachEverything(world, restarted, 'after the upgrade');
    await restarted.stop();
  } finally {
    world.dispose();
  }
});

test.run();
