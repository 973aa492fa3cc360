// A fault-injectable world for persistence and kernel-endpoint tests: an in-memory file system and a model of the
// kernel objects `ip` manages, sharing one step counter, so a test can fail (ENOSPC, EIO) or crash (every later
// step hangs forever, as if the process were killed) at any numbered step of an operation.
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EndpointError } from '../../src/errors.js';
import type { FileSystem } from '../../src/persist/file-system.js';
import type { IpCommand } from '../../src/endpoint/ip-command.js';
import type { Nic } from '../../src/nic/nic.js';
import { MemoryNic } from '../../src/nic/memory-nic.js';

/** Thrown (as a rejection) by a step that fails with an errno. */
function errno(code: string, what: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: injected fault, ${what}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

/** Numbered steps with at most one planned fault; a crash freezes the world (every step from then on hangs). */
export class FaultPlan {
  /** Steps taken so far. */
  steps = 0;
  /** What each step was, in order. */
  readonly log: string[] = [];
  crashed = false;
  /** Bumped when a process is killed: its views of the world hang from then on, as a dead process does nothing. */
  epoch = 0;
  /** Every file write fails with ENOSPC (renames and removals still work), like a full disk. */
  diskFull = false;
  private fault: { at: number; kind: 'error'; code: string } | { at: number; kind: 'crash' } | undefined;
  private failPattern: { pattern: RegExp; code: string } | undefined;

  /** Fails step `at` (1-based) with `code`. */
  failAt(at: number, code = 'EIO'): void {
    this.fault = { at, kind: 'error', code };
  }

  /** Fails the first step whose description matches `pattern`. */
  failOn(pattern: RegExp, code = 'EIO'): void {
    this.failPattern = { pattern, code };
  }

  /** Step `at` never completes, nor does any later one. */
  crashAt(at: number): void {
    this.fault = { at, kind: 'crash' };
  }

  /** Back to normal: no planned fault, not crashed, disk not full. */
  reset(): void {
    this.fault = undefined;
    this.failPattern = undefined;
    this.crashed = false;
    this.diskFull = false;
  }

  /**
   * Takes a step: resolves with undefined to go on, or with the error to fail with. A crashed world never
   * resolves. `partial` runs first when the step fails or crashes (a half-written file).
   */
  async step(what: string, partial?: () => void): Promise<NodeJS.ErrnoException | undefined> {
    if (this.crashed) return hang();
    this.steps += 1;
    this.log.push(what);
    if (this.failPattern?.pattern.test(what)) {
      const { code } = this.failPattern;
      this.failPattern = undefined;
      partial?.();
      return errno(code, what);
    }
    const fault = this.fault?.at === this.steps ? this.fault : undefined;
    if (fault?.kind === 'crash') {
      this.crashed = true;
      partial?.();
      return hang();
    }
    if (fault?.kind === 'error') {
      partial?.();
      return errno(fault.code, what);
    }
    return undefined;
  }
}

function hang(): Promise<never> {
  return new Promise<never>(() => undefined);
}

/** Files in memory; every mutation is a step of the plan. Contents survive a crash, as the page cache does. */
export class MemoryFileSystem implements FileSystem {
  /** This file system as one process sees it: every call hangs once that process is killed (the plan's epoch moves on). */
  view(): FileSystem {
    const epoch = this.plan.epoch;
    const alive = <T>(call: () => Promise<T>): Promise<T> => (this.plan.epoch === epoch ? call() : hang());
    return {
      readFile: (path) => alive(() => this.readFile(path)),
      writeFile: (path, data) => alive(() => this.writeFile(path, data)),
      rename: (from, to) => alive(() => this.rename(from, to)),
      syncDirectory: (path) => alive(() => this.syncDirectory(path)),
      mkdir: (path) => alive(() => this.mkdir(path)),
      remove: (path) => alive(() => this.remove(path)),
    };
  }

  readonly files = new Map<string, Uint8Array>();
  readonly dirs = new Set<string>(['/']);

  constructor(readonly plan: FaultPlan) {}

  async readFile(path: string): Promise<Uint8Array> {
    if (this.plan.crashed) return hang();
    const data = this.files.get(path);
    if (data === undefined) throw errno(this.dirs.has(path) ? 'EISDIR' : 'ENOENT', `read ${path}`);
    return data.slice();
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    if (!this.dirs.has(dirname(path))) throw errno('ENOENT', `write ${path}`);
    const error = await this.plan.step(`write ${path}`, () => this.files.set(path, data.slice(0, data.length >> 1)));
    if (error) throw error;
    if (this.plan.diskFull) {
      this.files.set(path, new Uint8Array(0));
      throw errno('ENOSPC', `write ${path}`);
    }
    this.files.set(path, data.slice());
  }

  async rename(from: string, to: string): Promise<void> {
    const error = await this.plan.step(`rename ${from}`);
    if (error) throw error;
    const data = this.files.get(from);
    if (data === undefined) throw errno('ENOENT', `rename ${from}`);
    if (this.dirs.has(to)) throw errno('EISDIR', `rename to ${to}`);
    this.files.delete(from);
    this.files.set(to, data);
  }

  async syncDirectory(path: string): Promise<void> {
    const error = await this.plan.step(`fsync ${path}`);
    if (error) throw error;
  }

  async mkdir(path: string): Promise<void> {
    const error = await this.plan.step(`mkdir ${path}`);
    if (error) throw error;
    for (let p = path; !this.dirs.has(p); p = dirname(p)) this.dirs.add(p);
  }

  async remove(path: string): Promise<void> {
    if (this.plan.crashed) return hang();
    this.files.delete(path);
  }
}

interface Link {
  name: string;
  /** '' for the host namespace. */
  netns: string;
  kind: 'bridge' | 'veth' | 'tap' | 'lo';
  master: string | undefined;
  up: boolean;
  mac: string;
  addresses: string[];
  /** Key of the other end of a veth. */
  peer: string | undefined;
}

const key = (netns: string, name: string): string => `${netns}/${name}`;

/**
 * The kernel objects weave-ts manages through `ip`, as an {@link IpCommand}: links per namespace (bridge,
 * TAP, veth pairs), masters, addresses and routes, answering with iproute2's texts and JSON. Namespaces
 * exist when their file exists in `runDir` (as `ip netns add` makes them). Every command is a step.
 */
export class FakeKernel {
  readonly links = new Map<string, Link>();
  readonly routes = new Set<string>();
  private macs = 0;

  constructor(
    readonly plan: FaultPlan,
    readonly runDir: string,
  ) {}

  /** The `ip` command and TAP opener as one process sees them: they hang once that process is killed. */
  view(): { ip: IpCommand; openTap: (name: string, mtu: number) => Promise<Nic> } {
    const epoch = this.plan.epoch;
    return {
      ip: (args) => (this.plan.epoch === epoch ? this.ip(args) : hang()),
      openTap: (name, mtu) => (this.plan.epoch === epoch ? this.openTap(name, mtu) : hang()),
    };
  }

  /** The `ip` command to pass as `ipCommand`. */
  readonly ip: IpCommand = async (args) => {
    const line = args.join(' ');
    const fault = await this.plan.step(`ip ${line}`);
    if (fault) throw new EndpointError('command-failed', `ip ${line}: ${fault.message}`);
    return this.run([...args], line);
  };

  /** Opens the overlay's TAP: the device appears in the host namespace. */
  readonly openTap = async (name: string, mtu: number): Promise<Nic> => {
    const [port] = MemoryNic.pair({ name, mtu });
    this.links.set(key('', name), this.link('', name, 'tap'));
    const close = port.close.bind(port);
    port.close = async () => {
      this.links.delete(key('', name));
      await close();
    };
    return port;
  };

  /** The veths in the host namespace: name and master. */
  hostVeths(): { name: string; master: string | undefined }[] {
    return [...this.links.values()].filter((l) => l.netns === '' && l.kind === 'veth').map((l) => ({ name: l.name, master: l.master }));
  }

  /** Addresses of an interface (CIDR), undefined when it does not exist. */
  addressesOf(netns: string, name: string): string[] | undefined {
    return this.links.get(key(netns, name))?.addresses;
  }

  private link(netns: string, name: string, kind: Link['kind']): Link {
    this.macs += 1;
    const mac = `02:00:00:00:${((this.macs >> 8) & 0xff).toString(16).padStart(2, '0')}:${(this.macs & 0xff).toString(16).padStart(2, '0')}`;
    return { name, netns, kind, master: undefined, up: false, mac, addresses: [], peer: undefined };
  }

  private netnsExists(netns: string): boolean {
    // A namespace by path (a container runtime's) is any file there; by name, a file in the run dir.
    return netns === '' || existsSync(netns.startsWith('/') ? netns : join(this.runDir, netns));
  }

  private find(netns: string, name: string, line: string): Link {
    const link = this.links.get(key(netns, name));
    if (!link || !this.netnsExists(netns)) throw new EndpointError('command-failed', `ip ${line}: Cannot find device "${name}"`);
    return link;
  }

  private json(links: Link[], withAddresses: boolean): string {
    return JSON.stringify(
      links.map((l) => ({
        ifname: l.name,
        ...(l.master ? { master: l.master } : {}),
        address: l.mac,
        ...(withAddresses ? { addr_info: l.addresses.map((a) => ({ family: 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })) } : {}),
      })),
    );
  }

  private run(args: string[], line: string): string {
    let netns = '';
    if (args[0] === '-n') {
      netns = args[1] as string;
      args = args.slice(2);
      if (!this.netnsExists(netns)) throw new EndpointError('command-failed', `ip ${line}: Cannot open network namespace "${netns}": No such file or directory`);
    }
    const json = args[0] === '-j';
    if (json) args = args.slice(1);
    const [object, verb, ...rest] = args;
    const text = rest.join(' ');
    let m: RegExpExecArray | null;
    if (object === 'link' && verb === 'add') {
      if ((m = /^name (\S+) mtu \d+ type bridge mcast_snooping 0$/.exec(text))) {
        if (this.links.has(key(netns, m[1] as string))) throw new EndpointError('command-failed', `ip ${line}: RTNETLINK answers: File exists`);
        this.links.set(key(netns, m[1] as string), this.link(netns, m[1] as string, 'bridge'));
        return '';
      }
      if ((m = /^name (\S+) mtu \d+ type veth peer name (\S+) mtu \d+ netns (\S+)$/.exec(text))) {
        const [, host, inner, target] = m as unknown as [string, string, string, string];
        if (!this.netnsExists(target)) throw new EndpointError('command-failed', `ip ${line}: Invalid "netns" value "${target}"`);
        if (this.links.has(key(netns, host)) || this.links.has(key(target, inner))) throw new EndpointError('command-failed', `ip ${line}: RTNETLINK answers: File exists`);
        const a = this.link(netns, host, 'veth');
        const b = this.link(target, inner, 'veth');
        a.peer = key(target, inner);
        b.peer = key(netns, host);
        this.links.set(key(netns, host), a);
        this.links.set(key(target, inner), b);
        return '';
      }
    }
    if (object === 'link' && verb === 'set') {
      const [name = '', ...options] = rest;
      const link = name === 'lo' ? this.lo(netns) : this.find(netns, name, line);
      for (let i = 0; i < options.length; i++) {
        const option = options[i];
        if (option === 'up') link.up = true;
        else if (option === 'master') {
          const master = options[++i] as string;
          this.find(netns, master, line);
          link.master = master;
        } else if (option === 'mtu' || option === 'type' || option === 'mcast_snooping') i++;
        else if (option === 'bridge') continue;
        else throw new Error(`fake ip: unknown option in "${line}"`);
      }
      return '';
    }
    if (object === 'link' && verb === 'del') {
      const link = this.find(netns, rest[0] as string, line);
      this.remove(link);
      for (const other of this.links.values()) if (other.netns === netns && other.master === link.name) other.master = undefined;
      return '';
    }
    if (object === 'link' && verb === 'show') {
      if ((m = /^dev (\S+)$/.exec(text))) return this.json([this.find(netns, m[1] as string, line)], false);
      if ((m = /^master (\S+) type veth$/.exec(text))) {
        if (!this.links.has(key(netns, m[1] as string))) throw new EndpointError('command-failed', `ip ${line}: Error: argument "${m[1]}" is wrong: Device does not exist`);
        return this.json([...this.links.values()].filter((l) => l.netns === netns && l.kind === 'veth' && l.master === m?.[1]), false);
      }
    }
    if (object === 'addr' && (verb === 'add' || verb === 'del') && (m = /^(\S+) dev (\S+)$/.exec(text))) {
      const link = this.find(netns, m[2] as string, line);
      const address = m[1] as string;
      if (verb === 'add') {
        if (link.addresses.includes(address)) throw new EndpointError('command-failed', `ip ${line}: RTNETLINK answers: File exists`);
        link.addresses.push(address);
      } else {
        if (!link.addresses.includes(address)) throw new EndpointError('command-failed', `ip ${line}: RTNETLINK answers: Cannot assign requested address`);
        link.addresses = link.addresses.filter((a) => a !== address);
      }
      return '';
    }
    if (object === 'addr' && verb === 'show' && json && (m = /^dev (\S+)$/.exec(text))) {
      const link = this.links.get(key(netns, m[1] as string));
      if (!link) throw new EndpointError('command-failed', `ip ${line}: Device "${m[1]}" does not exist.`);
      return this.json([link], true);
    }
    if (object === 'route' && verb === 'add' && (m = /^(\S+) dev (\S+)$/.exec(text))) {
      this.find(netns, m[2] as string, line);
      const route = `${netns} ${text}`;
      if (this.routes.has(route)) throw new EndpointError('command-failed', `ip ${line}: RTNETLINK answers: File exists`);
      this.routes.add(route);
      return '';
    }
    if (object === 'route' && verb === 'replace' && (m = /^default via (\S+) dev (\S+)$/.exec(text))) {
      this.find(netns, m[2] as string, line);
      for (const route of [...this.routes]) if (route.startsWith(`${netns} default `)) this.routes.delete(route);
      this.routes.add(`${netns} ${text}`);
      return '';
    }
    throw new Error(`fake ip: unsupported command "${line}"`);
  }

  /** Deletes a link (and a veth's peer) with its routes and bridge ports, as the kernel does. */
  private remove(link: Link): void {
    for (const gone of [link, link.peer ? this.links.get(link.peer) : undefined]) {
      if (!gone) continue;
      this.links.delete(key(gone.netns, gone.name));
      for (const route of [...this.routes]) if (route.startsWith(`${gone.netns} `) && route.endsWith(` dev ${gone.name}`)) this.routes.delete(route);
    }
  }

  /** A namespace deleted (`ip netns del`): its file goes, and its links with their veth peers. */
  deleteNamespace(netns: string): void {
    for (const link of [...this.links.values()]) if (link.netns === netns) this.remove(link);
    rmSync(join(this.runDir, netns), { force: true });
  }

  private lo(netns: string): Link {
    const existing = this.links.get(key(netns, 'lo'));
    if (existing) return existing;
    const lo = this.link(netns, 'lo', 'lo');
    this.links.set(key(netns, 'lo'), lo);
    return lo;
  }
}
