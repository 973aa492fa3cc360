// Awaited operations keep the process alive with the real clock, while the library's background timers stay unref'd.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../scripts/awaits-keep-alive.js', import.meta.url));

test('a script awaiting ping, receive, dns.waitFor, ready, drive and attach across a partition settles each and exits 0', async () => {
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [script], { timeout: 60_000 }, (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
  });
  assert.is(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
  assert.equal(stdout.trim().split('\n'), [
    'ping before partition: ok',
    'ping during partition: timeout',
    'partition drops counted: true',
    'receive with timeout: timeout',
    'dns.waitFor a name nobody has: timeout',
    'ready during partition: timeout',
    'send by name during partition: ok',
    'ready after heal: ok',
    'drive a ping after heal: ok',
    'attach awaiting IPAM consensus: TimeoutError',
    'done',
  ]);
});

test.run();
