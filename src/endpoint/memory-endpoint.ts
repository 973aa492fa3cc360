// MemoryEndpoint: an in-process endpoint: a memory NIC on the overlay's switch driven by a userspace IPv4 stack.
import type { MemoryNic } from '../nic/memory-nic.js';
import { NetStack, type LookupOptions, type PingOptions, type PingResult, type ResolveOptions, type StackUdpSocket } from '../stack/index.js';
import type { Server as NetServer } from 'node:net';
import type { AgentOptions } from 'node:http';
import type { Clock } from '../clock.js';
import type { TcpConfigOptions, TcpStackStats } from '../stack/tcp/tcp-layer.js';
import type { TcpConnectOptions, TcpSocket } from '../stack/tcp/socket.js';
import type { TcpServer, TcpServerOptions } from '../stack/tcp/server.js';
import type { AgentOptions as HttpsAgentOptions } from 'node:https';
import { EndpointHttpAgent, endpointConnector, serveHttp, type EndpointConnector, type EndpointConnectorOptions, type ServeHttpOptions } from './http.js';
import { EndpointHttpsAgent } from './https.js';
import type { Random } from '../random.js';

/** What an endpoint is, as reported in status and `ps`. */
export interface EndpointInfo {
  /** `memory` for an in-process endpoint, `netns` for a kernel namespace attached through a veth. */
  kind: 'memory' | 'netns';
  /** The name given at attach (registered in DNS). */
  name: string;
  /** Fully qualified DNS name, when DNS is on. */
  fqdn?: string | undefined;
  /** The IPAM and DNS owner id (`mem:NAME`, `netns:NAMESPACE` or `container:ID`). */
  id: string;
  /** CIDR. */
  address: string;
  /** The endpoint's MAC, colon-separated lower-case hex. */
  mac: string;
  /** The endpoint's IP MTU (the overlay's `mtu`, default 1376). */
  mtu: number;
  /** Kernel endpoints: the `ip netns` namespace, or the path of the namespace file. */
  netns?: string | undefined;
  /** Kernel endpoints attached for a container runtime (CNI): the container's id, which keys the endpoint. */
  container?: string | undefined;
  /** Kernel endpoints: the interface name inside the namespace (default `ethwe`). */
  ifname?: string | undefined;
  /** Kernel endpoints: the host end of the veth, enslaved to the bridge. */
  hostIfname?: string | undefined;
  /** Kernel endpoints: the MAC of the host end. */
  hostMac?: string | undefined;
  /** Container endpoints: the default route's gateway, the host's overlay address on the bridge. */
  gateway?: string | undefined;
  /** Kernel endpoints, with DNS on and the host exposed: the resolver the namespace should use. */
  dns?: EndpointResolver | undefined;
  /** In-process endpoints, in status snapshots: TCP connections by state and counters. */
  tcp?: TcpStackStats | undefined;
}

/** Where a kernel endpoint's names resolve: the agent's DNS server on the host's overlay address. */
export interface EndpointResolver {
  /** The DNS server's address (the host's overlay address). */
  nameserver: string;
  /** The search domain, without the final dot (`weave.local`). */
  domain: string;
}

/** A container's endpoint compared with what the kernel has (`Overlay.checkContainer`). */
export interface ContainerCheck {
  /** The endpoint as the overlay recorded it. */
  endpoint: EndpointInfo;
  /** What differs in the kernel, one sentence each; empty when everything is as recorded. */
  problems: string[];
}

/**
 * An endpoint that lives in this process: it has its own MAC and IP on the overlay and speaks ARP, ICMP
 * echo, UDP and TCP through a userspace stack, so services and test harnesses run over the mesh (HTTP,
 * TLS, `fetch`, raw streams and datagrams) with no root and no kernel devices.
 * @category Endpoints
 */
export class MemoryEndpoint {
  /** The userspace IPv4 stack (ARP, ICMP echo, UDP, TCP). */
  readonly stack: NetStack;

  /** @internal Created by `Overlay.attach`. */
  constructor(
    /** What the endpoint is, as reported in status and `ps`. */
    readonly info: EndpointInfo,
    nic: MemoryNic,
    options: { clock: Clock; random: Random; resolve: (name: string, options: ResolveOptions) => Promise<string[]>; tcp?: TcpConfigOptions | undefined },
  ) {
    this.stack = new NetStack({ nic, address: info.address, clock: options.clock, random: options.random, resolve: options.resolve, tcp: { config: options.tcp } });
  }

