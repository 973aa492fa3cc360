import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { DnsServer, type DnsServerOptions, type NameSource } from '../../../src/dns/server.js';
import { Dns } from '../../../src/dns/dns.js';
import { MeshRouter } from '../../../src/mesh/router.js';
import fc from 'fast-check';
import { FAST, testName } from '../../helpers/mesh.js';
import { assertDecodesOrRejects, mutatedBytes } from '../../helpers/fuzz.js';
import { canonicalHost, isOwnAddress } from '../../../src/dns/forwarder.js';
import { encodeForwardQuery, replyFor, responseLayout } from '../../../src/dns/forward-message.js';
import { decodeQuery, FORWARDED_OPTION_CODE } from '../../../src/dns/message.js';
import { DecodeError } from '../../../src/errors.js';
import { closedPort, dig, query, recordingUpstream, strippingRelay, udpExchange } from '../../helpers/dns.js';

/** The EDNS0 option weave-ts puts on the queries it forwards: its code is part of the wire protocol (docs/dns.md §6.5). */
const FORWARDED_OPTION = 65367;
assert.is(FORWARDED_OPTION_CODE, FORWARDED_OPTION);

const SOURCE: NameSource = {
  resolve: (name, family) => (name === 'db.weave.local.' ? (family === 4 ? ['10.0.0.1'] : []) : undefined),
  reverse: () => [],
};

async function startServer(options: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  const server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [], ...options });
  await server.start();
  return server;
}

function rcode(reply: Buffer | undefined): string | undefined {
  return reply ? (dnsPacket.decode(reply) as unknown as { rcode: string }).rcode : undefined;
}

test('an upstream whose connect fails gives SERVFAIL, counted as an upstream error, and the server lives on', async () => {
  // Connecting a UDP socket to a link-local IPv6 address without a scope fails in the kernel (EINVAL) before
  // anything is sent, like an IPv6 nameserver on an IPv4-only host (ENETUNREACH): no packet leaves the machine.
  await using server = await startServer({ upstream: ['[fe80::1]:53'] });
  const started = Date.now();
  const result = await dig(server.port, 'example.com', 'A');
  assert.is(result.status, 'SERVFAIL');
  assert.ok(Date.now() - started < 1900, 'answered before the 2 s upstream timeout could have passed');
  assert.is(server.stats.servfail, 1);
  assert.is(server.stats.upstreamErrors, 1);
  assert.is(server.stats.upstreamTimeouts, 0);
  assert.is((await dig(server.port, 'example.com', 'A', '+tcp')).status, 'SERVFAIL', 'over TCP too');
  assert.is(server.stats.upstreamErrors, 2);
  assert.equal((await dig(server.port, 'db.weave.local')).answers.map((a) => a.data), ['10.0.0.1'], 'still serving');
});

test('a silent upstream is counted as a timeout', async () => {
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    await using server = await startServer({ upstream: [`127.0.0.1:${silent.address().port}`], upstreamTimeoutMs: 100 });
    assert.is((await dig(server.port, 'example.com')).status, 'SERVFAIL');
    assert.is(server.stats.upstreamTimeouts, 1);
    assert.is(server.stats.upstreamErrors, 0);
  } finally {
    silent.close();
  }
});

const rawSocketSkip = process.getuid?.() === 0 ? '' : 'needs root for a raw socket';
(rawSocketSkip === '' ? test : test.skip)('a query from source port 0 gets no reply, is counted, and the server keeps answering', async () => {
  await using server = await startServer();
  // Node cannot send from port 0; perl (in every Debian base) writes the UDP header itself through a raw socket.
  const perl = `use Socket; socket(my $s, PF_INET, SOCK_RAW, 17) or die "raw socket: $!";
    my $q = pack('n n n n n n', 0x1234, 0x0100, 1, 0, 0, 0) . "\\x02db\\x05weave\\x05local\\x00" . pack('n n', 1, 1);
    send($s, pack('n n n n', 0, ${server.port}, 8 + length($q), 0) . $q, 0, sockaddr_in(0, inet_aton('127.0.0.1'))) or die "send: $!";`;
  execFileSync('perl', ['-e', perl]);
  for (let i = 0; i < 50 && server.stats.queries === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.is(server.stats.queries, 1, 'the datagram arrived');
  assert.is(server.stats.dropped, 1, 'no reply can go to port 0');
  assert.equal((await dig(server.port, 'db.weave.local')).answers.map((a) => a.data), ['10.0.0.1']);
});
if (rawSocketSkip !== '') console.log(`source port 0 test skipped: ${rawSocketSkip}`);

test('two servers whose upstream is each other: a query is forwarded once and the client gets SERVFAIL at once', async () => {
  const [portA, portB] = [await closedPort(), await closedPort()];
  await using a = await startServer({ listen: { host: '127.0.0.1', port: portA }, upstream: [`127.0.0.1:${portB}`] });
  await using b = await startServer({ listen: { host: '127.0.0.1', port: portB }, upstream: [`127.0.0.1:${portA}`] });
  const started = Date.now();
  const result = await dig(portA, 'example.com', 'A');
  const elapsed = Date.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 200)); // anything still bouncing would show now
  assert.is(a.stats.queries + b.stats.queries, 2, `A saw ${a.stats.queries} queries, B ${b.stats.queries}`);
  assert.is(result.status, 'SERVFAIL');
  assert.ok(elapsed < 1900, `answered in ${elapsed} ms, before any 2 s upstream timeout`);
  assert.is(b.stats.loopsRefused, 1, 'B refused the query A had forwarded');
  assert.is(a.stats.servfail, 1);
});

