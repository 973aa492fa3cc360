import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EndpointError, OptionsError } from '../../../src/errors.js';
import { KernelVxlan, parseLinkCounters, parseTunnelEntries } from '../../../src/ethernet/kernel-vxlan.js';
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

const options = { bridge: 'weave', port: 6784, mtu: 1376 };

test('a tunnel is a VXLAN device without a default destination on the bridge: isolated, bridge learning and all flooding off, then up', async () => {
  const { run, calls } = recorder();
  await new KernelVxlan({ ...options, command: run }).createTunnel('weavex0123456', 42);
  assert.equal(calls, [
    'ip link add weavex0123456 type vxlan id 42 dstport 6784 ttl 64',
    'ip link set weavex0123456 mtu 1376 addrgenmode none master weave',
    'bridge link set dev weavex0123456 learning off flood off mcast_flood off bcast_flood off isolated on',
    'ip link set weavex0123456 up',
  ]);
});

test('a tunnel that cannot be set up is deleted again, and the error is the setup failure', async () => {
  const { run, calls } = recorder((argv) => (argv[0] === 'bridge' ? 'Operation not supported' : undefined));
  const error = await new KernelVxlan({ ...options, command: run }).createTunnel('wtvx', 42).catch((e: unknown) => e);
  assert.instance(error, EndpointError);
  assert.match(String(error), /Operation not supported/);
  assert.is(calls[calls.length - 1], 'ip link del wtvx');
});

test('a remote is two entries: the bridge sends the MAC to the tunnel (static, sticky), the device to the peer', async () => {
  const { run, calls } = recorder();
  const vxlan = new KernelVxlan({ ...options, command: run });
  await vxlan.setRemote('wtvx', 'AA:BB:CC:00:11:22', '10.0.0.2');
  await vxlan.setLearning('wtvx', true);
  await vxlan.isolate('weave-tap');
  await vxlan.plugProbe('weave-fdp', '02:00:00:00:00:01');
  assert.equal(calls, [
    'bridge fdb replace aa:bb:cc:00:11:22 dev wtvx master static sticky',
    'bridge fdb replace aa:bb:cc:00:11:22 dev wtvx dst 10.0.0.2 self permanent',
    'bridge link set dev wtvx learning on',
    'bridge link set dev weave-tap isolated on',
    'ip link set weave-fdp mtu 1376 master weave up',
    'bridge link set dev weave-fdp learning off flood off mcast_flood off bcast_flood off',
    'bridge fdb replace 02:00:00:00:00:01 dev weave-fdp master static sticky',
  ]);
});

test('removing an entry or a tunnel already gone is not an error; other failures are', async () => {
  const { run, calls } = recorder(() => 'RTNETLINK answers: No such file or directory');
  const vxlan = new KernelVxlan({ ...options, command: run });
  await vxlan.removeRemote('wtvx', 'aa:bb:cc:00:11:22');
  await vxlan.destroyTunnel('wtvx');
  assert.equal(await vxlan.entries('wtvx'), []);
  assert.equal(calls, ['bridge fdb del aa:bb:cc:00:11:22 dev wtvx master', 'bridge fdb del aa:bb:cc:00:11:22 dev wtvx self', 'ip link del wtvx', 'bridge -j -s fdb show dev wtvx']);
  const other = recorder(() => 'Operation not permitted');
  const error = await new KernelVxlan({ ...options, command: other.run }).removeRemote('wtvx', 'aa:bb:cc:00:11:22').catch((e: unknown) => e);
  assert.instance(error, EndpointError, 'other failures are reported');
});

