// KernelNetwork: the Linux side of kernel endpoints: a bridge with the overlay's TAP on it, veth pairs into
// network namespaces, the host's own overlay address, and resolver files for `ip netns` namespaces.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EndpointError, OptionsError } from '../errors.js';
import { isExistsError, isMissingError, isNetnsPath, systemIpCommand, validateNetnsName, validateNetnsRef, type IpCommand } from './ip-command.js';
import { isValidInterfaceName } from '../nic/tap-nic.js';
import { blockOf, formatCidr, overlaps, parseIPv4, type Cidr } from '../ipam/address.js';

/** Where `ip netns add` mounts namespaces; a namespace exists when its file does. */
const NETNS_RUN_DIR = '/run/netns';
/** First line of every resolv.conf we write: we only ever remove files that carry it. */
const RESOLV_MARKER = '# written by weave-ts: removed again when the endpoint is detached';
const BACKUP_SUFFIX = '.weave-ts-backup';
/** The multicast route containers get, so multicast sockets work without a default route (as Weave does). */
const MULTICAST_ROUTE = '224.0.0.0/4';

export interface KernelNetworkOptions {
  /** The bridge's interface name (1–15 bytes); veths and the TAP get names derived from it. */
  bridge: string;
  /** IP MTU of the TAP, the bridge and every veth. */
  mtu: number;
  ip?: IpCommand;
  /** Where per-namespace resolver files live (default `/etc/netns`, what `ip netns exec` bind-mounts). */
  netnsConfigDir?: string;
  /** Where named namespaces are mounted (default `/run/netns`). */
  netnsRunDir?: string;
}

/** A route of the host's routing table: its destination prefix and the interface it leaves through. */
export interface HostRoute {
  dst: string;
  dev: string;
}

/** One veth pair from the bridge into a namespace. */
export interface NetnsLink {
  netns: string;
  /** Interface name inside the namespace. */
  ifname: string;
  /** The host end, on the bridge. */
  hostIfname: string;
  /** MAC of the interface inside the namespace. */
  mac: string;
  /** MAC of the host end. */
  hostMac: string;
}

/** How {@link KernelNetwork.attach} sets up a namespace beyond its address. */
export interface NetnsLinkOptions {
  /** The host end's name (default {@link KernelNetwork.hostIfnameFor} of the namespace). */
  hostIfname?: string | undefined;
  /** A default route through this address (the host's overlay address), as container networks have. */
  gateway?: string | undefined;
}

/**
 * Creates and removes the kernel objects of kernel endpoints. Every method is safe to repeat: objects that
 * already exist are reused and objects already gone are not an error, so an agent can resume after a restart.
 */
export class KernelNetwork {
  readonly bridge: string;
  readonly tapName: string;
  readonly mtu: number;
  private readonly ip: IpCommand;
  private readonly configDir: string;
  private readonly runDir: string;
  private readonly options: KernelNetworkOptions;

  constructor(options: KernelNetworkOptions) {
    if (!isValidInterfaceName(options.bridge) || Buffer.byteLength(options.bridge) > 11) {
      throw new OptionsError(`bridge name ${JSON.stringify(options.bridge)} is not usable: use 1 to 11 characters without spaces, "/" or ":" (the TAP and veths get longer names derived from it)`);
    }
    if (!Number.isInteger(options.mtu) || options.mtu < 576 || options.mtu > 65_000) {
      throw new OptionsError(`mtu ${options.mtu} is out of range: use an integer from 576 to 65000`);
    }
    this.options = options;
    this.bridge = options.bridge;
    this.tapName = `${options.bridge}-tap`;
    this.mtu = options.mtu;
    this.ip = options.ip ?? systemIpCommand;
    this.configDir = options.netnsConfigDir ?? '/etc/netns';
    this.runDir = options.netnsRunDir ?? NETNS_RUN_DIR;
  }

  /** The same host with another bridge (a bridge of an earlier run, for clean-up). */
  withBridge(bridge: string): KernelNetwork {
    return new KernelNetwork({ ...this.options, bridge });
  }

  /** The host end's name for a namespace: the bridge's name plus a hash, so it is stable across restarts. */
  hostIfnameFor(netns: string): string {
    const hash = createHash('sha256').update(netns).digest('hex');
    const prefix = this.bridge.slice(0, 7);
    return `${prefix}v${hash.slice(0, 14 - prefix.length)}`;
  }

  /** Creates the bridge (no multicast snooping: multicast floods to every endpoint, like Weave's) and brings it up. */
  async ensureBridge(): Promise<void> {
    try {
      await this.ip(['link', 'add', 'name', this.bridge, 'mtu', String(this.mtu), 'type', 'bridge', 'mcast_snooping', '0']);
    } catch (error) {
      if (!isExistsError(error)) throw error;
      await this.ip(['link', 'set', this.bridge, 'type', 'bridge', 'mcast_snooping', '0']);
    }
    await this.ip(['link', 'set', this.bridge, 'mtu', String(this.mtu), 'up']);
  }

