// Runs every compiled test file in its own Node process (a leaked socket or a hang in one file
// cannot stall or poison the others), then prints one closing line: "N passed, N failed, N skipped".
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('../dist/test/', import.meta.url).pathname;
const filters = process.argv.slice(2);
const timeoutMs = Number(process.env.WEAVE_TEST_TIMEOUT_MS ?? 300_000);

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      process.stdout.write(`\n!! ${relative(root, file)} did not finish within ${timeoutMs} ms; killed\n`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const num = (label) => Number((output.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm')) ?? [])[1] ?? NaN);
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        resolve({ passed: 0, failed: 1, skipped: 0, note: `no uvu summary (exit ${code ?? signal})` });
        return;
      }
      // A file whose tests all passed but which exited non-zero (an uncaught error after the run) still fails.
      const failed = total - passed + (code !== 0 && total === passed ? 1 : 0);
      resolve({ passed, failed, skipped: Number.isNaN(skipped) ? 0 : skipped, note: code === 0 ? '' : `exit ${code ?? signal}` });
    });
  });
}

const files = findTests(root).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const file of files) {
  const name = relative(root, file);
  process.stdout.write(`\n## ${name}\n`);
  const r = await runFile(file);
  passed += r.passed;
  failed += r.failed;
  skipped += r.skipped;
  if (r.failed > 0) failures.push(`${name}${r.note ? ` (${r.note})` : ''}`);
}
if (failures.length > 0) process.stdout.write(`\nFailed files:\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
