// One scale measurement in a fresh process (its RSS is the mesh's): N peers of createTestMesh on a seeded
// random graph of average degree ~5, real clock. Prints one JSON line (ScaleRow) on stdout.
// With a second argument `fake`, only the wall time for the same mesh under a FakeClock to converge
// (topology ready) is measured, and printed as {"fakeClockMs": …}.
import { createTestMesh, FakeClock, randomTopology, type TestMesh } from '../../src/testing/index.js';
import type { Overlay } from '../../src/overlay.js';

/** One row of bench/results/scale.json; null where a step did not finish within its limit. */
export interface ScaleRow {
  peers: number;
  /** Links in the graph. */
  links: number;
  /** From start until every peer reaches every other over established links. */
  topologyMs: number | null;
  /** After that, until a name added on peer 0 resolves on the farthest peer. */
  dnsMs: number | null;
  /** One link added between two far peers: wire bytes until every peer lists it (whole mesh). */
  bytesPerChange: number | null;
  /** The same, topology messages received (whole mesh). */
  messagesPerChange: number | null;
  /** Control-plane bytes per second per peer with nothing changing (10 s). */
  idleBytesPerSec: number | null;
  /** CPU seconds per second of this process (all peers) with nothing changing. */
  idleCpu: number | null;
  /** Topology messages (whole states, broadcasts) received during the idle window: near 0 when idle is idle. */
  idleTopologyMessages: number | null;
  /** After the above, until `attach()` on the farthest peer has an address from IPAM (consensus among all peers). */
  ipamMs: number | null;
  /** Last, 10 % of the peers stop: until no survivor holds a record of any of them. */
  forgetMs: number | null;
  /** `peer:up` events for stopped peers on survivors from the stop until 2 s after `forgetMs`: stale records reviving them. */
  resurrections: number | null;
  /** Wall time for the same mesh under a FakeClock (a separate process) until topology is ready. */
  fakeClockMs: number | null;
  /** Links that closed after the topology was ready and before the churn step, by error code: none is expected. */
  linksDropped: Record<string, number>;
  /** Resident memory after all of the above, MB. */
  rssMB: number;
  /** What did not finish, in words. */
  notes: string[];
}

const n = Number(process.argv[2] ?? 25);
const fake = process.argv[3] === 'fake';
const limitMs = Number(process.env.SCALE_LIMIT_MS ?? 120_000);
const idleMs = Number(process.env.SCALE_IDLE_MS ?? 10_000);

function hopsFrom(start: number, peers: number, edges: readonly [number, number][]): number[] {
  const adjacency = Array.from({ length: peers }, () => [] as number[]);
  for (const [a, b] of edges) {
    adjacency[a]?.push(b);
    adjacency[b]?.push(a);
  }
  const hops = new Array<number>(peers).fill(-1);
  hops[start] = 0;
  const queue = [start];
  for (let cur = queue.shift(); cur !== undefined; cur = queue.shift()) {
    for (const next of adjacency[cur] ?? []) {
      if (hops[next] === -1) {
        hops[next] = (hops[cur] as number) + 1;
        queue.push(next);
      }
    }
  }
  return hops;
}

