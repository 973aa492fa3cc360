// KernelVxlan: the kernel side of the fast datapath (issue 14): a VXLAN device on the overlay's bridge and
// its forwarding entries (a remote endpoint's MAC → the underlay address of the peer it lives on), driven
// through iproute2 (`ip`, `bridge`). Only known unicast goes through it: flooding to its bridge port is off,
// so broadcast, multicast and unknown unicast keep following the mesh's broadcast trees on the sleeve, and
// every endpoint still gets each of them exactly once in a mesh where some links are fast and others not.
import { EndpointError, OptionsError } from '../errors.js';
import { systemNetCommand, type NetCommand } from './net-command.js';

/** Bytes and packets a device sent and received, from the kernel's counters. */
export interface VxlanCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

/** Options of the VXLAN device. */
export interface KernelVxlanOptions {
  /** Device name (at most 15 characters, as Linux allows). */
  device: string;
  /** The overlay's bridge the device joins. */
  bridge: string;
  /** VXLAN network identifier, 1 to 16777215, the same on every peer of the network. */
  vni: number;
  /** UDP port of the VXLAN traffic, the same on every peer (Weave Net: the control port + 1). */
  port: number;
  /** Device MTU: the endpoint MTU (VXLAN adds 50 bytes on an IPv4 underlay). */
  mtu: number;
  /** Runs `ip` and `bridge` (default: the real binaries); tests record or wrap it (`ip -n NS`). */
  command?: NetCommand | undefined;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DEVICE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * A VXLAN device on the overlay's bridge and its unicast forwarding entries. Every entry is static: the
 * device learns nothing from what it receives, so a MAC that moved or a peer that went away is removed by
 * the mesh, not aged out by the kernel.
 */
export class KernelVxlan {
  private readonly options: KernelVxlanOptions;
  private readonly run: NetCommand;

  constructor(options: KernelVxlanOptions) {
    if (!DEVICE.test(options.device)) throw new OptionsError(`VXLAN device name ${JSON.stringify(options.device)}: use 1 to 15 letters, digits, "_", "." or "-"`);
    if (!DEVICE.test(options.bridge)) throw new OptionsError(`bridge name ${JSON.stringify(options.bridge)}: use 1 to 15 letters, digits, "_", "." or "-"`);
    if (!Number.isInteger(options.vni) || options.vni < 1 || options.vni > 0xffffff) throw new OptionsError(`VXLAN id ${options.vni} is not an integer from 1 to 16777215`);
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new OptionsError(`VXLAN port ${options.port} is not an integer from 1 to 65535`);
    if (!Number.isInteger(options.mtu) || options.mtu < 68 || options.mtu > 65485) throw new OptionsError(`VXLAN device MTU ${options.mtu} is not an integer from 68 to 65485`);
    this.options = options;
    this.run = options.command ?? systemNetCommand;
  }

  /** Creates the device on the bridge, with learning and every kind of flooding off, and brings it up. */
  async create(): Promise<void> {
    const { device, bridge, vni, port, mtu } = this.options;
    await this.run(['ip', 'link', 'add', device, 'type', 'vxlan', 'id', String(vni), 'dstport', String(port), 'nolearning', 'ttl', '64']);
    try {
      await this.run(['ip', 'link', 'set', device, 'mtu', String(mtu), 'master', bridge]);
      await this.run(['bridge', 'link', 'set', 'dev', device, 'learning', 'off', 'flood', 'off', 'mcast_flood', 'off', 'bcast_flood', 'off']);
      await this.run(['ip', 'link', 'set', device, 'up']);
    } catch (error) {
      // Half a device (not on the bridge, or flooding) would carry frames it must not: none at all.
      await this.destroy().catch(() => undefined);
      throw error;
    }
  }

  /** Sends frames for `mac` to the peer at underlay address `underlay` (replacing an entry for that MAC). */
  async setRemote(mac: string, underlay: string): Promise<void> {
    const m = checkMac(mac);
    if (!IPV4.test(underlay)) throw new OptionsError(`underlay address ${JSON.stringify(underlay)} is not an IPv4 address`);
    const device = this.options.device;
    // The bridge's entry sends the MAC to the VXLAN port; the device's own entry says where to tunnel it.
    await this.run(['bridge', 'fdb', 'replace', m, 'dev', device, 'master', 'static']);
    await this.run(['bridge', 'fdb', 'replace', m, 'dev', device, 'dst', underlay, 'self', 'permanent']);
  }

  /** Stops sending frames for `mac` through the device; an entry already gone is not an error. */
  async removeRemote(mac: string): Promise<void> {
    const m = checkMac(mac);
    const device = this.options.device;
    for (const where of ['master', 'self']) {
      try {
        await this.run(['bridge', 'fdb', 'del', m, 'dev', device, where]);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
  }

  /** The device's tunnel entries: MAC → underlay address, sorted by MAC. */
  async remotes(): Promise<Map<string, string>> {
    return parseFdbRemotes(await this.run(['bridge', '-j', 'fdb', 'show', 'dev', this.options.device]));
  }

  /** The device's counters. */
  async counters(): Promise<VxlanCounters> {
    return parseLinkCounters(await this.run(['ip', '-j', '-s', 'link', 'show', 'dev', this.options.device]));
  }

  /** Deletes the device (and with it every entry); a device already gone is not an error. */
  async destroy(): Promise<void> {
    try {
      await this.run(['ip', 'link', 'del', this.options.device]);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
}

function checkMac(mac: string): string {
  const m = mac.toLowerCase();
  if (!MAC.test(m)) throw new OptionsError(`${JSON.stringify(mac)} is not a MAC address (six hex pairs separated by ":")`);
  return m;
}

function isMissing(error: unknown): boolean {
  return error instanceof EndpointError && /Cannot find device|does not exist|No such device|No such file or directory|not found/i.test(error.message);
}

/**
 * Reads `bridge -j fdb show dev DEV`: the tunnel entries (those with a `dst`), MAC → underlay address.
 * Throws EndpointError('command-failed') when the output is not what iproute2 prints.
 */
export function parseFdbRemotes(json: string): Map<string, string> {
  const entries = parseJsonArray(json, 'bridge fdb show');
  const remotes: [string, string][] = [];
  for (const entry of entries) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { mac, dst } = entry as { mac?: unknown; dst?: unknown };
    if (typeof mac === 'string' && typeof dst === 'string' && MAC.test(mac) && mac !== '00:00:00:00:00:00') remotes.push([mac, dst]);
  }
  return new Map(remotes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Reads `ip -j -s link show dev DEV`: the device's byte and packet counters. */
export function parseLinkCounters(json: string): VxlanCounters {
  const [link] = parseJsonArray(json, 'ip link show');
  const stats = (link as { stats64?: { rx?: Record<string, unknown>; tx?: Record<string, unknown> } } | undefined)?.stats64;
  const count = (side: Record<string, unknown> | undefined, key: string): number => {
    const value = side?.[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new EndpointError('command-failed', `ip link show: no counter ${key} in its output`);
    }
    return value;
  };
  return {
    rxBytes: count(stats?.rx, 'bytes'),
    rxPackets: count(stats?.rx, 'packets'),
    txBytes: count(stats?.tx, 'bytes'),
    txPackets: count(stats?.tx, 'packets'),
  };
}

function parseJsonArray(json: string, what: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.trim() === '' ? '[]' : json);
  } catch (error) {
    throw new EndpointError('command-failed', `${what}: output is not JSON`, { cause: error });
  }
  if (!Array.isArray(parsed)) throw new EndpointError('command-failed', `${what}: output is not a JSON array`);
  return parsed;
}
