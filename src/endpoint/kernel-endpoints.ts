// KernelEndpoints: attach, detach, expose and hide as journaled operations, and recovery at start from the registry.
//
// Every operation follows one order: its address is allocated (IPAM has it on disk), then the operation
// is written to the registry's journal, then the kernel is changed, then the result is committed (the
// journal entry goes, the endpoint or address is recorded). A failure at any step undoes the steps
// before it; a crash leaves the journal entry, and `recover()` at the next start rolls it forward when
// the kernel has all of it, or back otherwise, and removes what no record explains.
import { EndpointError, StateFileError, WeaveError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Ipam } from '../ipam/ipam.js';
import type { Dns } from '../dns/dns.js';
import { normaliseName } from '../dns/records.js';
import { missingNetns, type KernelNetwork, type NetnsLink } from './kernel-network.js';
import { isNetnsPath } from './ip-command.js';
import type { ContainerCheck, EndpointInfo } from './memory-endpoint.js';
import type { EndpointRegistry, EndpointState, PendingOperation, PersistedNetnsEndpoint } from './registry.js';

/** The IPAM/DNS owner id of the host's own overlay address (Weave's). */
export const EXPOSE_ID = 'weave:expose';

/** What a kernel attach asks for. */
export interface KernelAttachRequest {
  /** An `ip netns` name or the path of a namespace file. */
  netns: string;
  /**
   * A container runtime's id for the container (CNI): the endpoint is keyed by it, gets a default route
   * through the host's overlay address, and attaching it again to the same namespace returns it as it is.
   */
  container?: string | undefined;
  /** The DNS name. */
  name: string;
  /** Interface name inside the namespace (default `ethwe`). */
  ifname?: string | undefined;
  ip?: string | undefined;
  subnet?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** What the kernel endpoints need from the overlay. */
export interface KernelEndpointsOptions {
  kernel: KernelNetwork;
  /** The registry file; without one (no data dir) nothing is journaled or resumed. */
  registry: EndpointRegistry | undefined;
  ipam: Ipam | undefined;
  dns: Dns | undefined;
  /** IP MTU reported for endpoints. */
  mtu: number;
  /** The port the DNS server uses on the exposed address. */
  dnsPort: number;
  /** The IPAM range (CIDR), checked for other routes into it when the bridge is set up; none without IPAM. */
  range?: string | undefined;
  /** An address for `id`: the given `ip` (claimed) or an allocation; on disk when it resolves. */
  addressFor: (id: string, options: { ip?: string | undefined; subnet?: string | undefined; signal?: AbortSignal | undefined }) => Promise<string>;
  /** Creates the bridge and the TAP on first use. */
  ensureKernel: () => Promise<void>;
  logger: Logger;
  /** Reports something an operator should know (log and `warning` event). */
  warn: (message: string) => void;
}

interface KernelState {
  readonly endpoints: ReadonlyMap<string, EndpointInfo>;
  readonly exposed: string | undefined;
  readonly pending: readonly PendingOperation[];
}

/** The kernel endpoints of one overlay and the host's exposed address. */
export class KernelEndpoints {
  private state: KernelState = { endpoints: new Map(), exposed: undefined, pending: [] };
  /** What is wrong with the host's network for the overlay, as last inspected (see {@link hostWarnings}). */
  private hostProblems: string[] = [];
  /** Whether the host was inspected since the bridge was set up. */
  private inspected = false;
  /** Serialises operations so journal writes and ip commands never interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: KernelEndpointsOptions) {}

  /** The committed endpoints. */
  list(): EndpointInfo[] {
    return [...this.state.endpoints.values()].map((info) => this.decorate(info));
  }

  /** True when the `ip netns` namespace or namespace path `netns` is attached (committed). */
  has(netns: string): boolean {
    return this.state.endpoints.has(netnsId(netns));
  }

  /** The endpoint of a container (committed), if it is attached. */
  container(container: string): EndpointInfo | undefined {
    const info = this.state.endpoints.get(containerId(container));
    return info && this.decorate(info);
  }