test('100 queries to two servers pointing at each other cost 100 forwards, not a storm', async () => {
  const [portA, portB] = [await closedPort(), await closedPort()];
  await using a = await startServer({ listen: { host: '127.0.0.1', port: portA }, upstream: [`127.0.0.1:${portB}`] });
  await using b = await startServer({ listen: { host: '127.0.0.1', port: portB }, upstream: [`127.0.0.1:${portA}`] });
  const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => udpExchange(portA, query(`n${i}.example.com`, 'A', i), 3000)));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(
    replies.map((r) => rcode(r)),
    replies.map(() => 'SERVFAIL'),
  );
  assert.is(a.stats.queries, 100);
  assert.is(b.stats.queries, 100);
  assert.is(b.stats.loopsRefused, 100);
});

test('a loop through a forwarder that strips EDNS options is cut by joining the query already in flight', async () => {
  const port = await closedPort();
  const relay = await strippingRelay(() => port);
  try {
    await using server = await startServer({ listen: { host: '127.0.0.1', port }, upstream: [`127.0.0.1:${relay.port}`], upstreamTimeoutMs: 300 });
    const started = Date.now();
    const result = await dig(port, 'loop.example.com', 'A');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.is(result.status, 'SERVFAIL');
    assert.ok(Date.now() - started < 1900, 'after one 300 ms exchange timeout, not a chain of them');
    assert.is(relay.relayed, 1, `the relay carried ${relay.relayed} queries`);
    assert.is(server.stats.queries, 2);
    assert.is(server.stats.coalesced, 1);
  } finally {
    await relay.close();
  }
});

test('a query already forwarded by a weave-ts server is answered locally, or REFUSED instead of forwarded again', async () => {
  const upstream = await recordingUpstream();
  try {
    await using server = await startServer({ upstream: [`127.0.0.1:${upstream.port}`] });
    const marked = { ednsOptions: [{ code: FORWARDED_OPTION, data: Buffer.alloc(0) }] };
    assert.is(rcode(await udpExchange(server.port, query('example.com', 'A', 1, marked))), 'REFUSED');
    assert.is(upstream.seen.length, 0, 'not forwarded');
    assert.is(server.stats.loopsRefused, 1);
    const local = dnsPacket.decode((await udpExchange(server.port, query('db.weave.local', 'A', 2, marked))) as Buffer);
    assert.equal(
      (local.answers ?? []).map((a) => ('data' in a ? a.data : undefined)),
      ['10.0.0.1'],
    );
  } finally {
    await upstream.close();
  }
});

test('forwarded queries carry the marker; replies keep the id and case, and have no OPT when the client sent none', async () => {
  const upstream = await recordingUpstream();
  try {
    await using server = await startServer({ upstream: [`127.0.0.1:${upstream.port}`] });
    const plain = dnsPacket.decode((await udpExchange(server.port, query('WwW.Example.COM', 'A', 0xbeef), 2000)) as Buffer);
    assert.is(plain.id, 0xbeef);
    assert.is(plain.questions?.[0]?.name, 'WwW.Example.COM');
    assert.equal(
      (plain.answers ?? []).map((a) => ('data' in a ? a.data : undefined)),
      ['192.0.2.1'],
    );
    assert.equal(plain.additionals ?? [], [], 'no OPT record for a client without EDNS');
    const opt = (upstream.seen[0]?.additionals ?? []).find((a) => a.type === 'OPT') as { options?: { code: number }[] } | undefined;
    assert.ok(opt?.options?.some((o) => o.code === FORWARDED_OPTION), 'the upstream saw the marker');
    const withEdns = dnsPacket.decode((await udpExchange(server.port, query('example.com', 'A', 7, { edns: true }), 2000)) as Buffer);
    assert.ok((withEdns.additionals ?? []).some((a) => a.type === 'OPT'), 'an EDNS client gets its OPT record');
    assert.is(server.stats.forwarded, 2);
  } finally {
    await upstream.close();
  }
});

