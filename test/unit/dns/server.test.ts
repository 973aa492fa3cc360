import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { DnsServer, type DnsServerOptions, type NameSource } from '../../../src/dns/server.js';
import { parseResolvConf, ResolvConf } from '../../../src/dns/resolv-conf.js';
import { parseUpstream } from '../../../src/dns/upstream.js';
import { WeaveError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { closedPort, dig, query, serveDnsOverTcp, udpExchange, udpTcpPair, type DigRecord } from '../../helpers/dns.js';

const MANY = Array.from({ length: 50 }, (_, i) => `10.1.0.${i + 1}`);

/** A name table: name → [IPv4s, IPv6s]. */
function tableSource(table: Record<string, [string[], string[]]>): NameSource {
  return {
    resolve: (name, family) => {
      const entry = table[name];
      return entry === undefined ? undefined : family === 4 ? entry[0] : entry[1];
    },
    reverse: (address) => Object.keys(table).filter((name) => table[name]?.[0].includes(address) || table[name]?.[1].includes(address)),
  };
}

const SOURCE = tableSource({
  'db.weave.local.': [['10.0.0.1', '10.0.0.2', '10.0.0.3'], ['fd00::1']],
  'web.weave.local.': [['10.0.0.9'], []],
  'v6only.weave.local.': [[], ['fd00::2']],
  'many.weave.local.': [MANY, []],
});

async function startServer(options: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  const server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [], ...options });
  await server.start();
  return server;
}

function digShort(port: number, ...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=2', '+short', ...args], (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout.split('\n').filter((l) => l !== ''));
    });
  });
}

/** The data of each answer of a decoded packet. */
function answerData(packet: dnsPacket.Packet | undefined): unknown[] {
  return (packet?.answers ?? []).map((a) => ('data' in a ? a.data : undefined));
}

/** A stub resolver on loopback: example.com A 93.184.216.34; big.example.com truncated over UDP and 40 A records over TCP. */
async function stubUpstream(): Promise<{ port: number; udpQueries: number; tcpQueries: number; close(): Promise<void> }> {
  const { udp, tcp } = await udpTcpPair();
  const port = udp.address().port;
  const state = { port, udpQueries: 0, tcpQueries: 0, close: async () => undefined as void };
  const answer = (message: Buffer, tcp: boolean): Buffer => {
    const q = dnsPacket.decode(message);
    const question = q.questions?.[0] as dnsPacket.Question;
    const name = question.name.toLowerCase();
    const base = { type: 'response' as const, id: q.id, questions: q.questions, flags: dnsPacket.RECURSION_AVAILABLE };
    if (name === 'example.com') return dnsPacket.encode({ ...base, answers: [{ type: 'A', name: question.name, ttl: 60, data: '93.184.216.34' }] });
    if (name === 'big.example.com' && !tcp) return dnsPacket.encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE });
    if (name === 'big.example.com') {
      return dnsPacket.encode({ ...base, answers: Array.from({ length: 40 }, (_, i) => ({ type: 'A' as const, name: question.name, ttl: 60, data: `192.0.2.${i + 1}` })) });
    }
    return dnsPacket.encode({ ...base, flags: base.flags | 3 });
  };
  udp.on('message', (message, peer) => {
    state.udpQueries++;
    udp.send(answer(message, false), peer.port, peer.address);
  });
  tcp.on('connection', (socket) => serveDnsOverTcp(socket, (message) => answer(message, true), () => state.tcpQueries++));
  state.close = async () => {
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  };
  return state;
}

