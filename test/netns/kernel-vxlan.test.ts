// KernelVxlan against the real kernel: two namespaces joined by a veth underlay, a bridge in each with a
// VXLAN device programmed through KernelVxlan. Known unicast crosses the tunnel (its counters move),
// broadcast does not (flooding to the device is off), and removal leaves no entry and no device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KernelVxlan, type VxlanCounters } from '../../src/ethernet/kernel-vxlan.js';
import { systemNetCommand, type NetCommand } from '../../src/ethernet/net-command.js';
import { canUseNetns, NetnsLab } from '../helpers/netns.js';

const support = canUseNetns();
if (!support.ok) console.log(`kernel VXLAN tests skipped: ${support.reason}`);
const nsTest = support.ok ? test : test.skip;

/** Runs `ip`/`bridge` inside a namespace (`ip -n NS …`). */
const inNamespace =
  (ns: string): NetCommand =>
  ([command, ...args]) =>
    systemNetCommand([command as string, '-n', ns, ...args]);

nsTest('known unicast crosses a tunnel, broadcast does not, the bridge learns replies, and removal leaves nothing behind', async () => {
  const lab = new NetnsLab('v', { namePrefix: 'wtx' });
  try {
    const hosts = ['a', 'b'] as const;
    for (const h of hosts) await lab.addHost(h);
    const underlay = await lab.link('a', 'b', { subnet: '10.231.0.0/24' });
    const bridge = `${lab.prefix}br`;
    const device = `${lab.prefix}vx`;
    const overlayIp = { a: '192.168.231.1', b: '192.168.231.2' };
    const remoteOf = { a: underlay.addresses[1] as string, b: underlay.addresses[0] as string };
    const vxlans = new Map<string, KernelVxlan>();
    const macs = new Map<string, string>();
    for (const h of hosts) {
      await lab.execOk(h, ['ip', 'link', 'add', bridge, 'type', 'bridge']);
      await lab.execOk(h, ['ip', 'addr', 'add', `${overlayIp[h]}/24`, 'dev', bridge]);
      await lab.execOk(h, ['ip', 'link', 'set', bridge, 'up']);
      const vxlan = new KernelVxlan({ bridge, port: 6784, mtu: 1376, command: inNamespace(lab.ns(h)) });
      await vxlan.createTunnel(device, 4242);
      vxlans.set(h, vxlan);
      const shown = await lab.execOk(h, ['cat', `/sys/class/net/${bridge}/address`]);
      macs.set(h, shown.stdout.trim());
    }
    const [a, b] = [vxlans.get('a') as KernelVxlan, vxlans.get('b') as KernelVxlan];
    const ping = async (): Promise<number> => (await lab.exec('a', ['ping', '-c', '2', '-i', '0.2', '-W', '1', overlayIp.b])).code;
    const sent = async (v: KernelVxlan): Promise<VxlanCounters> => (await v.counters()).get(device) as VxlanCounters;

    // Nothing programmed: ARP is a broadcast, and the tunnel floods nothing.
    assert.is.not(await ping(), 0, 'no entries, no path (and no broadcast through the tunnel)');
    assert.is((await sent(a)).txPackets, 0, 'the tunnel sent nothing');
    assert.equal(await a.tunnels(), [device]);

    // ARP stays off the tunnel (it takes the sleeve in an agent): neighbours by hand here.
    await lab.execOk('a', ['ip', 'neigh', 'replace', overlayIp.b, 'lladdr', macs.get('b') as string, 'dev', bridge, 'nud', 'permanent']);
    await lab.execOk('b', ['ip', 'neigh', 'replace', overlayIp.a, 'lladdr', macs.get('a') as string, 'dev', bridge, 'nud', 'permanent']);
    await a.setRemote(device, macs.get('b') as string, remoteOf.a);
    await b.setLearning(device, true); // b learns a's MAC from what arrives, and answers through the tunnel
    assert.is(await ping(), 0, 'known unicast crosses the tunnel, the reply comes back by what b learned');
    const aCounters = await sent(a);
    const bCounters = await sent(b);
    assert.ok(aCounters.txPackets >= 2 && bCounters.rxPackets >= 2, `the VXLAN counters moved (a sent ${aCounters.txPackets}, b received ${bCounters.rxPackets})`);
    assert.equal((await a.entries(device)).map((e) => [e.mac, e.table, e.static]), [[macs.get('b'), 'bridge', true], [macs.get('b'), 'device', true]]);
    assert.equal(
      (await b.entries(device)).map((e) => [e.mac, e.table, e.static, e.dst]),
      [[macs.get('a'), 'bridge', false, undefined], [macs.get('a'), 'device', false, remoteOf.b]],
      'b learned where a is (bridge and device)',
    );

    await a.removeRemote(device, macs.get('b') as string);
    assert.equal(await a.entries(device), [], 'no entry left');
    assert.is.not(await ping(), 0, 'without the entry the frames do not cross');

    for (const vxlan of vxlans.values()) await vxlan.destroyTunnel(device);
    for (const h of hosts) {
      const gone = await lab.exec(h, ['ip', 'link', 'show', device]);
      assert.is.not(gone.code, 0, `no ${device} left in ${h}`);
    }
    await a.destroyTunnel(device); // a device already gone is not an error
    assert.equal(await a.tunnels(), []);
  } finally {
    await lab.cleanup();
  }
});

test.run();