test('an upstream that answers FORMERR to EDNS is asked again without the OPT record', async () => {
  const old = createSocket('udp4');
  await new Promise<void>((resolve) => old.bind(0, '127.0.0.1', resolve));
  const seen: boolean[] = [];
  old.on('message', (message, peer) => {
    const q = dnsPacket.decode(message);
    const edns = (q.additionals ?? []).some((a) => a.type === 'OPT');
    seen.push(edns);
    const question = q.questions?.[0] as dnsPacket.Question;
    const answers = edns ? [] : [{ type: 'A' as const, name: question.name, ttl: 60, data: '192.0.2.9' }];
    old.send(dnsPacket.encode({ type: 'response', id: q.id, flags: edns ? 1 : 0, questions: q.questions, answers }), peer.port, peer.address);
  });
  try {
    await using server = await startServer({ upstream: [`127.0.0.1:${old.address().port}`] });
    const reply = await dig(server.port, 'example.com');
    assert.equal(reply.answers.map((a) => a.data), ['192.0.2.9']);
    assert.equal(seen, [true, false]);
  } finally {
    old.close();
  }
});

test('every address the DNS service listens on is skipped as an upstream, not only the server itself', async () => {
  const upstream = await recordingUpstream();
  const router = new MeshRouter({ ...FAST, name: testName(0) });
  await router.start();
  try {
    const [p1, p2] = [await closedPort(), await closedPort()];
    const dns = new Dns(router, { server: { listen: `127.0.0.1:${p1}`, upstream: [`127.0.0.2:${p2}`, `127.0.0.1:${upstream.port}`] } });
    await dns.start();
    try {
      await dns.serve(`127.0.0.2:${p2}`);
      const result = await dig(p1, 'example.com', 'A');
      assert.is(result.status, 'NOERROR');
      const [first, second] = dns.status().servers;
      assert.is(second?.queries, 0, 'the sibling listener was not used as an upstream');
      assert.is(first?.ownUpstreamsSkipped, 1);
      assert.is(upstream.seen.length, 1);
    } finally {
      await dns.stop();
    }
  } finally {
    await router.stop();
    await upstream.close();
  }
});

test('own addresses: the same address and port, any local address under a wildcard listener, loopback for the unspecified address', () => {
  const host = new Set(['192.0.2.10', 'fd00::10']);
  const own = (upstream: string, port: number, listeners: [string, number][]): boolean =>
    isOwnAddress({ host: upstream, port }, listeners.map(([address, p]) => ({ address, port: p })), () => host);
  assert.ok(own('10.40.0.1', 53, [['10.40.0.1', 53]]));
  assert.not.ok(own('10.40.0.1', 5353, [['10.40.0.1', 53]]), 'another port is another server');
  assert.not.ok(own('10.40.0.2', 53, [['10.40.0.1', 53]]));
  assert.ok(own('10.40.0.2', 53, [['10.40.0.1', 53], ['10.40.0.2', 53]]), 'a sibling listener');
  assert.ok(own('127.0.0.53', 53, [['0.0.0.0', 53]]), 'loopback under 0.0.0.0');
  assert.ok(own('192.0.2.10', 53, [['0.0.0.0', 53]]), 'a host address under 0.0.0.0');
  assert.not.ok(own('192.0.2.99', 53, [['0.0.0.0', 53]]), 'not a host address');
  assert.not.ok(own('fd00::10', 53, [['0.0.0.0', 53]]), '0.0.0.0 does not take IPv6');
  assert.ok(own('fd00:0:0::10', 53, [['::', 53]]), ':: takes IPv6, any spelling');
  assert.ok(own('192.0.2.10', 53, [['::', 53]]), ':: is dual-stack');
  assert.ok(own('::ffff:10.40.0.1', 53, [['10.40.0.1', 53]]), 'IPv4-mapped');
  assert.ok(own('0.0.0.0', 53, [['127.0.0.1', 53]]), 'the unspecified address connects to loopback');
  assert.not.ok(own('0.0.0.0', 53, [['10.40.0.1', 53]]));
  assert.not.ok(own('10.40.0.1', 53, [['10.40.0.1', 0]]), 'an unbound listener matches nothing');
  assert.is(canonicalHost('FE80::1%eth0'), 'fe80::1');
});

