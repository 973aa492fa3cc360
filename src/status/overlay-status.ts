// OverlayStatus: the shape of an overlay's status snapshot, shared by the overlay (which builds it) and the renderers.
import type { MeshRouterStatus } from '../mesh/router.js';
import type { DataPlaneStatus } from '../ethernet/data-plane.js';
import type { IpamStatus } from '../ipam/ipam.js';
import type { DnsStatus } from '../dns/dns.js';
import type { EndpointInfo } from '../endpoint/memory-endpoint.js';
import type { OverlayLinkView } from './links.js';
import type { HandshakeFailureView } from './handshake-failures.js';

/** A JSON-serialisable snapshot of everything, in the spirit of Weave's report. */
export interface OverlayStatus {
  /** The weave-ts version (`VERSION`). */
  version: string;
  /** Where the overlay is in its life. */
  state: OverlayState;
  /** The mesh: peers, links, targets, routes, gossip counters. */
  router: MeshRouterStatus;
  /** Per peer: how frames reach it (direct or relayed), mode, MTU, encryption. */
  links: OverlayLinkView[];
  /** The sleeve links, switch counters and MAC table. */
  dataPlane: DataPlaneStatus;
  /** The allocator; absent with `ipam: false`. */
  ipam?: IpamStatus;
  /** The name service; absent with `dns: false`. */
  dns?: DnsStatus;
  /** Every attached endpoint, in-process ones first. */
  endpoints: EndpointInfo[];
  /** The host's overlay address (CIDR), when exposed. */
  exposed?: string;
  /** The Linux bridge; absent until a kernel endpoint or `expose()` first needed it. */
  bridge?: {
    /** Bridge name (`bridge` option, default `weave`). */
    name: string;
    /** The TAP device joining it to the data plane (`<bridge>-tap`). */
    tap: string;
    /** IP MTU of the bridge ports. */
    mtu: number;
  };
  /**
   * Recent handshake failures an operator should look at (wrong password, encryption or protocol
   * mismatch, name collision, a remote that spoke and stalled), per source host and error code, newest
   * first; at most 32, each kept for an hour after its latest failure. Refused or unanswered dials are
   * not listed (see `router.targets`).
   */
  handshakeFailures: HandshakeFailureView[];
  /** Warnings an operator should see (no password, …). */
  warnings: string[];
}

/** Where the overlay is in its life. */
export type OverlayState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';
