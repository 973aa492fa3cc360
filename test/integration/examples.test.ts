// The examples the README lists run as a user runs them (`node dist/examples/NAME.js`), exit 0 and print what they claim.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runExample(name: string, timeoutMs = 60_000): Promise<Run> {
  const script = fileURLToPath(new URL(`../../examples/${name}.js`, import.meta.url));
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env['WEAVE_PASSWORD']; // the examples' own lab password
    execFile(process.execPath, [script], { timeout: timeoutMs, env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

function expectLines(run: Run, patterns: RegExp[]): void {
  const lines = run.stdout.split('\n');
  for (const pattern of patterns) {
    assert.ok(lines.some((line) => pattern.test(line)), `no line matches ${pattern}:\n${run.stdout}\n${run.stderr}`);
  }
  assert.is(run.code, 0, `exit ${run.code}:\n${run.stdout}\n${run.stderr}`);
}

test('http-service: node:http by name across two peers, one keep-alive connection, ECONNRESET when the service stops', async () => {
  const run = await runExample('http-service');
  expectLines(run, [
    /^serving http:\/\/users:8080\/ \(users\.weave\.local\.\) on 10\.\d+\.\d+\.\d+$/,
    /^GET \/users\/1 -> {"status":200,"body":"{\\"name\\":\\"ada\\"}"}$/,
    /^PUT \/users\/2 -> 201$/,
    /^GET \/users\/2 -> {"status":200,"body":"{\\"name\\":\\"grace\\"}"}$/,
    /^GET \/users\/9 -> 404$/,
    /^client TCP: 1 connection\(s\) opened for 4 requests, \d+ bytes out, \d+ bytes in$/,
    /^open connection when the service stopped: ECONNRESET$/,
  ]);
});

test('test-harness: HTTP replicas under partition, heal and NAT: every check ok', async () => {
  const run = await runExample('test-harness');
  assert.not.match(run.stdout, /FAIL/, run.stdout);
  expectLines(run, [
    /^ok {3}both replicas saw 10 before the partition \(10, 10\)$/,
    /^ok {3}the primary knows which replica missed writes \(replica-w\)$/,
    /^ok {3}a reader cannot reach the cut-off replica: ETIMEDOUT$/,
    /^ok {3}and the replica catches up on the next write$/,
  ]);
});

test('demo-mesh (npm run demo): ping by name, multicast and HTTP across three peers', async () => {
  const run = await runExample('demo-mesh');
  expectLines(run, [/icmp_seq=3 ttl=\d+ time=/, /^web: GET http:\/\/db:8080\/ -> hello from db over TCP$/]);
});

test('market-data: a multicast feed reaches subscribers on two peers, counted with its gaps', async () => {
  const run = await runExample('market-data');
  expectLines(run, [/^\S+ +\d+\/\d+ ticks, \d+ gaps$/, /^\d+ ticks to \d+ subscribers on 2 peers in [\d.]+ s/]);
});

test.run();
