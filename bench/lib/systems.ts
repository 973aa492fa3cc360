// Systems under test for the data-plane benchmark: each builds a tunnel (or none) between two namespace hosts.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForLine, type NetnsLab } from '../../test/helpers/netns.js';

/** One side of the underlay: a lab host and its veth end. */
export interface BenchHost {
  /** Host name in the lab (as given to NetnsLab.addHost). */
  host: string;
  /** Underlay (veth) IPv4 address of this host. */
  address: string;
  /** Underlay veth interface name inside the host's namespace. */
  ifname: string;
}

/** What a system set up: the addresses traffic should target, and the processes that carry it. */
export interface SystemEndpoints {
  /** Address of side A that B-side tools should use (the overlay address, or the veth address for raw). */
  addrA: string;
  /** Address of side B that the A-side client targets. */
  addrB: string;
  /** PIDs of the tunnel processes (both sides), sampled for CPU use; empty when there are none. */
  pids: number[];
}

export interface System {
  name: string;
  /** Why the system cannot run on this machine, or undefined when it can. A reason skips it with a printed note. */
  unavailable?(): Promise<string | undefined>;
  /** Builds the tunnel between a and b (which are already linked by a veth) and waits until traffic flows. */
  setup(lab: NetnsLab, a: BenchHost, b: BenchHost): Promise<SystemEndpoints>;
  /** Removes everything setup created; safe to call after a failed or partial setup. */
  teardown(): Promise<void>;
}

/** The ceiling: traffic straight over the veth, no tunnel. */
export function rawVeth(): System {
  return {
    name: 'raw veth',
    async setup(_lab, a, b) {
      return { addrA: a.address, addrB: b.address, pids: [] };
    },
    async teardown() {},
  };
}

/** Overlay addresses used by the wireguard-go system. */
export const WG_OVERLAY = { a: '10.251.0.1', b: '10.251.0.2', prefixLength: 24, mtu: 1420, port: 51820 } as const;

/**
 * wireguard-go (userspace; this kernel has no WireGuard module), one daemon per namespace, configured with `wg`.
 * Its UAPI sockets live in /var/run/wireguard, which namespaces share, so each side's interface gets a distinct name.
 */
