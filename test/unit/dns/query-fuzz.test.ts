import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { DnsServer, type NameSource } from '../../../src/dns/server.js';
import { decodeQuery, encodeName, encodeReply, formatIpv6, ipv6Bytes, reverseAddress } from '../../../src/dns/message.js';
import { mutatedBytes } from '../../helpers/fuzz.js';

const SOURCE: NameSource = {
  resolve: (name, family) => {
    if (name === 'db.weave.local.') return family === 4 ? ['10.0.0.1', '10.0.0.2'] : ['fd00::1'];
    if (name === 'many.weave.local.') return family === 4 ? Array.from({ length: 60 }, (_, i) => `10.1.0.${i}`) : [];
    if (name === 'bad.weave.local.') return ['not-an-address', '300.1.1.1'];
    return undefined;
  },
  reverse: (address) => (address === '10.0.0.1' ? ['db.weave.local.', 'bad..name.'] : []),
};

const NAMES = ['db.weave.local', 'DB.WEAVE.local', 'db', 'many.weave.local', 'bad.weave.local', 'nope.weave.local', 'weave.local', '1.0.0.10.in-addr.arpa', 'x.in-addr.arpa', 'example.com', '', 'a.b.c.d.e'];
const TYPES: dnsPacket.RecordType[] = ['A', 'AAAA', 'PTR', 'SOA', 'MX', 'TXT', 'NS'];

/** Well-formed queries of every kind the server answers, with and without EDNS. */
const validQuery: fc.Arbitrary<Uint8Array> = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.integer({ min: 0, max: 0x7fff }),
    name: fc.oneof(fc.constantFrom(...NAMES), fc.domain()),
    type: fc.constantFrom(...TYPES),
    edns: fc.option(fc.record({ udpPayloadSize: fc.integer({ min: 0, max: 0xffff }), ednsVersion: fc.integer({ min: 0, max: 2 }) })),
  })
  .map(({ id, flags, name, type, edns }) =>
    dnsPacket.encode({
      type: 'query',
      id,
      flags: flags & ~0x7800,
      questions: [{ type, name, class: 'IN' }],
      additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: edns.udpPayloadSize, extendedRcode: 0, ednsVersion: edns.ednsVersion, flags: 0, flag_do: false, options: [] }] : [],
    }),
  );

/** Replies must decode, answer the same id, be responses, and respect the UDP size limit. */
function checkReply(query: Uint8Array, reply: Uint8Array | undefined): void {
  if (reply === undefined) return;
  const decoded = dnsPacket.decode(Buffer.from(reply));
  assert.is(decoded.id, ((query[0] as number) << 8) | (query[1] as number));
  assert.ok(decoded.flag_qr, 'QR set');
  let limit = 512;
  try {
    const edns = decodeQuery(query).edns;
    if (edns) limit = Math.min(Math.max(edns.udpSize, 512), 4096);
  } catch {
    // header-only reply
  }
  assert.ok(reply.byteLength <= limit, `${reply.byteLength} bytes > ${limit}`);
}

test('random and mutated queries never throw and get a decodable reply or none', async () => {
  const server = new DnsServer({ source: SOURCE, upstream: [] });
  await fc.assert(
    fc.asyncProperty(mutatedBytes(validQuery), fc.constantFrom('udp' as const, 'tcp' as const), async (bytes, transport) => {
      const reply = await server.handleQuery(bytes, transport);
      if (transport === 'udp') checkReply(bytes, reply);
      else if (reply) dnsPacket.decode(Buffer.from(reply));
    }),
    { numRuns: 3000 },
  );
  const s = server.stats;
  assert.ok(s.answered > 0 && s.nxdomain > 0 && s.nodata > 0 && s.formerr > 0 && s.dropped > 0 && s.servfail > 0, JSON.stringify(s));
});

test('well-formed queries always get a reply echoing the question', async () => {
  const server = new DnsServer({ source: SOURCE, upstream: [] });
  await fc.assert(
    fc.asyncProperty(validQuery, async (bytes) => {
      const reply = await server.handleQuery(bytes, 'udp');
      assert.ok(reply, 'a reply');
      checkReply(bytes, reply);
      const q = dnsPacket.decode(Buffer.from(bytes));
      const r = dnsPacket.decode(Buffer.from(reply as Uint8Array));
      assert.equal(r.questions, q.questions);
    }),
    { numRuns: 1000 },
  );
});

