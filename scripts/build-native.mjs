// Builds the optional native TAP binding (native/ -> native/build/Release/weave_tap.node) with node-gyp.
// Never fails the install: without the binding weave-ts still works with in-process NICs; TapNic.open
// then throws a typed error that says how to build it. Set WEAVE_SKIP_NATIVE=1 to skip the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');

function warn(message) {
  process.stderr.write(`weave-ts: ${message}\n`);
}

/** The node-gyp entry script: the one npm passes to install scripts, a local install, or npm's bundled copy. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  if (process.env.npm_execpath) {
    // npm_execpath is .../npm/bin/npm-cli.js
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = join(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((path) => path.endsWith('.js') && existsSync(path));
}

function main() {
  if (process.env.WEAVE_SKIP_NATIVE === '1') {
    warn('WEAVE_SKIP_NATIVE=1: not building the native TAP binding (TapNic will be unavailable).');
    return;
  }
  if (process.platform !== 'linux') {
    warn(`the native TAP binding is Linux-only; skipped on ${process.platform} (in-process NICs still work).`);
    return;
  }
  if (!existsSync(join(nativeDir, 'binding.gyp'))) {
    warn('native/binding.gyp is missing; skipping the native TAP binding.');
    return;
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    warn('node-gyp was not found, so the native TAP binding was not built (TapNic will be unavailable). ' +
      'Install node-gyp and a C compiler, then run `npm rebuild weave-ts`.');
    return;
  }
  const args = [nodeGyp, 'rebuild'];
  // Distribution packages (Debian's nodejs) ship the headers in /usr/include/node: use them, download nothing.
  if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  const result = spawnSync(process.execPath, args, { cwd: nativeDir, stdio: 'inherit' });
  if (result.status !== 0) {
    warn('building the native TAP binding failed (see above), so TapNic is unavailable; everything else works. ' +
      'To enable it install a C compiler, make and python3 (Debian: apt-get install build-essential python3), ' +
      'then run `npm rebuild weave-ts`.');
  }
}

main();
