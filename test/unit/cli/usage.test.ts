import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandHelp, formatCommandHelp, formatGeneralHelp } from '../../../src/cli/usage.js';
import { wantsHelp } from '../../../src/cli/args.js';
import { AGENT_FILE, parseAgentRecord, runningAgent } from '../../../src/cli/agent-file.js';
import { LAUNCH_FLAGS } from '../../../src/cli/launch.js';

test('every launch flag is in launch --help, with a default where it has one', () => {
  const help = formatCommandHelp('launch', commandHelp('/var/lib/weave-ts').launch!);
  assert.match(help, /^Usage: weave-ts launch \[OPTIONS\]\n/);
  for (const flag of [...Object.keys(LAUNCH_FLAGS.values ?? {}), ...(LAUNCH_FLAGS.booleans ?? [])]) {
    assert.match(help, new RegExp(`^  --${flag}\\b`, 'm'), `--${flag} is documented`);
  }
  assert.match(help, /--data-dir DIR\s+.*\(default \/var\/lib\/weave-ts\)/);
  assert.match(help, /^  -h, --help\s+print this help$/m);
});

test('the general help lists every command once, with the help and exit-code hints', () => {
  const helps = commandHelp('/d');
  const text = formatGeneralHelp(helps);
  for (const command of Object.keys(helps)) assert.match(text, new RegExp(`^  ${command} +\\S`, 'm'));
  assert.match(text, /weave-ts help COMMAND/);
  assert.match(text, /Exit codes: 0 success, 1 failure .*, 2 bad arguments or options/);
  assert.ok(['reset', 'hide'].every((c) => c in helps));
});

test('--help and -h count anywhere before --, never after it', () => {
  assert.ok(wantsHelp(['--name', 'x', '--help']));
  assert.ok(wantsHelp(['-h']));
  assert.not.ok(wantsHelp(['--', '--help']));
  assert.not.ok(wantsHelp(['--helpful', 'h']));
});

test('agent records: valid ones parse, anything else is no record (fuzzed)', async () => {
  assert.equal(parseAgentRecord('{"pid":12,"api":"127.0.0.1:6784"}\n'), { pid: 12, api: '127.0.0.1:6784' });
  for (const bad of ['', '{', 'null', '[]', '{"pid":0,"api":"x"}', '{"pid":1.5,"api":"x"}', '{"pid":1,"api":""}', '{"pid":"1","api":"x"}']) {
    assert.is(parseAgentRecord(bad), undefined, bad);
  }
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.record({ pid: fc.anything(), api: fc.anything() }).map((r) => JSON.stringify(r) ?? '')), (text) => {
      const record = parseAgentRecord(text);
      if (record) assert.ok(Number.isSafeInteger(record.pid) && record.pid > 0 && typeof record.api === 'string');
    }),
  );
  const dir = await mkdtemp(join(tmpdir(), 'wt-agent-'));
  try {
    assert.is(await runningAgent(dir), undefined, 'no file');
    await writeFile(join(dir, AGENT_FILE), JSON.stringify({ pid: 4242, api: '127.0.0.1:1' }));
    assert.equal(await runningAgent(dir, () => true), { pid: 4242, api: '127.0.0.1:1' });
    assert.is(await runningAgent(dir, () => false), undefined, 'a dead pid (killed -9) is no agent');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
