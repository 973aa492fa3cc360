// weave-ts as containerd's CNI network: `ctr run --cni` (containerd's go-cni/libcni, the library path
// Kubernetes' CRI plugin takes) runs a busybox container with the installed conflist; the container gets a
// weave-ts address, pings a namespace on another host's agent by name, and its address is released when it exits.
// containerd runs with its own root, state and socket in the test's directory, and with /run, /etc, /opt and
// /var/lib as private overlays (test/fixtures/containerd/private-mounts.sh), so nothing outside the test changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason } from '../helpers/netns.js';
import { cli, retry, startAgent, stopAgent, type AgentHost } from '../helpers/cli-agent.js';
import { cniPluginPath, REFERENCE_PLUGIN_DIR } from '../helpers/cni.js';

const privateMounts = new URL('../../../test/fixtures/containerd/private-mounts.sh', import.meta.url).pathname;
const BUSYBOX = '/bin/busybox';

function commandMissing(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0;
}

const missing = ['containerd', 'ctr', 'runc', 'unshare'].filter(commandMissing);
const skipReason =
  tapNamespaceSkipReason(['ping']) ||
  (missing.length > 0 ? `${missing.join(', ')} not installed (apt-get install containerd runc)` : '') ||
  (!existsSync(BUSYBOX) ? `${BUSYBOX} is missing (apt-get install busybox-static)` : '') ||
  (!existsSync(join(REFERENCE_PLUGIN_DIR, 'portmap')) ? `no reference CNI plugins in ${REFERENCE_PLUGIN_DIR} (apt-get install containernetworking-plugins)` : '');
