// What the CLI does from a data dir with no agent running: `reset` (remove what the agent left on the host
// and on disk) and `detach` (take a namespace off, leaving the address release to the next start).
import { isTunnelDeviceName } from '../ethernet/fast-path.js';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EndpointError } from '../errors.js';
import { KernelNetwork } from '../endpoint/kernel-network.js';
import { ENDPOINTS_FILE, EndpointRegistry, type EndpointState, type PendingOperation } from '../endpoint/registry.js';
import { IPAM_FILE } from '../ipam/persistence.js';
import { TOKEN_FILE } from './api-protocol.js';
import { AGENT_FILE } from './agent-file.js';

/** The bridge when neither the data dir nor `--bridge` names one (launch's default). */
const DEFAULT_BRIDGE = 'weave';
/** The MTU does not matter for removing things; KernelNetwork wants one. */
const ANY_MTU = 1376;

/** Where a reset or an offline detach works. */
export interface OfflineOptions {
  dataDir: string;
  /** A bridge to remove as well as the recorded one (`--bridge`). */
  bridge?: string;
  /** The host's network (tests pass a fake `ip`); default: the real one for `bridge`. */
  kernel?: (bridge: string) => KernelNetwork;
}

/** What a reset did, line by line, and what it could not do. */
export interface ResetReport {
  removed: string[];
  kept: string[];
  failed: string[];
}

const kernelFor = (options: OfflineOptions) => options.kernel ?? ((bridge: string) => new KernelNetwork({ bridge, mtu: ANY_MTU }));

/**
 * Removes what the agent of `dataDir` left: veths of its namespaces and their resolver files, the bridge
 * with its TAP, addresses and routes, and the state files; keeps the peer name. Call only with no agent
 * running. A damaged `endpoints.json` does not stop it: the bridge's veths named like ours still go.
 */
export async function resetDataDir(options: OfflineOptions): Promise<ResetReport> {
  const report: ResetReport = { removed: [], kept: [], failed: [] };
  const attempt = async (what: string, action: () => Promise<void>): Promise<void> => {
    try {
      await action();
    } catch (error) {
      report.failed.push(`${what}: ${(error as Error).message}`);
    }
  };
  const registry = new EndpointRegistry(join(options.dataDir, ENDPOINTS_FILE));
  let state: EndpointState = { endpoints: [], pending: [] };
  await attempt(`read ${registry.path}`, async () => {
    state = (await registry.load()).state;
  });
  const bridges = [...new Set([state.bridge, options.bridge].filter((b): b is string => b !== undefined))];
  if (bridges.length === 0) bridges.push(DEFAULT_BRIDGE);
  const network = kernelFor(options);
  const main = network(bridges[0] as string);
  const namespaces = [...state.endpoints, ...state.pending.filter((op): op is PendingOperation & { op: 'attach' | 'detach' } => op.op === 'attach' || op.op === 'detach')];
  const seen = new Set<string>();
  for (const e of namespaces) {
    if (seen.has(e.netns)) continue;
    seen.add(e.netns);
    await attempt(`remove veth ${e.hostIfname} of namespace ${e.netns}`, async () => {
      if (!(await main.linkExists(e.hostIfname))) return;
      await main.detach(e.hostIfname);
      report.removed.push(`veth ${e.hostIfname} of namespace ${e.netns} (${e.address})`);
    });
    await attempt(`remove the resolver file of ${e.netns}`, async () => {
      const done = await main.removeResolvConf(e.netns);
      if (done === 'removed') report.removed.push(`resolver file ${main.resolvConfPath(e.netns)}`);
      if (done === 'restored') report.removed.push(`our resolver file ${main.resolvConfPath(e.netns)} (the one it replaced is back)`);
    });
  }
  for (const bridge of bridges) {
    const kernel = network(bridge);
    await attempt(`remove bridge ${bridge}`, async () => {
      if (!(await kernel.linkExists(bridge))) return;
      for (const veth of await kernel.hostEndsOnBridge()) {
        await kernel.detach(veth);
        report.removed.push(`veth ${veth} (on ${bridge}, not in ${ENDPOINTS_FILE})`);
      }
      for (const port of await kernel.bridgePorts()) {
        if (!isTunnelDeviceName(bridge, port) && port !== `${bridge}-fdp`) continue;
        await kernel.removeLink(port);
        report.removed.push(`fast datapath ${port === `${bridge}-fdp` ? 'probe TAP' : 'VXLAN tunnel'} ${port} (on ${bridge})`);
      }
      const addresses = await kernel.addressesOf(bridge);
      const others = (await kernel.bridgePorts()).filter((p) => p !== `${bridge}-tap`);
      await kernel.removeLink(`${bridge}-tap`);
      await kernel.removeBridge();
      const what = addresses.length > 0 ? ` with ${addresses.join(', ')} (the exposed address) and its routes` : '';
      report.removed.push(`bridge ${bridge}${what} and its TAP${others.length > 0 ? ` (unplugged: ${others.join(', ')})` : ''}`);
    });
  }
  for (const file of [ENDPOINTS_FILE, IPAM_FILE, TOKEN_FILE, AGENT_FILE]) {
    for (const path of [join(options.dataDir, file), join(options.dataDir, `${file}.tmp`)]) {
      if (!existsSync(path)) continue;
      await attempt(`remove ${path}`, async () => {
        await rm(path, { force: true });
        report.removed.push(path);
      });
    }
  }
  const peerName = join(options.dataDir, 'peer-name');
  if (existsSync(peerName)) report.kept.push(`${peerName} (this peer's name: the mesh knows its address ranges by it; delete it by hand for a new identity)`);
  return report;
}

/** What an offline detach did. */
export interface OfflineDetach {
  netns: string;
  address: string;
  hostIfname: string;
  resolver: 'removed' | 'restored' | 'none';
}

/**
 * Detaches `netns` with no agent running: the endpoint moves to the journal as a detach in flight (which
 * the next start finishes by releasing its address), then its veth and resolver file go. A namespace the
 * data dir does not list is an EndpointError('not-found') saying what is listed.
 */
export async function detachOffline(netns: string, options: OfflineOptions): Promise<OfflineDetach> {
  const registry = new EndpointRegistry(join(options.dataDir, ENDPOINTS_FILE));
  const { state, exists } = await registry.load();
  const endpoint = state.endpoints.find((e) => e.netns === netns);
  if (!endpoint) {
    const listed = state.endpoints.map((e) => e.netns);
    throw new EndpointError(
      'not-found',
      !exists || listed.length === 0
        ? `no agent runs, and nothing is attached according to ${registry.path}`
        : `no agent runs, and namespace "${netns}" is not attached according to ${registry.path} (attached: ${listed.join(', ')})`,
    );
  }
  const container = endpoint.container === undefined ? {} : { container: endpoint.container };
  const intent: PendingOperation = { op: 'detach', netns, ...container, name: endpoint.name, ifname: endpoint.ifname, hostIfname: endpoint.hostIfname, address: endpoint.address };
  await registry.save({ ...state, endpoints: state.endpoints.filter((e) => e !== endpoint), pending: [...state.pending, intent] });
  const kernel = kernelFor(options)(state.bridge ?? options.bridge ?? DEFAULT_BRIDGE);
  await kernel.detach(endpoint.hostIfname);
  const resolver = await kernel.removeResolvConf(netns);
  return { netns, address: endpoint.address, hostIfname: endpoint.hostIfname, resolver };
}
