// The README as a newcomer meets it: every TypeScript block compiles under the strictest common settings in
// a fresh project that installs `npm pack`'s tarball, and the blocks marked runnable run and print what the
// README promises.
//
// A block is marked by an HTML comment right above it (invisible on GitHub and npm):
//   <!-- snippet: {"run": true, "expect": ["regex", …], "distinct": "regex with one group", "netns": false,
//                  "env": {"NAME": "value"}, "timeoutMs": 60000} -->
// Unmarked TypeScript blocks are compiled only. `expect`: each pattern must match the output; `distinct`: the
// first groups of all its matches (at least two) must differ. `netns: true` blocks need root (CI; skipped
// elsewhere with a printed reason) and run inside a fresh `wt…` network namespace, with `NETNS` naming a
// second fresh namespace to attach, `WEAVE_BRIDGE` a `wt…` bridge name and `WEAVE_DATA_DIR` a temp dir,
// so nothing they create outlives the test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { canUseNetns, leftovers, NetnsLab } from '../helpers/netns.js';

const run = promisify(execFile);
const repo = new URL('../../../', import.meta.url).pathname;
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

interface Marker {
  run?: boolean;
  expect?: string[];
  distinct?: string;
  netns?: boolean;
  env?: Record<string, string>;
  timeoutMs?: number;
}

interface Snippet {
  index: number;
  line: number;
  code: string;
  marker: Marker;
}

/** Every ```ts block of the README with the marker comment above it, if any. */
export function readmeSnippets(markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] ?? '')) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    let marker: Marker = {};
    for (let j = start - 1; j >= 0 && j >= start - 3; j--) {
      const m = /^<!--\s*snippet:\s*(\{.*\})\s*-->$/.exec(lines[j] ?? '');
      if (m) {
        marker = JSON.parse(m[1] as string) as Marker;
        break;
      }
      if ((lines[j] ?? '').trim() !== '') break;
    }
    out.push({ index: out.length, line: start + 1, code: body.join('\n'), marker });
  }
  return out;
}

const STRICTEST = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2022', 'ESNext.Disposable'],
    types: ['node'],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noPropertyAccessFromIndexSignature: true,
    noImplicitOverride: true,
    noImplicitReturns: true,
    noFallthroughCasesInSwitch: true,
    verbatimModuleSyntax: true,
    isolatedModules: true,
    skipLibCheck: false,
    outDir: 'out',
  },
  include: ['snippet-*.ts'],
};

let project: string | undefined;

/** A fresh project with the packed tarball, @types/node and undici installed (once per run). */
async function freshProject(): Promise<string> {
  if (project) return project;
  const dir = mkdtempSync(join(tmpdir(), 'wt-readme-'));
  // dist is already built by `npm test`; packing must not rebuild it under the running tests.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repo, maxBuffer: 16 * 1024 * 1024 });
  const tarball = join(dir, (JSON.parse(stdout) as { filename: string }[])[0]?.filename ?? '');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'readme-newcomer', private: true, type: 'module' }, null, 2));
  const devDependencies = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).devDependencies as Record<string, string>;
  // undici: the README's fetch example installs it, as its text says a user must.
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball, `@types/node@${devDependencies['@types/node']}`, `undici@${devDependencies['undici']}`], { cwd: dir, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  project = dir;
  return dir;
}

const snippets = readmeSnippets(readFileSync(join(repo, 'README.md'), 'utf8'));

test('the README has TypeScript blocks, and the marked ones are well formed', () => {
  assert.ok(snippets.length >= 2, `found ${snippets.length} blocks`);
  for (const s of snippets) {
    for (const e of s.marker.expect ?? []) new RegExp(e, 'm');
    if (s.marker.distinct !== undefined) assert.ok(new RegExp(`${s.marker.distinct}|`).exec('')?.length === 2, `README.md:${s.line}: "distinct" needs exactly one group`);
  }
});

test('every TypeScript block of the README compiles under the strictest settings against the packed package', async () => {
  const dir = await freshProject();
  for (const s of snippets) writeFileSync(join(dir, `snippet-${s.index}.ts`), `${s.code}\nexport {};\n`);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(STRICTEST, null, 2));
  try {
    await run(process.execPath, [tsc, '-p', dir], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const out = (error as { stdout?: string }).stdout ?? String(error);
    // Name the README line each error comes from.
    const located = out.replace(/snippet-(\d+)\.ts\((\d+),(\d+)\)/g, (_m, i: string, l: string) => `README.md:${(snippets[Number(i)]?.line ?? 0) + Number(l)}`);
    assert.unreachable(`README blocks do not compile:\n${located}`);
  }
  assert.ok(readdirSync(join(dir, 'out')).length > 0, 'compiled');
});

/** Runs a compiled block (in a fresh namespace lab when it is marked `netns`) and returns what it printed. */
async function runSnippet(s: Snippet, file: string, cwd: string): Promise<string> {
  const timeout = s.marker.timeoutMs ?? 60_000;
  const env = { ...process.env, ...s.marker.env };
  if (!s.marker.netns) {
    try {
      return (await run(process.execPath, [file], { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (error) {
      const e = error as { code?: unknown; signal?: unknown; stdout?: string; stderr?: string };
      assert.unreachable(`README.md:${s.line} exited ${String(e.code ?? e.signal)}\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`);
      throw error;
    }
  }
  await using lab = new NetnsLab('r', { namePrefix: 'wtR' });
  await lab.addHost('host');
  const netns = await lab.addHost('web');
  const dataDir = mkdtempSync(join(tmpdir(), 'wt-readme-data-'));
  lab.defer(() => {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(join('/etc/netns', netns), { recursive: true, force: true });
  });
  const vars = { ...s.marker.env, NETNS: netns, WEAVE_BRIDGE: `${lab.prefix}br`, WEAVE_DATA_DIR: dataDir };
  const r = await lab.exec('host', ['env', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), process.execPath, file], { timeoutMs: timeout });
  if (r.code !== 0) assert.unreachable(`README.md:${s.line} exited ${r.code} in namespace ${lab.ns('host')}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r.stdout;
}

const netnsSupport = canUseNetns();
for (const s of snippets.filter((x) => x.marker.run)) {
  test(`README block at line ${s.line} runs and prints what it promises`, async () => {
    if (s.marker.netns && !netnsSupport.ok) {
      console.log(`  skipped: the block at README.md:${s.line} needs network namespaces (${netnsSupport.reason}); CI runs it`);
      return;
    }
    const dir = await freshProject();
    const stdout = await runSnippet(s, join(dir, 'out', `snippet-${s.index}.js`), dir);
    process.stdout.write(`  README.md:${s.line} printed:\n${stdout.replace(/^/gm, '    | ')}\n`);
    for (const e of s.marker.expect ?? []) assert.match(stdout, new RegExp(e, 'm'), `README.md:${s.line} prints /${e}/:\n${stdout}`);
    if (s.marker.distinct !== undefined) {
      const values = [...stdout.matchAll(new RegExp(s.marker.distinct, 'gm'))].map((m) => m[1]);
      assert.ok(values.length >= 2, `README.md:${s.line}: /${s.marker.distinct}/ matched ${values.length} lines:\n${stdout}`);
      assert.is(new Set(values).size, values.length, `README.md:${s.line}: values repeat: ${values.join(', ')}`);
    }
  });
}

test('no namespace or link of these tests is left behind', () => {
  if (!netnsSupport.ok) return;
  const left = leftovers('wtR');
  assert.equal(left, { namespaces: [], links: [] });
});

test('clean up the fresh project', () => {
  if (project) rmSync(project, { recursive: true, force: true });
});

test.run();
