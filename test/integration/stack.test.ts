import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitUntil } from '../helpers/mesh.js';
import { startDataMesh, type DataPeer } from '../helpers/data-mesh.js';
import { NetStack, type RemoteInfo, type StackUdpSocket } from '../../src/stack/index.js';

/** One userspace stack per peer, on the endpoint end of its memory NIC: 10.32.0.1, .2, .3 in 10.32.0.0/12. */
function stacksOn(peers: DataPeer[]): NetStack[] {
  return peers.map((p, i) => new NetStack({ nic: p.endpoint, address: `10.32.0.${i + 1}/12` }));
}

function collect(socket: StackUdpSocket): { text: string; rinfo: RemoteInfo }[] {
  const got: { text: string; rinfo: RemoteInfo }[] = [];
  socket.on('message', (msg, rinfo) => got.push({ text: msg.toString(), rinfo }));
  return got;
}

test('endpoint stacks on a 3-peer line: ping, UDP, multicast and broadcast across the relay', async () => {
  const { peers, stop } = await startDataMesh(3, 'line');
  const stacks = stacksOn(peers);
  const [a, b, c] = stacks as [NetStack, NetStack, NetStack];
  const routers = peers.map((p) => p.router);
  try {
    assert.is(peers[0]?.router.linkInfos().length, 1, 'peer 0 links only to peer 1');

    // Ping from peer 0's endpoint to peer 2's, relayed by peer 1 (ARP broadcast first, then unicast).
    const pong = await a.ping(c.address, { timeoutMs: 5000 });
    assert.is(pong.address, '10.32.0.3');
    assert.is(pong.ttl, 64, 'an L2 overlay does not decrement TTL');
    assert.is(pong.bytes, 64);
    const back = await c.ping(a.address, { timeoutMs: 5000, size: 3000 });
    assert.is(back.bytes, 3008);

    // UDP request/response.
    const server = c.createUdpSocket();
    await server.bind(5353);
    server.on('message', (msg, rinfo) => void server.send(Buffer.from(`re: ${msg.toString()}`), rinfo.port, rinfo.address));
    const client = a.createUdpSocket();
    const replies = collect(client);
    await client.send(Buffer.from('hello c'), 5353, c.address);
    await waitUntil(routers, () => replies.length === 1, 5000, () => 'the UDP reply');
    assert.is(replies[0]?.text, 're: hello c');
    assert.is(replies[0]?.rinfo.address, '10.32.0.3');
    assert.is(replies[0]?.rinfo.port, 5353);

    // One multicast datagram from peer 0 reaches the subscribers on peers 1 and 2.
    const subB = b.createUdpSocket();
    const subC = c.createUdpSocket();
    await subB.bind(9000);
    await subC.bind(9000);
    subB.addMembership('239.10.0.1');
    subC.addMembership('239.10.0.1');
    const gotB = collect(subB);
    const gotC = collect(subC);
    const sender = a.createUdpSocket();
    await sender.send(Buffer.from('to the group'), 9000, '239.10.0.1');
    await waitUntil(routers, () => gotB.length === 1 && gotC.length === 1, 5000, () => 'the multicast at both subscribers');
    assert.is(gotB[0]?.text, 'to the group');
    assert.is(gotC[0]?.text, 'to the group');
    assert.is(gotB[0]?.rinfo.address, '10.32.0.1');

    // Broadcast: needs setBroadcast, then reaches both other peers' sockets on the port.
    const listenB = b.createUdpSocket();
    const listenC = c.createUdpSocket();
    await listenB.bind(6666);
    await listenC.bind(6666);
    const heardB = collect(listenB);
    const heardC = collect(listenC);
    const shouter = a.createUdpSocket();
    shouter.setBroadcast(true);
    await shouter.send(Buffer.from('everyone'), 6666, '255.255.255.255');
    await shouter.send(Buffer.from('subnet'), 6666, '10.47.255.255');
    await waitUntil(routers, () => heardB.length === 2 && heardC.length === 2, 5000, () => 'both broadcasts at both peers');
    assert.equal(heardB.map((h) => h.text), ['everyone', 'subnet']);
    assert.equal(heardC.map((h) => h.text), ['everyone', 'subnet']);

    for (const s of stacks) assert.is(s.stats.drops['bad-checksum'] ?? 0, 0);
  } finally {
    await Promise.all(stacks.map((s) => s.close()));
    await stop();
  }
});

test.run();