test('A records of a name in the domain, with the configured ttl', async () => {
  await using server = await startServer();
  const result = await dig(server.port, 'db.weave.local', 'A');
  assert.is(result.status, 'NOERROR');
  assert.ok(result.flags.includes('aa'), 'authoritative');
  assert.equal(result.answers.map((a) => a.data).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  assert.ok(result.answers.every((a) => a.ttl === 5 && a.type === 'A' && a.name === 'db.weave.local.'));
  await using slow = await startServer({ ttl: 30 });
  const thirty = await dig(slow.port, 'web.weave.local');
  assert.equal(thirty.answers.map((a) => a.ttl), [30]);
});

test('AAAA records', async () => {
  await using server = await startServer();
  assert.equal(await digShort(server.port, 'db.weave.local', 'AAAA'), ['fd00::1']);
  assert.equal(await digShort(server.port, 'v6only.weave.local', 'AAAA'), ['fd00::2']);
});

test('PTR records for IPv4 and IPv6 addresses', async () => {
  await using server = await startServer();
  assert.equal(await digShort(server.port, '-x', '10.0.0.9'), ['web.weave.local.']);
  assert.equal(await digShort(server.port, '-x', 'fd00::2'), ['v6only.weave.local.']);
});

test('names match case-insensitively and are answered as asked', async () => {
  await using server = await startServer();
  const result = await dig(server.port, 'DB.Weave.Local', 'A');
  assert.is(result.answers.length, 3);
  assert.ok(result.answers.every((a) => a.name === 'DB.Weave.Local.'));
});

test('a single-label name is looked up in the domain', async () => {
  await using server = await startServer();
  const result = await dig(server.port, 'db', 'A');
  assert.is(result.status, 'NOERROR');
  assert.equal(result.answers.map((a) => a.data).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  assert.ok(result.answers.every((a) => a.name === 'db.'));
});

test('an unknown name is NXDOMAIN and a known name without the type is NODATA, both with the SOA', async () => {
  await using server = await startServer({ ttl: 7 });
  const nx = await dig(server.port, 'nope.weave.local', 'A');
  assert.is(nx.status, 'NXDOMAIN');
  assert.is(nx.answers.length, 0);
  assert.is(nx.authority.length, 1);
  const soa = nx.authority[0] as DigRecord;
  assert.is(soa.type, 'SOA');
  assert.is(soa.name, 'weave.local.');
  assert.is(soa.data.split(' ').at(-1), '7', 'SOA minimum is the ttl');
  const nodata = await dig(server.port, 'v6only.weave.local', 'A');
  assert.is(nodata.status, 'NOERROR');
  assert.is(nodata.answers.length, 0);
  assert.equal(nodata.authority.map((r) => r.type), ['SOA']);
  const mx = await dig(server.port, 'db.weave.local', 'MX');
  assert.is(mx.status, 'NOERROR');
  assert.is(mx.answers.length, 0);
  assert.is(server.stats.nxdomain, 1);
  assert.is(server.stats.nodata, 2);
});

test('50 records: UDP without EDNS is truncated with TC, TCP and a large EDNS buffer get them all', async () => {
  await using server = await startServer();
  const udp = await dig(server.port, 'many.weave.local', '+noedns', '+ignore');
  assert.ok(udp.flags.includes('tc'), `TC expected, flags ${udp.flags.join(' ')}`);
  assert.ok(udp.answers.length > 0 && udp.answers.length < 50, `${udp.answers.length} answers`);
  const small = await dig(server.port, 'many.weave.local', '+bufsize=512', '+ignore');
  assert.ok(small.flags.includes('tc'));
  const tcp = await dig(server.port, 'many.weave.local', '+tcp');
  assert.not.ok(tcp.flags.includes('tc'));
  assert.equal(tcp.answers.map((a) => a.data).sort(), [...MANY].sort());
  const edns = await dig(server.port, 'many.weave.local', '+bufsize=4096', '+ignore');
  assert.not.ok(edns.flags.includes('tc'));
  assert.is(edns.answers.length, 50);
  assert.match(edns.raw, /EDNS: version: 0/);
  // Without +ignore dig retries over TCP by itself.
  assert.is((await digShort(server.port, 'many.weave.local', '+noedns')).length, 50);
  assert.ok(server.stats.truncated >= 3);
});

test('answers are shuffled per query', async () => {
  await using server = await startServer();
  const orders = new Set<string>();
  for (let i = 0; i < 8; i++) orders.add((await digShort(server.port, 'many.weave.local', '+tcp')).join(','));
  assert.ok(orders.size > 1, 'several orders');
});

test('an injected random decides the order', async () => {
  const server = new DnsServer({ source: SOURCE, upstream: [], random: () => 0 });
  const first = dnsPacket.decode(Buffer.from((await server.handleQuery(query('db.weave.local'), 'udp')) as Uint8Array));
  const second = dnsPacket.decode(Buffer.from((await server.handleQuery(query('db.weave.local'), 'udp')) as Uint8Array));
  assert.equal(answerData(first), answerData(second));
});

test('names outside the domain are forwarded to the upstreams in order, keeping the id', async () => {
  const stub = await stubUpstream();
  try {
    const dead = await closedPort();
    await using server = await startServer({ upstream: [`127.0.0.1:${dead}`, `127.0.0.1:${stub.port}`] });
    const result = await dig(server.port, 'example.com', 'A');
    assert.is(result.status, 'NOERROR');
    assert.equal(result.answers.map((a) => a.data), ['93.184.216.34']);
    const raw = await udpExchange(server.port, query('Example.COM', 'A', 0xbeef), 3000);
    const decoded = dnsPacket.decode(raw as Buffer);
    assert.is(decoded.id, 0xbeef);
    assert.is(answerData(decoded)[0], '93.184.216.34');
    assert.is(server.stats.forwarded, 2);
  } finally {
    await stub.close();
  }
});

test('a truncated upstream answer to a TCP client is fetched again over TCP', async () => {
  const stub = await stubUpstream();
  try {
    await using server = await startServer({ upstream: [`127.0.0.1:${stub.port}`] });
    const udp = await dig(server.port, 'big.example.com', '+ignore');
    assert.ok(udp.flags.includes('tc'));
    const tcp = await dig(server.port, 'big.example.com', '+tcp');
    assert.is(tcp.answers.length, 40);
    assert.ok(stub.tcpQueries >= 1);
  } finally {
    await stub.close();
  }
});

test('SERVFAIL when every upstream fails, is silent, or none is configured', async () => {
  const dead = await closedPort();
  await using server = await startServer({ upstream: [`127.0.0.1:${dead}`] });
  const result = await dig(server.port, 'example.com', 'A');
  assert.is(result.status, 'SERVFAIL');
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    await using slow = await startServer({ upstream: [`127.0.0.1:${silent.address().port}`], upstreamTimeoutMs: 200 });
    const started = Date.now();
    assert.is((await dig(slow.port, 'example.com', 'A')).status, 'SERVFAIL');
    assert.ok(Date.now() - started < 1900, 'gave up after the upstream timeout');
  } finally {
    silent.close();
  }
  await using none = await startServer({ upstream: [] });
  assert.is((await dig(none.port, 'example.com', 'A')).status, 'SERVFAIL');
  assert.is((await dig(none.port, '-x', '192.0.2.1')).status, 'SERVFAIL', 'unknown PTR goes upstream');
});

test('garbage is dropped or answered with FORMERR, and the server keeps answering', async () => {
  await using server = await startServer();
  assert.is(await udpExchange(server.port, Uint8Array.of(1, 2, 3, 4, 5)), undefined, 'too short: dropped');
  const twoQuestions = dnsPacket.encode({ type: 'query', id: 77, questions: [{ type: 'A', name: 'a.weave.local' }, { type: 'A', name: 'b.weave.local' }] });
  const formerr = dnsPacket.decode((await udpExchange(server.port, twoQuestions)) as Buffer);
  assert.is(formerr.id, 77);
  assert.is((formerr as unknown as { rcode: string }).rcode, 'FORMERR');
  const cut = query('db.weave.local', 'A', 78).subarray(0, 20);
  const cutReply = dnsPacket.decode((await udpExchange(server.port, cut)) as Buffer);
  assert.is((cutReply as unknown as { rcode: string }).rcode, 'FORMERR');
  assert.is(cutReply.id, 78);
  const response = dnsPacket.encode({ type: 'response', id: 79, questions: [{ type: 'A', name: 'db.weave.local' }] });
  assert.is(await udpExchange(server.port, response), undefined, 'responses are ignored');
  const status = Buffer.from(query('db.weave.local', 'A', 80));
  status[2] = (status[2] as number) | (2 << 3);
  const notimp = dnsPacket.decode((await udpExchange(server.port, status)) as Buffer);
  assert.is((notimp as unknown as { rcode: string }).rcode, 'NOTIMP');
  assert.is((await digShort(server.port, 'web.weave.local')).join(), '10.0.0.9');
  assert.is(server.stats.dropped, 2);
  assert.is(server.stats.formerr, 2);
  assert.is(server.stats.notimp, 1);
});

test('TCP: several queries on one connection, sent one byte at a time', async () => {
  await using server = await startServer();
  const names = ['db.weave.local', 'web.weave.local', 'nope.weave.local'];
  const stream = Buffer.concat(names.map((name, i) => dnsPacket.streamEncode({ type: 'query', id: 100 + i, questions: [{ type: 'A', name }] })));
  const socket = connect(server.port, '127.0.0.1');
  const replies: dnsPacket.Packet[] = [];
  const done = new Promise<void>((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        replies.push(dnsPacket.decode(buffered.subarray(2, 2 + length)));
        buffered = buffered.subarray(2 + length);
        if (replies.length === names.length) resolve();
      }
    });
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  for (const byte of stream) {
    socket.write(Uint8Array.of(byte));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  socket.destroy();
  const byId = new Map(replies.map((r) => [r.id, r]));
  assert.is(byId.get(100)?.answers?.length, 3);
  assert.equal(answerData(byId.get(101)), ['10.0.0.9']);
  assert.is((byId.get(102) as unknown as { rcode: string }).rcode, 'NXDOMAIN');
});

test('TCP: a half-closed connection still gets its answer', async () => {
  await using server = await startServer();
  const socket = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve) => socket.on('end', resolve));
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.end(dnsPacket.streamEncode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'web.weave.local' }] }));
  await closed;
  socket.destroy();
  const reply = Buffer.concat(chunks);
  assert.equal(answerData(dnsPacket.decode(reply.subarray(2))), ['10.0.0.9']);
});

