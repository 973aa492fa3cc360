// KubernetesPeers: every node of the cluster is a peer, as in weave-kube; the node list is re-read and the
// mesh's connection targets follow it (connect to new nodes, forget removed ones).
import { readFile as fsReadFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { DecodeError, DiscoveryError, OptionsError } from '../errors.js';
import { DEFAULT_PORT, formatHostPort } from '../mesh/address.js';
import { httpGet, type HttpGet } from './http-get.js';
import { decodeNodeList, MAX_NODE_LIST_BYTES, MAX_NODES, NODE_LIST_PAGE_SIZE, peerAddress, type KubernetesNode } from './kubernetes-nodes.js';

/** Where Kubernetes mounts a pod's service account. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How often the node list is re-read by default (weave-kube's peer list was as slow to follow). */
export const DEFAULT_RESYNC_MS = 30_000;

/** What discovery needs; everything from outside (files, environment, HTTP, time) can be replaced. */
export interface KubernetesPeersOptions {
  /** Adds a connection target (`Overlay.connect`). */
  connect: (address: string) => void;
  /** Drops a connection target (`Overlay.forget`). */
  forget: (address: string) => void;
  /** A read that failed (it is retried); the same failure again is not reported twice in a row. */
  warn: (message: string, error: Error) => void;
  /** Nodes added and removed, and recovery after failures. */
  info?: ((message: string) => void) | undefined;
  /**
   * Base URL of the API server (`https://10.96.0.1:443`, or `http://127.0.0.1:8001` for `kubectl proxy`);
   * default: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, set in every pod.
   */
  apiServer?: string | undefined;
  /** Environment for the defaults (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Bearer token, re-read before every read since projected tokens rotate; a missing file sends none (default in SERVICE_ACCOUNT_DIR). */
  tokenFile?: string | undefined;
  /** CA of the API server for `https:`; a missing file means the system's CAs (default in SERVICE_ACCOUNT_DIR). */
  caFile?: string | undefined;
  /** This host's node name: never dialled (default `$NODE_NAME`, else the host name). */
  nodeName?: string | undefined;
  /** This host's addresses: a node listing one of them is this host too (default: the non-loopback interface addresses). */
  ownAddresses?: (() => readonly string[]) | undefined;
  /** Port the peers listen on, the same on every node in a DaemonSet (default 6783). */
  port?: number | undefined;
  /** Targets given by hand (`--peer`, canonical `host:port`): never forgotten here, even if their node goes. */
  keep?: readonly string[] | undefined;
  /** Period of re-reads (default 30 s). */
  intervalMs?: number | undefined;
  /** Delay before a failed read is tried again (default 5 s, at most the period). */
  retryMs?: number | undefined;
  /** Deadline of one HTTP request (default 10 s). */
  requestTimeoutMs?: number | undefined;
  clock?: Clock | undefined;
  get?: HttpGet | undefined;
  readFile?: ((path: string) => Promise<string>) | undefined;
}

/** One read of the node list, split into this host and the peers to dial. */
export interface NodeSnapshot {
  /** Every node listed. */
  nodes: KubernetesNode[];
  /** The listed nodes that are this host (by name or address); normally one, none when it is not listed yet. */
  self: KubernetesNode[];
  /** `address:port` → node name, for every other node that has an address. */
  peers: Map<string, string>;
}

/**
 * The number of peers the ring starts with, this one included: every node (weave-kube's consensus over
 * all nodes), and this host when it is not listed yet.
 */
export function initialPeerCount(snapshot: NodeSnapshot): number {
  return snapshot.nodes.length - snapshot.self.length + 1;
}

/** The API server's base URL from an explicit one or the pod's environment; an OptionsError says what to set. */
export function kubernetesApiServer(explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): URL {
  let text = explicit;
  if (text === undefined) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) {
      throw new OptionsError(
        'peers from Kubernetes need the API server: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (they are in every pod), so give --kubernetes-api URL',
      );
    }
    text = `https://${formatHostPort(host, Number(port))}`;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new OptionsError(`Kubernetes API server "${text}" is not a URL (expected https://HOST:PORT or http://HOST:PORT)`, { cause });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OptionsError(`Kubernetes API server "${text}" is not an http: or https: URL`);
  if (url.search || url.hash || url.username) throw new OptionsError(`Kubernetes API server "${text}" must not have a query, fragment or user`);
  return url;
}

/** Interface addresses of this host other than loopback ones. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !a.internal)
    .map((a) => a.address);
}

/**
 * Peer discovery from the Kubernetes API: `GET /api/v1/nodes` with the pod's service account, every
 * other node's InternalIP (else ExternalIP) becomes a connection target, re-read every 30 s. Failures
 * (API down, 401/403, a bad answer) are warned about and retried; the targets stay as they were until a
 * read succeeds.
 */
