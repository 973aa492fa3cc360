// A direct link comes up on both ends at different moments: each end learns that the other's UDP path works
// only from the other's topology record, which arrives later (coalescing, a slow or loaded peer). Frames that
// already cross the link must not be dropped on the way back for want of that record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Overlay } from '../../src/overlay.js';
import { deriveNetworkKey } from '../../src/crypto/network-key.js';
import { seededRandom } from '../../src/random.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { VirtualWire } from '../../src/testing/virtual-wire.js';

const FAST = { gcDelayMs: 5, gossipIntervalMs: 60_000, backoff: { initialIntervalMs: 50, maxIntervalMs: 500 }, sleeve: { fastHeartbeatMs: 20 } };

test('a reply to a direct neighbour goes out as soon as our end of the link works, before its topology record says so', async () => {
  const clock = new FakeClock();
  const wire = new VirtualWire({ clock, random: seededRandom(5) });
  const [eastHost, westHost] = [wire.addHost(), wire.addHost()];
  const networkKey = await deriveNetworkKey('link asymmetry test');
  const make = (nickname: string, host: typeof eastHost, peers: string[], topologyDelayMs: number): Overlay =>
    new Overlay({
      nickname,
      networkKey,
      listen: `${host.address}:6783`,
      peers,
      discovery: false,
      transport: host,
      clock,
      random: seededRandom(nickname === 'east' ? 11 : 12),
      ipam: false,
      dns: false,
      // East publishes its link changes only after 30 s: west meets east's working link through frames first.
      tuning: { ...FAST, topologyDelayMs },
    });
  const east = make('east', eastHost, [`${westHost.address}:6783`], 30_000);
  const west = make('west', westHost, [], 5);
  const step = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t++) {
      clock.advance(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const drive = async <T>(work: Promise<T>): Promise<T> => {
    let done = false;
    void work.then(() => (done = true), () => (done = true));
    for (let t = 0; !done && t < 20_000; t++) await step(1);
    return work;
  };
  try {
    await drive(Promise.all([east.start(), west.start()]));
    const server = await drive(west.attach({ name: 'server', ip: '10.44.0.2/24' }));
    const client = await drive(east.attach({ name: 'client', ip: '10.44.0.1/24' }));
    // East's view: both ends say established (west published at once). West's: east's record still says connecting.
    await drive(east.ready({ peers: ['west'], timeoutMs: 5_000 }));
    assert.is(west.readiness({ peers: ['east'] }).peers[0]?.state, 'no-data-link', 'the test needs east\'s record to lag');
    const reply = await drive(client.ping(server.address, { timeoutMs: 2_000 }));
    assert.is(reply.address, server.address);
  } finally {
    await drive(Promise.all([east.stop(), west.stop()]));
    wire.close();
  }
});

test.run();