test('the marker option is read from any position in the OPT record; a cut option list is FORMERR', () => {
  const other = { code: 10, data: Buffer.alloc(8, 1) };
  assert.is(decodeQuery(query('x.example', 'A', 1, { ednsOptions: [other, { code: FORWARDED_OPTION_CODE, data: Buffer.alloc(0) }] })).edns?.forwarded, true);
  assert.is(decodeQuery(query('x.example', 'A', 1, { ednsOptions: [other] })).edns?.forwarded, false);
  const cut = query('x.example', 'A', 1, { ednsOptions: [other] });
  cut.writeUInt16BE(cut.readUInt16BE(cut.length - 12 + 2) + 2, cut.length - 12 + 2); // the option claims 2 more bytes than the record holds
  assert.throws(() => decodeQuery(cut), (e: unknown) => e instanceof DecodeError);
  const ours = decodeQuery(encodeForwardQuery({ id: 9, flags: 0x0130, question: decodeQuery(query('y.example')).question, udpSize: 512, dnssecOk: true }));
  assert.equal([ours.header.flags, ours.edns?.forwarded, ours.edns?.dnssecOk, ours.edns?.udpSize], [0x0130, true, true, 512]);
});

/** Upstream-like replies: answers, authority, OPT records, with and without a question. */
const validResponse: fc.Arbitrary<Uint8Array> = fc
  .record({ id: fc.integer({ min: 0, max: 0xffff }), name: fc.domain(), answers: fc.nat({ max: 5 }), opt: fc.boolean(), question: fc.boolean() })
  .map(({ id, name, answers, opt, question }) =>
    dnsPacket.encode({
      type: 'response',
      id,
      questions: question ? [{ type: 'A', name, class: 'IN' }] : [],
      answers: Array.from({ length: answers }, (_, i) => ({ type: 'A' as const, name, ttl: 5, data: `192.0.2.${i + 1}` })),
      authorities: [{ type: 'NS', name, ttl: 5, data: `ns.${name}` }],
      additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as dnsPacket.Answer] : [],
    }),
  );

test('upstream replies: random and mutated bytes are rejected with a DecodeError; valid ones lose their OPT for clients without EDNS', () => {
  fc.assert(
    fc.property(mutatedBytes(validResponse), (bytes) => {
      assertDecodesOrRejects(responseLayout, bytes);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(validResponse, fc.boolean(), (response, edns) => {
      const layout = responseLayout(response);
      const question = response.subarray(12, layout.questionEnd);
      const upper = Uint8Array.from(question, (b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b));
      const reply = dnsPacket.decode(Buffer.from(replyFor(response, layout, { id: 0xabcd, question: upper, edns })));
      const original = dnsPacket.decode(Buffer.from(response));
      assert.is(reply.id, 0xabcd);
      assert.equal(reply.answers, original.answers);
      assert.equal(reply.questions?.map((q) => q.name), original.questions?.map((q) => q.name.toUpperCase()));
      const opts = (reply.additionals ?? []).filter((a) => a.type === 'OPT').length;
      assert.is(opts, edns ? (original.additionals ?? []).filter((a) => a.type === 'OPT').length : 0);
    }),
    { numRuns: 500 },
  );
});

test('a Dns without a listener of its own still gives servers added with serve() the configured upstreams', async () => {
  const upstream = await recordingUpstream();
  const router = new MeshRouter({ ...FAST, name: testName(1) });
  await router.start();
  try {
    const dns = new Dns(router, { server: { listen: false, upstream: [`127.0.0.1:${upstream.port}`] } });
    await dns.start();
    try {
      assert.equal(dns.status().servers, [], 'nothing listens before serve()');
      const { port } = await dns.serve('127.0.0.1:0');
      assert.equal((await dig(port, 'example.com')).answers.map((a) => a.data), ['192.0.2.1']);
      assert.is(upstream.seen.length, 1);
    } finally {
      await dns.stop();
    }
  } finally {
    await router.stop();
    await upstream.close();
  }
});

test.run();
