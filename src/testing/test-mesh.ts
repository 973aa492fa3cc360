// createTestMesh: a whole overlay network in one process on a virtual wire, for testing distributed code against faults.
import { Overlay, type OverlayOptions } from '../overlay.js';
import { OptionsError } from '../errors.js';
import { deriveNetworkKey, type NetworkKey } from '../crypto/network-key.js';
import { systemClock, type Clock } from '../clock.js';
import { seededRandom } from '../random.js';
import { FakeClock } from './fake-clock.js';
import { VirtualWire, type LinkConditions, type VirtualHost } from './virtual-wire.js';
import { withDefaults } from '../options.js';
import { linkViews } from '../status/links.js';

/** How the peers are linked: a named shape or explicit pairs of peer indexes. */
export type TestTopology = 'full' | 'line' | 'ring' | 'star' | readonly (readonly [number, number])[];

/** Options of {@link createTestMesh}. */
export interface TestMeshOptions {
  /** How many peers, or their nicknames. */
  peers: number | readonly string[];
  /** Which peers dial which (default `full`). Other paths are relayed. */
  topology?: TestTopology | undefined;
  /**
   * Network password (default: a fixed test password; stretched once and shared by every peer). `false`:
   * no password, so links are neither encrypted nor authenticated and there is no replay window: datagrams
   * the wire duplicates reach the endpoints twice.
   */
  password?: string | false | undefined;
  /** Conditions of every link (latency, loss, reordering); change single links later with `link()`. */
  conditions?: LinkConditions | undefined;
  /** A fake clock makes the run deterministic; step it with `advance()` (default: real time). */
  clock?: FakeClock | undefined;
  /** Seed of every random choice (loss, jitter, peer names, addresses); default 1. */
  seed?: number | undefined;
  /** Overlay options applied to every peer (IPAM range, DNS domain, …). */
  overlay?: Omit<OverlayOptions, 'listen' | 'peers' | 'password' | 'networkKey' | 'clock' | 'random' | 'transport'> | undefined;
}

