// Overlay options are checked at construction, with messages that say what to fix, and a refused option writes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import { OptionsError } from '../../src/errors.js';

function refused(options: OverlayOptions, message: RegExp): void {
  try {
    new Overlay(options);
    assert.unreachable('accepted');
  } catch (error) {
    assert.instance(error, OptionsError);
    assert.match((error as Error).message, message);
  }
}

test('peers ["::::"] is refused at construction, naming the entry and the forms that work', () => {
  refused({ peers: ['10.0.0.2', '::::'] }, /peers\[1\]: peer address "::::" is not valid: "::::" is neither an IP address nor a host name \(expected HOST, HOST:PORT or \[IPv6\]:PORT\)/);
  refused({ peers: ['host:0'] }, /peers\[0\]: .*port 0 is out of range/);
});

test('listen "not-an-address" is refused at construction, not in start()', () => {
  refused({ listen: 'not-an-address' }, /listen address "not-an-address" is not valid: "not-an-address" is not an IP address/);
  refused({ listen: '127.0.0.1:65536' }, /out of range/);
  new Overlay({ listen: false });
  new Overlay({ listen: '[::1]:0' });
});

test('trustedSubnets must be CIDR network addresses, named by index', () => {
  refused({ trustedSubnets: ['10.0.0.0/8', '10.250.1.1/24'] }, /trustedSubnets\[1\]: "10\.250\.1\.1\/24" is not a network address/);
  refused({ trustedSubnets: ['fast'] }, /trustedSubnets\[0\]: "fast" is not a CIDR block/);
  refused({ trustedSubnets: '10.0.0.0/8' as unknown as string[] }, /trustedSubnets must be a list/);
  new Overlay({ listen: false, trustedSubnets: ['10.0.0.0/8'], fastdp: false });
});

test('tcp tunables out of range are refused at construction, naming the field and its bounds', () => {
  refused({ tcp: { receiveBufferBytes: 100 } }, /tcp\.receiveBufferBytes must be an integer from 4096 to 1073741824, not 100/);
  refused({ tcp: { minRtoMs: 0 } }, /tcp\.minRtoMs must be an integer from 1/);
  refused({ tcp: { minRtoMs: 5_000, maxRtoMs: 1_000 } }, /tcp\.minRtoMs \(5000\) must not exceed tcp\.maxRtoMs \(1000\)/);
  refused({ tcp: { delayedAckMs: 1.5 } }, /tcp\.delayedAckMs must be an integer/);
  refused({ tcp: { congestionControl: 'bbr' as 'cubic' } }, /tcp\.congestionControl must be 'newreno' or 'cubic', not bbr/);
  new Overlay({ listen: false, tcp: { minRtoMs: 10, userTimeoutMs: 3_000, congestionControl: 'cubic', sendBufferBytes: undefined } });
});

test('a refused option leaves the data dir untouched: no peer name is written', () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-options-'));
  try {
    const dataDir = join(root, 'data');
    const cases: OverlayOptions[] = [
      { listen: 'nope' },
      { peers: ['::::'] },
      { ipam: { range: '10.32.0.1/12' } },
      { bridge: 'a-very-long-bridge-name' },
      { dns: { domain: 'bad domain' } },
    ];
    for (const options of cases) {
      assert.throws(() => new Overlay({ ...options, dataDir }), (e: unknown) => e instanceof OptionsError, JSON.stringify(options));
      assert.not.ok(existsSync(dataDir), `${JSON.stringify(options)} wrote to the data dir: ${existsSync(dataDir) ? readdirSync(dataDir).join(', ') : ''}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('construction writes nothing; start() persists the peer name, and the next overlay keeps it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wt-options-'));
  try {
    const dataDir = join(root, 'data');
    const first = new Overlay({ listen: '127.0.0.1:0', dataDir, dns: false });
    assert.not.ok(existsSync(dataDir), 'nothing is written before start()');
    await first.start();
    await first.stop();
    const saved = readFileSync(join(dataDir, 'peer-name'), 'utf8').trim();
    assert.is(saved, first.self.id);
    const second = new Overlay({ listen: '127.0.0.1:0', dataDir, dns: false });
    assert.is(second.self.id, saved);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
