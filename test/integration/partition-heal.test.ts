import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeshRouter } from '../../src/mesh/router.js';
import type { GossipChannel } from '../../src/mesh/gossip.js';
import type { Peer } from '../../src/mesh/peer.js';
import { decodeWith, encodeWith, type Reader, type Writer } from '../../src/wire/codec.js';
import { converged, edges, FAST, startMesh, testName, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { PartitionableNetwork } from '../helpers/partition.js';

/** A grow-only set of strings gossiped as a CRDT (union merge), like an application channel would be. */
class GrowSet {
  readonly items = new Set<string>();
  channel: GossipChannel | undefined;

  private encode(items: Iterable<string>): Uint8Array {
    return encodeWith((w: Writer, list: string[]) => {
      w.u32(list.length);
      for (const s of list) w.str16(s);
    }, [...items]);
  }

  private mergeBytes(payload: Uint8Array): Uint8Array | undefined {
    const list = decodeWith((r: Reader) => {
      const n = r.count(2);
      return Array.from({ length: n }, () => r.str16());
    }, payload);
    const fresh = list.filter((s) => !this.items.has(s));
    for (const s of fresh) this.items.add(s);
    return fresh.length > 0 ? this.encode(fresh) : undefined;
  }

  attach(router: MeshRouter): void {
    this.channel = router.registerGossip('growset', {
      gossip: () => this.encode(this.items),
      onGossip: (payload) => this.mergeBytes(payload),
      onBroadcast: (payload) => this.mergeBytes(payload),
    });
  }

  add(item: string): void {
    this.items.add(item);
    this.channel?.broadcast(this.encode([item]));
  }
}

async function ring(n: number, net: PartitionableNetwork) {
  const networkKey = await testNetworkKey();
  const routers = Array.from(
    { length: n },
    (_, i) => new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, networkKey, connectSocket: net.connector(testName(i)) }),
  );
  const sets = routers.map((r) => {
    const set = new GrowSet();
    set.attach(r);
    return set;
  });
  await Promise.all(routers.map((r) => r.start()));
  for (const r of routers) net.register(r.selfName, r.port);
  for (const [i, j] of edges('ring', n)) (routers[i] as MeshRouter).connect(`127.0.0.1:${(routers[j] as MeshRouter).port}`);
  return { routers, sets, stop: () => Promise.all(routers.map((r) => r.stop())) };
}

test('a partition splits the topology, each side keeps gossiping, and heal reconverges everything', async () => {
  const net = new PartitionableNetwork();
  const { routers, sets, stop } = await ring(6, net);
  try {
    await waitUntil(routers, () => converged(routers), 10_000, () => 'the ring to converge');
    const left = routers.slice(0, 3);
    const right = routers.slice(3);
    net.partition(
      left.map((r) => r.selfName),
      right.map((r) => r.selfName),
    );
    await waitUntil(
      routers,
      () => converged(left, 3) && converged(right, 3),
      10_000,
      () => 'each side to converge on its own three peers',
    );
    sets[0]?.add('left-1');
    sets[4]?.add('right-1');
    const sideHas = (side: number[], item: string) => side.every((i) => sets[i]?.items.has(item));
    await waitUntil(routers, () => sideHas([0, 1, 2], 'left-1') && sideHas([3, 4, 5], 'right-1'), 5000, () => 'gossip within each side');
    assert.not.ok(sets[4]?.items.has('left-1'), 'nothing crosses the partition');
    assert.not.ok(sets[0]?.items.has('right-1'), 'nothing crosses the partition');

    net.heal();
    const linkEnds = () => routers.reduce((n, r) => n + r.linkInfos().length, 0);
    await waitUntil(routers, () => linkEnds() === 12 && converged(routers), 15_000, () => 'all six ring links back and converged');
    await waitUntil(
      routers,
      () => sets.every((s) => s.items.has('left-1') && s.items.has('right-1')),
      5000,
      () => 'both sides to learn the other side’s items',
    );
  } finally {
    await stop();
  }
});