async function until(check: () => boolean, limit: number): Promise<boolean> {
  const deadline = Date.now() + limit;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function topologyMessages(mesh: TestMesh): number {
  return mesh.overlays.reduce((sum, o) => sum + (o.router.status().gossip.topology?.received ?? 0), 0);
}

const edges = randomTopology(n, { seed: 42 });
if (fake) {
  const clock = new FakeClock();
  const t0 = Date.now();
  const fakeMesh = await createTestMesh({ peers: n, topology: edges, seed: 7, clock });
  let fakeClockMs: number | null = null;
  try {
    await fakeMesh.ready({ timeoutMs: limitMs });
    fakeClockMs = Date.now() - t0;
  } catch {
    // reported as null
  }
  process.stdout.write(`${JSON.stringify({ fakeClockMs })}\n`);
  process.exit(0);
}
const hops = hopsFrom(0, n, edges);
const farthest = hops.indexOf(Math.max(...hops));
const notes: string[] = [];
const row: ScaleRow = {
  peers: n,
  links: edges.length,
  topologyMs: null,
  dnsMs: null,
  bytesPerChange: null,
  messagesPerChange: null,
  idleBytesPerSec: null,
  idleCpu: null,
  idleTopologyMessages: null,
  ipamMs: null,
  forgetMs: null,
  resurrections: null,
  fakeClockMs: null,
  linksDropped: {},
  rssMB: 0,
  notes,
};
const started = Date.now();
const mesh = await createTestMesh({ peers: n, topology: edges, seed: 7 });
let churning = false;
try {
  try {
    await mesh.ready({ timeoutMs: limitMs });
    row.topologyMs = Date.now() - started;
    // A loaded process can miss heartbeats long enough for links to time out, which sets off more gossip.
    for (const o of mesh.overlays) {
      o.router.on('connection:down', (_link, error) => {
        if (!churning) row.linksDropped[error?.code ?? 'closed'] = (row.linksDropped[error?.code ?? 'closed'] ?? 0) + 1;
      });
    }
  } catch {
    notes.push(`topology not ready within ${limitMs} ms`);
  }
  if (row.topologyMs !== null) {
    // DNS: a record added directly, so IPAM (measured last) is not involved.
    const t0 = Date.now();
    (mesh.overlay(0) as Overlay).dns?.add('scale-probe', '10.47.255.1', { id: 'scale-probe' });
    try {
      await mesh.overlay(farthest).dns?.waitFor('scale-probe', { timeoutMs: limitMs });
      row.dnsMs = Date.now() - t0;
    } catch {
      notes.push(`name not resolvable on the farthest peer within ${limitMs} ms`);
    }
    // One topology change: a link between peer 0 and the farthest peer.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const bytes0 = mesh.wire.stats.streamBytesDelivered;
    const messages0 = topologyMessages(mesh);
    mesh.overlay(farthest).connect(`${mesh.host(0).address}:6783`);
    const zero = mesh.overlay(0).router.selfName;
    const far = mesh.overlay(farthest).router.selfName;
    const listed = (): boolean =>
      mesh.overlays.every((o) => {
        const records = o.router.topologyRecords();
        const a = records.find((r) => r.name === zero);
        const b = records.find((r) => r.name === far);
        return (a?.connections.some((c) => c.peer === far && c.established) ?? false) && (b?.connections.some((c) => c.peer === zero && c.established) ?? false);
      });
    if (await until(listed, limitMs)) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      row.bytesPerChange = mesh.wire.stats.streamBytesDelivered - bytes0;
      row.messagesPerChange = topologyMessages(mesh) - messages0;
    } else notes.push(`the added link was not listed everywhere within ${limitMs} ms`);
    // Idle: nothing changes.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // Counting messages builds every peer's status: before the CPU and byte counters start.
    const idleMessages0 = topologyMessages(mesh);
    const cpu0 = process.cpuUsage();
    const idleBytes0 = mesh.wire.stats.streamBytesDelivered;
    const w0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const seconds = (performance.now() - w0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    row.idleBytesPerSec = Math.round((mesh.wire.stats.streamBytesDelivered - idleBytes0) / seconds / n);
    row.idleCpu = Number(((cpu.user + cpu.system) / 1e6 / seconds).toFixed(3));
    row.idleTopologyMessages = topologyMessages(mesh) - idleMessages0;
    // IPAM last: consensus among all N peers, started by the first request.
    const t1 = Date.now();
    try {
      await mesh.overlay(farthest).attach({ name: 'scale-ipam', signal: AbortSignal.timeout(limitMs) });
      row.ipamMs = Date.now() - t1;
    } catch {
      notes.push(`no IPAM address on the farthest peer within ${limitMs} ms`);
    }
    // Churn: every tenth peer stops.
    const gone = new Set(Array.from({ length: Math.max(1, Math.round(n / 10)) }, (_, k) => (5 + 10 * k) % n));
    const goneNames = new Set([...gone].map((i) => mesh.overlay(i).router.selfName));
    const survivors = mesh.overlays.filter((_, i) => !gone.has(i)).map((o) => o.router);
    let resurrections = 0;
    for (const r of survivors) r.on('peer:up', (p) => void (goneNames.has(p.name) && (resurrections += 1)));
    churning = true;
    const t2 = Date.now();
    await Promise.all([...gone].map((i) => mesh.overlay(i).stop()));
    if (await until(() => survivors.every((r) => r.topologyRecords().every((rec) => !goneNames.has(rec.name))), limitMs)) {
      row.forgetMs = Date.now() - t2;
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      row.resurrections = resurrections;
    } else notes.push(`stopped peers not forgotten by every survivor within ${limitMs} ms`);
  }
} finally {
  row.rssMB = Math.round(process.memoryUsage().rss / 1e6);
  process.stdout.write(`${JSON.stringify(row)}\n`);
  await Promise.race([mesh.stop(), new Promise((resolve) => setTimeout(resolve, 30_000))]);
  process.exit(0);
}