  /**
   * Problems of the host's network found when the bridge was set up, the host exposed or the agent
   * restarted: another route into the overlay's range (a leftover bridge of an earlier agent, say), or
   * addresses on the bridge this agent did not give it. Shown in `status().warnings`.
   */
  hostWarnings(): string[] {
    return [...this.hostProblems];
  }

  /** The host's overlay address (CIDR), once exposed. */
  get exposed(): string | undefined {
    return this.state.exposed;
  }

  /** Attaches a namespace; all or nothing. */
  attach(request: KernelAttachRequest): Promise<EndpointInfo> {
    return this.serialised(() => this.doAttach(request));
  }

  /** Detaches a namespace; returns what was detached, or undefined when it was not attached. */
  detach(netns: string): Promise<EndpointInfo | undefined> {
    return this.serialised(() => this.doDetach(netnsId(netns)));
  }

  /** Detaches a container's endpoint; returns what was detached, or undefined when it was not attached. */
  detachContainer(container: string): Promise<EndpointInfo | undefined> {
    return this.serialised(() => this.doDetach(containerId(container)));
  }

  /**
   * Compares a container's endpoint with what the kernel has now: the namespace, the interface with its
   * MAC and address, the default route, the host end. Undefined when the container is not attached.
   */
  check(container: string): Promise<ContainerCheck | undefined> {
    return this.serialised(() => this.doCheck(container));
  }

  /** Gives the host an overlay address on the bridge (idempotent); returns it. */
  expose(options: { ip?: string | undefined; signal?: AbortSignal | undefined }): Promise<string> {
    return this.serialised(() => this.doExpose(options));
  }

  /** Removes the host's overlay address. */
  hide(): Promise<void> {
    return this.serialised(() => this.doHide());
  }

  // ---- operations ----

  private async doAttach(request: KernelAttachRequest): Promise<EndpointInfo> {
    const { netns, name, container } = request;
    const { kernel, dns } = this.o;
    const id = endpointId(netns, container);
    const ifname = request.ifname ?? 'ethwe';
    const what = container === undefined ? `"${netns}"` : `container ${container}`;
    const existing = this.state.endpoints.get(id);
    if (existing) {
      // A runtime may repeat an ADD (after a timeout, say): the same container in the same place is that.
      if (container !== undefined && existing.netns === netns && existing.ifname === ifname) return this.decorate(existing);
      if (container !== undefined && !(await this.stillThere(existing))) {
        // Its namespace died without a DEL reaching us (the agent was down): free it, then attach anew.
        this.o.warn(`container ${container} is attached again (${netns}); its earlier namespace ${existing.netns ?? '?'} is gone: ${existing.address} released`);
        await this.doDetach(id);
      } else {
        throw new EndpointError('already-exists', `${container === undefined ? `namespace ${what}` : `${what} (${existing.netns}, ${existing.ifname})`} is already attached (detach it first)`);
      }
    }
    if (!kernel.netnsExists(netns)) throw missingNetns(netns);
    await this.o.ensureKernel();
    if (!this.inspected) await this.inspectHost();
    const hostIfname = kernel.hostIfnameFor(container === undefined ? netns : id);
    // A container's default route goes through the host's overlay address (the bridge), as Weave's CNI plugin did.
    const gateway = container === undefined ? undefined : hostPart(await this.doExpose({}));
    const address = await this.o.addressFor(id, request).catch((error: unknown) => {
      throw refused(`attach of ${what}`, error);
    });
    const intent: PendingOperation = { op: 'attach', netns, ...(container === undefined ? {} : { container }), name, ifname, hostIfname, address };
    try {
      await this.commit({ pending: [...this.state.pending, intent] });
    } catch (error) {
      await this.release(id);
      throw undone(`attach of ${what}`, error);
    }
    let link: NetnsLink | undefined;
    try {
      link = await kernel.attach(netns, ifname, address, { hostIfname, gateway });
      if (dns) {
        dns.add(name, hostPart(address), { id });
        // Names resolve inside the namespace through the host's overlay address, where the DNS server listens.
        const exposed = await this.doExpose({});
        // A namespace given by path has no /etc/netns directory: its runtime writes the resolver it reports.
        if (!isNetnsPath(netns)) await kernel.writeResolvConf(netns, hostPart(exposed), dns.domain);
      }
      const info = this.info({ netns, ...(container === undefined ? {} : { container }), name, ifname, hostIfname, address, mac: link.mac }, link.hostMac);
      await this.commit({ endpoints: with_(this.state.endpoints, id, info), pending: without(this.state.pending, intent) });
      this.o.logger.info({ endpoint: name, netns, ...(container === undefined ? {} : { container }), address, mac: link.mac }, 'endpoint attached');
      return this.decorate(info);
    } catch (error) {
      // Undo in reverse order. A veth that cannot be removed keeps its address allocated and the journal
      // entry, so the address is never handed out while it is in use; the next start finishes the undo.
      // (A veth that already existed before this attach is not ours to remove.)
      const preexisting = link === undefined && error instanceof EndpointError && error.code === 'already-exists';
      const removed = preexisting || (await this.quietly(`remove veth ${hostIfname}`, () => kernel.detach(hostIfname)));
      await this.removeResolver(netns);
      dns?.remove({ id });
      if (removed) {
        await this.release(id);
        await this.drop(intent);
      }
      throw undone(`attach of ${what}`, error);
    }
  }

