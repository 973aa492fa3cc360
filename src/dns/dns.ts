// Dns: names gossiped across the mesh (a record CRDT on the "dns" channel), served locally to real resolvers.
import { isIPv4 } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { decodeWith, encodeWith } from '../wire/codec.js';
import { decodeRecords, encodeRecords, type DnsRecord } from '../wire/dns-records.js';
import { formatPeerName, type PeerName } from '../wire/peer-name.js';
import type { MeshRouter } from '../mesh/router.js';
import type { GossipChannel } from '../mesh/gossip.js';
import { parseListenAddress } from '../mesh/address.js';
import { normaliseName, RecordStore } from './records.js';
import { NotReadyError } from '../errors.js';
import { checkTimeout, waitUntil, type WaitOptions } from '../wait.js';
import { DnsServer, type DnsServerStats, type NameSource } from './server.js';

/** The gossip channel DNS uses. */
export const DNS_CHANNEL = 'dns';

/** Options of the {@link Dns} service; every field has a default. */
export interface DnsOptions {
  /** The domain served from records (default `weave.local.`). */
  domain?: string | undefined;
  /** The DNS server; `false` gossips names without serving them. */
  server?:
    | false
    | {
        /** `host:port` (default `0.0.0.0:53`; port 0 picks one), or `false` to serve only on the addresses given to `serve()`. */
        listen?: string | false | undefined;
        /** Answer TTL in seconds (default 5: endpoints come and go). */
        ttl?: number | undefined;
        /** Upstream resolvers for other names (default: from /etc/resolv.conf). */
        upstream?: string[] | undefined;
        /** The resolv.conf upstreams come from when `upstream` is not given (default /etc/resolv.conf); re-read when it changes. */
        resolvConfPath?: string | undefined;
        /** How long to wait for each upstream, in milliseconds (default 2000). */
        upstreamTimeoutMs?: number | undefined;
      }
    | undefined;
  /** How long records of an unreachable peer stay served, marked stale (default 10 min). */
  staleGraceMs?: number | undefined;
  /** How long tombstones are kept, on the local clock (default 30 min). */
  tombstoneTtlMs?: number | undefined;
  /** Time source for expiry and the server's timers (default `systemClock`); tests pass a fake clock. */
  clock?: Clock | undefined;
}

/** Options of {@link Dns.waitFor}. */
export interface DnsWaitOptions extends WaitOptions {
  /** Only addresses of this family count (default: either). */
  family?: 4 | 6 | undefined;
}

/** Typed events of the DNS service. */
export interface DnsEvents {
  /** Records became live or went away (by tombstone, expiry or grace). */
  change: (added: readonly DnsRecord[], removed: readonly DnsRecord[]) => void;
}

/** JSON status of the DNS service. */
export interface DnsStatus {
  /** The domain served from records (lower case, trailing dot). */
  domain: string;
  /** The first listening server's bound address; undefined when no server is running. */
  server?: {
    /** Bound IP address. */
    address: string;
    /** Bound port (UDP and TCP). */
    port: number;
  };
  /** Every listening server with its counters. */
  servers: ({
    /** Bound IP address. */
    address: string;
    /** Bound port (UDP and TCP). */
    port: number;
  } & DnsServerStats)[];
  /** Every record held, including tombstones, from every peer. */
  records: {
    /** FQDN, lower case, trailing dot. */
    name: string;
    /** IPv4 or IPv6 text. */
    address: string;
    /** Owner id (e.g. a container or endpoint id). */
    id: string;
    /** Peer that added the record, as `aa:bb:cc:dd:ee:ff`. */
    origin: string;
    /** Bumped by the origin on every change. */
    version: number;
    /** True once the origin removed it (kept so the removal spreads). */
    tombstone: boolean;
    /** True while the origin is unreachable; still served until the grace period ends. */
    stale: boolean;
  }[];
}

/**
 * Name-based discovery with no registry: every peer holds every record (a CRDT gossiped over the mesh)
 * and answers queries locally. Records of unreachable peers keep being served, marked stale, for a
 * grace period, so names do not vanish on the far side of a partition.
 * @category DNS
 */
export class Dns extends EventEmitter<DnsEvents> {
  /** The domain served from records: lower case, with a trailing dot (default `weave.local.`). */
  readonly domain: string;
  private readonly clock: Clock;
  private readonly store: RecordStore;
  private readonly staleGraceMs: number;
  private channel: GossipChannel | undefined;
  /** One server per listening address; the first is the one `port` and `status().server` describe. */
  private readonly servers: DnsServer[] = [];
  private expireTimer: Timer | undefined;
  private started = false;