export function wireguardGo(): System {
  let lab: NetnsLab | undefined;
  const daemons: ChildProcess[] = [];
  let keyDir: string | undefined;
  const ifnames: string[] = [];

  return {
    name: 'wireguard-go',
    async unavailable() {
      for (const cmd of ['wireguard-go', 'wg']) {
        try {
          execFileSync('sh', ['-c', `command -v "$1"`, 'sh', cmd], { stdio: 'ignore' });
        } catch {
          return `${cmd} not installed (apt-get install wireguard-go wireguard-tools)`;
        }
      }
      if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
      return undefined;
    },
    async setup(theLab, a, b) {
      lab = theLab;
      const dir = mkdtempSync(join(tmpdir(), 'wtF-wg-'));
      keyDir = dir;
      const made = ifnames;
      // Also run by the lab's exit/signal backstop if the benchmark dies before teardown.
      lab.defer(() => {
        rmSync(dir, { recursive: true, force: true });
        for (const ifname of made) rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
      });
      const sides = [
        { side: a, overlay: WG_OVERLAY.a, ifname: `${lab.prefix}wa` },
        { side: b, overlay: WG_OVERLAY.b, ifname: `${lab.prefix}wb` },
      ] as const;
      const keys = sides.map(() => {
        const priv = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
        const pub = execFileSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).trim();
        return { priv, pub };
      });
      for (const [i, { side, ifname }] of sides.entries()) {
        if (ifname.length > 15) throw new Error(`wireguard interface name '${ifname}' is too long`);
        // -f: stay in the foreground, so the PID we hold is the daemon's and SIGTERM removes its socket and TUN.
        const daemon = lab.spawn(side.host, ['wireguard-go', '-f', ifname], { LOG_LEVEL: 'error' });
        daemons.push(daemon);
        ifnames.push(ifname);
        await waitFor(() => existsSync(`/var/run/wireguard/${ifname}.sock`), 5_000, `wireguard-go socket for ${ifname}`, daemon);
        writeFileSync(join(keyDir, `${i}.key`), `${keys[i]?.priv}\n`, { mode: 0o600 });
      }
      for (const [i, { side, overlay, ifname }] of sides.entries()) {
        const other = sides[1 - i];
        const otherKey = keys[1 - i];
        if (other === undefined || otherKey === undefined) throw new Error('unreachable');
        await lab.execOk(side.host, [
          'wg', 'set', ifname,
          'private-key', join(keyDir, `${i}.key`),
          'listen-port', String(WG_OVERLAY.port),
          'peer', otherKey.pub,
          'endpoint', `${other.side.address}:${WG_OVERLAY.port}`,
          'allowed-ips', `${other.overlay}/32`,
        ]);
        await lab.execOk(side.host, ['ip', 'addr', 'add', `${overlay}/${WG_OVERLAY.prefixLength}`, 'dev', ifname]);
        await lab.execOk(side.host, ['ip', 'link', 'set', ifname, 'mtu', String(WG_OVERLAY.mtu), 'up']);
      }
      await waitForPing(lab, a.host, WG_OVERLAY.b);
      return { addrA: WG_OVERLAY.a, addrB: WG_OVERLAY.b, pids: daemons.map((d) => d.pid).filter((p): p is number => p !== undefined) };
    },
    async teardown() {
      if (lab !== undefined) for (const d of daemons) await lab.kill(d);
      daemons.length = 0;
      // wireguard-go removes its socket on SIGTERM; after a SIGKILL it would not.
      for (const ifname of ifnames) rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
      ifnames.length = 0;
      if (keyDir !== undefined) rmSync(keyDir, { recursive: true, force: true });
      keyDir = undefined;
    },
  };
}

/** Overlay addresses used by the tinc system. */
export const TINC_OVERLAY = { a: '10.251.4.1', b: '10.251.4.2', prefixLength: 24, mtu: 1400, port: 655 } as const;

/**
 * tinc 1.0 from Debian in switch mode (a virtual Ethernet segment, like weave-ts), one `tincd` per
 * namespace in the foreground, RSA keys made for the run, AES-256-CBC with HMAC-SHA256 (tinc 1.0's
 * default is Blowfish and SHA-1; this is what a careful user configures).
 */
