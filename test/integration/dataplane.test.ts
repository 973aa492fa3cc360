import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitUntil } from '../helpers/mesh.js';
import { BROADCAST, frameText, MULTICAST, startDataMesh, testFrame, type DataPeer } from '../helpers/data-mesh.js';

const texts = (p: DataPeer) => p.received.map(frameText);
const routersOf = (peers: DataPeer[]) => peers.map((p) => p.router);

test('unicast, broadcast and multicast frames between 3 peers over encrypted UDP', async () => {
  const { peers, stop } = await startDataMesh(3, 'full');
  try {
    const [a, b, c] = peers as [DataPeer, DataPeer, DataPeer];
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'hello all'));
    b.endpoint.send(testFrame(MULTICAST, b.endpoint.mac, 'group news'));
    await waitUntil(routersOf(peers), () => texts(b).includes('hello all') && texts(c).includes('hello all') && texts(a).includes('group news') && texts(c).includes('group news'), 5000, () => 'broadcast and multicast');
    assert.not.ok(texts(a).includes('hello all'), 'a frame never returns to its sender');
    // The switches learned every MAC from those floods, so unicast goes straight to its peer.
    c.endpoint.send(testFrame(a.endpoint.mac, c.endpoint.mac, 'to a only'));
    await waitUntil(routersOf(peers), () => texts(a).includes('to a only'), 5000, () => 'the unicast');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.not.ok(texts(b).includes('to a only'), 'a known unicast is not flooded');
    for (const p of peers) {
      const counts = new Map<string, number>();
      for (const t of texts(p)) counts.set(t, (counts.get(t) ?? 0) + 1);
      for (const [t, n] of counts) assert.is(n, 1, `${p.router.nickname} got "${t}" once`);
    }
    const links = a.dataPlane.status().links;
    assert.is(links.length, 2);
    assert.ok(links.every((l) => l.established && l.encrypted));
  } finally {
    await stop();
  }
});

test('multi-hop: a and c with no direct link talk through b, which relays by peer name', async () => {
  const { peers, stop } = await startDataMesh(3, 'line');
  try {
    const [a, b, c] = peers as [DataPeer, DataPeer, DataPeer];
    assert.is(a.router.linkInfos().length, 1, 'a links only to b');
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'who is c'));
    await waitUntil(routersOf(peers), () => texts(c).includes('who is c'), 5000, () => 'the broadcast at c');
    c.endpoint.send(testFrame(a.endpoint.mac, c.endpoint.mac, 'c answers a'));
    await waitUntil(routersOf(peers), () => texts(a).includes('c answers a'), 5000, () => 'the answer at a');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.not.ok(texts(b).includes('c answers a'), 'b relays without delivering');
    assert.ok(b.dataPlane.status().switch.relayed >= 2, 'b relayed the flood and the unicast');
  } finally {
    await stop();
  }
});

test('a plain mesh carries frames too, and says it is unencrypted', async () => {
  const { peers, stop } = await startDataMesh(2, 'line', { encrypted: false });
  try {
    const [a, b] = peers as [DataPeer, DataPeer];
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'plain hello'));
    await waitUntil(routersOf(peers), () => texts(b).includes('plain hello'), 5000);
    assert.is(a.dataPlane.status().links[0]?.encrypted, false);
  } finally {
    await stop();
  }
});

test('a big frame crosses in one piece when the path carries fragmented UDP', async () => {
  const { peers, stop } = await startDataMesh(2, 'line');
  try {
    const [a, b] = peers as [DataPeer, DataPeer];
    a.endpoint.send(testFrame(BROADCAST, a.endpoint.mac, 'big', 40_000));
    await waitUntil(routersOf(peers), () => b.received.some((f) => f.length === 40_000), 5000);
    assert.is(a.dataPlane.status().links[0]?.mode, 'fragmenting');
  } finally {
    await stop();
  }
});

test.run();