  private async doDetach(id: string): Promise<EndpointInfo | undefined> {
    const info = this.state.endpoints.get(id);
    if (!info) return undefined;
    const { kernel } = this.o;
    const netns = info.netns ?? '';
    const hostIfname = info.hostIfname ?? kernel.hostIfnameFor(netns);
    const container = info.container === undefined ? {} : { container: info.container };
    const intent: PendingOperation = { op: 'detach', netns, ...container, name: info.name, ifname: info.ifname ?? 'ethwe', hostIfname, address: info.address };
    try {
      await this.commit({ endpoints: without_(this.state.endpoints, id), pending: [...this.state.pending, intent] });
    } catch (error) {
      throw refused(`detach of ${info.container === undefined ? `"${netns}"` : `container ${info.container}`}`, error);
    }
    // From here on the endpoint is gone; a crash before the end is finished by the next start.
    try {
      await kernel.detach(hostIfname);
    } catch (error) {
      // The kernel refused: the endpoint stays attached.
      await this.commit({ endpoints: with_(this.state.endpoints, id, info), pending: without(this.state.pending, intent) }).catch(() => undefined);
      throw error;
    }
    await this.removeResolver(netns);
    this.o.dns?.remove({ id: info.id });
    await this.release(info.id);
    await this.drop(intent);
    this.o.logger.info({ endpoint: info.name, netns, ...container }, 'endpoint detached');
    return this.decorate(info);
  }

  private async doCheck(container: string): Promise<ContainerCheck | undefined> {
    const stored = this.state.endpoints.get(containerId(container));
    if (!stored) return undefined;
    const endpoint = this.decorate(stored);
    const { kernel } = this.o;
    const netns = endpoint.netns ?? '';
    const ifname = endpoint.ifname ?? 'ethwe';
    const problems: string[] = [];
    const live = await kernel.netnsLinkState(netns, ifname);
    if (!kernel.netnsExists(netns)) problems.push(`namespace ${netns} is gone`);
    else if (!live) problems.push(`interface ${ifname} is missing in ${netns}`);
    else {
      if (live.mac !== endpoint.mac) problems.push(`${ifname} has MAC ${live.mac}, not ${endpoint.mac}`);
      if (!live.addresses.includes(endpoint.address)) problems.push(`${ifname} has ${live.addresses.join(', ') || 'no address'}, not ${endpoint.address}`);
      const gateway = await kernel.netnsGateway(netns, ifname);
      if (gateway !== endpoint.gateway) problems.push(`the default route goes through ${gateway ?? 'nothing'}, not ${endpoint.gateway ?? 'nothing'}`);
    }
    if (!(await kernel.linkExists(endpoint.hostIfname ?? ''))) problems.push(`the host end ${endpoint.hostIfname ?? '?'} is missing`);
    return { endpoint, problems };
  }