  /** Puts the (already opened) TAP device on the bridge and brings it up. */
  async plugTap(): Promise<void> {
    await this.ip(['link', 'set', this.tapName, 'mtu', String(this.mtu), 'master', this.bridge, 'up']);
  }

  /** Deletes the bridge (veths on it stay, unplugged); missing is fine. */
  async removeBridge(): Promise<void> {
    await this.ignoreMissing(['link', 'del', this.bridge]);
  }

  /**
   * True when the namespace exists: an `ip netns` name (its file in the run dir) or the path of a namespace
   * file (`/proc/PID/ns/net`, a runtime's `/var/run/netns/cni-…`). Anything that can be neither is an
   * OptionsError saying why.
   */
  netnsExists(netns: string): boolean {
    validateNetnsRef(netns); // also keeps "../x" from naming a path outside the run dir
    return existsSync(isNetnsPath(netns) ? netns : join(this.runDir, netns));
  }

  /**
   * Creates a veth pair with one end on the bridge and the other, named `ifname`, in `netns`, gives it
   * `address` (CIDR), the MTU, a multicast route and, with a gateway, a default route. Undoes its own
   * steps when one fails.
   */
  async attach(netns: string, ifname: string, address: string, options: NetnsLinkOptions = {}): Promise<NetnsLink> {
    if (!isValidInterfaceName(ifname)) throw new OptionsError(`interface name ${JSON.stringify(ifname)} is not valid: use 1 to 15 characters without spaces, "/" or ":"`);
    if (!this.netnsExists(netns)) throw missingNetns(netns);
    const hostIfname = options.hostIfname ?? this.hostIfnameFor(netns);
    const mtu = String(this.mtu);
    try {
      await this.ip(['link', 'add', 'name', hostIfname, 'mtu', mtu, 'type', 'veth', 'peer', 'name', ifname, 'mtu', mtu, 'netns', netns]);
    } catch (error) {
      if (isExistsError(error)) {
        throw new EndpointError('already-exists', `cannot attach "${netns}": interface ${hostIfname} or ${ifname} in the namespace already exists (detach it first)`, { cause: error });
      }
      throw error;
    }
    try {
      await this.attachHostEnd(hostIfname);
      await this.ip(['-n', netns, 'addr', 'add', address, 'dev', ifname]);
      return await this.bringUp(netns, ifname, hostIfname, options.gateway);
    } catch (error) {
      await this.ignoreMissing(['link', 'del', hostIfname]);
      throw error;
    }
  }

  /** Puts an existing host end back on the bridge (resuming after the bridge was recreated). */
  async attachHostEnd(hostIfname: string): Promise<void> {
    await this.ip(['link', 'set', hostIfname, 'master', this.bridge, 'up']);
  }

  /**
   * Repeats the steps of `attach` that follow the address (host end on the bridge, interfaces up, the
   * multicast route), for an attach interrupted after its address was set; returns the link. Idempotent.
   */
  async completeAttach(netns: string, ifname: string, hostIfname: string, gateway?: string): Promise<NetnsLink> {
    await this.attachHostEnd(hostIfname);
    return this.bringUp(netns, ifname, hostIfname, gateway);
  }

  /** The steps after the address: interfaces up inside the namespace, the multicast and default routes; idempotent. */
  private async bringUp(netns: string, ifname: string, hostIfname: string, gateway: string | undefined): Promise<NetnsLink> {
    await this.ip(['-n', netns, 'link', 'set', ifname, 'up']);
    await this.ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    try {
      await this.ip(['-n', netns, 'route', 'add', MULTICAST_ROUTE, 'dev', ifname]);
    } catch (error) {
      if (!isExistsError(error)) throw error;
    }
    if (gateway) await this.ip(['-n', netns, 'route', 'replace', 'default', 'via', gateway, 'dev', ifname]);
    return { netns, ifname, hostIfname, mac: await this.macOf(ifname, netns), hostMac: await this.macOf(hostIfname) };
  }

  /** The MAC of a host end (for a runtime that lists it); undefined when it is gone. */
  async hostMacOf(hostIfname: string): Promise<string | undefined> {
    return this.macOf(hostIfname).catch((error: unknown) => {
      if (isMissingError(error)) return undefined;
      throw error;
    });
  }

  /** The default route's gateway inside a namespace, if it has one through `ifname`. */
  async netnsGateway(netns: string, ifname: string): Promise<string | undefined> {
    const text = await this.ip(['-n', netns, '-j', '-4', 'route', 'show', 'default', 'dev', ifname]);
    const route = (parseJsonList(text, 'route show') as { gateway?: unknown }[])[0];
    return typeof route?.gateway === 'string' ? route.gateway : undefined;
  }

