// An in-process endpoint's MAC as reported (info.mac, status, `ps`) is the one its stack answers ARP with and sends from.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestMesh } from '../../src/testing/index.js';

test('attach({ mac }) gives the stack that MAC, and info.mac is the MAC peers see in ARP (it was the switch-side end of the NIC pair)', async () => {
  await using mesh = await createTestMesh({ peers: ['a', 'b'] });
  await mesh.ready();
  const fixed = await mesh.overlay('b').attach({ name: 'fixed', mac: '02:00:5e:10:20:30' });
  const random = await mesh.overlay('b').attach({ name: 'random' });
  const client = await mesh.overlay('a').attach({ name: 'client' });
  assert.is(fixed.info.mac, '02:00:5e:10:20:30');
  assert.is(fixed.stack.mac, '02:00:5e:10:20:30', 'the stack sends from and answers ARP with the MAC asked for');
  assert.is(random.stack.mac, random.info.mac, 'a random MAC is reported as the stack uses it');
  await client.ping('fixed');
  const macs = mesh.overlay('a').status().dataPlane.macs.map((m) => m.mac);
  assert.ok(macs.includes('02:00:5e:10:20:30'), `peer a learned the endpoint's MAC from its frames: ${macs.join(', ')}`);
});

test.run();
