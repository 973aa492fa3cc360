// DnsServer: weaveDNS serving: names of the domain from a NameSource over UDP and TCP; everything else forwarded upstream.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { setMaxListeners } from 'node:events';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { OptionsError, WeaveError } from '../errors.js';
import type { Random } from '../random.js';
import { ByteQueue } from '../mesh/byte-queue.js';
import {
  CLASS_ANY,
  CLASS_IN,
  FLAG_QR,
  decodeQuery,
  encodeName,
  encodeReply,
  ipv4Bytes,
  ipv6Bytes,
  opcodeOf,
  Rcode,
  readHeader,
  RecordType,
  reverseAddress,
  soaRdata,
  type Header,
  type NamedRecord,
  type Query,
  type Rdata,
} from './message.js';
import { replyFor } from './forward-message.js';
import { Forwarder, type DnsListener, type ForwarderStats } from './forwarder.js';
import { ResolvConf } from './resolv-conf.js';
import { DNS_PORT, isTruncated, parseUpstream, type Upstream } from './upstream.js';

/** Where the server's records come from (the gossiped name table, or anything else). */
export interface NameSource {
  /** Addresses of `name` (lower-case FQDN with trailing dot) of one family; undefined when the name is unknown (→ NXDOMAIN), [] when it exists but has no address of that family (→ NODATA). */
  resolve(name: string, family: 4 | 6): readonly string[] | undefined;
  /** Names (FQDN, trailing dot) whose address is `address` (dotted quad, or RFC 5952 IPv6). */
  reverse(address: string): readonly string[];
}

/** Options of a DNS server; everything but `source` has a default. */
export interface DnsServerOptions {
  /** Answers names of the domain and reverse lookups; consulted on every query. */
  source: NameSource;
  /** The domain answered locally (default `weave.local.`). */
  domain?: string | undefined;
  /** Where to listen, UDP and TCP on the same port (default 0.0.0.0:53; port 0 picks one). */
  listen?: {
    /** IP address to bind (default 0.0.0.0). */
    host?: string | undefined;
    /** Port for UDP and TCP (default 53; 0 picks a free one). */
    port?: number | undefined;
  } | undefined;
  /** TTL of answers and of negative answers (SOA minimum), in seconds (default 5). */
  ttl?: number | undefined;
  /**
   * Resolvers for names outside the domain: `ip`, `ip:port` or `[ipv6]:port`, tried in order. Default: the
   * nameservers of `resolvConfPath`. An upstream at an address this server (or a sibling) listens on is skipped.
   */
  upstream?: readonly string[] | undefined;
  /**
   * The other listening addresses of the same DNS service (the `Dns` passes every server it runs): upstreams at
   * any of them are skipped, as the server's own address is, so the service never forwards into itself.
   */
  siblings?: (() => Iterable<DnsListener>) | undefined;
  /** The resolv.conf to take upstreams from (default /etc/resolv.conf); re-read when it changes, checked at most every 5 s. */
  resolvConfPath?: string | undefined;
  /** How long to wait for each upstream (default 2000 ms). */
  upstreamTimeoutMs?: number | undefined;
  /** Time source for upstream timeouts, idle TCP connections and resolv.conf re-reads (default `systemClock`). */
  clock?: Clock | undefined;
  /** Shuffles answers; `Random` or a function uniform in [0, 1) (default Math.random). Transaction ids always come from node:crypto. */
  random?: (Random | (() => number)) | undefined;
}

/** Counters of what the server did with the messages it received. */
export interface DnsServerStats extends ForwarderStats {
  /** Messages received (including malformed ones). */
  queries: number;
  /** Local answers with at least one record. */
  answered: number;
  /** Local NXDOMAIN answers. */
  nxdomain: number;
  /** Local NOERROR answers without records. */
  nodata: number;
  /** Upstream answers relayed. */
  forwarded: number;
  /** SERVFAIL sent (every upstream failed, none configured, overload, or an internal error). */
  servfail: number;
  /** FORMERR (and BADVERS) sent. */
  formerr: number;
  /** NOTIMP sent (opcode other than QUERY). */
  notimp: number;
  /** REFUSED sent (class other than IN in the domain, or a query another weave-ts server forwarded: see `loopsRefused`). */
  refused: number;
  /** Queries outside the domain that another weave-ts server had already forwarded (they carry its marker): REFUSED instead of forwarded again. */
  loopsRefused: number;
  /** Replies with TC set. */
  truncated: number;
  /** Messages ignored (shorter than a header, or responses), and replies that could not be sent (source port 0, a send error). */
  dropped: number;
  /** Errors reported by the server's own sockets (listening UDP and TCP, client TCP connections); the server keeps serving. */
  socketErrors: number;
}