  /** Deletes the veth pair of a namespace (both ends go); missing is fine. */
  async detach(hostIfname: string): Promise<void> {
    await this.ignoreMissing(['link', 'del', hostIfname]);
  }

  /** True when the host end of an attachment still exists (for resuming after a restart). */
  async linkExists(ifname: string, netns?: string): Promise<boolean> {
    try {
      await this.ip([...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', ifname]);
      return true;
    } catch (error) {
      if (isMissingError(error)) return false;
      throw error;
    }
  }

  /** True when `name` follows the host-end scheme of {@link hostIfnameFor} (the bridge's prefix, `v`, hex). */
  isHostIfname(name: string): boolean {
    const prefix = this.bridge.slice(0, 7);
    return name.length === 15 && name.startsWith(`${prefix}v`) && /^[0-9a-f]+$/.test(name.slice(prefix.length + 1));
  }

  /** The veths plugged into the bridge whose names follow our host-end scheme (none when the bridge is missing). */
  async hostEndsOnBridge(): Promise<string[]> {
    let text: string;
    try {
      text = await this.ip(['-j', 'link', 'show', 'master', this.bridge, 'type', 'veth']);
    } catch (error) {
      if (isMissingError(error)) return [];
      throw error;
    }
    return parseJsonList(text, 'link show').map((l) => l.ifname).filter((n): n is string => typeof n === 'string' && this.isHostIfname(n));
  }

  /**
   * What the kernel has of a namespace's end of a veth: its MAC and IPv4 addresses (CIDR), or undefined
   * when the namespace or the interface is missing.
   */
  async netnsLinkState(netns: string, ifname: string): Promise<{ mac: string; addresses: string[] } | undefined> {
    if (!this.netnsExists(netns)) return undefined;
    let text: string;
    try {
      text = await this.ip(['-n', netns, '-j', 'addr', 'show', 'dev', ifname]);
    } catch (error) {
      if (isMissingError(error)) return undefined;
      throw error;
    }
    const link = parseJsonList(text, 'addr show')[0];
    if (!link) return undefined;
    return { mac: typeof link.address === 'string' ? link.address : '', addresses: inetAddresses(link) };
  }

  /** The host's addresses on the bridge (CIDR; none when the bridge is missing). */
  hostAddresses(): Promise<string[]> {
    return this.addressesOf(this.bridge);
  }

  /** The IPv4 addresses (CIDR) of any interface of the host; none when it does not exist. */
  async addressesOf(ifname: string): Promise<string[]> {
    let text: string;
    try {
      text = await this.ip(['-j', 'addr', 'show', 'dev', ifname]);
    } catch (error) {
      if (isMissingError(error)) return [];
      throw error;
    }
    const link = parseJsonList(text, 'addr show')[0];
    return link ? inetAddresses(link) : [];
  }

  /** Every interface on the bridge, whatever its kind (none when the bridge is missing). */
  async bridgePorts(): Promise<string[]> {
    let text: string;
    try {
      text = await this.ip(['-j', 'link', 'show', 'master', this.bridge]);
    } catch (error) {
      if (isMissingError(error)) return [];
      throw error;
    }
    return parseJsonList(text, 'link show').map((l) => l.ifname).filter((n): n is string => typeof n === 'string');
  }

  /**
   * Routes of the host's main IPv4 table into `cidr` (or inside it) that leave through another interface
   * than the bridge: a second path to the overlay's addresses, which takes traffic meant for endpoints
   * (typically the bridge of an earlier agent, still up with its address). The default route is not one.
   */
  async foreignRoutesInto(cidr: string): Promise<HostRoute[]> {
    const range = blockOfCidr(cidr);
    const text = await this.ip(['-j', '-4', 'route', 'show', 'table', 'main']);
    const out: HostRoute[] = [];
    for (const route of parseJsonList(text, 'route show') as { dst?: unknown; dev?: unknown }[]) {
      if (typeof route.dst !== 'string' || typeof route.dev !== 'string' || route.dev === this.bridge || route.dst === 'default') continue;
      let dst: Cidr;
      try {
        dst = blockOfCidr(route.dst.includes('/') ? route.dst : `${route.dst}/32`);
      } catch {
        continue; // not an IPv4 prefix we understand (a multicast or broadcast type route): not ours to judge
      }
      if (dst.prefix > 0 && overlaps(dst, range)) out.push({ dst: formatCidr(dst), dev: route.dev });
    }
    return out;
  }

  /** Deletes an interface by name (a veth, a TAP, a bridge); missing is fine. */
  async removeLink(ifname: string): Promise<void> {
    await this.ignoreMissing(['link', 'del', ifname]);
  }

  /** Gives the host an address on the bridge (CIDR). */
  async addHostAddress(address: string): Promise<void> {
    try {
      await this.ip(['addr', 'add', address, 'dev', this.bridge]);
    } catch (error) {
      if (!isExistsError(error)) throw error;
    }
  }

  /** Removes a host address from the bridge; missing is fine. */
  async removeHostAddress(address: string): Promise<void> {
    await this.ignoreMissing(['addr', 'del', address, 'dev', this.bridge]);
  }

  /**
   * Points the namespace's resolver at `nameserver` (used by `ip netns exec`, which bind-mounts
   * /etc/netns/NAME/resolv.conf). A file someone else wrote is kept aside and restored on detach.
   */
  async writeResolvConf(netns: string, nameserver: string, search: string): Promise<void> {
    validateNetnsName(netns); // a namespace path has no /etc/netns directory: its runtime writes its resolver
    const dir = join(this.configDir, netns);
    const path = join(dir, 'resolv.conf');
    await mkdir(dir, { recursive: true });
    const existing = await readFile(path, 'utf8').catch(() => undefined);
    if (existing !== undefined && !existing.startsWith(RESOLV_MARKER)) await rename(path, path + BACKUP_SUFFIX);
    const domain = search.endsWith('.') ? search.slice(0, -1) : search;
    await writeFile(path, `${RESOLV_MARKER}\nnameserver ${nameserver}\nsearch ${domain}\noptions ndots:1\n`);
  }

  /**
   * Removes our resolver file (restoring one we set aside); leaves foreign files and the directory's other
   * files alone. Returns what it did: `removed`, `restored` (the set-aside file is back) or `none`.
   */
  async removeResolvConf(netns: string): Promise<'removed' | 'restored' | 'none'> {
    if (isNetnsPath(netns)) return 'none'; // a namespace given by path never gets one
    const dir = join(this.configDir, netns);
    const path = join(dir, 'resolv.conf');
    const existing = await readFile(path, 'utf8').catch(() => undefined);
    if (existing === undefined || !existing.startsWith(RESOLV_MARKER)) return 'none';
    if (existsSync(path + BACKUP_SUFFIX)) {
      await rename(path + BACKUP_SUFFIX, path);
      return 'restored';
    }
    await rm(path, { force: true });
    await rmdir(dir).catch(() => undefined); // only succeeds when empty: we created it
    return 'removed';
  }

  /** Where the resolver file of a namespace lives. */
  resolvConfPath(netns: string): string {
    return join(this.configDir, netns, 'resolv.conf');
  }

  private async macOf(ifname: string, netns?: string): Promise<string> {
    const text = await this.ip([...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'dev', ifname]);
    const mac = parseJsonList(text, 'link show')[0]?.address;
    if (typeof mac !== 'string') throw new EndpointError('command-failed', `ip did not report a MAC for ${ifname}${netns ? ` in ${netns}` : ''}`);
    return mac;
  }

  private async ignoreMissing(args: string[]): Promise<void> {
    try {
      await this.ip(args);
    } catch (error) {
      if (!isMissingError(error)) throw error;
    }
  }
}

/** The error for a namespace that is not there, with how to make one when it is an `ip netns` name. */
export function missingNetns(netns: string): EndpointError {
  return isNetnsPath(netns)
    ? new EndpointError('not-found', `network namespace ${netns} does not exist (the container or its runtime is gone?)`)
    : new EndpointError('not-found', `network namespace "${netns}" does not exist: create it first (ip netns add ${netns})`);
}

interface IpJsonLink {
  ifname?: unknown;
  address?: unknown;
  addr_info?: unknown;
}

/** The block of `a.b.c.d/len` (a host address or a network address); an OptionsError when it is not one. */
function blockOfCidr(text: string): Cidr {
  const [host = '', prefix = ''] = text.split('/');
  if (!/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(prefix)) throw new OptionsError(`"${text}" is not an IPv4 CIDR like 10.32.0.0/12`);
  return blockOf(parseIPv4(host), Number(prefix));
}

function parseJsonList(text: string, what: string): IpJsonLink[] {
  let value: unknown;
  try {
    value = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch (cause) {
    throw new EndpointError('command-failed', `ip ${what} did not print JSON: ${text.slice(0, 80)}`, { cause });
  }
  if (!Array.isArray(value)) throw new EndpointError('command-failed', `ip ${what} did not print a JSON list`);
  return value.filter((x): x is IpJsonLink => typeof x === 'object' && x !== null);
}

function inetAddresses(link: IpJsonLink): string[] {
  if (!Array.isArray(link.addr_info)) return [];
  const out: string[] = [];
  for (const a of link.addr_info as { family?: unknown; local?: unknown; prefixlen?: unknown }[]) {
    if (a.family === 'inet' && typeof a.local === 'string' && typeof a.prefixlen === 'number') out.push(`${a.local}/${a.prefixlen}`);
  }
  return out;
}