test('bad options and arguments are refused before any command runs', async () => {
  const { run, calls } = recorder();
  for (const bad of [{ bridge: 'bad name' }, { port: 0 }, { port: 70000 }, { mtu: 67 }, { mtu: 1.5 }]) {
    assert.throws(() => new KernelVxlan({ ...options, ...bad, command: run }), (e: unknown) => e instanceof OptionsError);
  }
  const vxlan = new KernelVxlan({ ...options, command: run });
  for (const [device, vni] of [
    ['a-name-longer-than-15', 42],
    ['wtvx', 0],
    ['wtvx', 2 ** 24],
  ] as const) {
    const error = await vxlan.createTunnel(device, vni).catch((e: unknown) => e);
    assert.instance(error, OptionsError, `${device} ${vni}`);
  }
  for (const [mac, ip] of [
    ['aa:bb:cc:00:11', '10.0.0.2'],
    ['aa:bb:cc:00:11:zz', '10.0.0.2'],
    ['aa:bb:cc:00:11:22 self', '10.0.0.2'],
    ['aa:bb:cc:00:11:22', '10.0.0.256'],
    ['aa:bb:cc:00:11:22', 'fe80::1'],
    ['aa:bb:cc:00:11:22', '10.0.0.2 self'],
  ] as const) {
    assert.instance(await vxlan.setRemote('wtvx', mac, ip).catch((e: unknown) => e), OptionsError, `${mac} ${ip}`);
  }
  assert.equal(calls, []);
});

test('entries are the bridge\'s rows (not the port\'s own address) and the device\'s rows of `bridge -j -s fdb show`; counters come from `ip -j -s link show`', () => {
  const fdb = JSON.stringify([
    { mac: 'aa:bb:cc:00:11:22', ifname: 'wtvx', master: 'weave', used: 3, updated: 40, flags: ['sticky'], state: 'static' },
    { mac: 'aa:bb:cc:00:11:22', ifname: 'wtvx', dst: '10.0.0.2', used: 3, updated: 40, flags: ['self'], state: 'permanent' },
    { mac: '02:00:00:00:00:01', ifname: 'wtvx', master: 'weave', used: 0, updated: 1, flags: [] },
    { mac: '02:00:00:00:00:01', ifname: 'wtvx', dst: '10.0.0.2', used: 0, updated: 1, flags: ['self'] },
    { mac: '5a:00:00:00:00:09', ifname: 'wtvx', master: 'weave', flags: [], state: 'permanent' },
    { mac: '00:00:00:00:00:00', ifname: 'wtvx', dst: '10.0.0.9', flags: ['self'], state: 'permanent' },
  ]);
  assert.equal(parseTunnelEntries(fdb), [
    { mac: '02:00:00:00:00:01', table: 'bridge', static: false, usedSeconds: 0 },
    { mac: '02:00:00:00:00:01', table: 'device', dst: '10.0.0.2', static: false, usedSeconds: 0 },
    { mac: 'aa:bb:cc:00:11:22', table: 'bridge', static: true, usedSeconds: 3 },
    { mac: 'aa:bb:cc:00:11:22', table: 'device', dst: '10.0.0.2', static: true, usedSeconds: 3 },
  ]);
  assert.equal(parseTunnelEntries(''), []);
  const link = JSON.stringify([{ ifname: 'wtvx', stats64: { rx: { bytes: 492, packets: 7 }, tx: { bytes: 448, packets: 6 } } }]);
  assert.equal([...parseLinkCounters(link)], [['wtvx', { rxBytes: 492, rxPackets: 7, txBytes: 448, txPackets: 6 }]]);
});

test('fuzz: the parsers of iproute2 output return or throw EndpointError, never anything else', () => {
  const check = (parse: (text: string) => unknown) => (text: string) => {
    try {
      parse(text);
    } catch (error) {
      if (!(error instanceof EndpointError)) throw error;
    }
  };
  const texts = fc.oneof(
    fc.string(),
    fc.json(),
    fc.jsonValue().map((v) => JSON.stringify([v])),
    fc.jsonValue().map((v) => JSON.stringify([{ ifname: 'x', stats64: v }])),
    fc.jsonValue().map((v) => JSON.stringify([{ mac: '02:00:00:00:00:01', used: v, state: v }])),
  );
  fc.assert(fc.property(texts, check(parseTunnelEntries)), { numRuns: 500 });
  fc.assert(fc.property(texts, check(parseLinkCounters)), { numRuns: 500 });
});

test.run();