test('start binds UDP and TCP on one port and is idempotent; stop is idempotent', async () => {
  const server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [] });
  await Promise.all([server.start(), server.start()]);
  assert.ok(server.port > 0);
  assert.is(server.address, '127.0.0.1');
  assert.is((await digShort(server.port, 'web.weave.local', '+tcp')).join(), '10.0.0.9');
  assert.is((await digShort(server.port, 'web.weave.local', '+notcp')).join(), '10.0.0.9');
  const busy = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: server.port }, upstream: [] });
  try {
    await busy.start();
    assert.unreachable('port in use');
  } catch (error) {
    assert.instance(error, WeaveError);
    assert.is((error as WeaveError).code, 'address-in-use');
  }
  await Promise.all([server.stop(), server.stop()]);
  await server.stop();
  assert.is(await udpExchange(server.port, query('web.weave.local')), undefined);
});

test('options are checked', () => {
  assert.throws(() => new DnsServer({ source: SOURCE, ttl: -1 }), /ttl/);
  assert.throws(() => new DnsServer({ source: SOURCE, upstream: ['not-an-ip'] }), /upstream/);
  assert.throws(() => new DnsServer({ source: SOURCE, domain: '.' }), /root/);
  assert.is(new DnsServer({ source: SOURCE, domain: 'Example.Internal' }).domain, 'example.internal.');
  assert.equal(parseUpstream('10.0.0.2:5353'), { host: '10.0.0.2', port: 5353 });
  assert.equal(parseUpstream('[::1]:54'), { host: '::1', port: 54 });
  assert.equal(parseUpstream('fd00::53'), { host: 'fd00::53', port: 53 });
});

