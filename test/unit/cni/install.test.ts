// `weave-ts-cni install` into temporary directories: the wrapper runs the installed copy with its own Node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conflist, CONFLIST_FILE } from '../../../src/cni/install.js';

const main = new URL('../../../src/cni/main.js', import.meta.url).pathname;

test('install writes the plugin, its Node and the conflist; installing again replaces them; the plugin answers VERSION', () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-cni-install-'));
  try {
    const binDir = join(root, 'bin');
    const confDir = join(root, 'net.d');
    for (let i = 0; i < 2; i++) {
      const r = spawnSync(process.execPath, [main, 'install', '--bin-dir', binDir, '--conf-dir', confDir, '--data-dir', '/srv/weave'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      assert.is(r.status, 0, r.stderr);
      assert.match(r.stdout, /weave-ts-cni installed/);
    }
    assert.is(statSync(join(binDir, 'weave-ts-cni')).mode & 0o111, 0o111, 'the wrapper is executable');
    // weave-ts-cni.d is a link to the newest install's directory; the earlier one is gone.
    const releases = readdirSync(binDir).filter((e) => e.startsWith('weave-ts-cni.d-'));
    assert.is(releases.length, 1, readdirSync(binDir).join(' '));
    assert.is(readlinkSync(join(binDir, 'weave-ts-cni.d')), releases[0]);
    assert.equal(readdirSync(binDir).sort(), ['weave-ts-cni', 'weave-ts-cni.d', releases[0]].sort());
    assert.equal(JSON.parse(readFileSync(join(confDir, CONFLIST_FILE), 'utf8')), conflist('/srv/weave'));
    const version = spawnSync(join(binDir, 'weave-ts-cni'), [], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', env: { CNI_COMMAND: 'VERSION' } });
    assert.is(version.status, 0, version.stderr);
    assert.equal(JSON.parse(version.stdout), { cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] });
    // Without CNI_COMMAND and not `install`: usage on stderr, exit 2.
    const usage = spawnSync(join(binDir, 'weave-ts-cni'), [], { encoding: 'utf8', env: {} });
    assert.is(usage.status, 2);
    assert.match(usage.stderr, /CNI plugin/);
    const badFlag = spawnSync(process.execPath, [main, 'install', '--bin-dri', binDir], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.is(badFlag.status, 2, badFlag.stderr);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
