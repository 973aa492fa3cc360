// MemoryEndpoint: an in-process endpoint: a memory NIC on the overlay's switch driven by a userspace IPv4 stack.
import type { MemoryNic } from '../nic/memory-nic.js';
import { NetStack, type LookupOptions, type PingOptions, type PingResult, type ResolveOptions, type StackUdpSocket } from '../stack/index.js';
import type { Clock } from '../clock.js';
import type { Random } from '../random.js';

/** What an endpoint is, as reported in status and `ps`. */
export interface EndpointInfo {
  /** `memory` for an in-process endpoint, `netns` for a kernel namespace attached through a veth. */
  kind: 'memory' | 'netns';
  /** The name given at attach (registered in DNS). */
  name: string;
  /** Fully qualified DNS name, when DNS is on. */
  fqdn?: string | undefined;
  /** The IPAM and DNS owner id (`mem:NAME` or `netns:NAMESPACE`). */
  id: string;
  /** CIDR. */
  address: string;
  /** The endpoint's MAC, colon-separated lower-case hex. */
  mac: string;
  /** The endpoint's IP MTU (the overlay's `mtu`, default 1376). */
  mtu: number;
  /** Kernel endpoints: the `ip netns` namespace. */
  netns?: string | undefined;
  /** Kernel endpoints: the interface name inside the namespace (default `ethwe`). */
  ifname?: string | undefined;
  /** Kernel endpoints: the host end of the veth, enslaved to the bridge. */
  hostIfname?: string | undefined;
}

/**
 * An endpoint that lives in this process: it has its own MAC and IP on the overlay and speaks ARP, ICMP
 * echo and UDP through a small userspace stack, so code in a test harness can talk over the mesh with
 * no root and no kernel devices.
 * @category Endpoints
 */
export class MemoryEndpoint {
  /** The userspace IPv4 stack (ARP, ICMP echo, UDP). */
  readonly stack: NetStack;

  /** @internal Created by `Overlay.attach`. */
  constructor(
    /** What the endpoint is, as reported in status and `ps`. */
    readonly info: EndpointInfo,
    nic: MemoryNic,
    options: { clock: Clock; random: Random; resolve: (name: string, options: ResolveOptions) => Promise<string[]> },
  ) {
    this.stack = new NetStack({ nic, address: info.address, clock: options.clock, random: options.random, resolve: options.resolve });
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

  /** @internal Closes the stack; the overlay also frees the NIC, the address and the name. */
  async close(): Promise<void> {
    await this.stack.close();
  }
}