  private async doExpose(options: { ip?: string | undefined; signal?: AbortSignal | undefined }): Promise<string> {
    if (this.state.exposed) return this.state.exposed;
    const { kernel } = this.o;
    await this.o.ensureKernel();
    const address = await this.o.addressFor(EXPOSE_ID, options).catch((error: unknown) => {
      throw refused('expose', error);
    });
    const intent: PendingOperation = { op: 'expose', address };
    try {
      await this.commit({ pending: [...this.state.pending, intent] });
    } catch (error) {
      await this.release(EXPOSE_ID);
      throw undone('expose', error);
    }
    let added = false;
    let serving = false;
    try {
      await kernel.addHostAddress(address);
      added = true;
      serving = await this.serveDns(address);
      await this.commit({ exposed: address, pending: without(this.state.pending, intent) });
      this.o.logger.info({ address }, 'host exposed on the overlay');
      await this.inspectHost();
      return address;
    } catch (error) {
      if (serving) await this.quietly('stop the DNS server on the exposed address', async () => this.o.dns?.unserve(hostPart(address)));
      // An address that stays on the bridge stays allocated, and its journal entry stays for the next start.
      const removed = !added || (await this.quietly(`remove ${address} from the bridge`, () => kernel.removeHostAddress(address)));
      if (removed) {
        await this.release(EXPOSE_ID);
        await this.drop(intent);
      }
      throw undone('expose', error);
    }
  }

  private async doHide(): Promise<void> {
    const address = this.state.exposed;
    if (!address) return;
    const containers = [...this.state.endpoints.values()].filter((e) => e.container !== undefined).map((e) => e.container);
    if (containers.length > 0) {
      // Their default route goes through this address: removing it would cut them off without a word.
      throw new EndpointError('address-in-use', `the host's overlay address ${address} is the gateway of container${containers.length > 1 ? 's' : ''} ${containers.join(', ')}: detach ${containers.length > 1 ? 'them' : 'it'} first`);
    }
    const intent: PendingOperation = { op: 'hide', address };
    try {
      await this.commit({ exposed: undefined, pending: [...this.state.pending, intent] });
    } catch (error) {
      throw refused('hide', error);
    }
    try {
      await this.o.kernel.removeHostAddress(address);
    } catch (error) {
      // The kernel refused: the host stays exposed.
      await this.commit({ exposed: address, pending: without(this.state.pending, intent) }).catch(() => undefined);
      throw error;
    }
    await this.o.dns?.unserve(hostPart(address));
    await this.release(EXPOSE_ID);
    await this.drop(intent);
    await this.inspectHost();
  }

  // ---- recovery ----

  /**
   * Brings the kernel, IPAM and the registry back into agreement after the last run, however it ended:
   * committed endpoints are resumed (or released when their namespace or veth is gone), journal entries
   * are rolled forward when the kernel has all of the operation and back otherwise, veths on the bridge
   * that no record explains are removed, and allocations of kernel endpoints that do not exist are
   * released. The result is written back, so a data dir that cannot be written fails the start here.
   */
  async recover(): Promise<void> {
    const registry = this.o.registry;
    if (!registry) return;
    const { state: saved, exists } = await registry.load();
    const hasKernelState = saved.endpoints.length > 0 || saved.pending.length > 0 || saved.exposed !== undefined;
    if (hasKernelState) await this.o.ensureKernel();
    const previousBridge = hasKernelState && saved.bridge !== undefined && saved.bridge !== this.o.kernel.bridge ? saved.bridge : undefined;
    const endpoints = new Map<string, EndpointInfo>();
    for (const e of saved.endpoints) {
      const info = await this.resume(e);
      if (info) endpoints.set(info.id, info);
    }
    let exposed = saved.exposed;
    if (exposed) await this.resumeExposed(exposed);
    for (const op of saved.pending) {
      if (op.op === 'expose' || op.op === 'hide') exposed = await this.finishExposure(op, exposed);
    }
    for (const op of saved.pending) {
      if (op.op === 'attach' || op.op === 'detach') await this.finishAttachment(op, endpoints, exposed);
    }
    await this.removeOrphanVeths(endpoints, hasKernelState);
    if (previousBridge) await this.leaveBridge(previousBridge, saved, endpoints);
    await this.releaseOrphanAllocations(endpoints, exposed);
    const recovered: KernelState = { endpoints, exposed, pending: [] };
    if (exists || endpoints.size > 0 || exposed) await registry.save(toFileState(recovered, this.o.kernel.bridge));
    this.state = recovered;
    // Also without endpoints: a leftover bridge of an earlier agent breaks the first attach, so say so at start.
    await this.inspectHost();
  }

