// Two overlays whose DNS upstream is each other, and one whose upstream has no route: bounded, answered, counted, alive.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import dnsPacket from 'dns-packet';
import { Overlay } from '../../src/overlay.js';
import { testNetworkKey } from '../helpers/mesh.js';
import { closedPort, dig, query, udpExchange } from '../helpers/dns.js';

async function overlay(dns: { listen: string; upstream: string[] }, peers: string[] = []): Promise<Overlay> {
  const o = new Overlay({ listen: '127.0.0.1:0', networkKey: await testNetworkKey(), discovery: false, ipam: false, peers, dns });
  await o.start();
  return o;
}

function metric(o: Overlay, event: string): number {
  const line = new RegExp(`^weave_dns_forwarding_events_total\\{event="${event}"\\} (\\d+)$`, 'm').exec(o.metrics());
  return Number(line?.[1] ?? NaN);
}

test('two overlays whose DNS upstream is each other: each query is forwarded once, refused, and SERVFAIL comes back at once', async () => {
  const [portA, portB] = [await closedPort(), await closedPort()];
  const a = await overlay({ listen: `127.0.0.1:${portA}`, upstream: [`127.0.0.1:${portB}`] });
  const b = await overlay({ listen: `127.0.0.1:${portB}`, upstream: [`127.0.0.1:${portA}`] }, [a.status().router.listenAddress as string]);
  try {
    const started = Date.now();
    assert.is((await dig(portA, 'example.com')).status, 'SERVFAIL');
    assert.ok(Date.now() - started < 1900, 'before any 2 s upstream timeout');
    // 100 client queries in one burst, to either side.
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => udpExchange(i % 2 ? portA : portB, query(`q${i}.example.org`, 'A', i), 3000)));
    assert.ok(replies.every((r) => r && (dnsPacket.decode(r) as unknown as { rcode: string }).rcode === 'SERVFAIL'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const queries = (o: Overlay): number => o.status().dns?.servers.reduce((n, s) => n + s.queries, 0) ?? NaN;
    assert.is(queries(a) + queries(b), 2 + 200, `1 + 100 client queries and one forward each, not a storm (a ${queries(a)}, b ${queries(b)})`);
    assert.is(metric(a, 'loop-refused') + metric(b, 'loop-refused'), 101);
    assert.is(metric(a, 'upstream-rejected') + metric(b, 'upstream-rejected'), 101);
  } finally {
    await b.stop();
    await a.stop();
  }
});

test('an overlay whose upstream has no route answers SERVFAIL, counts it, and keeps running', async () => {
  const port = await closedPort();
  const o = await overlay({ listen: `127.0.0.1:${port}`, upstream: ['[fe80::1]:53'] });
  try {
    for (let i = 0; i < 3; i++) assert.is((await dig(port, `n${i}.example.com`)).status, 'SERVFAIL');
    assert.is(metric(o, 'upstream-error'), 3);
    assert.is(o.status().dns?.servers[0]?.upstreamErrors, 3);
    assert.is(o.state, 'running');
  } finally {
    await o.stop();
  }
});

test.run();