export function tincSwitch(): System {
  let lab: NetnsLab | undefined;
  const daemons: ChildProcess[] = [];
  let dir: string | undefined;
  return {
    name: 'tinc switch mode',
    async unavailable() {
      try {
        execFileSync('sh', ['-c', 'command -v tincd'], { stdio: 'ignore' });
      } catch {
        return 'tincd not installed (apt-get install tinc)';
      }
      if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
      return undefined;
    },
    async setup(theLab, a, b) {
      lab = theLab;
      const root = mkdtempSync(join(tmpdir(), 'wtF-tinc-'));
      dir = root;
      lab.defer(() => rmSync(root, { recursive: true, force: true }));
      const sides = [
        { side: a, name: 'wta', overlay: TINC_OVERLAY.a, connect: 'wtb', ifname: `${lab.prefix}na` },
        { side: b, name: 'wtb', overlay: TINC_OVERLAY.b, connect: undefined, ifname: `${lab.prefix}nb` },
      ] as const;
      for (const { side, name, overlay, connect, ifname } of sides) {
        if (ifname.length > 15) throw new Error(`tinc interface name '${ifname}' is too long`);
        const conf = join(root, name);
        mkdirSync(join(conf, 'hosts'), { recursive: true });
        writeFileSync(
          join(conf, 'tinc.conf'),
          `Name = ${name}\nMode = switch\nDeviceType = tap\nInterface = ${ifname}\nAddressFamily = ipv4\n${connect ? `ConnectTo = ${connect}\n` : ''}`,
        );
        writeFileSync(join(conf, 'hosts', name), `Address = ${side.address}\nPort = ${TINC_OVERLAY.port}\nCipher = aes-256-cbc\nDigest = sha256\n`);
        writeFileSync(
          join(conf, 'tinc-up'),
          `#!/bin/sh\nip link set "$INTERFACE" mtu ${TINC_OVERLAY.mtu} up\nip addr add ${overlay}/${TINC_OVERLAY.prefixLength} dev "$INTERFACE"\n`,
          { mode: 0o755 },
        );
        execFileSync('tincd', ['-c', conf, '-K2048'], { stdio: 'ignore', input: '' });
      }
      // Each side knows the other's host file (address and public key).
      for (const { name } of sides) {
        for (const other of sides) if (other.name !== name) writeFileSync(join(root, other.name, 'hosts', name), readFileSync(join(root, name, 'hosts', name)));
      }
      for (const { side, name } of [...sides].reverse()) {
        const daemon = lab.spawn(side.host, ['tincd', '-c', join(root, name), '-D', '--pidfile', join(root, `${name}.pid`)]);
        daemons.push(daemon);
      }
      await waitForPing(lab, a.host, TINC_OVERLAY.b, 20_000);
      return { addrA: TINC_OVERLAY.a, addrB: TINC_OVERLAY.b, pids: daemons.map((d) => d.pid).filter((p): p is number => p !== undefined) };
    },
    async teardown() {
      if (lab !== undefined) for (const d of daemons) await lab.kill(d);
      daemons.length = 0;
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

/** Overlay addresses used by the weave-ts systems. */
export const WEAVE_OVERLAY = { a: '10.251.1.1', b: '10.251.1.2', prefixLength: 24 } as const;

/**
 * weave-ts, encrypted (password set) or plain: one `examples/tap-agent` per namespace, each with a TAP
 * device holding an overlay address; side A dials side B over the veth.
 */
export function weaveTs(options: { encrypted: boolean }): System {
  let lab: NetnsLab | undefined;
  const agents: ChildProcess[] = [];
  const agentPath = new URL('../../examples/tap-agent.js', import.meta.url).pathname;
  return {
    name: options.encrypted ? 'weave-ts encrypted' : 'weave-ts plain',
    async unavailable() {
      if (!existsSync(agentPath)) return `${agentPath} is missing (run npm run build)`;
      if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
      const binding = new URL('../../../native/build/Release/weave_tap.node', import.meta.url).pathname;
      if (!existsSync(binding)) return 'the native TAP binding is not built (npm run install)';
      return undefined;
    },
    async setup(theLab, a, b) {
      lab = theLab;
      const sides = [
        { side: a, overlay: WEAVE_OVERLAY.a, tap: `${lab.prefix}ta`, peers: [`${b.address}:6783`] },
        { side: b, overlay: WEAVE_OVERLAY.b, tap: `${lab.prefix}tb`, peers: [] as string[] },
      ];
      for (const { side, overlay, tap, peers } of sides) {
        if (tap.length > 15) throw new Error(`TAP name '${tap}' is too long`);
        const config = {
          listen: `${side.address}:6783`,
          peers,
          tap,
          address: `${overlay}/${WEAVE_OVERLAY.prefixLength}`,
          nickname: side.host,
          ...(options.encrypted ? { password: 'weave-ts benchmark password' } : {}),
        };
        const agent = lab.spawn(side.host, [process.execPath, agentPath, JSON.stringify(config)]);
        agents.push(agent);
        await waitForLine(agent, 'READY', 15_000);
      }
      await waitForPing(lab, a.host, WEAVE_OVERLAY.b, 20_000);
      return { addrA: WEAVE_OVERLAY.a, addrB: WEAVE_OVERLAY.b, pids: agents.map((x) => x.pid).filter((p): p is number => p !== undefined) };
    },
    async teardown() {
      if (lab !== undefined) for (const x of agents) await lab.kill(x);
      agents.length = 0;
    },
  };
}

/** Overlay addresses the CLI-agent systems expose on each host's bridge. */
export const AGENT_OVERLAY = { a: '10.251.2.1', b: '10.251.2.2', prefixLength: 24 } as const;

/**
 * The product path: `weave-ts launch` in each namespace (encrypted, IPAM, DNS), the host exposed on the
 * overlay's bridge, so traffic goes host → bridge → TAP → sleeve and back, as it does for attached
 * namespaces. `mtu` is the endpoint MTU (`--mtu`; the default is Weave's 1376). With `fastdp`, the underlay
 * is a trusted subnet, so unicast between the bridges takes the agents' kernel VXLAN tunnel instead.
 */
export function weaveAgent(options: { mtu: number; fastdp?: boolean; offload?: boolean }): System {
  let lab: NetnsLab | undefined;
  const agents: ChildProcess[] = [];
  let dataDir: string | undefined;
  const cliPath = new URL('../../src/cli/main.js', import.meta.url).pathname;
  return {
    name: `weave-ts agent ${options.fastdp ? 'fastdp ' : ''}mtu ${options.mtu}${options.offload === false ? ' no-offload' : ''}`,
    async unavailable() {
      if (!existsSync(cliPath)) return `${cliPath} is missing (run npm run build)`;
      if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
      return undefined;
    },
    async setup(theLab, a, b) {
      lab = theLab;
      const dir = mkdtempSync(join(tmpdir(), 'wtF-agent-'));
      dataDir = dir;
      lab.defer(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'password'), 'weave-ts benchmark password\n', { mode: 0o600 });
      const sides = [
        { side: b, overlay: AGENT_OVERLAY.b, peers: [] as string[] },
        { side: a, overlay: AGENT_OVERLAY.a, peers: ['--peer', `${b.address}:6783`] },
      ];
      for (const { side, overlay, peers } of sides) {
        const args = [
          process.execPath, cliPath, 'launch', '--listen', `${side.address}:6783`, ...peers, '--nickname', side.host,
          '--password-file', join(dir, 'password'), '--ipalloc-range', `${overlay.split('.').slice(0, 3).join('.')}.0/${AGENT_OVERLAY.prefixLength}`,
          '--ipalloc-init', 'consensus=1', '--bridge', `${lab.prefix}br`, '--mtu', String(options.mtu),
          '--data-dir', join(dir, side.host), '--log-level', 'error',
          ...(options.fastdp ? ['--trusted-subnets', `${side.address.split('.').slice(0, 3).join('.')}.0/24`] : ['--no-fastdp']),
          ...(options.offload === false ? ['--no-offload'] : []),
        ];
        const agent = lab.spawn(side.host, args);
        agents.push(agent);
        await waitForLine(agent, 'weave-ts ready', 20_000);
        await lab.execOk(side.host, [process.execPath, cliPath, 'expose', '--ip', `${overlay}/${AGENT_OVERLAY.prefixLength}`, '--data-dir', join(dir, side.host)]);
      }
      await waitForPing(lab, a.host, AGENT_OVERLAY.b, 30_000);
      if (options.fastdp) {
        // Measure the tunnel, not the sleeve it starts on: wait until both agents say the link is fast.
        for (const side of [a, b]) {
          await waitFor(() => agentSaysFast(theLab, side.host, cliPath, join(dir, side.host)), 20_000, `fastdp on ${side.host}`);
        }
        await waitForPing(lab, a.host, AGENT_OVERLAY.b, 10_000);
      }
      return { addrA: AGENT_OVERLAY.a, addrB: AGENT_OVERLAY.b, pids: agents.map((x) => x.pid).filter((p): p is number => p !== undefined) };
    },
    async teardown() {
      if (lab !== undefined) for (const x of agents) await lab.kill(x);
      agents.length = 0;
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      dataDir = undefined;
    },
  };
}

/** Overlay addresses of the hand-built VXLAN system. */
export const VXLAN_OVERLAY = { a: '10.251.3.1', b: '10.251.3.2', prefixLength: 24, vni: 4242, port: 4789 } as const;

/**
 * Kernel VXLAN set up by hand: a bridge in each namespace holding the overlay address, a VXLAN device to
 * the other side on it, at Weave's MTU (1376): what the agent's fast path programs, without the agent.
 */
export function handVxlan(options: { mtu: number }): System {
  let lab: NetnsLab | undefined;
  return {
    name: `kernel VXLAN by hand mtu ${options.mtu}`,
    async setup(theLab, a, b) {
      lab = theLab;
      for (const [side, other, overlay] of [[a, b, VXLAN_OVERLAY.a], [b, a, VXLAN_OVERLAY.b]] as const) {
        const br = `${lab.prefix}vb`;
        const vx = `${lab.prefix}vx`;
        await lab.execOk(side.host, ['ip', 'link', 'add', br, 'mtu', String(options.mtu), 'type', 'bridge']);
        await lab.execOk(side.host, ['ip', 'link', 'add', vx, 'type', 'vxlan', 'id', String(VXLAN_OVERLAY.vni), 'remote', other.address, 'dstport', String(VXLAN_OVERLAY.port)]);
        await lab.execOk(side.host, ['ip', 'link', 'set', vx, 'mtu', String(options.mtu), 'master', br, 'up']);
        await lab.execOk(side.host, ['ip', 'addr', 'add', `${overlay}/${VXLAN_OVERLAY.prefixLength}`, 'dev', br]);
        await lab.execOk(side.host, ['ip', 'link', 'set', br, 'up']);
      }
      await waitForPing(lab, a.host, VXLAN_OVERLAY.b);
      return { addrA: VXLAN_OVERLAY.a, addrB: VXLAN_OVERLAY.b, pids: [] };
    },
    async teardown() {
      if (lab === undefined) return;
      for (const host of ['a', 'b']) {
        for (const dev of [`${lab.prefix}vx`, `${lab.prefix}vb`]) await lab.exec(host, ['ip', 'link', 'del', dev]);
      }
    },
  };
}

/** Every system, in report order: the ceiling first, then the peers, then ours. */
export function allSystems(): System[] {
  return [
    rawVeth(),
    handVxlan({ mtu: 1376 }),
    wireguardGo(),
    tincSwitch(),
    weaveTs({ encrypted: true }),
    weaveTs({ encrypted: false }),
    weaveAgent({ mtu: 1376 }),
    weaveAgent({ mtu: 1376, offload: false }),
    weaveAgent({ mtu: 65_000 }),
    weaveAgent({ mtu: 1376, fastdp: true }),
  ];
}

/** True when the agent's status shows a direct link whose datapath is `fastdp`. */
function agentSaysFast(lab: NetnsLab, host: string, cliPath: string, dataDir: string): boolean {
  try {
    const out = execFileSync('ip', ['netns', 'exec', lab.ns(host), process.execPath, cliPath, 'status', '--json', '--data-dir', dataDir], { encoding: 'utf8', timeout: 10_000 });
    return (JSON.parse(out) as { links: { direct: boolean; datapath: string }[] }).links.some((l) => l.direct && l.datapath === 'fastdp');
  } catch {
    return false;
  }
}

/** Pings `address` from `host` until one reply comes back (tunnels need a handshake first). */
export async function waitForPing(lab: NetnsLab, host: string, address: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.exec(host, ['ping', '-c', '1', '-W', '1', address]);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`no ping reply from ${address} in ${host} after ${timeoutMs} ms:\n${r.stdout}${r.stderr}`);
    await sleep(100);
  }
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string, process?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (process !== undefined && process.exitCode !== null) throw new Error(`${what}: process exited with ${process.exitCode}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
