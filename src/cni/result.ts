// The CNI result of an attached container (ADD's output, CHECK's reference) and the comparison CHECK makes. Pure.
import type { EndpointInfo } from '../endpoint/memory-endpoint.js';

/** A CNI 1.0.0 result, as far as weave-ts fills it. */
export interface CniResult {
  cniVersion: string;
  interfaces: { name: string; mac: string; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface: number }[];
  routes: { dst: string; gw?: string }[];
  dns: { nameservers?: string[]; search?: string[] };
}

/** The multicast route every endpoint gets (see KernelNetwork). */
const MULTICAST_ROUTE = '224.0.0.0/4';

/**
 * The result for an attached container: the host end (so chained plugins such as `bandwidth` find it),
 * the container's interface with its namespace, its address and gateway, the routes and the resolver.
 */
export function cniResult(cniVersion: string, endpoint: EndpointInfo): CniResult {
  const interfaces: CniResult['interfaces'] = [];
  if (endpoint.hostIfname && endpoint.hostMac) interfaces.push({ name: endpoint.hostIfname, mac: endpoint.hostMac });
  interfaces.push({ name: endpoint.ifname ?? 'ethwe', mac: endpoint.mac, sandbox: endpoint.netns ?? '' });
  const gateway = endpoint.gateway;
  return {
    cniVersion,
    interfaces,
    ips: [{ address: endpoint.address, ...(gateway ? { gateway } : {}), interface: interfaces.length - 1 }],
    routes: [...(gateway ? [{ dst: '0.0.0.0/0', gw: gateway }] : []), { dst: MULTICAST_ROUTE }],
    dns: endpoint.dns ? { nameservers: [endpoint.dns.nameserver], search: [endpoint.dns.domain] } : {},
  };
}

/**
 * What differs between the runtime's `prevResult` and the container's endpoint: its interface (name,
 * MAC, sandbox) and its address must be in the result. Chained plugins may add entries; those are not
 * ours to judge. Tolerates any shape: a malformed prevResult is a difference, never a crash.
 */
export function compareWithPrevResult(prevResult: Record<string, unknown>, endpoint: EndpointInfo): string[] {
  const problems: string[] = [];
  const interfaces = Array.isArray(prevResult.interfaces) ? (prevResult.interfaces as unknown[]) : [];
  const ifname = endpoint.ifname ?? 'ethwe';
  const index = interfaces.findIndex((i) => isRecord(i) && i.name === ifname && typeof i.sandbox === 'string' && i.sandbox !== '');
  const found = interfaces[index];
  if (!isRecord(found)) problems.push(`prevResult has no interface ${ifname} in a sandbox`);
  else {
    if (found.mac !== endpoint.mac) problems.push(`prevResult says ${ifname} has MAC ${String(found.mac)}, the container's is ${endpoint.mac}`);
    if (found.sandbox !== endpoint.netns) problems.push(`prevResult says ${ifname} is in ${String(found.sandbox)}, the agent attached ${endpoint.netns ?? '?'}`);
  }
  const ips = Array.isArray(prevResult.ips) ? (prevResult.ips as unknown[]) : [];
  const ip = ips.find((i) => isRecord(i) && i.address === endpoint.address);
  if (!isRecord(ip)) problems.push(`prevResult does not list ${endpoint.address}, the container's address`);
  else if (endpoint.gateway !== undefined && ip.gateway !== undefined && ip.gateway !== endpoint.gateway) {
    problems.push(`prevResult says the gateway is ${String(ip.gateway)}, it is ${endpoint.gateway}`);
  }
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