  constructor(
    private readonly router: MeshRouter,
    private readonly options: DnsOptions = {},
  ) {
    super();
    const domain = (options.domain ?? 'weave.local.').toLowerCase();
    this.domain = domain.endsWith('.') ? domain : `${domain}.`;
    this.clock = options.clock ?? systemClock;
    this.staleGraceMs = options.staleGraceMs ?? 10 * 60_000;
    this.store = new RecordStore({
      self: router.selfName,
      selfUid: router.uid,
      clock: this.clock,
      domain: this.domain,
      ...(options.tombstoneTtlMs !== undefined ? { tombstoneTtlMs: options.tombstoneTtlMs } : {}),
    });
  }

  /** Joins the gossip channel and starts the server; idempotent. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      await this.startOnce();
    } catch (error) {
      this.started = false; // a failed start (port in use, …) can be retried
      throw error;
    }
  }

  private async startOnce(): Promise<void> {
    // The server first: if it cannot bind, nothing else has been set up and start() can be retried.
    const server = this.options.server;
    if (server !== false && server?.listen !== false) await this.serve(server?.listen ?? '0.0.0.0:53');
    this.channel ??= this.router.registerGossip(DNS_CHANNEL, {
      gossip: () => encodeWith(encodeRecords, this.store.all()),
      onGossip: (payload) => this.mergePayload(payload),
      onBroadcast: (payload) => this.mergePayload(payload),
    });
    this.router.on('topology:changed', this.onTopology);
    this.scheduleExpiry();
  }

  /** Stops every server, the expiry timer and topology tracking; records are kept. Safe to call twice. */
  async stop(): Promise<void> {
    this.expireTimer?.cancel();
    this.router.off('topology:changed', this.onTopology);
    await Promise.all(this.servers.splice(0).map((s) => s.stop()));
  }

  /**
   * Serves the names on one more address (`host:port`, default port 53), for example the host's overlay
   * address once it is exposed. Returns the bound address. Idempotent per address.
   */
  async serve(listen: string): Promise<{
    /** Bound IP address. */
    address: string;
    /** Bound port (the one picked, when 0 was asked). */
    port: number;
  }> {
    const { host, port } = parseListenAddress(listen, 53);
    const existing = this.servers.find((s) => s.address === host && (port === 0 || s.port === port));
    if (existing) return { address: existing.address, port: existing.port };
    const server = this.options.server === false ? undefined : this.options.server;
    const dnsServer = new DnsServer({
      source: this.nameSource(),
      domain: this.domain,
      listen: { host, port },
      ...(server?.ttl !== undefined ? { ttl: server.ttl } : {}),
      ...(server?.upstream ? { upstream: server.upstream } : {}),
      ...(server?.resolvConfPath ? { resolvConfPath: server.resolvConfPath } : {}),
      ...(server?.upstreamTimeoutMs !== undefined ? { upstreamTimeoutMs: server.upstreamTimeoutMs } : {}),
      // Every address of this service is off limits as an upstream, whichever server forwards.
      siblings: () => this.servers.map((s) => ({ address: s.address, port: s.port })),
      clock: this.clock,
    });
    await dnsServer.start();
    this.servers.push(dnsServer);
    return { address: dnsServer.address, port: dnsServer.port };
  }

  /** Stops serving on `host` (every port there); returns whether a server was stopped. */
  async unserve(host: string): Promise<boolean> {
    const gone = this.servers.filter((s) => s.address === host);
    if (gone.length === 0) return false;
    for (const s of gone) this.servers.splice(this.servers.indexOf(s), 1);
    await Promise.all(gone.map((s) => s.stop()));
    return true;
  }

  /** Same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The server's port (after start), for clients. */
  get port(): number | undefined {
    return this.servers[0]?.port;
  }

  /** Adds a record for `name` (single labels get the domain) owned by `id`; every peer learns it. */
  add(name: string, address: string, options: { id: string }): void {
    const record = this.store.add(normaliseName(name, this.domain), address, options.id);
    this.publish([record]);
    this.emit('change', [record], []);
  }

  /** Removes our records: a string is a name; or a filter by name and/or id; optionally only `address`. Returns how many. */
  remove(nameOrId: string | { name?: string | undefined; id?: string | undefined }, address?: string): number {
    const filter = typeof nameOrId === 'string' ? { name: normaliseName(nameOrId, this.domain) } : { ...nameOrId, ...(nameOrId.name ? { name: normaliseName(nameOrId.name, this.domain) } : {}) };
    const removed = this.store.remove({ ...filter, ...(address ? { address } : {}) });
    if (removed.length > 0) {
      this.publish(removed);
      this.emit('change', [], removed);
    }
    return removed.length;
  }

  /** Addresses of a name (case-insensitive; single labels get the domain). */
  lookup(name: string): string[] {
    return this.store.lookup(normaliseName(name, this.domain)).map((r) => r.address);
  }

