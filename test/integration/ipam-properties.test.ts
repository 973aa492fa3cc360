// Property test: random interleavings of IPAM operations and faults over real in-process meshes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam } from '../../src/ipam/ipam.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { formatIPv4, parseIPv4 } from '../../src/ipam/address.js';
import { FAST, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { PartitionableNetwork } from '../helpers/partition.js';

const RANGE = '10.60.0.0/26';
const FIRST = parseIPv4('10.60.0.0');
const SIZE = 64;

type Op =
  | { op: 'allocate'; peer: number; id: number }
  | { op: 'claim'; peer: number; id: number; offset: number }
  | { op: 'release'; peer: number; id: number }
  | { op: 'partition'; cut: number }
  | { op: 'heal' }
  | { op: 'crash'; peer: number }
  | { op: 'restart'; peer: number }
  | { op: 'rmpeer'; peer: number; dead: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('allocate' as const), peer: fc.nat(8), id: fc.nat(12) }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('claim' as const), peer: fc.nat(8), id: fc.nat(12), offset: fc.nat(SIZE - 1) }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), peer: fc.nat(8), id: fc.nat(12) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('partition' as const), cut: fc.nat(8) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.constant({ op: 'heal' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('crash' as const), peer: fc.nat(8) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('restart' as const), peer: fc.nat(8) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rmpeer' as const), peer: fc.nat(8), dead: fc.nat(8) }, { noNullPrototype: true }) },
);

interface Node {
  index: number;
  dir: string;
  router: MeshRouter | undefined;
  ipam: Ipam | undefined;
  port: number;
  /** Removed by rmpeer: it must never come back with its old state. */
  buried: boolean;
}

const bounded = () => ({ signal: AbortSignal.timeout(1500) });

async function boot(node: Node, net: PartitionableNetwork, n: number, all: Node[]): Promise<void> {
  const networkKey = await testNetworkKey();
  const router = new MeshRouter({
    ...FAST,
    listen: `127.0.0.1:${node.port}`,
    name: testName(node.index),
    nickname: `p${node.index}`,
    networkKey,
    connectSocket: net.connector(testName(node.index)),
  });
  await router.start();
  node.port = router.port;
  net.register(router.selfName, router.port);
  const ipam = new Ipam(router, { range: RANGE, init: { consensus: n }, dataDir: node.dir, tickMs: 100 });
  await ipam.start();
  node.router = router;
  node.ipam = ipam;
  for (const other of all) if (other !== node && other.port !== 0) router.connect(`127.0.0.1:${other.port}`);
}

async function crash(node: Node): Promise<void> {
  const { router, ipam } = node;
  node.router = undefined;
  node.ipam = undefined;
  // A crash: no transfer, whatever was persisted stays.
  await ipam?.stop();
  await router?.stop();
}

/** Which peer each live peer believes owns each address, and each live peer's allocations. */
function checkSafety(nodes: Node[]): void {
  const believers = new Map<number, number[]>();
  const allocatedBy = new Map<string, number>();
  for (const node of nodes) {
    const ipam = node.ipam;
    if (!ipam) continue;
    const me = node.router?.self.id;
    const status = ipam.status();
    // The ring covers the range exactly once in this view (or is not divided yet).
    const covered = status.owners.reduce((sum, o) => sum + o.size, 0);
    assert.ok(covered === 0 || covered === SIZE, `p${node.index} sees ${covered} of ${SIZE} addresses owned`);
    for (const o of status.owners) {
      if (o.peer !== me) continue;
      for (const cidr of o.ranges) {
        const [base, prefix] = cidr.split('/') as [string, string];
        const start = parseIPv4(base);
        for (let a = start; a < start + 2 ** (32 - Number(prefix)); a++) believers.set(a, [...(believers.get(a) ?? []), node.index]);
      }
    }
    for (const { addresses } of status.allocated) {
      for (const address of addresses) {
        const holder = allocatedBy.get(address);
        assert.is(holder, undefined, `${address} is allocated on p${holder} and p${node.index}`);
        allocatedBy.set(address, node.index);
      }
    }
  }
  for (const [address, peers] of believers) {
    assert.ok(peers.length <= 1, `${formatIPv4(address)} is owned by p${peers.join(' and p')} at once`);
  }
}

/** Records that an address was handed to `holder`; it must not be held by anyone else at the time. */
function grant(held: Map<string, string>, address: string, holder: string): void {
  const previous = held.get(address);
  assert.ok(previous === undefined || previous === holder, `${address} handed to ${holder} while ${previous} holds it`);
  held.set(address, holder);
}

/** Every address a live peer handed out is still recorded there (nothing silently lost). */
function checkHeld(nodes: Node[], held: Map<string, string>): void {
  for (const [address, holder] of held) {
    const [peer, id] = holder.split(':') as [string, string];
    const ipam = nodes[Number(peer)]?.ipam;
    if (ipam) assert.ok(ipam.lookup(id).includes(address), `p${peer} lost ${address} of ${id}`);
  }
}

let totalGranted = 0;

test('random operations, partitions, crashes and rmpeer: never two owners, full coverage, convergence after heal', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 3, max: 9 }), fc.array(opArb, { minLength: 5, maxLength: 25 }), async (n, ops) => {
      const net = new PartitionableNetwork();
      const held = new Map<string, string>();
      const nodes: Node[] = [];
      for (let i = 0; i < n; i++) nodes.push({ index: i, dir: await mkdtemp(join(tmpdir(), 'wt-ipamprop-')), router: undefined, ipam: undefined, port: 0, buried: false });
      try {
        for (const node of nodes) await boot(node, net, n, nodes);
        for (const step of ops) {
          const node = nodes[('peer' in step ? step.peer : 0) % n] as Node;
          switch (step.op) {
            case 'allocate': {
              const got = await node.ipam?.allocate(`id${step.id}`, bounded()).catch(() => undefined);
              if (got) grant(held, got.split('/')[0] as string, `${node.index}:id${step.id}`);
              break;
            }
            case 'claim': {
              const address = formatIPv4(FIRST + 1 + (step.offset % (SIZE - 2)));
              const ok = await node.ipam
                ?.claim(`id${step.id}`, address, bounded())
                .then(() => true)
                .catch(() => false);
              if (ok) grant(held, address, `${node.index}:id${step.id}`);
              break;
            }
            case 'release':
              if (node.ipam) {
                await node.ipam.release(`id${step.id}`);
                for (const [a, h] of held) if (h === `${node.index}:id${step.id}`) held.delete(a);
              }
              break;
            case 'partition': {
              const cut = 1 + (step.cut % (n - 1));
              net.partition(
                nodes.slice(0, cut).map((x) => testName(x.index)),
                nodes.slice(cut).map((x) => testName(x.index)),
              );
              break;
            }
            case 'heal':
              net.heal();
              break;
            case 'crash':
              if (node.router) await crash(node);
              break;
            case 'restart':
              if (!node.router && !node.buried) await boot(node, net, n, nodes);
              break;
            case 'rmpeer': {
              const dead = nodes[step.dead % n] as Node;
              if (node.ipam && !dead.router && dead !== node) {
                try {
                  node.ipam.rmpeer(testName(dead.index));
                  dead.buried = true;
                  for (const [a, h] of held) if (h.startsWith(`${dead.index}:`)) held.delete(a);
                } catch {
                  // still reachable in this view (not yet noticed as gone): refused, as it should be
                }
              }
              break;
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 30));
          checkSafety(nodes);
          checkHeld(nodes, held);
        }
        // Heal everything; every live peer converges to the same ring.
        net.heal();
        const live = nodes.filter((x) => x.router) as (Node & { router: MeshRouter; ipam: Ipam })[];
        const key = (x: Node) => JSON.stringify(x.ipam?.status().owners.map((o) => [o.peer, o.ranges]));
        await waitUntil(
          live.map((x) => x.router),
          () => live.every((x) => key(x) === key(live[0] as Node)),
          8000,
          () => `rings to converge: ${live.map((x) => `p${x.index}=${key(x)}`).join(' ')}`,
        );
        checkSafety(nodes);
        checkHeld(nodes, held);
        totalGranted += held.size;
      } finally {
        for (const node of nodes) await crash(node);
        for (const node of nodes) await rm(node.dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 10, endOnFailure: true },
  );
  assert.ok(totalGranted > 0, 'the runs allocated addresses at all');
});

test.run();