  /** The endpoint's name. */
  get name(): string {
    return this.info.name;
  }

  /** The endpoint's IPv4 address (without prefix). */
  get address(): string {
    return this.stack.address;
  }

  /**
   * Sends one ICMP echo request to an address or overlay name and waits for the reply. A name that is not
   * known yet is waited for (5 s), and ARP retries while a data link comes up, so a ping right after
   * `attach` works; `timeoutMs` (default 1 s) is the wait for the reply once the request has left.
   */
  ping(target: string, options?: PingOptions): Promise<PingResult> {
    return this.stack.ping(target, options);
  }

  /** A UDP socket on this endpoint (unicast, broadcast, multicast). */
  createUdpSocket(): StackUdpSocket {
    return this.stack.createUdpSocket();
  }

  /** Resolves an overlay name, waiting (5 s by default) for one not known yet; a dotted address is returned as is. */
  lookup(name: string, options?: LookupOptions): Promise<string> {
    return this.stack.lookup(name, options);
  }

  /**
   * Opens a TCP connection like `net.connect`: `connect({ port, host })` or `connect(port, host)`, where
   * host is an overlay address or name (resolved by the overlay's DNS, waiting for a name not known yet;
   * default: this endpoint). Returns the socket at once; `'connect'` follows the handshake and failures
   * arrive as `'error'` with Node's codes (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, …).
   */
  connect(options: TcpConnectOptions, connectListener?: () => void): TcpSocket;
  connect(port: number, host?: string, connectListener?: () => void): TcpSocket;
  connect(port: number, connectListener?: () => void): TcpSocket;
  connect(first: TcpConnectOptions | number, second?: string | (() => void), third?: () => void): TcpSocket {
    return (this.stack.connect as (a: TcpConnectOptions | number, b?: string | (() => void), c?: () => void) => TcpSocket)(first, second, third);
  }

  /** A TCP server on this endpoint's address, like `net.createServer`; `listen(port)` it. */
  createServer(connectionListener?: (socket: TcpSocket) => void): TcpServer;
  createServer(options?: TcpServerOptions, connectionListener?: (socket: TcpSocket) => void): TcpServer;
  createServer(first?: TcpServerOptions | ((socket: TcpSocket) => void), second?: (socket: TcpSocket) => void): TcpServer {
    if (typeof first === 'function') return this.stack.createServer(first);
    return this.stack.createServer(first ?? {}, second);
  }

  /**
   * Serves a `node:http` / `https` / `tls` server on `port` of this endpoint (each connection goes to
   * `server.emit('connection', socket)`); resolves with the TCP server once it listens.
   */
  serveHttp(server: NetServer, port: number, options?: ServeHttpOptions): Promise<TcpServer> {
    return serveHttp(this, server, port, options);
  }

  /** An `http.Agent` (keep-alive on) whose connections go through this endpoint: pass it as `agent` to `http.request`. */
  httpAgent(options?: AgentOptions): EndpointHttpAgent {
    return new EndpointHttpAgent(this, options);
  }

  /**
   * An `https.Agent` (keep-alive on) whose TLS connections run over this endpoint's TCP: pass it as `agent`
   * to `https.request`; give `ca` for a private or self-signed certificate.
   */
  httpsAgent(options?: HttpsAgentOptions): EndpointHttpsAgent {
    return new EndpointHttpsAgent(this, options);
  }

  /**
   * A `connect` function for undici that dials through this endpoint (see {@link endpointConnector}): undici's
   * `fetch` and `request` then reach overlay names and addresses, over TLS for `https:` URLs.
   *
   * ```ts
   * import { Agent, fetch } from 'undici';
   * const dispatcher = new Agent({ connect: api.connector() });
   * const res = await fetch('http://db.weave.local:8080/health', { dispatcher });
   * ```
   */
  connector(options?: EndpointConnectorOptions): EndpointConnector {
    return endpointConnector(this, options);
  }

  /** TCP connections by state and counters of this endpoint. */
  tcpStats(): TcpStackStats | undefined {
    return this.stack.tcpStats();
  }

  /** @internal Closes the stack; the overlay also frees the NIC, the address and the name. */
  async close(): Promise<void> {
    await this.stack.close();
  }
}
