// Overlay events as a user's handler meets them: who `peer:up` names, what `link:changed` carries in each state,
// and that a peer that goes down still has its nickname (in the event and in the log line).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Overlay } from '../../src/overlay.js';
import type { OverlayLinkView } from '../../src/status/links.js';
import { deriveNetworkKey } from '../../src/crypto/network-key.js';
import { seededRandom } from '../../src/random.js';
import { VirtualWire, type VirtualHost } from '../../src/testing/virtual-wire.js';

const FAST = { topologyDelayMs: 5, gcDelayMs: 50, gossipIntervalMs: 5_000, backoff: { initialIntervalMs: 50, maxIntervalMs: 500 }, sleeve: { fastHeartbeatMs: 20 }, ipamTickMs: 200 };
const networkKey = deriveNetworkKey('overlay events test');

interface Observed {
  peerUp: string[];
  peerDown: string[];
  links: OverlayLinkView[];
  logs: { message: string; fields: Record<string, unknown> }[];
}

/** A line a – b – c on a virtual wire, with every listener in place before start. */
async function line(): Promise<{ overlays: Overlay[]; wire: VirtualWire; hosts: VirtualHost[]; seen: Observed[] }> {
  const wire = new VirtualWire({ random: seededRandom(3) });
  const hosts = ['a', 'b', 'c'].map(() => wire.addHost());
  const seen: Observed[] = [];
  const overlays = await Promise.all(
    ['a', 'b', 'c'].map(async (nickname, i) => {
      const observed: Observed = { peerUp: [], peerDown: [], links: [], logs: [] };
      seen.push(observed);
      const log = (fields: object, message?: string): void => void observed.logs.push({ message: message ?? '', fields: fields as Record<string, unknown> });
      const overlay = new Overlay({
        nickname,
        networkKey: await networkKey,
        listen: `${hosts[i]?.address}:6783`,
        peers: i === 0 ? [] : [`${hosts[i - 1]?.address}:6783`],
        discovery: false,
        transport: hosts[i],
        random: seededRandom(10 + i),
        ipam: false,
        dns: false,
        tuning: FAST,
        logger: { debug: log, info: log, warn: log, error: log },
      });
      overlay.on('peer:up', (p) => observed.peerUp.push(p.nickname || p.id));
      overlay.on('peer:down', (p) => observed.peerDown.push(p.nickname));
      overlay.on('link:changed', (l) => observed.links.push(l));
      return overlay;
    }),
  );
  await Promise.all(overlays.map((o) => o.start()));
  return { overlays, wire, hosts, seen };
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The README's `link:changed` handler, as a function of the view. */
function describeLink(link: OverlayLinkView): string {
  return [link.nickname, link.state === 'established' ? `${link.direct ? 'direct' : `via ${link.viaNickname}`}, ${link.mode}, MTU ${link.mtu}` : link.state].join(' ');
}

const allEstablished = (o: Overlay): boolean => o.status().links.length === 2 && o.status().links.every((l) => l.established);

test('peer:up names the other peers, never the local one (that is overlay.self)', async () => {
  const { overlays, seen } = await line();
  try {
    await waitFor('every peer reaches every other', () => overlays.every(allEstablished));
    assert.equal([...(seen[0]?.peerUp ?? [])].sort(), ['b', 'c']);
    assert.equal([...(seen[1]?.peerUp ?? [])].sort(), ['a', 'c']);
    assert.ok(!overlays.some((o, i) => seen[i]?.peerUp.includes(o.self.id) || seen[i]?.peerUp.includes(o.router.nickname)));
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test('link:changed says the state; established views carry via and MTU, the others neither', async () => {
  const { overlays, wire, hosts, seen } = await line();
  try {
    const [ha, hb, hc] = hosts as [VirtualHost, VirtualHost, VirtualHost];
    await waitFor('every peer reaches every other', () => overlays.every(allEstablished));
    // Views are compared once per burst of topology updates: wait until a has reported c's path.
    await waitFor('a reports c via b', () => seen[0]?.links.some((l) => l.nickname === 'c' && l.state === 'established') ?? false);
    wire.partition([ha, hb], [hc]);
    await waitFor('a sees c unreachable', () => seen[0]?.links.some((l) => l.nickname === 'c' && l.mode === 'unreachable') ?? false);
    const views = seen.flatMap((s) => s.links);
    for (const view of views) {
      const text = describeLink(view);
      assert.not.match(text, /undefined|NaN/, `README handler printed "${text}" for ${JSON.stringify(view)}`);
      assert.ok(['established', 'connecting', 'unreachable'].includes(view.state), JSON.stringify(view));
      assert.is(view.established, view.state === 'established');
      if (view.state === 'established') {
        assert.type(view.via, 'string');
        assert.type(view.mtu, 'number');
        assert.ok(view.mtu > 0);
        assert.is(view.viaNickname, view.direct ? view.nickname : 'b', JSON.stringify(view));
      } else {
        assert.is(view.mtu, undefined, JSON.stringify(view));
        if (view.state === 'unreachable') assert.is(view.via, undefined, JSON.stringify(view));
      }
    }
    const aLines = (seen[0]?.links ?? []).map(describeLink);
    assert.ok(aLines.some((l) => /^b direct, (fragmenting|pmtu), MTU \d+$/.test(l)), aLines.join(' | '));
    assert.ok(aLines.some((l) => /^c via b, (fragmenting|pmtu), MTU \d+$/.test(l)), aLines.join(' | '));
    assert.ok(aLines.includes('c unreachable'), aLines.join(' | '));
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test('peer:down keeps the last known nickname, in the event and in the "peer down" log line', async () => {
  const { overlays, seen } = await line();
  try {
    const [a, , c] = overlays as [Overlay, Overlay, Overlay];
    await waitFor('every peer reaches every other', () => overlays.every(allEstablished));
    await c.stop();
    await waitFor('b forgets c', () => (seen[1]?.peerDown.length ?? 0) > 0 && (seen[0]?.peerDown.length ?? 0) > 0);
    assert.equal(seen[1]?.peerDown, ['c']);
    assert.equal(seen[0]?.peerDown, ['c']);
    const line = seen[1]?.logs.find((l) => l.message === 'peer down');
    assert.equal(line?.fields, { peer: c.self.id, nickname: 'c' });
    assert.ok(a.status().router.peers.every((p) => p.name !== c.self.id), 'the peer is forgotten');
  } finally {
    await Promise.all(overlays.map((o) => o.stop()));
  }
});

test.run();