test('a source that throws gives SERVFAIL, not a crash', async () => {
  const server = new DnsServer({
    source: {
      resolve: () => {
        throw new Error('boom');
      },
      reverse: () => {
        throw new Error('boom');
      },
    },
    upstream: [],
  });
  for (const name of ['db.weave.local', '1.0.0.10.in-addr.arpa']) {
    const reply = await server.handleQuery(dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: name.endsWith('arpa') ? 'PTR' : 'A', name }] }), 'udp');
    assert.is((dnsPacket.decode(Buffer.from(reply as Uint8Array)) as unknown as { rcode: string }).rcode, 'SERVFAIL');
  }
});

test('codec helpers: IPv6 round trip, reverse names, name and reply bounds', () => {
  fc.assert(
    fc.property(fc.ipV6(), (address) => {
      const bytes = ipv6Bytes(address);
      assert.ok(bytes, address);
      assert.equal(ipv6Bytes(formatIpv6(bytes as Uint8Array)), bytes);
    }),
    { numRuns: 500 },
  );
  assert.is(formatIpv6(ipv6Bytes('fd00:0:0:0:0:0:0:1') as Uint8Array), 'fd00::1');
  assert.is(formatIpv6(ipv6Bytes('1:0:0:2:0:0:0:3') as Uint8Array), '1:0:0:2::3');
  assert.is(reverseAddress('9.0.0.10.IN-ADDR.ARPA.'), '10.0.0.9');
  assert.is(reverseAddress('256.0.0.10.in-addr.arpa.'), undefined);
  assert.is(reverseAddress(`1.0.0.0.${'0.'.repeat(26)}d.f.ip6.arpa.`), 'fd00::1');
  assert.is(reverseAddress(`1.0.0.0.${'0.'.repeat(27)}d.f.ip6.arpa.`), undefined);
  assert.throws(() => encodeName(`${'a'.repeat(64)}.`), RangeError);
  assert.throws(() => encodeName('a..b.'), RangeError);
  const { bytes, truncated } = encodeReply({
    id: 1,
    queryFlags: 0,
    authoritative: true,
    rcode: 0,
    question: encodeName('x.'),
    answers: Array.from({ length: 100 }, () => ({ type: 1, ttl: 5, data: Uint8Array.of(1, 2, 3, 4) })),
    limit: 512,
  });
  assert.ok(truncated && bytes.byteLength <= 512);
});

test('after the fuzzing a real socket still answers', async () => {
  await using server = new DnsServer({ source: SOURCE, listen: { host: '127.0.0.1', port: 0 }, upstream: [] });
  await server.start();
  const flood = createSocket('udp4');
  const probe = createSocket('udp4');
  try {
    const samples = fc.sample(mutatedBytes(validQuery), { numRuns: 500, seed: 7 });
    await Promise.all(samples.map((bytes) => new Promise((resolve) => flood.send(bytes, server.port, '127.0.0.1', resolve))));
    const reply = await new Promise<Buffer>((resolve, reject) => {
      // Replies to the flood may overflow socket buffers; ask until answered (UDP may drop).
      const ask = (): void => {
        probe.send(dnsPacket.encode({ type: 'query', id: 0xd0d0, questions: [{ type: 'A', name: 'db.weave.local' }] }), server.port, '127.0.0.1');
      };
      const retry = setInterval(ask, 200);
      const giveUp = setTimeout(() => {
        clearInterval(retry);
        reject(new Error('no answer after the flood'));
      }, 5000);
      probe.on('message', (message) => {
        if (message.readUInt16BE(0) !== 0xd0d0) return;
        clearInterval(retry);
        clearTimeout(giveUp);
        resolve(message);
      });
      ask();
    });
    const decoded = dnsPacket.decode(reply);
    assert.equal(
      (decoded.answers ?? []).map((a) => ('data' in a ? a.data : undefined)).sort(),
      ['10.0.0.1', '10.0.0.2'],
    );
    assert.ok(server.stats.queries > 1, 'the flood reached the server');
  } finally {
    flood.close();
    probe.close();
  }
});

test.run();
