// The package as npm publishes it (npm pack of the current build), installed into a scratch project: a strict
// TypeScript consumer type-checks against its declarations, CommonJS code loads it with `await import`, the
// declarations hold no @internal member, and every runtime dependency is one the code imports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = new URL('../../../../', import.meta.url).pathname; // dist/test/unit/package → the repository
const fixtures = join(root, 'test/fixtures/consumer');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
};
const runtimeDependencies = Object.keys(manifest.dependencies ?? {});

let project = '';
let installed = '';

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
  );
}

/** Links a package of this checkout's node_modules into the scratch project, as `npm install` would place it. */
function linkModule(name: string): void {
  const target = join(root, 'node_modules', name);
  if (!existsSync(target)) return; // an optional dependency that did not install
  const link = join(project, 'node_modules', name);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(target, link, 'dir');
}

test.before(() => {
  assert.ok(existsSync(join(root, 'dist/src/index.d.ts')), 'build first: dist/src/index.d.ts is missing');
  project = mkdtempSync(join(tmpdir(), 'wtp-consumer-'));
  // --ignore-scripts: pack the build under test as it is (prepack would rebuild it under the running tests).
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as { filename: string }[];
  installed = join(project, 'node_modules/weave-ts');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(project, (packed[0] as { filename: string }).filename), '-C', installed, '--strip-components=1']);
  // Only what a user's install brings along: the runtime dependencies (and the consumer's own @types/node).
  for (const name of [...runtimeDependencies, ...Object.keys(manifest.optionalDependencies ?? {}), '@types/node']) linkModule(name);
  for (const file of ['package.json', 'tsconfig.json', 'consumer.ts', 'main.cjs']) copyFileSync(join(fixtures, file), join(project, file));
});

test.after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

test('a consumer with the strictest common compiler settings type-checks README-style code against the packed declarations', () => {
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(project, 'tsconfig.json')], { cwd: project, encoding: 'utf8' });
  assert.is(result.status, 0, `tsc on test/fixtures/consumer failed:\n${result.stdout}${result.stderr}`);
});

test("CommonJS code loads the package with await import('weave-ts') and runs an Overlay", () => {
  const { WEAVE_PASSWORD: _unset, ...env } = process.env; // unset: `password: process.env.WEAVE_PASSWORD` is undefined
  const result = spawnSync(process.execPath, [join(project, 'main.cjs')], { cwd: project, encoding: 'utf8', env });
  assert.is(result.status, 0, `node main.cjs failed:\n${result.stdout}${result.stderr}`);
  assert.match(result.stdout, /^ok \d+\.\d+\.\d+\S* ([0-9a-f]{2}:){5}[0-9a-f]{2} function$/m);
});

test('the packed declarations hold no @internal member (stripInternal)', () => {
  const leaks = filesUnder(installed)
    .filter((file) => file.endsWith('.d.ts'))
    .flatMap((file) =>
      readFileSync(join(installed, file), 'utf8')
        .split('\n')
        .map((line, i) => ({ line, where: `${file}:${i + 1}` }))
        .filter(({ line }) => line.includes('@internal'))
        .map(({ line, where }) => `${where}: ${line.trim()}`),
    );
  assert.equal(leaks, [], `@internal members are published:\n  ${leaks.join('\n  ')}`);
});

test('every runtime dependency is imported by the packed code (test-only packages belong in devDependencies)', () => {
  const code = filesUnder(installed)
    .filter((file) => file.endsWith('.js'))
    .map((file) => readFileSync(join(installed, file), 'utf8'))
    .join('\n');
  const unused = runtimeDependencies.filter((name) => !code.includes(`'${name}'`) && !code.includes(`"${name}"`));
  assert.equal(unused, [], `listed in dependencies but imported by nothing in the package: ${unused.join(', ')}`);
});

test('the package ships the docs pages, not a generated API site', () => {
  const files = filesUnder(installed);
  assert.ok(files.includes('docs/architecture.md'), 'docs/*.md are in the package');
  const generated = files.filter((file) => file.startsWith('docs/') && !/^docs\/[^/]+\.md$/.test(file));
  assert.equal(generated, [], 'only docs/*.md: docs/api (typedoc output) stays out of the package');
});

test.run();
