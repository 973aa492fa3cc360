// Forwarder: sends queries outside the domain to the upstreams in order, without ever looping back into the overlay's own servers.
import { randomInt } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Clock } from '../clock.js';
import { DecodeError } from '../errors.js';
import { encodeForwardQuery, responseLayout, type ResponseLayout } from './forward-message.js';
import { formatIpv6, ipv6Bytes, Rcode, readHeader, type Query } from './message.js';
import { exchangeTcp, exchangeUdp, isTruncated, isUnusable, type ExchangeResult, type Upstream } from './upstream.js';

/** Counters the forwarder keeps (a part of the server's stats). */
export interface ForwarderStats {
  /** Exchanges with an upstream that failed on a socket error (no route, connect or send failed, refused, reset) or brought back a malformed reply. */
  upstreamErrors: number;
  /** Exchanges with an upstream that got no answer within the timeout. */
  upstreamTimeouts: number;
  /** SERVFAIL or REFUSED answers from upstreams (the next upstream is tried). */
  upstreamRejected: number;
  /** Upstreams not tried because they are addresses of this DNS service itself (a loop). */
  ownUpstreamsSkipped: number;
  /** Upstreams not tried because too many exchanges with them were already in flight. */
  upstreamBusy: number;
  /** Queries that joined an identical query already being forwarded instead of being sent again. */
  coalesced: number;
}

/** A listening address of a DNS server. */
export interface DnsListener {
  /** IP address (0.0.0.0 or :: listens on every local address). */
  address: string;
  /** Port (0 while not bound: never matches). */
  port: number;
}

/** What the forwarder needs from its server. */
export interface ForwarderOptions {
  /** The configured upstreams, in order (re-read on every query: resolv.conf may change). */
  upstreams: () => Promise<readonly Upstream[]>;
  /** Every address the DNS service listens on; an upstream at one of them is never used. */
  listeners: () => Iterable<DnsListener>;
  /** Per-exchange timeout. */
  timeoutMs: number;
  /** Times exchanges out and refreshes the local address list. */
  clock: Clock;
  /** Aborts every exchange (the server stops). */
  signal: AbortSignal;
  /** Counters to increment. */
  stats: ForwarderStats;
}

/** An upstream answer that every client waiting for it can be given. */
export interface ForwardedAnswer {
  /** The upstream's reply as it came (its id, its question case). */
  response: Uint8Array;
  /** Where its question and OPT records are, for `replyFor`. */
  layout: ResponseLayout;
}

/** Exchanges with one upstream at once, at most; beyond, the upstream is skipped for that query. */
export const MAX_EXCHANGES_PER_UPSTREAM = 256;
/** How long the list of the host's addresses is reused before `networkInterfaces()` is asked again. */
const LOCAL_ADDRESSES_TTL_MS = 5000;
const UDP_MIN = 512;
const UDP_MAX = 4096;

/**
 * Forwards queries upstream. Loop prevention, in three layers (docs/dns.md §6.5):
 * an upstream at any address the service listens on is skipped; every forwarded query carries the
 * {@link FORWARDED_OPTION_CODE} marker, and the server refuses to forward a marked query again; and a query
 * identical to one already in flight joins it instead of going out again, which bounds loops through
 * third-party forwarders that drop the marker.
 */
export class Forwarder {
  private readonly inFlight = new Map<string, Promise<ForwardedAnswer | undefined>>();
  private readonly perUpstream = new Map<string, number>();
  private localAddresses: ReadonlySet<string> | undefined;
  private localAddressesAt = -Infinity;

  constructor(private readonly options: ForwarderOptions) {}

