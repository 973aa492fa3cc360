// KernelVxlan: the kernel side of the fast datapath (issue 14), driven through iproute2 (`ip`, `bridge`).
// Every fast neighbour gets a VXLAN tunnel device of its own on the overlay's bridge (a VXLAN id per pair
// of peers), so the bridge port says which peer a frame came from, and the bridge and the device learn
// from what arrives to send replies back the same way. Flooding to tunnel ports is off, and the devices
// have no default destination (only per-MAC ones), so broadcast, multicast and unknown unicast, even those
// the bridge itself originates (it floods its own to every port whatever the port's flags), never enter a
// tunnel: they keep following the mesh's broadcast trees on the sleeve, and every endpoint gets each of
// them exactly once in meshes where some links are fast and others not.
// Tunnel ports and the sleeve's TAP are isolated from each other, so a frame never passes between the two
// paths inside the kernel (the sleeve would see frames the tunnel delivered, and the reverse).
import { EndpointError, OptionsError } from '../errors.js';
import { systemNetCommand, type NetCommand } from './net-command.js';

/** Bytes and packets a device sent and received, from the kernel's counters. */
export interface VxlanCounters {
  /** Bytes received (decapsulated frames). */
  rxBytes: number;
  /** Frames received. */
  rxPackets: number;
  /** Bytes sent (frames before encapsulation). */
  txBytes: number;
  /** Frames sent. */
  txPackets: number;
}

/** One forwarding entry of a tunnel: the bridge's (MAC → the tunnel port) or the device's (MAC → peer). */
export interface TunnelEntry {
  /** The MAC, lower-case hex with colons. */
  mac: string;
  /** `bridge` for the bridge's entry, `device` for the VXLAN device's own. */
  table: 'bridge' | 'device';
  /** The device's entries: the underlay address frames for the MAC go to. */
  dst?: string;
  /** True for an entry we added (static or permanent); false for one learned from received frames. */
  static: boolean;
  /** Seconds since the bridge last forwarded a frame by this entry. */
  usedSeconds: number;
}