test('resolv.conf: nameserver lines in order, comments and junk ignored', () => {
  const text = [
    '# generated',
    'search weave.local example.com',
    'nameserver 10.0.0.2',
    '; nameserver 10.0.0.3',
    'nameserver   fd00::53  # trailing comment',
    'nameserver not-an-address',
    'nameserver',
    'options ndots:2',
    '  nameserver 1.1.1.1',
  ].join('\n');
  assert.equal(parseResolvConf(text), ['10.0.0.2', 'fd00::53', '1.1.1.1']);
});

test('resolv.conf: a change is picked up at the next check, at most every 5 s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weave-dns-'));
  try {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, 'nameserver 10.0.0.2\n');
    const clock = new FakeClock(0);
    const conf = new ResolvConf(path, { clock });
    assert.equal(await conf.servers(), ['10.0.0.2']);
    writeFileSync(path, 'nameserver 10.0.0.3\nnameserver 10.0.0.4\n');
    clock.advance(1000);
    assert.equal(await conf.servers(), ['10.0.0.2'], 'not re-read within 5 s');
    clock.advance(4000);
    assert.equal(await conf.servers(), ['10.0.0.3', '10.0.0.4']);
    rmSync(path);
    clock.advance(5000);
    assert.equal(await conf.servers(), [], 'a missing file has no nameservers');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the server takes its upstreams from resolv.conf when none are given', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weave-dns-'));
  try {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, '# no nameserver yet\n');
    await using server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, resolvConfPath: path, upstreamTimeoutMs: 300 });
    await server.start();
    assert.is((await dig(server.port, 'example.com')).status, 'SERVFAIL');
    assert.is(server.stats.servfail, 1);
    assert.is(server.stats.forwarded, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the server never forwards to itself', async () => {
  const port = await closedPort();
  await using server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port }, upstream: [`127.0.0.1:${port}`] });
  await server.start();
  assert.is((await dig(server.port, 'example.com')).status, 'SERVFAIL');
  assert.is(server.stats.queries, 1, 'the query did not loop back');
});

test.run();
