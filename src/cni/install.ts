// `weave-ts-cni install`: puts the plugin where a container runtime looks for it (with the Node binary it
// runs on, so the host needs no Node of its own) and writes the network configuration list.
import { chmod, copyFile, cp, lstat, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CNI_DATA_DIR, PLUGIN_TYPE } from './config.js';

/** The configuration list's file name: first in /etc/cni/net.d unless something sorts before it. */
export const CONFLIST_FILE = '10-weave-ts.conflist';
/** The network's name in the configuration list. */
export const NETWORK_NAME = 'weave-ts';

/** Where to install. */
export interface InstallOptions {
  /** The runtime's plugin directory (CNI_PATH), e.g. /opt/cni/bin. */
  binDir: string;
  /** The runtime's configuration directory, e.g. /etc/cni/net.d. */
  confDir: string;
  /** The agent's data dir, written into the configuration (default /var/lib/weave-ts). */
  dataDir?: string | undefined;
  /** The Node binary copied beside the plugin (default: the one running this). */
  node?: string | undefined;
}

/**
 * The configuration list: weave-ts first, then the reference `portmap` (host ports, from the runtime's
 * `portMappings`) and `bandwidth` (traffic shaping, from its `bandwidth`) plugins, as Kubernetes expects.
 */
export function conflist(dataDir = DEFAULT_CNI_DATA_DIR): object {
  return {
    cniVersion: '1.0.0',
    name: NETWORK_NAME,
    plugins: [
      { type: PLUGIN_TYPE, dataDir },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  };
}

/**
 * Installs `BIN_DIR/weave-ts-cni` (a small shell script), `BIN_DIR/weave-ts-cni.d` (a link to a directory
 * with Node and the compiled package) and `CONF_DIR/10-weave-ts.conflist`. Each is swapped in with one
 * rename, so a runtime calling the plugin meanwhile finds the old or the new one, never a missing file;
 * the directories of earlier installs are removed afterwards. Returns the paths written.
 */
export async function install(options: InstallOptions): Promise<string[]> {
  const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));
  const home = join(options.binDir, `${PLUGIN_TYPE}.d`);
  const release = `${PLUGIN_TYPE}.d-${Date.now().toString(36)}-${process.pid}`;
  const staging = join(options.binDir, release);
  await mkdir(join(staging, 'dist'), { recursive: true });
  await cp(join(packageRoot, 'dist', 'src'), join(staging, 'dist', 'src'), { recursive: true });
  await copyFile(join(packageRoot, 'package.json'), join(staging, 'package.json')); // "type": "module"
  await copyFile(options.node ?? process.execPath, join(staging, 'node'));
  await chmod(join(staging, 'node'), 0o755);
  const link = `${home}.tmp-${process.pid}`;
  await rm(link, { force: true });
  await symlink(release, link);
  // A real directory there (not ours to swap atomically) goes first.
  if ((await lstat(home).catch(() => undefined))?.isDirectory()) await rm(home, { recursive: true, force: true });
  await rename(link, home);
  for (const entry of await readdir(options.binDir)) {
    if (entry.startsWith(`${PLUGIN_TYPE}.d-`) && entry !== release) await rm(join(options.binDir, entry), { recursive: true, force: true });
  }

  const wrapper = join(options.binDir, PLUGIN_TYPE);
  const script = `#!/bin/sh\n# weave-ts CNI plugin (written by weave-ts-cni install)\nhere=$(dirname "$0")\nexec "$here/${PLUGIN_TYPE}.d/node" "$here/${PLUGIN_TYPE}.d/dist/src/cni/main.js" "$@"\n`;
  await replaceFile(wrapper, script, 0o755);
  await mkdir(options.confDir, { recursive: true });
  const conf = join(options.confDir, CONFLIST_FILE);
  await replaceFile(conf, `${JSON.stringify(conflist(options.dataDir), null, 2)}\n`, 0o644);
  return [wrapper, home, conf];
}

async function replaceFile(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, text, { mode });
  await chmod(temporary, mode);
  await rename(temporary, path);
}