  /**
   * The first usable upstream answer to `query`, or undefined when every upstream failed (or none is left). `limit`
   * is the client's reply size limit; a TCP client gets a truncated UDP answer fetched again over TCP.
   */
  resolve(query: Query, transport: 'udp' | 'tcp', limit: number): Promise<ForwardedAnswer | undefined> {
    const udpSize = Math.min(Math.max(limit, UDP_MIN), UDP_MAX);
    const key = forwardKey(query, transport);
    const pending = this.inFlight.get(key);
    if (pending) {
      this.options.stats.coalesced++;
      return pending;
    }
    const work = this.tryUpstreams(query, transport, udpSize).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, work);
    return work;
  }

  /** True when `upstream` is one of the service's own listening addresses (see {@link isOwnAddress}). */
  isOwn(upstream: Upstream): boolean {
    return isOwnAddress(upstream, this.options.listeners(), () => this.hostAddresses());
  }

  private async tryUpstreams(query: Query, transport: 'udp' | 'tcp', udpSize: number): Promise<ForwardedAnswer | undefined> {
    const { stats } = this.options;
    const exchange = { timeoutMs: this.options.timeoutMs, clock: this.options.clock, signal: this.options.signal };
    for (const upstream of await this.options.upstreams()) {
      if (this.options.signal.aborted) return undefined;
      if (this.isOwn(upstream)) {
        stats.ownUpstreamsSkipped++;
        continue;
      }
      const id = `${upstream.host}|${upstream.port}`;
      const busy = this.perUpstream.get(id) ?? 0;
      if (busy >= MAX_EXCHANGES_PER_UPSTREAM) {
        stats.upstreamBusy++;
        continue;
      }
      this.perUpstream.set(id, busy + 1);
      try {
        const fields = { id: randomInt(0x10000), flags: query.header.flags, question: query.question, udpSize, dnssecOk: query.edns?.dnssecOk ?? false };
        let outgoing = encodeForwardQuery(fields);
        let response = this.outcome(await exchangeUdp(outgoing, query.question, upstream, exchange));
        if (response && rcodeOf(response) === Rcode.formErr) {
          // An upstream that does not speak EDNS (RFC 6891 §7): asked again without the OPT record. It cannot be a
          // weave-ts server, and identical queries in flight still coalesce, so loops stay bounded.
          outgoing = encodeForwardQuery({ ...fields, plain: true });
          response = this.outcome(await exchangeUdp(outgoing, query.question, upstream, exchange));
        }
        if (response && transport === 'tcp' && isTruncated(response)) {
          response = this.outcome(await exchangeTcp(outgoing, query.question, upstream, exchange)) ?? response;
        }
        if (!response) continue;
        if (isUnusable(response)) {
          stats.upstreamRejected++;
          continue;
        }
        try {
          return { response, layout: responseLayout(response) };
        } catch (error) {
          if (!(error instanceof DecodeError)) throw error;
          stats.upstreamErrors++;
        }
      } finally {
        const left = (this.perUpstream.get(id) ?? 1) - 1;
        if (left === 0) this.perUpstream.delete(id);
        else this.perUpstream.set(id, left);
      }
    }
    return undefined;
  }

  private outcome(result: ExchangeResult): Uint8Array | undefined {
    if ('response' in result) return result.response;
    if (result.failure === 'error') this.options.stats.upstreamErrors++;
    else if (result.failure === 'timeout') this.options.stats.upstreamTimeouts++;
    return undefined;
  }

  private hostAddresses(): ReadonlySet<string> {
    const now = this.options.clock.now();
    if (!this.localAddresses || now - this.localAddressesAt >= LOCAL_ADDRESSES_TTL_MS) {
      const found = new Set<string>();
      try {
        for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) found.add(canonicalHost(i.address));
      } catch {
        // no interface list (a sandbox): loopback and the listeners' own addresses still match
      }
      this.localAddresses = found;
      this.localAddressesAt = now;
    }
    return this.localAddresses;
  }
}

function rcodeOf(message: Uint8Array): number {
  return (readHeader(message)?.flags ?? 0) & 0xf;
}

/**
 * Queries that one upstream answer serves alike: same question (ASCII case folded), RD/AD/CD flags, DO bit and
 * transport. The UDP size is left out on purpose: a relay that drops EDNS changes it, and the loop it closes must
 * still meet the first query. A client whose limit is smaller gets the answer truncated (TC) and retries over TCP.
 */
function forwardKey(query: Query, transport: 'udp' | 'tcp'): string {
  let folded = '';
  for (const b of query.question) folded += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b | 0x20 : b);
  return `${transport} ${query.header.flags & 0x0130} ${query.edns?.dnssecOk ? 1 : 0} ${folded}`;
}

/** Lower-case canonical text of an IP address: zone dropped, IPv4-mapped IPv6 as IPv4, IPv6 in RFC 5952 form. */
export function canonicalHost(host: string): string {
  const bare = (host.split('%')[0] as string).toLowerCase();
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return bare;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped && isIPv4(mapped[1] as string)) return mapped[1] as string;
  const bytes = ipv6Bytes(bare);
  return bytes ? formatIpv6(bytes) : bare;
}

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function isLoopback(host: string): boolean {
  return host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/**
 * True when `upstream` reaches one of `listeners`: the same port and the same address, or an address of this host
 * (loopback or one of `hostAddresses`) when the listener is a wildcard (0.0.0.0 for IPv4, :: for both families, as
 * Node binds it dual-stack). An unspecified upstream (0.0.0.0, ::) stands for loopback, where connecting to it goes.
 */
export function isOwnAddress(upstream: Upstream, listeners: Iterable<DnsListener>, hostAddresses: () => ReadonlySet<string>): boolean {
  const named = canonicalHost(upstream.host);
  // Connecting to the unspecified address reaches the host's loopback.
  const host = named === '0.0.0.0' ? '127.0.0.1' : named === '::' ? '::1' : named;
  for (const listener of listeners) {
    if (listener.port === 0 || listener.port !== upstream.port) continue;
    const listening = canonicalHost(listener.address);
    if (host === listening) return true;
    if (!isUnspecified(listening)) continue;
    if (listening === '0.0.0.0' && !isIPv4(host)) continue;
    if (isLoopback(host) || hostAddresses().has(host)) return true;
  }
  return false;
}