/** The transport a query arrived on: it decides the reply size limit. */
export type DnsTransport = 'udp' | 'tcp';

const DEFAULT_DOMAIN = 'weave.local.';
const DEFAULT_TTL = 5;
const DEFAULT_UPSTREAM_TIMEOUT_MS = 2000;
const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** The smallest UDP reply size every client accepts, and the largest we send whatever a client advertises. */
const UDP_MIN = 512;
const UDP_MAX = 4096;
const TCP_MAX = 0xffff;
/** A TCP connection with nothing to say for this long is closed. */
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 256;
/** Queries of one TCP connection answered concurrently; reading pauses beyond. */
const MAX_TCP_IN_FLIGHT = 16;
/** Queries waiting for upstreams at once; more get SERVFAIL at once. */
const MAX_FORWARDS_IN_FLIGHT = 1024;
/** Tries at finding a port free for both UDP and TCP when the port is 0. */
const BIND_ATTEMPTS = 20;

/** Lower case, one trailing dot, no leading dot. */
function normalizeDomain(domain: string): string {
  const d = domain.trim().toLowerCase().replace(/^\.+/, '');
  const fqdn = d.endsWith('.') ? d : `${d}.`;
  try {
    encodeName(fqdn);
  } catch (cause) {
    throw new OptionsError(`DNS domain ${JSON.stringify(domain)} is not a valid domain name`, { cause });
  }
  if (fqdn === '.') throw new OptionsError('the DNS domain cannot be the root: pick one such as "weave.local."');
  return fqdn;
}

function newStats(): DnsServerStats {
  return {
    queries: 0,
    answered: 0,
    nxdomain: 0,
    nodata: 0,
    forwarded: 0,
    servfail: 0,
    formerr: 0,
    notimp: 0,
    refused: 0,
    loopsRefused: 0,
    truncated: 0,
    dropped: 0,
    socketErrors: 0,
    upstreamErrors: 0,
    upstreamTimeouts: 0,
    upstreamRejected: 0,
    ownUpstreamsSkipped: 0,
    upstreamBusy: 0,
    coalesced: 0,
  };
}

/**
 * Serves the domain from a NameSource and forwards everything else; see docs for the behaviour in detail.
 * @category DNS
 */
export class DnsServer {
  /** Counters since construction. */
  readonly stats: DnsServerStats = newStats();
  /** The domain served locally (lower case, trailing dot). */
  readonly domain: string;
  private readonly source: NameSource;
  private readonly ttl: number;
  private readonly listenHost: string;
  private readonly listenPort: number;
  private readonly staticUpstreams: readonly Upstream[] | undefined;
  private readonly resolvConf: ResolvConf;
  private readonly upstreamTimeoutMs: number;
  private readonly forwarder: Forwarder;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly soa: NamedRecord;
  private readonly aborter = new AbortController();
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly connections = new Set<Socket>();
  private boundPort = 0;
  private forwardsInFlight = 0;
  private stopping = false;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;

  constructor(options: DnsServerOptions) {
    this.source = options.source;
    this.domain = normalizeDomain(options.domain ?? DEFAULT_DOMAIN);
    this.ttl = options.ttl ?? DEFAULT_TTL;
    if (!Number.isInteger(this.ttl) || this.ttl < 0 || this.ttl > 0x7fff_ffff) {
      throw new OptionsError(`DNS ttl ${options.ttl} must be a whole number of seconds from 0 to 2147483647`);
    }
    this.listenHost = options.listen?.host ?? '0.0.0.0';
    this.listenPort = options.listen?.port ?? DNS_PORT;
    if (!Number.isInteger(this.listenPort) || this.listenPort < 0 || this.listenPort > 0xffff) {
      throw new OptionsError(`DNS listen port ${options.listen?.port} must be from 0 to 65535`);
    }
    this.upstreamTimeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
    if (!(this.upstreamTimeoutMs > 0)) throw new OptionsError(`upstreamTimeoutMs ${options.upstreamTimeoutMs} must be positive`);
    this.staticUpstreams = options.upstream?.map(parseUpstream);
    this.clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    this.random = typeof random === 'function' ? random : () => random.float();
    this.resolvConf = new ResolvConf(options.resolvConfPath ?? DEFAULT_RESOLV_CONF, { clock: this.clock });
    this.soa = { name: encodeName(this.domain), type: RecordType.SOA, ttl: this.ttl, data: soaRdata(this.domain, this.ttl) };
    // Every exchange in flight listens for the abort (up to MAX_FORWARDS_IN_FLIGHT): not a leak.
    setMaxListeners(0, this.aborter.signal);
    const siblings = options.siblings;
    this.forwarder = new Forwarder({
      upstreams: () => this.upstreams(),
      listeners: () => [{ address: this.listenHost, port: this.boundPort }, ...(siblings?.() ?? [])],
      timeoutMs: this.upstreamTimeoutMs,
      clock: this.clock,
      signal: this.aborter.signal,
      stats: this.stats,
    });
  }