  /**
   * The last run used another bridge: its endpoints are on ours now (resume moved their veths), so our
   * addresses come off the old bridge, which goes when nothing else is left on it. Left as it was, it
   * would keep a second route into the overlay's range.
   */
  private async leaveBridge(old: string, saved: EndpointState, endpoints: ReadonlyMap<string, EndpointInfo>): Promise<void> {
    const previous = this.o.kernel.withBridge(old);
    const ours = new Set([saved.exposed, ...saved.pending.map((op) => op.address)].filter((a): a is string => a !== undefined));
    const known = new Set([...endpoints.values()].map((e) => e.hostIfname));
    const done: string[] = [];
    for (const address of await previous.hostAddresses()) {
      if (!ours.has(address)) continue;
      await previous.removeHostAddress(address);
      done.push(`removed ${address} from it`);
    }
    for (const port of await previous.hostEndsOnBridge()) {
      if (known.has(port)) continue;
      await previous.detach(port);
      done.push(`removed veth ${port}`);
    }
    const ports = await previous.bridgePorts();
    const addresses = await previous.hostAddresses();
    const moved = `this data dir's endpoints were on bridge ${old} in the last run and are on ${this.o.kernel.bridge} now`;
    if (ports.length === 0 && addresses.length === 0 && (await previous.linkExists(old))) {
      await previous.removeBridge();
      this.o.warn(`${moved}: ${[...done, `removed bridge ${old}`].join(', ')}`);
    } else if (ports.length > 0 || addresses.length > 0) {
      const left = [...ports.map((p) => `port ${p}`), ...addresses.map((a) => `address ${a}`)].join(', ');
      this.o.warn(`${moved}${done.length > 0 ? ` (${done.join(', ')})` : ''}; ${old} still has ${left}, which this agent did not put there: remove it by hand if nothing uses it (ip link del ${old})`);
    }
  }

  /**
   * Looks for what breaks the overlay from outside: another route into its range (the bridge of an
   * earlier agent still up with its address, a static route) or addresses on our bridge that we did not
   * set. New findings are warned about; all of them show in status until the next inspection.
   */
  private async inspectHost(): Promise<void> {
    this.inspected = true;
    const { kernel } = this.o;
    const problems: string[] = [];
    try {
      const exposed = this.state.exposed;
      const ranges = [this.o.range, exposed].filter((r): r is string => r !== undefined);
      const seen = new Set<string>();
      for (const range of ranges) {
        for (const route of await kernel.foreignRoutesInto(range)) {
          const key = `${route.dst} ${route.dev}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const addresses = await kernel.addressesOf(route.dev);
          const on = addresses.length > 0 ? `, ${addresses.join(', ')} on ${route.dev}` : '';
          problems.push(
            `a second route into the overlay: ${route.dst} goes through ${route.dev}${on}, not only through bridge ${kernel.bridge}; ` +
              `traffic to overlay addresses (DNS included) may leave through ${route.dev}. If ${route.dev} was left by an earlier weave-ts agent, ` +
              `remove it (weave-ts reset --bridge ${route.dev} --data-dir THAT_AGENT'S_DIR, or ip link del ${route.dev})`,
          );
        }
      }
      for (const address of await kernel.hostAddresses()) {
        if (address === exposed || this.state.pending.some((op) => op.address === address)) continue;
        problems.push(
          `bridge ${kernel.bridge} has the address ${address}, which this agent did not give it (left by an earlier agent?): ` +
            `it may answer for an endpoint's address; remove it (ip addr del ${address} dev ${kernel.bridge})`,
        );
      }
    } catch (error) {
      this.o.logger.debug({ err: error }, 'could not inspect the host routes');
      return;
    }
    for (const problem of problems) if (!this.hostProblems.includes(problem)) this.o.warn(problem);
    this.hostProblems = problems;
  }