export class KubernetesPeers {
  /** The API server's base URL. */
  readonly apiServer: URL;
  private readonly options: KubernetesPeersOptions;
  private readonly clock: Clock;
  private readonly get: HttpGet;
  private readonly readFile: (path: string) => Promise<string>;
  private readonly tokenFile: string;
  private readonly caFile: string;
  private readonly nodeName: string;
  private readonly port: number;
  private readonly keep: ReadonlySet<string>;
  private readonly intervalMs: number;
  private readonly retryMs: number;
  private readonly abort = new AbortController();
  private current = new Map<string, string>();
  private running = false;
  private stopped = false;
  private timer: Timer | undefined;
  private inFlight: Promise<void> | undefined;
  /** Message of the last failure reported, so a failure that persists is reported once. */
  private lastWarning: string | undefined;
  private failures = 0;

  /** Checks the options (an OptionsError says what to fix); reads and connects nothing yet. */
  constructor(options: KubernetesPeersOptions) {
    const env = options.env ?? process.env;
    this.options = options;
    this.apiServer = kubernetesApiServer(options.apiServer, env);
    this.clock = options.clock ?? systemClock;
    this.get = options.get ?? httpGet;
    this.readFile = options.readFile ?? ((path) => fsReadFile(path, 'utf8'));
    this.tokenFile = options.tokenFile ?? `${SERVICE_ACCOUNT_DIR}/token`;
    this.caFile = options.caFile ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`;
    this.nodeName = options.nodeName ?? (env.NODE_NAME || hostname());
    this.port = options.port ?? DEFAULT_PORT;
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) throw new OptionsError(`peer port ${this.port} is not a port from 1 to 65535`);
    this.keep = new Set(options.keep ?? []);
    this.intervalMs = options.intervalMs ?? DEFAULT_RESYNC_MS;
    if (!(this.intervalMs > 0)) throw new OptionsError(`node list period ${this.intervalMs} ms must be positive`);
    this.retryMs = Math.min(options.retryMs ?? 5_000, this.intervalMs);
  }

  /** The connection targets discovery added: `address:port` → node name. */
  get targets(): ReadonlyMap<string, string> {
    return this.current;
  }

  /**
   * Reads the node list once (every page). Rejects with a DiscoveryError (unreachable, refused, another
   * HTTP status, an unreadable token or CA file) or a DecodeError (an answer that is not a node list).
   */
  async read(): Promise<NodeSnapshot> {
    const token = await this.optionalFile(this.tokenFile, 'service-account token');
    const ca = this.apiServer.protocol === 'https:' ? await this.optionalFile(this.caFile, 'cluster CA') : undefined;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'weave-ts' };
    const trimmed = token?.trim();
    if (trimmed) headers.authorization = `Bearer ${trimmed}`;
    const nodes: KubernetesNode[] = [];
    let next: string | undefined;
    do {
      const url = new URL(`${this.apiServer.pathname.replace(/\/$/, '')}/api/v1/nodes`, this.apiServer);
      url.searchParams.set('limit', String(NODE_LIST_PAGE_SIZE));
      if (next !== undefined) url.searchParams.set('continue', next);
      const answer = await this.get(url, { headers, ca, maxBytes: MAX_NODE_LIST_BYTES, timeoutMs: this.options.requestTimeoutMs ?? 10_000, signal: this.abort.signal });
      if (answer.status !== 200) throw this.refusal(answer.status, answer.body, trimmed !== undefined && trimmed.length > 0);
      const page = decodeNodeList(answer.body);
      nodes.push(...page.nodes);
      if (nodes.length > MAX_NODES) throw new DecodeError('too-large', `the node list has over ${MAX_NODES} nodes`);
      next = page.continue;
    } while (next !== undefined);
    const names = new Set<string>();
    for (const node of nodes) {
      if (names.has(node.name)) throw new DecodeError('bad-value', `node list field metadata.name: node ${JSON.stringify(node.name)} is listed on two pages`);
      names.add(node.name);
    }
    return this.snapshot(nodes);
  }

  /**
   * The first read, before the overlay exists (the ring's consensus counts the nodes): failures are warned
   * about and retried until `timeoutMs` (default 60 s) has passed, then the last one is thrown.
   */
  async initial(options: { timeoutMs?: number } = {}): Promise<NodeSnapshot> {
    const deadline = this.clock.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      try {
        const snapshot = await this.read();
        this.recovered();
        return snapshot;
      } catch (error) {
        if (this.stopped || this.clock.now() + this.retryMs > deadline) throw error;
        this.report(error as Error);
      }
      await new Promise<void>((resolve) => this.clock.setTimer(this.retryMs, resolve, { keepAlive: true }));
    }
  }

  /**
   * Connects to the peers of `first` (else reads the list at once), then re-reads it every period.
   * Idempotent; does nothing after {@link stop}.
   */
  start(first?: NodeSnapshot): void {
    if (this.running || this.stopped) return;
    this.running = true;
    if (first) {
      this.apply(first);
      this.schedule(this.intervalMs);
    } else this.schedule(0);
  }

  /** Stops re-reading (a read in flight is cancelled). The targets added stay with the overlay. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    this.abort.abort();
    await this.inFlight;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Settles when the read in flight, if any, has been applied (tests step a fake clock, then wait here). */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  private schedule(ms: number): void {
    this.timer = this.clock.setTimer(ms, () => {
      this.timer = undefined;
      this.inFlight = this.sync().then((ok) => {
        this.inFlight = undefined;
        if (this.running) this.schedule(ok ? this.intervalMs : this.retryMs);
      });
    });
  }

  /** One read and, when it succeeds, the targets updated; never rejects. */
  private async sync(): Promise<boolean> {
    try {
      const snapshot = await this.read();
      if (!this.running) return false;
      this.recovered();
      this.apply(snapshot);
      return true;
    } catch (error) {
      if (this.running) this.report(error as Error);
      return false;
    }
  }

  /** Connects to peers that are new, forgets those whose node went (or moved to another address). */
  private apply(snapshot: NodeSnapshot): void {
    const next = new Map([...snapshot.peers].filter(([address]) => !this.keep.has(address)));
    for (const [address, node] of next) {
      if (this.current.has(address)) continue;
      this.options.info?.(`node ${node} at ${address}: connecting`);
      this.call(this.options.connect, address);
    }
    for (const [address, node] of this.current) {
      if (next.has(address)) continue;
      this.options.info?.(`node ${node} at ${address} is no longer listed: forgetting it`);
      this.call(this.options.forget, address);
    }
    this.current = next;
  }

  private call(fn: (address: string) => void, address: string): void {
    try {
      fn(address);
    } catch (error) {
      this.options.warn(`peer ${address} from the node list: ${(error as Error).message}`, error as Error);
    }
  }

  private snapshot(nodes: KubernetesNode[]): NodeSnapshot {
    const own = new Set((this.options.ownAddresses ?? hostAddresses)());
    const self: KubernetesNode[] = [];
    const peers = new Map<string, string>();
    for (const node of nodes) {
      if (node.name === this.nodeName || node.addresses.some((a) => own.has(a))) {
        self.push(node);
        continue;
      }
      const ip = peerAddress(node);
      if (ip !== undefined && isIP(ip) !== 0) peers.set(formatHostPort(ip, this.port), node.name);
    }
    return { nodes, self, peers };
  }

  /** A file's text; undefined when it does not exist (no token through `kubectl proxy`, system CAs). */
  private async optionalFile(path: string, what: string): Promise<string | undefined> {
    try {
      return await this.readFile(path);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DiscoveryError('read-failed', `cannot read the ${what} ${path}: ${(cause as Error).message}`, { cause });
    }
  }

  /** The error for a non-200 answer, with the API's own `Status.message` when it sent one. */
  private refusal(status: number, body: Uint8Array, sentToken: boolean): DiscoveryError {
    let reason = '';
    try {
      const message = (JSON.parse(new TextDecoder().decode(body.subarray(0, 4096))) as { message?: unknown }).message;
      if (typeof message === 'string') reason = `: ${message.slice(0, 300)}`;
    } catch {
      // not a Status object
    }
    const where = `GET ${this.apiServer.origin}/api/v1/nodes answered HTTP ${status}${reason}`;
    if (status === 401) {
      return new DiscoveryError('unauthorized', `${where}; ${sentToken ? `the token in ${this.tokenFile} was refused` : `no token was sent (${this.tokenFile} does not exist)`}`);
    }
    if (status === 403) return new DiscoveryError('unauthorized', `${where}; the service account may not list nodes: bind it to a ClusterRole with get, list and watch on nodes`);
    return new DiscoveryError('protocol', where);
  }

  private report(error: Error): void {
    this.failures += 1;
    if (error.message === this.lastWarning) return;
    this.lastWarning = error.message;
    this.options.warn(`cannot read the node list from Kubernetes (retried in ${this.retryMs >= 1000 ? `${Math.round(this.retryMs / 1000)} s` : `${this.retryMs} ms`}): ${error.message}`, error);
  }

  private recovered(): void {
    if (this.failures > 0) this.options.info?.(`read the node list from Kubernetes again after ${this.failures} failed attempt${this.failures === 1 ? '' : 's'}`);
    this.failures = 0;
    this.lastWarning = undefined;
  }
}
