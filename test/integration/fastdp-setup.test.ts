// How an overlay sets up its fast path when the bridge comes up (over a model of the kernel, recording
// `ip`/`bridge`): on by default without a password, off with the reason otherwise, and cleaned up on stop;
// which TAPs ask for offloads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Overlay, type OverlayOptions } from '../../src/overlay.js';
import type { NetCommand } from '../../src/ethernet/net-command.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { FakeKernel, FaultPlan } from '../helpers/fault-world.js';
import type { Nic } from '../../src/nic/nic.js';

/** Each TAP the overlay opened, with whether it asked for offloads, in order. */
const tapOpens: string[] = [];

const DNS_PORT = 20_000 + ((process.pid + 7) % 20_000);

async function withOverlay(extra: Partial<OverlayOptions>, body: (overlay: Overlay, calls: string[], kernel: FakeKernel) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'wtk-fastdp-'));
  const runDir = join(root, 'run');
  mkdirSync(runDir);
  const kernel = new FakeKernel(new FaultPlan(), runDir);
  const calls: string[] = [];
  const netCommand: NetCommand = (argv) => {
    calls.push(argv.join(' '));
    return Promise.resolve('');
  };
  const view = kernel.view();
  tapOpens.length = 0;
  const openTap = (name: string, mtu: number, options?: { offload?: boolean }): Promise<Nic> => {
    tapOpens.push(`${name} offload=${options?.offload === true}`);
    return view.openTap(name, mtu);
  };
  const overlay = new Overlay({
    name: '0a:00:00:00:00:01',
    listen: '127.0.0.1:0',
    ipCommand: view.ip,
    bridge: 'wtkbr',
    ipam: { range: '127.78.0.0/27', init: { consensus: 1 } },
    dns: { exposedPort: DNS_PORT },
    clock: new FakeClock(),
    kernel: { netnsRunDir: runDir, netnsConfigDir: join(root, 'etc'), openTap, netCommand },
    ...extra,
  });
  try {
    await overlay.start();
    await overlay.expose(); // brings the bridge up
    await body(overlay, calls, kernel);
  } finally {
    await overlay.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

test('without a password the fast path starts with the bridge: old tunnels removed, TAP isolated, probe TAP plugged; stop closes it', async () => {
  let kernel: FakeKernel | undefined;
  await withOverlay({}, async (overlay, calls, k) => {
    kernel = k;
    const port = Number(overlay.status().router.listenAddress?.split(':').pop()) + 1;
    const fast = overlay.status().dataPlane.fastPath;
    assert.equal({ enabled: fast.enabled, port: fast.port, links: fast.links }, { enabled: true, port, links: [] });
    assert.equal(calls, [
      'ip -j -s link show master wtkbr type vxlan',
      'bridge link set dev wtkbr-tap isolated on',
      'ip link set wtkbr-fdp mtu 1376 master wtkbr up',
      'bridge link set dev wtkbr-fdp learning off flood off mcast_flood off bcast_flood off',
      'bridge fdb replace 0a:00:00:00:00:01 dev wtkbr-fdp master static sticky',
    ]);
    assert.ok(k.links.has('/wtkbr-fdp'), 'the probe TAP is open');
    assert.equal(tapOpens, ['wtkbr-tap offload=true', 'wtkbr-fdp offload=false'], 'offloads on the bridge TAP by default, never on the probe');
  });
  assert.not.ok(kernel?.links.has('/wtkbr-fdp'), 'stop closed the probe TAP');
});

test('fastdp: false, a password without trusted subnets, or a replaced ipCommand keep the fast path off and say why', async () => {
  await withOverlay({ fastdp: false, offload: false }, async (overlay, calls) => {
    assert.equal(tapOpens, ['wtkbr-tap offload=false'], 'offload: false opens the bridge TAP without offloads');
    assert.equal(overlay.status().dataPlane.fastPath, { enabled: false, reason: 'turned off (fastdp: false, --no-fastdp)', heartbeatsReceived: 0, malformed: 0, links: [] });
    assert.equal(calls, []);
  });
  await withOverlay({ password: 'a fast path test password' }, async (overlay, calls) => {
    assert.match(overlay.status().dataPlane.fastPath.reason ?? '', /the network has a password and the peer is not in trustedSubnets.*weave-ts does not encrypt the fast path/);
    assert.ok(calls[0]?.startsWith('ip xfrm state add'), 'ESP was probed');
    assert.not.ok(calls.some((c) => c.includes('vxlan') || c.startsWith('bridge')), 'no fast path objects');
  });
  await withOverlay({ password: 'a fast path test password', trustedSubnets: ['10.0.0.0/8'] }, async (overlay) => {
    assert.is(overlay.status().dataPlane.fastPath.enabled, true, 'trusted subnets: on, for links inside them');
  });
  const root = mkdtempSync(join(tmpdir(), 'wtk-fastdp-'));
  try {
    const runDir = join(root, 'run');
    mkdirSync(runDir);
    const view = new FakeKernel(new FaultPlan(), runDir).view();
    const overlay = new Overlay({
      listen: '127.0.0.1:0',
      ipCommand: view.ip,
      bridge: 'wtkbs',
      ipam: { range: '127.78.0.32/27', init: { consensus: 1 } },
      dns: { exposedPort: DNS_PORT + 1 },
      clock: new FakeClock(),
      kernel: { netnsRunDir: runDir, netnsConfigDir: join(root, 'etc'), openTap: view.openTap },
    });
    await overlay.start();
    await overlay.expose();
    assert.match(overlay.status().dataPlane.fastPath.reason ?? '', /ipCommand is replaced without kernel\.netCommand/);
    await overlay.stop();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