  private async resume(e: PersistedNetnsEndpoint): Promise<EndpointInfo | undefined> {
    const { kernel, ipam, dns } = this.o;
    const id = endpointId(e.netns, e.container);
    // The host end is the proof: it goes with the namespace (a /proc/PID path may name another process by now).
    if (!kernel.netnsExists(e.netns) || !(await kernel.linkExists(e.hostIfname))) {
      this.o.warn(`endpoint ${e.name} (${e.container ?? e.netns}) is gone since the last run: its address ${e.address} is released`);
      await this.removeResolver(e.netns);
      return undefined; // its allocation goes with the orphans
    }
    // The namespace keeps using its address whatever happens; a refused claim is reported, not fatal.
    await ipam?.claim(id, e.address).catch((error: unknown) => this.o.warn(`endpoint ${e.name} (${e.netns}) keeps ${e.address}, but IPAM refused to re-claim it: ${(error as Error).message}`));
    await kernel.attachHostEnd(e.hostIfname);
    dns?.add(e.name, hostPart(e.address), { id });
    this.o.logger.info({ endpoint: e.name, netns: e.netns, address: e.address }, 'endpoint resumed');
    return this.info(e, await kernel.hostMacOf(e.hostIfname));
  }

  private async resumeExposed(address: string): Promise<void> {
    await this.o.ipam?.claim(EXPOSE_ID, address).catch((error: unknown) => this.o.warn(`the host keeps ${address}, but IPAM refused to re-claim it: ${(error as Error).message}`));
    await this.o.kernel.addHostAddress(address);
    await this.serveDns(address);
  }

  /** An interrupted expose is kept when the bridge has the address and IPAM holds it for the host; else undone. */
  private async finishExposure(op: PendingOperation & { op: 'expose' | 'hide' }, exposed: string | undefined): Promise<string | undefined> {
    const { kernel, ipam } = this.o;
    if (op.address === exposed) return exposed; // stale entry of an operation already committed
    if (op.op === 'expose' && exposed === undefined) {
      const onBridge = (await kernel.hostAddresses()).includes(op.address);
      const allocated = !ipam || ipam.lookup(EXPOSE_ID).includes(hostPart(op.address));
      if (onBridge && allocated) {
        await this.serveDns(op.address);
        this.o.warn(`the host's overlay address ${op.address} was being set up when the last run ended: kept`);
        return op.address;
      }
    }
    await this.quietly(`remove ${op.address} from the bridge`, () => kernel.removeHostAddress(op.address));
    if (op.op === 'expose') this.o.warn(`exposing the host on ${op.address} was interrupted by the end of the last run: undone`);
    return exposed;
  }

