import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DecodeError } from '../../src/errors.js';
import type { MeshRouter } from '../../src/mesh/router.js';
import type { GossipChannels } from '../../src/mesh/gossip-channels.js';
import { converged, startMesh, waitUntil } from '../helpers/mesh.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString();

test('a peer that does not know a channel still relays its broadcasts, unicasts and periodic gossip', async () => {
  const mesh = await startMesh(3, 'line', { gossipIntervalMs: 100 });
  try {
    const [a, b, c] = mesh.routers as [MeshRouter, MeshRouter, MeshRouter];
    await waitUntil(mesh.routers, () => converged(mesh.routers), 5000);
    const atC: string[] = [];
    const chA = a.registerGossip('x', { gossip: () => Buffer.from('state-of-a') });
    c.registerGossip('x', {
      onBroadcast: (p) => {
        atC.push(`broadcast:${text(p)}`);
        return p;
      },
      onUnicast: (p) => {
        atC.push(`unicast:${text(p)}`);
      },
      onGossip: (p) => {
        atC.push(`gossip:${text(p)}`);
        return undefined;
      },
    });
    chA.broadcast(Buffer.from('hello'));
    assert.ok(chA.unicast(c.selfName, Buffer.from('direct')));
    await waitUntil(
      mesh.routers,
      () => ['broadcast:hello', 'unicast:direct', 'gossip:state-of-a'].every((m) => atC.includes(m)),
      5000,
      () => `c to receive all three kinds (got ${atC.join(', ')})`,
    );
    assert.ok((b.status().gossip['x']?.relayed ?? 0) >= 3, 'b relayed without a handler');
  } finally {
    await mesh.stop();
  }
});

test('a bad payload is rejected and counted, and the link stays up for the next good one', async () => {
  const mesh = await startMesh(2, 'line');
  try {
    const [a, b] = mesh.routers as [MeshRouter, MeshRouter];
    await waitUntil(mesh.routers, () => converged(mesh.routers), 5000);
    const good: string[] = [];
    const rejected: string[] = [];
    b.on('gossip:rejected', (channel, from, error) => rejected.push(`${channel}/${from}/${error.message}`));
    let downs = 0;
    b.on('connection:down', () => downs++);
    const chA = a.registerGossip('strict', {});
    b.registerGossip('strict', {
      onBroadcast: (p) => {
        if (text(p) === 'bad') throw new DecodeError('bad-value', 'payload "bad" is not acceptable');
        good.push(text(p));
        return undefined;
      },
    });
    chA.broadcast(Buffer.from('bad'));
    chA.broadcast(Buffer.from('good'));
    await waitUntil(mesh.routers, () => good.length === 1, 5000, () => 'the good payload');
    assert.equal(good, ['good']);
    assert.equal(rejected, [`strict/${a.selfName}/payload "bad" is not acceptable`]);
    assert.is(b.status().gossip['strict']?.rejected, 1);
    assert.is(downs, 0);
    assert.is(b.linkInfos().length, 1);
  } finally {
    await mesh.stop();
  }
});

test('garbage on the topology channel is rejected without dropping the link', async () => {
  const mesh = await startMesh(2, 'line');
  try {
    const [a, b] = mesh.routers as [MeshRouter, MeshRouter];
    await waitUntil(mesh.routers, () => converged(mesh.routers), 5000);
    const rejected = new Promise<string>((resolve) => b.once('gossip:rejected', (channel) => resolve(channel)));
    // Reach past the public API: a buggy or hostile peer could send exactly this.
    (a as unknown as { gossip: GossipChannels }).gossip.gossipToNeighbours('topology', new Uint8Array([0, 0, 0, 9, 1, 2, 3]), undefined);
    assert.is(await rejected, 'topology');
    assert.is(b.status().gossip['topology']?.rejected, 1);
    assert.is(b.linkInfos().length, 1);
  } finally {
    await mesh.stop();
  }
});

test('periodic gossip relays only new information: a converged mesh stops relaying', async () => {
  const mesh = await startMesh(4, 'line', { gossipIntervalMs: 50 });
  try {
    await waitUntil(mesh.routers, () => converged(mesh.routers), 5000);
    const seen = mesh.routers.map(() => new Set<string>());
    const channels = mesh.routers.map((r, i) =>
      r.registerGossip('set', {
        gossip: () => Buffer.from([...(seen[i] as Set<string>)].join(',')),
        onGossip: (p) => {
          const fresh = text(p)
            .split(',')
            .filter((s) => s !== '' && !seen[i]?.has(s));
          for (const s of fresh) seen[i]?.add(s);
          return fresh.length > 0 ? Buffer.from(fresh.join(',')) : undefined;
        },
      }),
    );
    seen[0]?.add('item');
    channels[0]?.gossipNeighbours(Buffer.from('item'));
    await waitUntil(mesh.routers, () => seen.every((s) => s.has('item')), 5000, () => 'the item everywhere');
    const relayed = () => mesh.routers.map((r) => r.status().gossip['set']?.relayed ?? 0);
    const before = relayed();
    const received = mesh.routers[3]?.status().gossip['set']?.received ?? 0;
    // Several gossip rounds later, state still flows but nothing is relayed onward.
    await waitUntil(mesh.routers, () => (mesh.routers[3]?.status().gossip['set']?.received ?? 0) >= received + 3, 5000);
    assert.equal(relayed(), before);
  } finally {
    await mesh.stop();
  }
});

test('status and peer views are JSON-serialisable and describe the mesh', async () => {
  const mesh = await startMesh(3, 'line');
  try {
    const [a, b, c] = mesh.routers as [MeshRouter, MeshRouter, MeshRouter];
    await waitUntil(mesh.routers, () => converged(mesh.routers), 5000);
    const status = JSON.parse(JSON.stringify(b.status())) as ReturnType<MeshRouter['status']>;
    assert.is(status.peers.length, 3);
    assert.is(status.links.length, 2);
    assert.ok(status.links.every((l) => l.encrypted && l.established));
    assert.is(status.encryption, true);
    const viaB = status.unicastRoutes.find((r) => r.dest === c.self.id);
    assert.is(viaB?.via, c.self.id);
    const fromA = a.status().unicastRoutes.find((r) => r.dest === c.self.id);
    assert.is(fromA?.via, b.self.id, 'a reaches c through b');
    const peerC = a.peer(c.selfName);
    assert.ok(peerC);
    assert.is(peerC.reachable, true);
    assert.is(peerC.established, false, 'no direct link from a to c');
    assert.is(peerC.nickname, 'p2');
    assert.is(JSON.parse(JSON.stringify(peerC)).name, c.self.id);
  } finally {
    await mesh.stop();
  }
});

test.run();