if (skipReason !== '') console.log(`containerd tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;

/** A minimal root filesystem: static busybox and the applets the container uses. */
function makeRootfs(dir: string): void {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  for (const applet of ['sh', 'ip', 'ping', 'cat', 'sleep', 'nslookup']) symlinkSync('busybox', join(dir, 'bin', applet));
}

nsTest('ctr run --cni with the weave-ts conflist: address, ping by name across hosts, released on exit', async () => {
  const lab = new NetnsLab('k');
  const root = mkdtempSync(join(tmpdir(), 'wt-ctr-'));
  const namespace = lab.prefix; // containerd namespace: also the cgroup directory runc leaves behind
  let containerd: ReturnType<typeof spawn> | undefined;
  lab.defer(() => {
    // Shims are containerd's children outside our process tree: stop them by the pids containerd recorded.
    const tasks = join(root, 'state', 'io.containerd.runtime.v2.task', namespace);
    for (const id of existsSync(tasks) ? readdirSync(tasks) : []) {
      const pidFile = join(tasks, id, 'shim.pid');
      const pid = existsSync(pidFile) ? Number(spawnSync('cat', [pidFile]).stdout.toString()) : 0;
      if (pid > 0) spawnSync('kill', ['-9', String(pid)]);
    }
    if (containerd?.pid !== undefined && containerd.exitCode === null) process.kill(containerd.pid, 'SIGKILL');
    // Empty cgroup directories named after our containerd namespace (runc removes the container's, not its parent).
    for (const controller of existsSync('/sys/fs/cgroup') ? ['', ...readdirSync('/sys/fs/cgroup')] : []) {
      const dir = join('/sys/fs/cgroup', controller, namespace);
      if (existsSync(dir)) rmdirSync(dir);
    }
    rmSync(root, { recursive: true, force: true });
  });
  const passwordFile = join(root, 'password');
  writeFileSync(passwordFile, 'a long network password for the containerd test\n', { mode: 0o600 });
  const common = ['--password-file', passwordFile, '--ipalloc-range', '10.48.0.0/16', '--ipalloc-init', 'consensus=2', '--bridge', `${lab.prefix}b`];
  const hosts: Record<'a' | 'b', AgentHost> = {
    a: { name: 'ha', dataDir: join(root, 'a'), launchArgs: [...common, '--listen', '10.250.61.1:6783', '--peer', '10.250.61.2'] },
    b: { name: 'hb', dataDir: join(root, 'b'), launchArgs: [...common, '--listen', '10.250.61.2:6783', '--peer', '10.250.61.1'] },
  };
  try {
    for (const h of ['ha', 'hb', 'db']) await lab.addHost(h);
    lab.defer(() => rmSync(join('/etc/netns', lab.ns('db')), { recursive: true, force: true }));
    await lab.link('ha', 'hb', { subnet: '10.250.61.0/24' });
    await Promise.all([startAgent(lab, hosts.a), startAgent(lab, hosts.b)]);
    // A namespace attached on host B's agent, by name.
    const db = JSON.parse(await cli(lab, hosts.b, ['attach', '--netns', lab.ns('db'), '--name', 'db', '--json'])) as { address: string };

    // The plugin installed as the DaemonSet's init step does it, next to the reference plugins it chains.
    const binDir = join(root, 'cni-bin');
    const confDir = join(root, 'net.d');
    const install = spawnSync(process.execPath, [cniPluginPath, 'install', '--bin-dir', binDir, '--conf-dir', confDir, '--data-dir', hosts.a.dataDir], { encoding: 'utf8' });
    assert.is(install.status, 0, install.stderr);
    for (const plugin of ['portmap', 'bandwidth']) copyFileSync(join(REFERENCE_PLUGIN_DIR, plugin), join(binDir, plugin));
    const rootfs = join(root, 'rootfs');
    makeRootfs(rootfs);
    // Names resolve through host A's overlay address, as the ADD result's `dns` says (ctr does not write resolv.conf).
    const exposed = (await cli(lab, hosts.a, ['expose'])).trim().split('/')[0] as string;
    writeFileSync(join(root, 'resolv.conf'), `nameserver ${exposed}\nsearch weave.local\n`);

    writeFileSync(
      join(root, 'config.toml'),
      [
        'version = 2',
        `root = "${join(root, 'root')}"`,
        `state = "${join(root, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]',
        '[grpc]',
        `  address = "${join(root, 'containerd.sock')}"`,
        '[ttrpc]',
        `  address = "${join(root, 'containerd.sock.ttrpc')}"`,
        '',
      ].join('\n'),
    );
    const mounts = (name: string): string[] => ['unshare', '--mount', '--propagation', 'private', privateMounts, join(root, `overlay-${name}`), confDir, binDir, '--'];
    const [command, ...args] = [...mounts('containerd'), 'containerd', '--config', join(root, 'config.toml'), '--log-level', 'info'];
    containerd = spawn(command as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    containerd.stdout?.resume();
    let containerdLog = '';
    containerd.stderr?.on('data', (c: Buffer) => (containerdLog += c.toString()));
    await retry('containerd serving', 20_000, async () => (containerdLog.includes('containerd successfully booted') ? true : undefined));

    // The container prints its address, pings db by name, and stays a while so the agent can be asked about it.
    const ctr = lab.spawn('ha', [
      ...mounts('ctr'),
      'ctr', '--address', join(root, 'containerd.sock'), '--namespace', namespace,
      'run', '--rm', '--cni', '--fifo-dir', join(root, 'fifo'), '--runc-root', join(root, 'runc'),
      '--mount', `type=bind,src=${join(root, 'resolv.conf')},dst=/etc/resolv.conf,options=rbind:ro`,
      '--rootfs', rootfs, 'wtc1',
      '/bin/sh', '-c', 'ip -o -4 addr show eth0; ip route show default; for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 1 db && break; sleep 1; done; echo ping-exit=$?; sleep 2',
    ]);
    let output = '';
    ctr.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    ctr.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => ctr.once('exit', (code) => resolve(code)));

    // While it runs, the agent lists it: keyed by containerd's id for it (NAMESPACE-ID), with the address it shows.
    const attached = await retry('the container attached', 30_000, async () => {
      const ps = JSON.parse(await cli(lab, hosts.a, ['ps', '--json'])) as { container?: string; address: string; netns?: string }[];
      return ps.find((e) => e.container === `${namespace}-wtc1`);
    });
    assert.match(attached.address, /^10\.48\.\d+\.\d+\/16$/);
    assert.match(attached.netns ?? '', /^\/proc\/\d+\/ns\/net$/);
    const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 60_000))]);
    assert.is(code, 0, `ctr run exits 0: ${output}\n${containerdLog.slice(-2000)}`);
    assert.ok(output.includes(`inet ${attached.address}`), `the container has its weave-ts address: ${output}`);
    assert.match(output, new RegExp(`default via ${exposed.replace(/\./g, '\\.')} dev eth0`));
    assert.match(output, new RegExp(`64 bytes from ${db.address.split('/')[0]?.replace(/\./g, '\\.') ?? ''}`), `db answers by name: ${output}`);
    assert.match(output, /ping-exit=0/);

    // ctr ran CNI DEL when the task ended: the endpoint and its address are gone.
    assert.equal(JSON.parse(await cli(lab, hosts.a, ['ps', '--json'])), []);
    const status = JSON.parse(await cli(lab, hosts.a, ['status', '--json'])) as { ipam: { allocated: { id: string }[] } };
    assert.not.ok(status.ipam.allocated.some((a) => a.id.startsWith('container:')), JSON.stringify(status.ipam.allocated));
  } finally {
    if (containerd?.pid !== undefined && containerd.exitCode === null) {
      const gone = new Promise((resolve) => containerd?.once('exit', resolve));
      containerd.kill('SIGTERM');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    }
    await stopAgent(lab, hosts.a).catch(() => undefined);
    await stopAgent(lab, hosts.b).catch(() => undefined);
    await lab.cleanup();
  }
});

test.run();
