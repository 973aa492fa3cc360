// Helpers for in-process meshes of real routers on loopback: build topologies, wait for convergence.
import { MeshRouter, type MeshRouterOptions } from '../../src/mesh/router.js';
import { Routes } from '../../src/mesh/routes.js';
import { deriveNetworkKey, type NetworkKey } from '../../src/crypto/network-key.js';
import { seededRandom } from '../../src/random.js';
import type { PeerName } from '../../src/wire/peer-name.js';

/** Fast timings for tests: topology goes out at once; periodic gossip effectively off. */
export const FAST: MeshRouterOptions = {
  listen: '127.0.0.1:0',
  topologyDelayMs: 5,
  gcDelayMs: 5,
  // Long enough that convergence tests prove event-driven propagation, not periodic repair.
  gossipIntervalMs: 60_000,
  discovery: false,
  backoff: { initialIntervalMs: 50, maxIntervalMs: 500 },
  acceptRate: { burst: 200, refillMs: 5 },
};

let cachedKey: Promise<NetworkKey> | undefined;
/** One stretched key shared by the tests (Argon2id is deliberately slow). */
export function testNetworkKey(): Promise<NetworkKey> {
  cachedKey ??= deriveNetworkKey('correct horse battery staple');
  return cachedKey;
}

export type Shape = 'line' | 'ring' | 'star' | 'random' | 'full';

/** Edges (i < j) of a connected graph of `n` nodes. */
export function edges(shape: Shape, n: number, seed = 1): [number, number][] {
  const out: [number, number][] = [];
  switch (shape) {
    case 'line':
      for (let i = 0; i + 1 < n; i++) out.push([i, i + 1]);
      break;
    case 'ring':
      for (let i = 0; i + 1 < n; i++) out.push([i, i + 1]);
      if (n > 2) out.push([0, n - 1]);
      break;
    case 'star':
      for (let i = 1; i < n; i++) out.push([0, i]);
      break;
    case 'full':
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j]);
      break;
    case 'random': {
      const rnd = seededRandom(seed);
      // A random spanning tree plus a few extra links keeps it connected.
      for (let i = 1; i < n; i++) out.push([Math.floor(rnd.float() * i), i]);
      const extra = Math.floor(n / 2);
      for (let k = 0; k < extra; k++) {
        const a = Math.floor(rnd.float() * n);
        const b = Math.floor(rnd.float() * n);
        const [i, j] = a < b ? [a, b] : [b, a];
        if (i !== j && !out.some(([x, y]) => x === i && y === j)) out.push([i, j]);
      }
      break;
    }
  }
  return out;
}

/** Names 00:00:00:00:01:01, 00:00:00:00:01:02, … so tests are readable and deterministic. */
export function testName(i: number): PeerName {
  return 0x0100 + i + 1;
}

export interface TestMesh {
  routers: MeshRouter[];
  stop(): Promise<void>;
}

/** Starts `n` routers on loopback and links them in `shape`. */
export async function startMesh(
  n: number,
  shape: Shape,
  options: MeshRouterOptions & { encrypted?: boolean } = {},
): Promise<TestMesh> {
  const { encrypted = true, ...rest } = options;
  const networkKey = encrypted ? await testNetworkKey() : undefined;
  const routers = Array.from(
    { length: n },
    (_, i) =>
      new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, ...(networkKey ? { networkKey } : {}), ...rest }),
  );
  await Promise.all(routers.map((r) => r.start()));
  for (const [i, j] of edges(shape, n)) (routers[i] as MeshRouter).connect(`127.0.0.1:${(routers[j] as MeshRouter).port}`);
  return { routers, stop: () => Promise.all(routers.map((r) => r.stop())).then(() => undefined) };
}

/**
 * Resolves once `check` returns true, re-checking whenever any router reports a change (and every
 * 50 ms as a backstop); rejects with `describe()` after `timeoutMs`.
 */
export function waitUntil(
  routers: readonly MeshRouter[],
  check: () => boolean,
  timeoutMs: number,
  describe: () => string = () => 'condition',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const events = ['topology:changed', 'connection:up', 'connection:down', 'peer:down', 'peer:up'] as const;
    const done = (error?: Error): void => {
      clearTimeout(timer);
      clearInterval(poll);
      for (const r of routers) for (const e of events) r.off(e, onEvent);
      if (error) reject(error);
      else resolve();
    };
    const onEvent = (): void => {
      if (check()) done();
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`)), timeoutMs);
    const poll = setInterval(onEvent, 50);
    for (const r of routers) for (const e of events) r.on(e, onEvent);
    onEvent();
  });
}

/** A canonical string of a router's topology (names, uids, versions and links). */
export function topologyKey(router: MeshRouter): string {
  return router
    .topologyRecords()
    .sort((a, b) => a.name - b.name)
    .map((r) => `${r.name}/${r.uid}/${r.version}:${r.connections.map((c) => `${c.peer}${c.established ? '+' : '-'}`).join(',')}`)
    .join(' ');
}

/** True when every router holds the same topology and it lists all `n` peers. */
export function converged(routers: readonly MeshRouter[], expectedPeers = routers.length): boolean {
  const first = topologyKey(routers[0] as MeshRouter);
  return routers.every((r) => r.topologyRecords().length === expectedPeers && topologyKey(r) === first);
}

/**
 * True when every router holds one topology and has a route over established links to every other.
 * Until the views agree, peers can build different broadcast trees for one source, and a single
 * flooded frame may miss a peer or arrive twice (as in Weave Net), so tests that send one wait for this.
 */
export function dataReady(routers: readonly MeshRouter[]): boolean {
  return converged(routers) && routers.every((r) => routers.every((o) => o === r || r.routes.unicast(o.selfName) !== undefined));
}

/** Follows each router's own unicast next hops from every peer to every other; returns hop counts or throws. */
export function walkUnicast(routers: readonly MeshRouter[]): number {
  const byName = new Map(routers.map((r) => [r.selfName, r]));
  let hops = 0;
  for (const from of routers) {
    for (const to of routers) {
      let at = from;
      let steps = 0;
      while (at !== to) {
        const next = at.routes.unicast(to.selfName);
        if (next === undefined) throw new Error(`${at.nickname} has no route to ${to.nickname}`);
        at = byName.get(next) as MeshRouter;
        if (++steps > routers.length) throw new Error(`routing loop from ${from.nickname} to ${to.nickname}`);
      }
      hops += steps;
    }
  }
  return hops;
}

/** Simulates a broadcast from every source over each router's own broadcast next hops; returns receipts per peer. */
export function simulateBroadcast(routers: readonly MeshRouter[], source: MeshRouter): Map<PeerName, number> {
  const byName = new Map(routers.map((r) => [r.selfName, r]));
  const receipts = new Map<PeerName, number>([[source.selfName, 1]]);
  const queue: MeshRouter[] = [source];
  while (queue.length > 0) {
    const at = queue.shift() as MeshRouter;
    for (const next of at.routes.broadcast(source.selfName)) {
      receipts.set(next, (receipts.get(next) ?? 0) + 1);
      if ((receipts.get(next) ?? 0) > routers.length) throw new Error('broadcast loop');
      queue.push(byName.get(next) as MeshRouter);
    }
  }
  return receipts;
}

export { Routes };