/** A running test mesh. */
export interface TestMesh extends AsyncDisposable {
  /** The wire: faults and statistics. */
  readonly wire: VirtualWire;
  /** The peers, in the order given. */
  readonly overlays: readonly Overlay[];
  /** The clock every peer and the wire run on: the `clock` option, or the system clock. */
  readonly clock: Clock;
  /** A peer by index or nickname. */
  overlay(which: number | string): Overlay;
  /** The virtual host (its address) of a peer. */
  host(which: number | string): VirtualHost;
  /** Resolves when every peer reaches every other over established links. */
  ready(options?: { timeoutMs?: number | undefined }): Promise<void>;
  /** Fake clock only: moves time forward, letting I/O and promises run between milliseconds. */
  advance(ms: number): Promise<void>;
  /**
   * Waits for `work`; under a fake clock, moves time forward until it settles (at most `maxMs` virtual ms),
   * since anything waiting on a timer would otherwise wait forever.
   */
  drive<T>(work: Promise<T>, options?: { maxMs?: number | undefined }): Promise<T>;
  /**
   * Cuts the mesh into groups (peer indexes or nicknames) that cannot reach each other. Like a real
   * partition it is silent: links across it stall, their datagrams are dropped (counted in
   * `wire.stats.datagramsDropped.partition`) and the peers notice it by their links' silence timeout
   * (2 s here), after which the overlay routes nothing across (its switch counts `no-route`).
   */
  partition(...groups: readonly (readonly (number | string)[])[]): void;
  /** Ends a partition: every peer reaches every other again; links that outlived it resume, the others re-form. */
  heal(): void;
  /** Changes the conditions between two peers (both directions). */
  link(a: number | string, b: number | string, conditions: LinkConditions): void;
  /** Puts a peer behind a NAT: others see it at `publicAddress` with rewritten ports. */
  nat(which: number | string, publicAddress: string): void;
  /** Stops every peer, then closes the wire; idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_TEST_PASSWORD = 'weave-ts test mesh';
const cachedKeys = new Map<string, Promise<NetworkKey>>();
const CONTROL_PORT = 6783;

/** Fast timings so a test mesh converges in milliseconds of (real or virtual) time. */
const TEST_TUNING: NonNullable<OverlayOptions['tuning']> = {
  topologyDelayMs: 5,
  gcDelayMs: 5,
  gossipIntervalMs: 5_000,
  backoff: { initialIntervalMs: 50, maxIntervalMs: 1_000 },
  sleeve: { fastHeartbeatMs: 50 },
  // A partition is silent (the wire stalls streams across it): links notice it by this silence timeout.
  connection: { heartbeatIntervalMs: 250, silenceTimeoutMs: 2_000 },
  ipamTickMs: 200,
};

/**
 * TEST_TUNING for a mesh of `peers`. One event loop carries every peer, so under load (a 200-peer IPAM
 * vote) it can lag past a heartbeat silence timeout that separate processes would never miss: links time
 * out and the churn that follows loads it further. The timeout grows with the mesh (20 ms per peer, at
 * least 2 s); small meshes keep noticing partitions within 2 s.
 */
function testTuning(peers: number): NonNullable<OverlayOptions['tuning']> {
  return { ...TEST_TUNING, connection: { ...TEST_TUNING.connection, silenceTimeoutMs: Math.max(2_000, 20 * peers) } };
}

/**
 * Starts a mesh of overlays in this process, linked over a virtual wire (no sockets, no root), each
 * peer at its own virtual address. Use `partition`, `link` and `nat` to inject faults, and in-process
 * endpoints (`overlay.attach({ name })`) to run your own code on the overlay.
 *
 * ```ts
 * await using mesh = await createTestMesh({ peers: ['a', 'b', 'c'], topology: 'line', conditions: { latencyMs: 2, loss: 0.01 } });
 * await mesh.ready();
 * const server = await mesh.overlay('c').attach({ name: 'server' });
 * ```
 */
export async function createTestMesh(options: TestMeshOptions): Promise<TestMesh> {
  const nicknames = typeof options.peers === 'number' ? Array.from({ length: options.peers }, (_, i) => `p${i}`) : [...options.peers];
  if (nicknames.length < 1 || nicknames.length > 256) throw new OptionsError('createTestMesh needs 1 to 256 peers');
  if (new Set(nicknames).size !== nicknames.length) throw new OptionsError('createTestMesh: peer nicknames must be unique');
  const edges = topologyEdges(options.topology ?? 'full', nicknames.length);
  const clock: Clock = options.clock ?? systemClock;
  const seed = options.seed ?? 1;
  // Without a fake clock the wire keeps its own clock, whose timers hold the process open like sockets in flight.
  const wire = new VirtualWire({
    ...(options.clock ? { clock: options.clock } : {}),
    random: seededRandom(seed),
    ...(options.conditions ? { defaults: options.conditions } : {}),
    partitionStreams: 'stall',
  });
  const password = options.password ?? DEFAULT_TEST_PASSWORD;
  let networkKey: NetworkKey | undefined;
  if (password !== false) {
    let key = cachedKeys.get(password);
    if (!key) {
      key = deriveNetworkKey(password);
      cachedKeys.set(password, key);
    }
    networkKey = await key;
  }
  const hosts = nicknames.map(() => wire.addHost());
  const tuning = testTuning(nicknames.length);
  const overlays = nicknames.map((nickname, i) => {
    const dials = edges.filter(([a, b]) => Math.max(a, b) === i).map(([a, b]) => `${(hosts[Math.min(a, b)] as VirtualHost).address}:${CONTROL_PORT}`);
    const base = options.overlay ?? {};
    return new Overlay({
      // undefined fields of `base` mean "the default", so they must not erase ours
      ...withDefaults<OverlayOptions>({ discovery: false, ipam: { init: { consensus: nicknames.length } } }, base),
      tuning: withDefaults(tuning, base.tuning),
      nickname,
      listen: `${(hosts[i] as VirtualHost).address}:${CONTROL_PORT}`,
      peers: dials,
      ...(networkKey ? { networkKey } : {}),
      clock,
      random: seededRandom(seed * 1000 + i + 1),
      transport: hosts[i] as VirtualHost,
    });
  });
  const indexOf = (which: number | string): number => {
    const i = typeof which === 'number' ? which : nicknames.indexOf(which);
    if (i < 0 || i >= overlays.length) throw new OptionsError(`no peer ${JSON.stringify(which)} in this test mesh (peers: ${nicknames.join(', ')})`);
    return i;
  };
  const advance = async (ms: number): Promise<void> => {
    if (!(clock instanceof FakeClock)) throw new OptionsError('advance() needs a mesh created with a FakeClock');
    for (let t = 0; t < ms; t++) {
      clock.advance(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const drive = async <T>(work: Promise<T>, { maxMs = 600_000 } = {}): Promise<T> => {
    if (!(clock instanceof FakeClock)) return work;
    let done = false;
    work.then(
      () => (done = true),
      () => (done = true),
    );
    for (let t = 0; !done && t < maxMs; t++) await advance(1);
    if (!done) throw new Error(`still waiting after ${maxMs} virtual ms`);
    return work;
  };
  // Start all peers concurrently: with a fake clock, start() needs time to move while it waits.
  await drive(Promise.all(overlays.map((o) => o.start())));
  let stopped: Promise<void> | undefined;
  const mesh: TestMesh = {
    wire,
    overlays,
    clock,
    overlay: (which) => overlays[indexOf(which)] as Overlay,
    host: (which) => hosts[indexOf(which)] as VirtualHost,
    async ready({ timeoutMs = 20_000 } = {}) {
      const converged = (o: Overlay): boolean => {
        const links = linkViews(o.router, o.dataPlane.status());
        return links.length === overlays.length - 1 && links.every((l) => l.established);
      };
      // Peers before `from` were converged when last checked: each poll resumes there (O(N) views, not O(N²)),
      // and the whole mesh is checked again before it counts as ready.
      let from = 0;
      const all = (): boolean => {
        while (from < overlays.length && converged(overlays[from] as Overlay)) from += 1;
        if (from < overlays.length) return false;
        from = 0;
        return overlays.every(converged);
      };
      const deadline = clock.now() + timeoutMs;
      // Each poll builds a peer's link views, O(N): a large mesh is polled less often so the polling does
      // not slow the convergence it waits for.
      const pollMs = Math.max(10, Math.round(overlays.length / 4));
      while (!all()) {
        if (clock.now() > deadline) throw new Error(`test mesh did not converge within ${timeoutMs} ms`);
        if (clock instanceof FakeClock) await advance(5);
        else await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    },
    advance,
    drive,
    partition: (...groups) => wire.partition(...groups.map((g) => g.map((w) => hosts[indexOf(w)] as VirtualHost))),
    heal: () => wire.heal(),
    link: (a, b, conditions) => wire.link(hosts[indexOf(a)] as VirtualHost, hosts[indexOf(b)] as VirtualHost, conditions),
    nat: (which, publicAddress) => wire.nat(hosts[indexOf(which)] as VirtualHost, { publicAddress }),
    stop() {
      stopped ??= Promise.all(overlays.map((o) => o.stop())).then(() => wire.close());
      return stopped;
    },
    [Symbol.asyncDispose]() {
      return mesh.stop();
    },
  };
  return mesh;
}

/**
 * A connected random graph for `createTestMesh({ topology })`: a ring plus seeded random chords until the
 * average degree is `degree` (default 5, at most n − 1). The same seed gives the same graph.
 *
 * ```ts
 * await using mesh = await createTestMesh({ peers: 100, topology: randomTopology(100, { seed: 42 }) });
 * ```
 */
export function randomTopology(peers: number, options: { degree?: number | undefined; seed?: number | undefined } = {}): [number, number][] {
  if (!Number.isInteger(peers) || peers < 2) throw new OptionsError('randomTopology needs at least 2 peers');
  const degree = Math.min(options.degree ?? 5, peers - 1);
  const random = seededRandom(options.seed ?? 1);
  const edges = new Map<number, [number, number]>();
  const add = (a: number, b: number): void => {
    if (a !== b) edges.set(Math.min(a, b) * peers + Math.max(a, b), [Math.min(a, b), Math.max(a, b)]);
  };
  for (let i = 0; i < peers; i++) add(i, (i + 1) % peers);
  while (edges.size < Math.round((peers * degree) / 2)) add(Math.floor(random.float() * peers), Math.floor(random.float() * peers));
  return [...edges.values()];
}

function topologyEdges(topology: TestTopology, n: number): [number, number][] {
  if (typeof topology !== 'string') {
    return topology.map(([a, b]) => {
      if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0 || a >= n || b >= n || a === b) {
        throw new OptionsError(`topology edge [${a}, ${b}] must join two different peers 0..${n - 1}`);
      }
      return [a, b];
    });
  }
  const out: [number, number][] = [];
  switch (topology) {
    case 'full':
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j]);
      break;
    case 'line':
      for (let i = 0; i + 1 < n; i++) out.push([i, i + 1]);
      break;
    case 'ring':
      for (let i = 0; i + 1 < n; i++) out.push([i, i + 1]);
      if (n > 2) out.push([n - 1, 0]);
      break;
    case 'star':
      for (let i = 1; i < n; i++) out.push([0, i]);
      break;
    default:
      throw new OptionsError(`unknown topology "${String(topology)}": use full, line, ring, star or a list of [a, b] pairs`);
  }
  return out;
}