  /** An interrupted attach is completed when the kernel has its veth with exactly its address; every other case is undone. */
  private async finishAttachment(op: PendingOperation & { op: 'attach' | 'detach' }, endpoints: Map<string, EndpointInfo>, exposed: string | undefined): Promise<void> {
    const { kernel, ipam, dns } = this.o;
    const id = endpointId(op.netns, op.container);
    if (endpoints.has(id)) return; // stale entry: the namespace is attached and committed
    const gateway = op.container !== undefined && exposed !== undefined ? hostPart(exposed) : undefined;
    if (op.op === 'attach') {
      const inside = await kernel.netnsLinkState(op.netns, op.ifname);
      const complete =
        inside !== undefined &&
        inside.addresses.length === 1 &&
        inside.addresses[0] === op.address &&
        (await kernel.linkExists(op.hostIfname)) &&
        (!ipam || ipam.lookup(id).includes(hostPart(op.address))) &&
        (!dns || exposed !== undefined) &&
        (op.container === undefined || gateway !== undefined);
      if (complete) {
        const link = await kernel.completeAttach(op.netns, op.ifname, op.hostIfname, gateway);
        if (dns && exposed) {
          dns.add(op.name, hostPart(op.address), { id });
          if (!isNetnsPath(op.netns)) await kernel.writeResolvConf(op.netns, hostPart(exposed), dns.domain);
        }
        const { op: _op, ...entry } = op;
        endpoints.set(id, this.info({ ...entry, mac: link.mac }, link.hostMac));
        this.o.warn(`attach of ${op.name} (${op.container ?? op.netns}) was interrupted by the end of the last run after its veth was set up: completed with ${op.address}`);
        return;
      }
      this.o.warn(`attach of ${op.name} (${op.container ?? op.netns}) was interrupted by the end of the last run: undone, ${op.address} released`);
    }
    await kernel.detach(op.hostIfname);
    await this.removeResolver(op.netns);
    if (op.op === 'detach') {
      await this.release(id);
      this.o.logger.info({ endpoint: op.name, netns: op.netns, address: op.address }, 'detach finished at start: address released');
    }
  }

  /** Veths on our bridge named like our host ends that belong to no endpoint: left by a run that ended mid-attach. */
  private async removeOrphanVeths(endpoints: ReadonlyMap<string, EndpointInfo>, required: boolean): Promise<void> {
    const { kernel } = this.o;
    const known = new Set([...endpoints.values()].map((e) => e.hostIfname));
    let ports: string[];
    try {
      ports = await kernel.hostEndsOnBridge();
    } catch (error) {
      if (required) throw error;
      this.o.logger.debug({ err: error }, 'no bridge ports to check');
      return;
    }
    for (const port of ports) {
      if (known.has(port)) continue;
      await kernel.detach(port);
      this.o.warn(`removed veth ${port} from bridge ${kernel.bridge}: no endpoint owns it (left by an interrupted run)`);
    }
  }

  /** Allocations of kernel endpoints and of the host that nothing uses any more. */
  private async releaseOrphanAllocations(endpoints: ReadonlyMap<string, EndpointInfo>, exposed: string | undefined): Promise<void> {
    const ipam = this.o.ipam;
    if (!ipam) return;
    for (const { id, addresses } of ipam.status().allocated) {
      let keep: string | undefined;
      if (id === EXPOSE_ID) keep = exposed;
      else if (id.startsWith('netns:') || id.startsWith('container:')) keep = endpoints.get(id)?.address;
      else continue; // not ours: an application's own id
      for (const address of addresses) {
        if (keep !== undefined && hostPart(keep) === address) continue;
        await ipam.release(id, address);
        this.o.warn(`released ${address} of ${id}: allocated by an interrupted run, no endpoint uses it`);
      }
    }
  }

  // ---- helpers ----

  private info(e: PersistedNetnsEndpoint, hostMac: string | undefined): EndpointInfo {
    const dns = this.o.dns;
    return {
      kind: 'netns',
      name: e.name,
      ...(dns ? { fqdn: normaliseName(e.name, dns.domain) } : {}),
      id: endpointId(e.netns, e.container),
      address: e.address,
      mac: e.mac,
      mtu: this.o.mtu,
      netns: e.netns,
      ...(e.container === undefined ? {} : { container: e.container }),
      ifname: e.ifname,
      hostIfname: e.hostIfname,
      ...(hostMac === undefined ? {} : { hostMac }),
    };
  }

  /** True while an endpoint's namespace and the host end of its veth exist (the host end goes with the namespace). */
  private async stillThere(info: EndpointInfo): Promise<boolean> {
    return this.o.kernel.netnsExists(info.netns ?? '') && (await this.o.kernel.linkExists(info.hostIfname ?? ''));
  }

