import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EndpointError, OptionsError } from '../../../src/errors.js';
import { KernelVxlan, parseFdbRemotes, parseLinkCounters } from '../../../src/ethernet/kernel-vxlan.js';
import type { NetCommand } from '../../../src/ethernet/net-command.js';

/** A NetCommand that records every command and fails the ones `fail` picks. */
function recorder(fail: (argv: readonly string[]) => string | undefined = () => undefined): { run: NetCommand; calls: string[] } {
  const calls: string[] = [];
  const run: NetCommand = (argv) => {
    calls.push(argv.join(' '));
    const message = fail(argv);
    return message === undefined ? Promise.resolve('') : Promise.reject(new EndpointError('command-failed', `${argv.join(' ')}: ${message}`));
  };
  return { run, calls };
}

const options = { device: 'wtvx', bridge: 'weave', vni: 42, port: 6784, mtu: 1376 };

test('create puts the device on the bridge with learning and all flooding off, then up', async () => {
  const { run, calls } = recorder();
  await new KernelVxlan({ ...options, command: run }).create();
  assert.equal(calls, [
    'ip link add wtvx type vxlan id 42 dstport 6784 nolearning ttl 64',
    'ip link set wtvx mtu 1376 master weave',
    'bridge link set dev wtvx learning off flood off mcast_flood off bcast_flood off',
    'ip link set wtvx up',
  ]);
});

test('a device that cannot be set up is deleted again, and the error is the setup failure', async () => {
  const { run, calls } = recorder((argv) => (argv[0] === 'bridge' ? 'Operation not supported' : undefined));
  const error = await new KernelVxlan({ ...options, command: run }).create().catch((e: unknown) => e);
  assert.instance(error, EndpointError);
  assert.match(String(error), /Operation not supported/);
  assert.is(calls[calls.length - 1], 'ip link del wtvx');
});

test('a remote is two static entries: the bridge sends the MAC to the device, the device tunnels it to the peer', async () => {
  const { run, calls } = recorder();
  const vxlan = new KernelVxlan({ ...options, command: run });
  await vxlan.setRemote('AA:BB:CC:00:11:22', '10.0.0.2');
  assert.equal(calls, ['bridge fdb replace aa:bb:cc:00:11:22 dev wtvx master static', 'bridge fdb replace aa:bb:cc:00:11:22 dev wtvx dst 10.0.0.2 self permanent']);
});

test('removing a remote deletes both entries; entries or a device already gone are not errors', async () => {
  const { run, calls } = recorder(() => 'RTNETLINK answers: No such file or directory');
  const vxlan = new KernelVxlan({ ...options, command: run });
  await vxlan.removeRemote('aa:bb:cc:00:11:22');
  await vxlan.destroy();
  assert.equal(calls, ['bridge fdb del aa:bb:cc:00:11:22 dev wtvx master', 'bridge fdb del aa:bb:cc:00:11:22 dev wtvx self', 'ip link del wtvx']);
  const other = recorder(() => 'Operation not permitted');
  const error = await new KernelVxlan({ ...options, command: other.run }).removeRemote('aa:bb:cc:00:11:22').catch((e: unknown) => e);
  assert.instance(error, EndpointError, 'other failures are reported');
});

test('bad options and arguments are refused before any command runs', async () => {
  const { run, calls } = recorder();
  for (const bad of [{ device: 'a-name-longer-than-15' }, { bridge: 'bad name' }, { vni: 0 }, { vni: 2 ** 24 }, { port: 0 }, { port: 70000 }, { mtu: 67 }, { mtu: 1.5 }]) {
    assert.throws(() => new KernelVxlan({ ...options, ...bad, command: run }), (e: unknown) => e instanceof OptionsError);
  }
  const vxlan = new KernelVxlan({ ...options, command: run });
  for (const [mac, ip] of [
    ['aa:bb:cc:00:11', '10.0.0.2'],
    ['aa:bb:cc:00:11:zz', '10.0.0.2'],
    ['aa:bb:cc:00:11:22', '10.0.0.256'],
    ['aa:bb:cc:00:11:22', 'fe80::1'],
    ['aa:bb:cc:00:11:22', '10.0.0.2 self'],
  ] as const) {
    const error = await vxlan.setRemote(mac, ip).catch((e: unknown) => e);
    assert.instance(error, OptionsError, `${mac} ${ip}`);
  }
  assert.equal(calls, []);
});

test('remotes are the tunnel entries of `bridge -j fdb show`, by MAC; counters come from `ip -j -s link show`', () => {
  const fdb = JSON.stringify([
    { mac: 'aa:bb:cc:00:11:22', ifname: 'wtvx', master: 'weave', flags: [], state: 'static' },
    { mac: 'aa:bb:cc:00:11:22', ifname: 'wtvx', dst: '10.0.0.2', flags: [], state: 'permanent' },
    { mac: '02:00:00:00:00:01', ifname: 'wtvx', dst: '10.0.0.3', flags: [], state: 'permanent' },
    { mac: '00:00:00:00:00:00', ifname: 'wtvx', dst: '10.0.0.9', flags: [], state: 'permanent' },
  ]);
  assert.equal([...parseFdbRemotes(fdb)], [
    ['02:00:00:00:00:01', '10.0.0.3'],
    ['aa:bb:cc:00:11:22', '10.0.0.2'],
  ]);
  assert.equal(parseFdbRemotes(''), new Map());
  const link = JSON.stringify([{ ifname: 'wtvx', stats64: { rx: { bytes: 492, packets: 7 }, tx: { bytes: 448, packets: 6 } } }]);
  assert.equal(parseLinkCounters(link), { rxBytes: 492, rxPackets: 7, txBytes: 448, txPackets: 6 });
});

test('fuzz: the parsers of iproute2 output return or throw EndpointError, never anything else', () => {
  const check = (parse: (text: string) => unknown) => (text: string) => {
    try {
      parse(text);
    } catch (error) {
      if (!(error instanceof EndpointError)) throw error;
    }
  };
  const texts = fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify([v])), fc.jsonValue().map((v) => JSON.stringify([{ stats64: v }])));
  fc.assert(fc.property(texts, check(parseFdbRemotes)), { numRuns: 500 });
  fc.assert(fc.property(texts, check(parseLinkCounters)), { numRuns: 500 });
});

test.run();