/** Options of the tunnels of one bridge. */
export interface KernelVxlanOptions {
  /** The overlay's bridge the tunnels join. */
  bridge: string;
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
 * The VXLAN tunnel devices of one bridge and their forwarding entries. Entries we add are static and
 * sticky (the bridge never moves them because a frame with that source arrived elsewhere, e.g. through
 * the sleeve's TAP); they go when the mesh says the MAC moved or left, or with their device.
 */
export class KernelVxlan {
  readonly bridge: string;
  readonly port: number;
  readonly mtu: number;
  private readonly run: NetCommand;

  constructor(options: KernelVxlanOptions) {
    checkDevice(options.bridge, 'bridge');
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new OptionsError(`VXLAN port ${options.port} is not an integer from 1 to 65535`);
    if (!Number.isInteger(options.mtu) || options.mtu < 68 || options.mtu > 65485) throw new OptionsError(`VXLAN device MTU ${options.mtu} is not an integer from 68 to 65485`);
    this.bridge = options.bridge;
    this.port = options.port;
    this.mtu = options.mtu;
    this.run = options.command ?? systemNetCommand;
  }

  /**
   * Creates a tunnel: a VXLAN device on the bridge, isolated from the other tunnels and the TAP, with
   * bridge learning and every kind of flooding off, and brings it up. The device itself learns where the
   * MACs it receives came from (one peer sends with this VXLAN id). A device that cannot be set up
   * completely is deleted again.
   */
  async createTunnel(device: string, vni: number): Promise<void> {
    checkDevice(device, 'VXLAN device');
    if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw new OptionsError(`VXLAN id ${vni} is not an integer from 1 to 16777215`);
    await this.run(['ip', 'link', 'add', device, 'type', 'vxlan', 'id', String(vni), 'dstport', String(this.port), 'ttl', '64']);
    try {
      // No IPv6 link-local address: the device would send its own neighbour discovery to the peer.
      await this.run(['ip', 'link', 'set', device, 'mtu', String(this.mtu), 'addrgenmode', 'none', 'master', this.bridge]);
      await this.run(['bridge', 'link', 'set', 'dev', device, 'learning', 'off', 'flood', 'off', 'mcast_flood', 'off', 'bcast_flood', 'off', 'isolated', 'on']);
      await this.run(['ip', 'link', 'set', device, 'up']);
    } catch (error) {
      // Half a device (not on the bridge, or flooding) would carry frames it must not: none at all.
      await this.destroyTunnel(device).catch(() => undefined);
      throw error;
    }
  }

  /** Lets the bridge learn (or stop learning) the MACs of frames the tunnel delivers. */
  async setLearning(device: string, on: boolean): Promise<void> {
    await this.run(['bridge', 'link', 'set', 'dev', checkDevice(device, 'VXLAN device'), 'learning', on ? 'on' : 'off']);
  }

  /** Isolates a bridge port (the sleeve's TAP) from the tunnels: no frame passes between isolated ports. */
  async isolate(port: string): Promise<void> {
    await this.run(['bridge', 'link', 'set', 'dev', checkDevice(port, 'bridge port'), 'isolated', 'on']);
  }

  /**
   * Makes `port` (the fast path's probe TAP) a port that receives only frames for `mac`: no learning, no
   * flooding to it, and a static entry for the MAC.
   */
  async plugProbe(port: string, mac: string): Promise<void> {
    checkDevice(port, 'bridge port');
    await this.run(['ip', 'link', 'set', port, 'mtu', String(this.mtu), 'master', this.bridge, 'up']);
    await this.run(['bridge', 'link', 'set', 'dev', port, 'learning', 'off', 'flood', 'off', 'mcast_flood', 'off', 'bcast_flood', 'off']);
    await this.run(['bridge', 'fdb', 'replace', checkMac(mac), 'dev', port, 'master', 'static', 'sticky']);
  }

  /**
   * Sends frames for `mac` through the tunnel `device` to the peer at `underlay`: the bridge's entry
   * (replacing one for the MAC on another port) and the device's.
   */
  async setRemote(device: string, mac: string, underlay: string): Promise<void> {
    const m = checkMac(mac);
    checkDevice(device, 'VXLAN device');
    checkIpv4(underlay);
    await this.run(['bridge', 'fdb', 'replace', m, 'dev', device, 'master', 'static', 'sticky']);
    await this.run(['bridge', 'fdb', 'replace', m, 'dev', device, 'dst', underlay, 'self', 'permanent']);
  }

  /** Removes the bridge's and the device's entries for `mac` (static or learned); entries already gone are not an error. */
  async removeRemote(device: string, mac: string): Promise<void> {
    const m = checkMac(mac);
    checkDevice(device, 'VXLAN device');
    for (const where of ['master', 'self']) {
      try {
        await this.run(['bridge', 'fdb', 'del', m, 'dev', device, where]);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
  }

  /** The bridge's and the device's entries for `device` (not its own address), sorted by MAC; none when it is gone. */
  async entries(device: string): Promise<TunnelEntry[]> {
    let text: string;
    try {
      text = await this.run(['bridge', '-j', '-s', 'fdb', 'show', 'dev', checkDevice(device, 'VXLAN device')]);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    return parseTunnelEntries(text);
  }

  /** Counters of every VXLAN device on the bridge, by device name. */
  async counters(): Promise<Map<string, VxlanCounters>> {
    try {
      return parseLinkCounters(await this.run(['ip', '-j', '-s', 'link', 'show', 'master', this.bridge, 'type', 'vxlan']));
    } catch (error) {
      if (isMissing(error)) return new Map();
      throw error;
    }
  }

  /** Names of the VXLAN devices on the bridge (a restarted agent removes those of its last run). */
  async tunnels(): Promise<string[]> {
    return [...(await this.counters()).keys()];
  }

  /** Deletes a tunnel device (and with it every entry towards it); a device already gone is not an error. */
  async destroyTunnel(device: string): Promise<void> {
    try {
      await this.run(['ip', 'link', 'del', checkDevice(device, 'VXLAN device')]);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
}

function checkDevice(name: string, what: string): string {
  if (!DEVICE.test(name)) throw new OptionsError(`${what} name ${JSON.stringify(name)}: use 1 to 15 letters, digits, "_", "." or "-"`);
  return name;
}

function checkIpv4(address: string): string {
  if (!IPV4.test(address)) throw new OptionsError(`underlay address ${JSON.stringify(address)} is not an IPv4 address`);
  return address;
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
 * Reads `bridge -j -s fdb show dev DEV`: the bridge's entries towards the port (not the port's own,
 * permanent, address) and the device's entries (those with a `dst`). Throws EndpointError('command-failed')
 * when the output is not what iproute2 prints.
 */
export function parseTunnelEntries(json: string): TunnelEntry[] {
  const out: TunnelEntry[] = [];
  for (const entry of parseJsonArray(json, 'bridge fdb show')) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { mac, state, used, dst, master } = entry as { mac?: unknown; state?: unknown; used?: unknown; dst?: unknown; master?: unknown };
    if (typeof mac !== 'string' || !MAC.test(mac) || mac === '00:00:00:00:00:00') continue;
    const usedSeconds = typeof used === 'number' && Number.isFinite(used) && used >= 0 ? used : 0;
    if (typeof dst === 'string') {
      out.push({ mac, table: 'device', dst, static: state === 'permanent' || state === 'static', usedSeconds });
    } else if (typeof master === 'string' && state !== 'permanent') {
      out.push({ mac, table: 'bridge', static: state === 'static', usedSeconds });
    }
  }
  return out.sort((a, b) => (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : a.table < b.table ? -1 : a.table > b.table ? 1 : 0));
}

/** Reads `ip -j -s link show …`: each device's byte and packet counters, by name. */
export function parseLinkCounters(json: string): Map<string, VxlanCounters> {
  const out = new Map<string, VxlanCounters>();
  for (const link of parseJsonArray(json, 'ip link show')) {
    const { ifname, stats64 } = (link ?? {}) as { ifname?: unknown; stats64?: { rx?: Record<string, unknown>; tx?: Record<string, unknown> } };
    if (typeof ifname !== 'string') throw new EndpointError('command-failed', 'ip link show: a device without a name in its output');
    const count = (side: Record<string, unknown> | undefined, key: string): number => {
      const value = side?.[key];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new EndpointError('command-failed', `ip link show: no counter ${key} for ${ifname} in its output`);
      }
      return value;
    };
    out.set(ifname, {
      rxBytes: count(stats64?.rx, 'bytes'),
      rxPackets: count(stats64?.rx, 'packets'),
      txBytes: count(stats64?.tx, 'bytes'),
      txPackets: count(stats64?.tx, 'packets'),
    });
  }
  return out;
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