  /**
   * Waits until `name` (single labels get the domain) has an address here, learned by gossip or added
   * locally, and resolves with its addresses (of `family`, when given). Rejects with NotReadyError:
   * `timeout` after `timeoutMs` (default 30 s; `Infinity` waits until aborted), or `aborted`. The wait is
   * driven by record changes, so it works under a fake clock; with the real one it keeps the process alive.
   */
  waitFor(name: string, options: DnsWaitOptions = {}): Promise<string[]> {
    const fqdn = normaliseName(name, this.domain);
    const { family } = options;
    const timeoutMs = options.timeoutMs ?? 30_000;
    checkTimeout(timeoutMs, 'dns.waitFor');
    const kind = family === 4 ? 'IPv4 address' : family === 6 ? 'IPv6 address' : 'address';
    const missing = `"${fqdn}": no ${kind}`;
    return waitUntil<string[]>(
      this.clock,
      {
        timeoutMs,
        signal: options.signal,
        timeout: () =>
          new NotReadyError(
            'timeout',
            `"${fqdn}" has no ${kind} after ${timeoutMs} ms: no endpoint of that name is known to this peer's DNS (is it attached, and is its peer linked to this mesh?)`,
            [missing],
          ),
        aborted: (reason) => new NotReadyError('aborted', `waiting for "${fqdn}" was aborted`, [missing], { cause: reason }),
      },
      {
        check: () => {
          const addresses = this.store.lookup(fqdn).map((r) => r.address);
          const wanted = family === undefined ? addresses : addresses.filter((a) => (family === 4) === isIPv4(a));
          return wanted.length > 0 ? [...new Set(wanted)] : undefined;
        },
        subscribe: (onChange) => {
          this.on('change', onChange);
          return () => this.off('change', onChange);
        },
      },
    );
  }

  /** Names that point at `address`. */
  reverse(address: string): string[] {
    return this.store.reverse(address);
  }

  /** A JSON-ready snapshot of the servers and every record. */
  status(): DnsStatus {
    return {
      domain: this.domain,
      ...(this.servers[0] ? { server: { address: this.servers[0].address, port: this.servers[0].port } } : {}),
      servers: this.servers.map((s) => ({ address: s.address, port: s.port, ...s.stats })),
      records: this.store.all().map((r) => ({
        name: r.name,
        address: r.address,
        id: r.id,
        origin: formatPeerName(r.origin),
        version: r.version,
        tombstone: r.tombstone,
        stale: this.store.isStale(r),
      })),
    };
  }

  private nameSource(): NameSource {
    return {
      resolve: (name, family) => {
        const records = this.store.lookup(name);
        if (records.length === 0) return undefined;
        // One address registered under several ids (or by several peers) is answered once.
        return [...new Set(records.filter((r) => (family === 4) === isIPv4(r.address)).map((r) => r.address))];
      },
      reverse: (address) => this.store.reverse(address),
    };
  }

  private publish(records: DnsRecord[]): void {
    this.channel?.broadcast(encodeWith(encodeRecords, records));
  }

  /** Merges a payload; returns what was new (relayed), or undefined. */
  private mergePayload(payload: Uint8Array): Uint8Array | undefined {
    const changed = this.store.merge(decodeWith(decodeRecords, payload));
    if (changed.length === 0) return undefined;
    this.onTopology(); // records of a peer that is already unreachable are stale from the start
    this.emit(
      'change',
      changed.filter((r) => !r.tombstone),
      changed.filter((r) => r.tombstone),
    );
    // Our answers to claims about our own records (a previous incarnation's, now tombstones) go to every
    // peer, the sender included: a relayed delta skips the sender, which would keep serving them.
    const ours = changed.filter((r) => r.origin === this.router.selfName);
    if (ours.length > 0) this.publish(ours);
    const others = changed.filter((r) => r.origin !== this.router.selfName);
    return others.length > 0 ? encodeWith(encodeRecords, others) : undefined;
  }

  /** Peers that became unreachable keep their records (stale) for the grace period. */
  private readonly onTopology = (): void => {
    const now = this.clock.now();
    // Peers whose records were dropped after their grace still need to be seen coming back.
    const origins = new Set<PeerName>([...this.store.all().map((r) => r.origin), ...this.store.stalePeers().map((s) => s.peer)]);
    for (const origin of origins) {
      if (origin === this.router.selfName) continue;
      if (this.router.isReachable(origin)) this.store.markReachable(origin);
      else this.store.markUnreachable(origin, now);
    }
  };

  private scheduleExpiry(): void {
    const every = Math.min(60_000, Math.max(10, Math.floor(this.staleGraceMs / 4)));
    this.expireTimer = this.clock.setTimer(every, () => {
      const dropped = this.store.expire(this.clock.now(), this.staleGraceMs);
      const gone = dropped.filter((r) => !r.tombstone);
      if (gone.length > 0) this.emit('change', [], gone);
      this.scheduleExpiry();
    });
  }
}