test('a peer restarted with a new uid is recognised as restarted and its new record wins', async () => {
  const networkKey = await testNetworkKey();
  const make = (i: number, extra: Partial<ConstructorParameters<typeof MeshRouter>[0]> = {}) =>
    new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, networkKey, ...extra });
  // p0 forgets unreachable peers slowly, so it still holds p2's old record when p2 comes back.
  const p0 = make(0, { gcDelayMs: 60_000 });
  const p1 = make(1);
  let p2 = make(2);
  await Promise.all([p0.start(), p1.start(), p2.start()]);
  try {
    p0.connect(`127.0.0.1:${p1.port}`);
    p2.connect(`127.0.0.1:${p1.port}`);
    await waitUntil([p0, p1, p2], () => converged([p0, p1, p2]), 10_000, () => 'the line to converge');
    const oldUid = p2.uid;
    await p2.stop();
    await waitUntil([p0, p1], () => p1.linkInfos().length === 1, 5000, () => 'p1 to drop p2');
    assert.is(p0.peer(testName(2))?.uid, oldUid, 'p0 still remembers the old incarnation');

    const restarted = new Promise<Peer>((resolve) => p0.on('peer:restarted', resolve));
    p2 = make(2);
    await p2.start();
    p2.connect(`127.0.0.1:${p1.port}`);
    const peer = await restarted;
    assert.is(peer.name, testName(2));
    await waitUntil([p0, p1, p2], () => converged([p0, p1, p2]), 10_000, () => 'the new incarnation to win everywhere');
    assert.is(p0.peer(testName(2))?.uid, p2.uid);
    assert.is.not(p2.uid, oldUid);
  } finally {
    await Promise.all([p0.stop(), p1.stop(), p2.stop()]);
  }
});

test('an unreachable peer is forgotten (peer:down) after its last link goes', async () => {
  const net = new PartitionableNetwork();
  const { routers, stop } = await ring(3, net);
  try {
    await waitUntil(routers, () => converged(routers), 10_000);
    const [a, b, c] = routers as [MeshRouter, MeshRouter, MeshRouter];
    const down = new Promise<Peer>((resolve) => a.on('peer:down', resolve));
    net.partition([a.selfName, b.selfName], [c.selfName]);
    assert.is((await down).name, c.selfName);
    await waitUntil(routers, () => a.peer(c.selfName) === undefined && !a.isReachable(c.selfName), 5000);
  } finally {
    await stop();
  }
});

test('a peer that lost a record it needs asks the neighbour for it and gets it back', async () => {
  const { routers, stop } = await startMesh(3, 'line'); // a—b—c, no periodic gossip
  try {
    await waitUntil(routers, () => converged(routers), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 100)); // let in-flight topology settle
    const [a, b, c] = routers as [MeshRouter, MeshRouter, MeshRouter];
    // Reach past the public API to create the race the pull exists for: c forgets a's record, then
    // hears b's record (which lists a) without a's record alongside it.
    type Internals = {
      topology: { peers: Map<number, unknown> };
      sendTo(link: unknown, message: unknown): boolean;
      links: Map<number, unknown>;
      topologyGossip: { encode(names: number[]): Uint8Array };
    };
    const ci = c as unknown as Internals;
    const bi = b as unknown as Internals;
    ci.topology.peers.delete(a.selfName);
    assert.is(c.peer(a.selfName), undefined, 'c forgot a');
    const requestsBefore = b.status().gossip['topology']?.received ?? 0;
    bi.sendTo(bi.links.get(c.selfName), { tag: 1, channel: 'topology', sender: b.selfName, payload: bi.topologyGossip.encode([b.selfName]) });
    await waitUntil(routers, () => c.peer(a.selfName) !== undefined, 5000, () => 'c to get a back');
    assert.ok((b.status().gossip['topology']?.received ?? 0) > requestsBefore, 'b received the request');
  } finally {
    await stop();
  }
});

test.run();