  /** What depends on the host's overlay address now: a container's gateway, the resolver. */
  private decorate(info: EndpointInfo): EndpointInfo {
    const exposed = this.state.exposed;
    if (exposed === undefined) return info;
    const host = hostPart(exposed);
    const dns = this.o.dns;
    return {
      ...info,
      ...(info.container === undefined ? {} : { gateway: host }),
      ...(dns ? { dns: { nameserver: host, domain: dns.domain.replace(/\.$/, '') } } : {}),
    };
  }

  /** Removes our resolver file of an `ip netns` namespace (a namespace path has none); a failure is a warning. */
  private async removeResolver(netns: string): Promise<void> {
    if (isNetnsPath(netns)) return;
    await this.quietly(`remove the resolver file of ${netns}`, () => this.o.kernel.removeResolvConf(netns));
  }

  /** Writes the state with `change` applied; memory follows only once the file is written. */
  private async commit(change: Partial<KernelState>): Promise<void> {
    const next: KernelState = { ...this.state, ...change };
    await this.o.registry?.save(toFileState(next, this.o.kernel.bridge));
    this.state = next;
  }

  /** Forgets a journal entry whose operation is over; if that cannot be written, the next start finishes it again. */
  private async drop(intent: PendingOperation): Promise<void> {
    const next: KernelState = { ...this.state, pending: without(this.state.pending, intent) };
    this.state = next;
    await this.o.registry?.save(toFileState(next, this.o.kernel.bridge)).catch((error: unknown) => {
      this.o.warn(`${(error as Error).message}: the journal keeps a finished ${intent.op}, which the next start completes again`);
    });
  }

  /** Frees an id's address; a failed IPAM write is a warning (IPAM reports it) and the next start releases it. */
  private async release(id: string): Promise<void> {
    await this.quietly(`release the address of ${id}`, async () => {
      await this.o.ipam?.release(id);
    });
  }

  private async serveDns(address: string): Promise<boolean> {
    if (!this.o.dns) return false;
    await this.o.dns.serve(`${hostPart(address)}:${this.o.dnsPort}`);
    return true;
  }

  /** Runs a best-effort step; a failure is a warning. Returns whether it succeeded. */
  private async quietly(what: string, step: () => Promise<unknown>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (error) {
      this.o.warn(`could not ${what}: ${(error as Error).message}`);
      return false;
    }
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

function toFileState(s: KernelState, bridge: string): EndpointState {
  return {
    bridge,
    ...(s.exposed ? { exposed: s.exposed } : {}),
    endpoints: [...s.endpoints.values()].map((i) => ({
      netns: i.netns ?? '',
      ...(i.container === undefined ? {} : { container: i.container }),
      name: i.name,
      ifname: i.ifname ?? 'ethwe',
      hostIfname: i.hostIfname ?? '',
      address: i.address,
      mac: i.mac,
    })),
    pending: [...s.pending],
  };
}

function netnsId(netns: string): string {
  return `netns:${netns}`;
}

function containerId(container: string): string {
  return `container:${container}`;
}

/** The IPAM and DNS owner id of an endpoint, which also keys it: its container's id when it has one. */
function endpointId(netns: string, container: string | undefined): string {
  return container === undefined ? netnsId(netns) : containerId(container);
}

function hostPart(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

function with_<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): Map<K, V> {
  return new Map(map).set(key, value);
}

function without_<K, V>(map: ReadonlyMap<K, V>, key: K): Map<K, V> {
  const next = new Map(map);
  next.delete(key);
  return next;
}

function without(list: readonly PendingOperation[], item: PendingOperation): PendingOperation[] {
  return list.filter((x) => x !== item);
}

/** The error of an operation that was undone because a step failed; keeps the failing step's code. */
function undone(what: string, error: unknown): Error {
  if (error instanceof StateFileError) return new StateFileError(error.code, `${what} was undone: ${error.message}`, { cause: error });
  return error instanceof Error ? error : new WeaveError('command-failed', String(error));
}

/** The error of an operation refused before it changed anything. */
function refused(what: string, error: unknown): Error {
  if (error instanceof StateFileError) return new StateFileError(error.code, `${what} refused, nothing changed: ${error.message}`, { cause: error });
  return error instanceof Error ? error : new WeaveError('command-failed', String(error));
}