  /** The bound port (0 before start). */
  get port(): number {
    return this.boundPort;
  }

  /** The listen host. */
  get address(): string {
    return this.listenHost;
  }

  /** Binds UDP and TCP on the same port; idempotent. */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    if (this.stopping) throw new WeaveError('closed', 'the DNS server was stopped; create a new one');
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp();
      const port = udp.address().port;
      try {
        this.tcp = await this.listenTcp(port);
        this.udp = udp;
        this.boundPort = port;
        break;
      } catch (error) {
        udp.close();
        const retry = this.listenPort === 0 && attempt < BIND_ATTEMPTS && isAddressInUse(error);
        if (!retry) throw error;
      }
    }
    if (this.stopping) await this.closeSockets();
  }

  private bindUdp(): Promise<UdpSocket> {
    const socket = createSocket({ type: isIPv6(this.listenHost) ? 'udp6' : 'udp4' });
    return new Promise((resolve, reject) => {
      socket.once('error', (cause) => {
        try {
          socket.close();
        } catch {
          // never bound
        }
        reject(listenError('UDP', this.listenHost, this.listenPort, cause));
      });
      socket.bind({ address: this.listenHost, port: this.listenPort }, () => {
        socket.removeAllListeners('error');
        // ICMP errors for replies and the like: the socket stays usable, so they are counted, never fatal.
        socket.on('error', () => this.stats.socketErrors++);
        socket.on('message', (message, peer) => this.onDatagram(socket, message, peer.address, peer.port));
        resolve(socket);
      });
    });
  }

  private listenTcp(port: number): Promise<Server> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(socket));
    return new Promise((resolve, reject) => {
      server.once('error', (cause) => reject(listenError('TCP', this.listenHost, port, cause)));
      server.listen({ host: this.listenHost, port, exclusive: true }, () => {
        server.removeAllListeners('error');
        // Accept failures (EMFILE…) leave the server listening.
        server.on('error', () => this.stats.socketErrors++);
        resolve(server);
      });
    });
  }

  /** Closes both sockets and every TCP connection, and abandons upstream exchanges; idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.aborter.abort();
    await this.startPromise?.catch(() => undefined);
    await this.closeSockets();
  }

  private async closeSockets(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  /** Same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Answers one DNS message: the reply to send, or undefined to send nothing. Never throws or rejects, whatever
   * the bytes; works without `start` (forwarding then still uses the upstreams).
   */
  async handleQuery(message: Uint8Array, transport: DnsTransport): Promise<Uint8Array | undefined> {
    this.stats.queries++;
    const header = readHeader(message);
    if (!header || (header.flags & FLAG_QR) !== 0) {
      this.stats.dropped++;
      return undefined;
    }
    try {
      return await this.answer(message, header, transport);
    } catch {
      try {
        return this.headerOnly(header, Rcode.servFail);
      } catch {
        this.stats.dropped++;
        return undefined;
      }
    }
  }

  private async answer(message: Uint8Array, header: Header, transport: DnsTransport): Promise<Uint8Array | undefined> {
    if (opcodeOf(header.flags) !== 0) return this.headerOnly(header, Rcode.notImp);
    let query: Query;
    try {
      query = decodeQuery(message);
    } catch {
      return this.headerOnly(header, Rcode.formErr);
    }
    const limit = transport === 'tcp' ? TCP_MAX : query.edns ? Math.min(Math.max(query.edns.udpSize, UDP_MIN), UDP_MAX) : UDP_MIN;
    if (query.edns && query.edns.version > 0) return this.reply(query, Rcode.badVers, limit, false);
    let name = query.name.toLowerCase();
    if (query.labelCount === 1) name = `${name}${this.domain}`;
    if (name === this.domain || name.endsWith(`.${this.domain}`)) {
      if (query.class !== CLASS_IN && query.class !== CLASS_ANY) return this.reply(query, Rcode.refused, limit, true);
      return this.answerLocal(query, name, limit);
    }
    const address = reverseAddress(name);
    if (address !== undefined && (query.type === RecordType.PTR || query.type === RecordType.ANY)) {
      const answers: Rdata[] = [];
      for (const target of this.source.reverse(address)) {
        try {
          answers.push({ type: RecordType.PTR, ttl: this.ttl, data: encodeName(target) });
        } catch {
          // a name that cannot go on the wire is skipped
        }
      }
      if (answers.length > 0) return this.reply(query, Rcode.noError, limit, true, shuffle(answers, this.random));
    }
    return this.forward(query, transport, limit);
  }

  private answerLocal(query: Query, name: string, limit: number): Uint8Array {
    const wantA = query.type === RecordType.A || query.type === RecordType.ANY;
    const wantAAAA = query.type === RecordType.AAAA || query.type === RecordType.ANY;
    const v4 = this.source.resolve(name, 4);
    const v6 = this.source.resolve(name, 6);
    const answers: Rdata[] = [];
    if (wantA) for (const a of v4 ?? []) pushAddress(answers, RecordType.A, this.ttl, ipv4Bytes(a));
    if (wantAAAA) for (const a of v6 ?? []) pushAddress(answers, RecordType.AAAA, this.ttl, ipv6Bytes(a));
    shuffle(answers, this.random);
    const apex = name === this.domain;
    if (apex && (query.type === RecordType.SOA || query.type === RecordType.ANY)) answers.push({ type: RecordType.SOA, ttl: this.ttl, data: this.soa.data });
    if (answers.length > 0) return this.reply(query, Rcode.noError, limit, true, answers);
    const exists = apex || v4 !== undefined || v6 !== undefined;
    return this.reply(query, exists ? Rcode.noError : Rcode.nxDomain, limit, true, [], [this.soa]);
  }

  private async forward(query: Query, transport: DnsTransport, limit: number): Promise<Uint8Array> {
    if (query.edns?.forwarded) {
      // Another weave-ts server forwarded this already: forwarding it again is how loops between peers start.
      this.stats.loopsRefused++;
      return this.reply(query, Rcode.refused, limit, false);
    }
    if (this.forwardsInFlight >= MAX_FORWARDS_IN_FLIGHT) return this.reply(query, Rcode.servFail, limit, false);
    this.forwardsInFlight++;
    try {
      const answer = await this.forwarder.resolve(query, transport, limit);
      if (!answer) return this.reply(query, Rcode.servFail, limit, false);
      const response = replyFor(answer.response, answer.layout, { id: query.header.id, question: query.question, edns: query.edns !== undefined });
      this.stats.forwarded++;
      if (response.byteLength > limit) {
        // The upstream ignored the size the client asked for: relay just the header with TC, so the client retries over TCP.
        const { bytes } = encodeReply({
          id: query.header.id,
          queryFlags: query.header.flags,
          authoritative: false,
          rcode: (readHeader(response)?.flags ?? 0) & 0xf,
          question: query.question,
          edns: query.edns !== undefined,
          limit,
        });
        bytes[2] = (bytes[2] as number) | 0x02;
        this.stats.truncated++;
        return bytes;
      }
      if (isTruncated(response)) this.stats.truncated++;
      return response;
    } finally {
      this.forwardsInFlight--;
    }
  }

  /** The configured upstreams, in order; the forwarder skips those that are this service's own addresses. */
  private async upstreams(): Promise<readonly Upstream[]> {
    return this.staticUpstreams ?? (await this.resolvConf.servers()).map((host) => ({ host, port: DNS_PORT }));
  }

  private reply(
    query: Query,
    rcode: number,
    limit: number,
    authoritative: boolean,
    answers: readonly Rdata[] = [],
    authority: readonly NamedRecord[] = [],
  ): Uint8Array {
    const { bytes, truncated } = encodeReply({
      id: query.header.id,
      queryFlags: query.header.flags,
      authoritative,
      rcode,
      question: query.question,
      answers,
      authority,
      edns: query.edns !== undefined,
      limit,
    });
    this.count(rcode, answers.length);
    if (truncated) this.stats.truncated++;
    return bytes;
  }

  private headerOnly(header: Header, rcode: number): Uint8Array {
    this.count(rcode, 0);
    return encodeReply({ id: header.id, queryFlags: header.flags, authoritative: false, rcode, limit: UDP_MIN }).bytes;
  }

  private count(rcode: number, answers: number): void {
    const s = this.stats;
    if (rcode === Rcode.noError) {
      if (answers > 0) s.answered++;
      else s.nodata++;
    } else if (rcode === Rcode.nxDomain) s.nxdomain++;
    else if (rcode === Rcode.servFail) s.servfail++;
    else if (rcode === Rcode.formErr || rcode === Rcode.badVers) s.formerr++;
    else if (rcode === Rcode.notImp) s.notimp++;
    else if (rcode === Rcode.refused) s.refused++;
  }

  private onDatagram(socket: UdpSocket, message: Buffer, host: string, port: number): void {
    void this.handleQuery(message, 'udp').then((reply) => {
      if (!reply || this.stopping) return;
      // A forged source port 0 makes send throw; a closed socket too. Neither may escape as an unhandled rejection.
      if (port === 0) {
        this.stats.dropped++;
        return;
      }
      try {
        socket.send(reply, port, host, (error) => {
          if (error) this.stats.dropped++;
        });
      } catch {
        this.stats.dropped++;
      }
    });
  }

  private onConnection(socket: Socket): void {
    socket.on('error', () => this.stats.socketErrors++);
    if (this.stopping || this.connections.size >= MAX_TCP_CONNECTIONS) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    const queue = new ByteQueue();
    let length: number | undefined;
    let inFlight = 0;
    let ended = false;
    let idle: Timer = this.clock.setTimer(TCP_IDLE_MS, () => socket.destroy());
    const touch = (): void => {
      idle.cancel();
      if (socket.destroyed) return;
      idle = this.clock.setTimer(TCP_IDLE_MS, () => socket.destroy());
    };
    const pump = (): void => {
      while (inFlight < MAX_TCP_IN_FLIGHT) {
        if (length === undefined) {
          const prefix = queue.take(2);
          if (!prefix) break;
          length = ((prefix[0] as number) << 8) | (prefix[1] as number);
        }
        const body = queue.take(length);
        if (!body) break;
        length = undefined;
        inFlight++;
        void this.handleQuery(Uint8Array.from(body), 'tcp').then((reply) => {
          inFlight--;
          if (reply && !socket.destroyed && reply.byteLength <= TCP_MAX) {
            const frame = new Uint8Array(2 + reply.byteLength);
            frame[0] = reply.byteLength >> 8;
            frame[1] = reply.byteLength & 0xff;
            frame.set(reply, 2);
            socket.write(frame);
          }
          touch();
          pump();
        });
      }
      if (inFlight >= MAX_TCP_IN_FLIGHT) socket.pause();
      else socket.resume();
      if (ended && inFlight === 0) socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      touch();
      pump();
    });
    socket.on('end', () => {
      ended = true;
      pump();
    });
    socket.on('close', () => {
      idle.cancel();
      this.connections.delete(socket);
    });
  }
}

function pushAddress(into: Rdata[], type: number, ttl: number, data: Uint8Array | undefined): void {
  if (data) into.push({ type, ttl, data });
}

/** Fisher-Yates in place. */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(random() * (i + 1)));
    const t = items[i] as T;
    items[i] = items[j] as T;
    items[j] = t;
  }
  return items;
}

function isAddressInUse(error: unknown): boolean {
  return error instanceof WeaveError && error.code === 'address-in-use';
}

function listenError(transport: string, host: string, port: number, cause: Error & { code?: string }): WeaveError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (cause.code === 'EADDRINUSE') {
    return new WeaveError('address-in-use', `DNS ${transport} port ${where} is in use: stop whatever listens there or pick another listen port`, { cause });
  }
  if (cause.code === 'EACCES') {
    return new WeaveError('permission-denied', `no permission to listen on DNS ${transport} ${where}: ports below 1024 need root or CAP_NET_BIND_SERVICE`, { cause });
  }
  return new OptionsError(`cannot listen on DNS ${transport} ${where}: ${cause.message}`, { cause });
}
