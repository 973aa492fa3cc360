import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtualWire, type VirtualHost } from '../../../src/testing/virtual-wire.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { seededRandom } from '../../../src/random.js';
import type { DatagramSender, DatagramSocket, StreamSocket } from '../../../src/mesh/transport.js';

/** Lets queued microtasks (stream close and error events, send callbacks) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function setup(options: ConstructorParameters<typeof VirtualWire>[0] = {}) {
  const clock = new FakeClock();
  const wire = new VirtualWire({ clock, random: seededRandom(1), ...options });
  const a = wire.addHost();
  const b = wire.addHost();
  return { clock, wire, a, b };
}

interface Inbox {
  packets: { text: string; from: DatagramSender; at: number }[];
}

async function udp(host: VirtualHost, clock: FakeClock, port = 0): Promise<{ socket: DatagramSocket; inbox: Inbox }> {
  const socket = await host.bindDatagram(host.address, port);
  const inbox: Inbox = { packets: [] };
  socket.on('message', (packet, from) => inbox.packets.push({ text: packet.toString(), from: { address: from.address, port: from.port }, at: clock.now() }));
  return { socket, inbox };
}

async function rejectsWith(code: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.is((error as NodeJS.ErrnoException).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

function sendText(socket: DatagramSocket, text: string, to: { address: string; port: number }): void {
  const bytes = Buffer.from(text);
  socket.send(bytes, 0, bytes.length, to.port, to.address);
}

/** A listener on `server` and a stream dialled from `client`, both ends recording what they get. */
async function streamPair(server: VirtualHost, client: VirtualHost, clock: FakeClock, port = 7000) {
  const accepted: StreamSocket[] = [];
  const listener = await server.listen(server.address, port, (s) => accepted.push(s));
  const dialled = client.connect(server.address, port);
  const log: string[] = [];
  const record = (name: string, s: StreamSocket) => {
    s.on('data', (chunk) => log.push(`${name} data ${chunk.toString()} @${clock.now()}`));
    s.on('error', (e) => log.push(`${name} error ${(e as NodeJS.ErrnoException).code}`));
    s.on('close', () => log.push(`${name} close`));
  };
  record('client', dialled);
  let connectedAt: number | undefined;
  dialled.once('connect', () => (connectedAt = clock.now()));
  return { listener, accepted, dialled, log, record, connectedAt: () => connectedAt };
}

test('a stream opens after a round trip and carries bytes both ways after the one-way latency', async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 10 } });
  const p = await streamPair(a, b, clock);
  assert.ok(p.dialled.connecting);
  clock.advance(9);
  assert.is(p.accepted.length, 0, 'the SYN is still on the way');
  clock.advance(1);
  assert.is(p.accepted.length, 1);
  const server = p.accepted[0] as StreamSocket;
  p.record('server', server);
  assert.is(server.remoteAddress, b.address, 'the server sees the dialling host');
  assert.is(server.localPort, 7000);
  server.write(Buffer.from('hello b'));
  clock.advance(10);
  assert.is(p.connectedAt(), 20);
  assert.not.ok(p.dialled.connecting);
  assert.is(p.dialled.remoteAddress, a.address);
  assert.is(p.dialled.remotePort, 7000);
  p.dialled.write(Buffer.from('hello a'));
  clock.advance(9);
  assert.equal(p.log, ['client data hello b @20'], 'the server wrote at once; nothing may precede the open');
  clock.advance(1);
  assert.equal(p.log, ['client data hello b @20', 'server data hello a @30']);
  assert.is(wire.stats.streamsOpened, 1);
});

test('jitter delays stream chunks but never reorders them', async () => {
  const { clock, a, b } = setup({ defaults: { latencyMs: 5, jitterMs: 50 } });
  const p = await streamPair(a, b, clock);
  clock.advance(200);
  const server = p.accepted[0] as StreamSocket;
  const got: string[] = [];
  server.on('data', (chunk) => got.push(chunk.toString()));
  const sent = Array.from({ length: 100 }, (_, i) => `${i},`);
  for (const chunk of sent) {
    p.dialled.write(Buffer.from(chunk));
    clock.advance(1);
  }
  clock.advance(100);
  assert.is(got.join(''), sent.join(''));
});

test('destroy: the remote gets every byte already written, then an orderly close', async () => {
  const { clock, a, b } = setup({ defaults: { latencyMs: 3 } });
  const p = await streamPair(a, b, clock);
  clock.advance(6);
  const server = p.accepted[0] as StreamSocket;
  p.record('server', server);
  p.dialled.write(Buffer.from('last words'));
  p.dialled.destroy();
  await settle();
  assert.equal(p.log, ['client close'], 'the local end closes at once, without an error');
  clock.advance(3);
  await settle();
  assert.equal(p.log, ['client close', 'server data last words @9', 'server close']);
});

test('a connect with nothing listening is refused with ECONNREFUSED after a round trip', async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 4 } });
  const s = b.connect(a.address, 1234);
  const errors: string[] = [];
  s.on('error', (e) => errors.push(String((e as NodeJS.ErrnoException).code)));
  clock.advance(7);
  await settle();
  assert.equal(errors, []);
  clock.advance(1);
  await settle();
  assert.equal(errors, ['ECONNREFUSED']);
  assert.is(wire.stats.streamsRefused, 1);
  const unknown = b.connect('10.99.0.77', 1);
  let refused = '';
  unknown.on('error', (e) => (refused = String((e as NodeJS.ErrnoException).code)));
  clock.advance(10);
  await settle();
  assert.is(refused, 'ECONNREFUSED', 'an address no host has is refused too');
});

test('listen and bind check the address and the port', async () => {
  const { a, b } = setup();
  await a.listen('0.0.0.0', 6783, () => undefined);
  await rejectsWith('EADDRINUSE', () => a.listen(a.address, 6783, () => undefined));
  await rejectsWith('EADDRNOTAVAIL', () => a.listen(b.address, 6784, () => undefined));
  const udp1 = await a.bindDatagram(a.address, 6783);
  assert.equal(udp1.address(), { address: a.address, port: 6783 }, 'streams and datagrams have separate ports');
  await rejectsWith('EADDRINUSE', () => a.bindDatagram('0.0.0.0', 6783));
  const eph = await a.bindDatagram(a.address, 0);
  assert.ok(eph.address().port >= 32768, 'port 0 picks an ephemeral port');
  udp1.close();
  await a.bindDatagram(a.address, 6783);
});

test('datagrams arrive after the latency with the sender address; the buffer may be reused at once', async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 7 } });
  const ua = await udp(a, clock, 6783);
  const ub = await udp(b, clock, 6783);
  const buffer = Buffer.from('first');
  let called = false;
  ua.socket.send(buffer, 0, buffer.length, 6783, b.address, () => (called = true));
  buffer.write('XXXXX');
  await settle();
  assert.ok(called, 'the send callback runs without the clock moving');
  clock.advance(6);
  assert.is(ub.inbox.packets.length, 0);
  clock.advance(1);
  assert.equal(ub.inbox.packets, [{ text: 'first', from: { address: a.address, port: 6783 }, at: 7 }]);
  assert.is(wire.stats.datagramsDelivered, 1);
  assert.is(wire.stats.datagramBytesDelivered, 5);
  sendText(ub.socket, 'to nowhere', { address: a.address, port: 9 });
  clock.advance(10);
  assert.is(wire.stats.datagramsDropped['no-socket'], 1);
});

test('loss drops the configured share of datagrams (seeded), and only datagrams', async () => {
  const { clock, wire, a, b } = setup({ defaults: { loss: 0.2 }, random: seededRandom(99) });
  const ua = await udp(a, clock);
  const ub = await udp(b, clock);
  const n = 10_000;
  for (let i = 0; i < n; i++) sendText(ua.socket, `${i}`, ub.socket.address());
  clock.advance(1);
  const lost = wire.stats.datagramsDropped.loss;
  assert.ok(lost > n * 0.18 && lost < n * 0.22, `lost ${lost} of ${n}`);
  assert.is(ub.inbox.packets.length, n - lost);
  assert.is(wire.stats.datagramsDelivered + lost, wire.stats.datagramsSent);
  // Streams are reliable whatever the loss.
  const p = await streamPair(b, a, clock);
  clock.advance(1);
  const server = p.accepted[0] as StreamSocket;
  let got = '';
  server.on('data', (chunk) => (got += chunk.toString()));
  for (let i = 0; i < 200; i++) p.dialled.write(Buffer.from(`${i};`));
  clock.advance(1);
  assert.is(got, Array.from({ length: 200 }, (_, i) => `${i};`).join(''));
});

test('reordering holds some datagrams back so later ones overtake them', async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 2, reorder: 0.3, reorderDelayMs: 5 } });
  const ua = await udp(a, clock);
  const ub = await udp(b, clock);
  for (let i = 0; i < 200; i++) {
    sendText(ua.socket, `${i}`, ub.socket.address());
    clock.advance(1);
  }
  clock.advance(20);
  const order = ub.inbox.packets.map((p) => Number(p.text));
  assert.is(order.length, 200, 'reordered, not lost');
  assert.equal([...order].sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i));
  const overtaken = order.filter((v, i) => i > 0 && v < (order[i - 1] as number)).length;
  assert.ok(overtaken > 20, `${overtaken} datagrams arrived after a later one`);
  assert.ok(wire.stats.datagramsReordered > 40 && wire.stats.datagramsReordered < 80, `${wire.stats.datagramsReordered} held back`);
});

test('the same seed replays the same arrivals', async () => {
  const run = async () => {
    const { clock, a, b } = setup({ defaults: { latencyMs: 3, jitterMs: 4, loss: 0.1, reorder: 0.1 }, random: seededRandom(5) });
    const ua = await udp(a, clock);
    const ub = await udp(b, clock);
    for (let i = 0; i < 300; i++) {
      sendText(ua.socket, `${i}`, ub.socket.address());
      if (i % 3 === 0) clock.advance(1);
    }
    clock.advance(50);
    return ub.inbox.packets.map((p) => `${p.text}@${p.at}`);
  };
  const first = await run();
  assert.equal(await run(), first);
  assert.ok(first.length > 200 && first.length < 300);
});

test('links can be set per pair and one way', async () => {
  const { clock, wire, a, b } = setup();
  const c = wire.addHost();
  assert.is(c.address, '10.99.0.3');
  wire.link(a, b, { latencyMs: 10 }, { oneWay: true });
  wire.link(a.address, c.address, { maxDatagramBytes: 100 });
  const ua = await udp(a, clock);
  const ub = await udp(b, clock);
  const uc = await udp(c, clock);
  sendText(ua.socket, 'slow', ub.socket.address());
  sendText(ub.socket, 'fast', ua.socket.address());
  sendText(ua.socket, 'x'.repeat(101), uc.socket.address());
  sendText(uc.socket, 'x'.repeat(100), ua.socket.address());
  clock.advance(0);
  assert.is(ua.inbox.packets.length, 2, 'b → a and c → a have no latency');
  assert.is(ub.inbox.packets.length, 0);
  clock.advance(10);
  assert.is(ub.inbox.packets.length, 1);
  assert.is(uc.inbox.packets.length, 0);
  assert.is(wire.stats.datagramsDropped['too-big'], 1);
});

test('a partition resets streams across it, refuses new connects and drops datagrams, even in flight; heal restores', async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 5 } });
  const c = wire.addHost();
  const p = await streamPair(a, b, clock);
  clock.advance(10);
  const server = p.accepted[0] as StreamSocket;
  p.record('server', server);
  const ua = await udp(a, clock);
  const ub = await udp(b, clock);
  const uc = await udp(c, clock);
  sendText(ub.socket, 'in flight', ua.socket.address());
  p.dialled.write(Buffer.from('lost with the link'));
  clock.advance(2);
  wire.partition([a], [b, c]);
  await settle();
  assert.equal(p.log.sort(), ['client close', 'client error ECONNRESET', 'server close', 'server error ECONNRESET']);
  assert.is(wire.stats.streamsReset, 1);
  clock.advance(5);
  assert.is(ua.inbox.packets.length, 0, 'the datagram in flight was dropped');
  sendText(ub.socket, 'across', ua.socket.address());
  sendText(ub.socket, 'same side', uc.socket.address());
  clock.advance(5);
  assert.is(ua.inbox.packets.length, 0);
  assert.equal(uc.inbox.packets.map((x) => x.text), ['same side']);
  assert.is(wire.stats.datagramsDropped.partition, 2);
  const refused = b.connect(a.address, 7000);
  let code = '';
  refused.on('error', (e) => (code = String((e as NodeJS.ErrnoException).code)));
  clock.advance(10);
  await settle();
  assert.is(code, 'ECONNREFUSED');

  wire.heal();
  sendText(ub.socket, 'healed', ua.socket.address());
  const again = b.connect(a.address, 7000);
  let open = false;
  again.once('connect', () => (open = true));
  clock.advance(10);
  assert.equal(ua.inbox.packets.map((x) => x.text), ['healed']);
  assert.ok(open, 'a new connect succeeds after heal');
});

test('NAT: the receiver sees the public address and a mapped port, replies come back, the private address is unreachable', async () => {
  const { clock, wire, a, b } = setup();
  wire.nat(b, { publicAddress: '192.0.2.1', firstPort: 40000 });
  const ua = await udp(a, clock, 6783);
  const ub = await udp(b, clock, 6783);
  sendText(ub.socket, 'from behind', { address: a.address, port: 6783 });
  clock.advance(0);
  const seen = ua.inbox.packets[0]?.from;
  assert.equal(seen, { address: '192.0.2.1', port: 40000 });
  sendText(ua.socket, 'reply', seen as DatagramSender);
  sendText(ua.socket, 'direct', { address: b.address, port: 6783 });
  sendText(ua.socket, 'unmapped', { address: '192.0.2.1', port: 40001 });
  clock.advance(0);
  assert.equal(ub.inbox.packets.map((x) => x.text), ['reply']);
  assert.is(wire.stats.datagramsDropped.unreachable, 2);

  // Streams from behind the NAT show the public address; nobody can dial in.
  const p = await streamPair(a, b, clock, 7000);
  clock.advance(0);
  const server = p.accepted[0] as StreamSocket;
  assert.is(server.remoteAddress, '192.0.2.1');
  assert.is(server.remotePort, 40001);
  await b.listen(b.address, 7000, () => assert.unreachable('dialled in through the NAT'));
  const inward = a.connect(b.address, 7000);
  let code = '';
  inward.on('error', (e) => (code = String((e as NodeJS.ErrnoException).code)));
  clock.advance(0);
  await settle();
  assert.is(code, 'ECONNREFUSED');

  // A rebinding NAT moves the host to a new public port.
  wire.rebindNat('192.0.2.1');
  sendText(ub.socket, 'rebound', { address: a.address, port: 6783 });
  clock.advance(0);
  assert.equal(ua.inbox.packets[1]?.from, { address: '192.0.2.1', port: 40002 });
});

test('dropped datagrams are reported as typed events', async () => {
  const { clock, wire, a, b } = setup();
  const drops: string[] = [];
  wire.on('datagram:dropped', (reason, from, to) => drops.push(`${reason} ${from} ${to}`));
  const ua = await udp(a, clock, 1);
  sendText(ua.socket, 'x', { address: b.address, port: 2 });
  clock.advance(0);
  assert.equal(drops, [`no-socket ${a.address}:1 ${b.address}:2`]);
  wire.close();
  sendText(ua.socket, 'x', { address: b.address, port: 2 });
  assert.equal(drops[1], `closed ${a.address}:1 ${b.address}:2`);
  await rejectsWith('ENETDOWN', () => b.bindDatagram(b.address, 0));
});

test("with partitionStreams 'stall' a partition is silent: streams across it hold their bytes (in order) until heal, datagrams are dropped as partition", async () => {
  const { clock, wire, a, b } = setup({ defaults: { latencyMs: 5 }, partitionStreams: 'stall' });
  const p = await streamPair(a, b, clock);
  clock.advance(10);
  const server = p.accepted[0] as StreamSocket;
  p.record('server', server);
  const ua = await udp(a, clock);
  const ub = await udp(b, clock);
  wire.partition([a], [b]);
  p.dialled.write(Buffer.from('one'));
  p.dialled.write(Buffer.from('two'));
  sendText(ub.socket, 'across', ua.socket.address());
  clock.advance(100);
  await settle();
  assert.equal(p.log, [], 'nothing arrives and nothing is reset');
  assert.is(wire.stats.streamsReset, 0);
  assert.is(wire.stats.streamWritesStalled, 2);
  assert.is(wire.stats.datagramsDropped.partition, 1);
  assert.is(ua.inbox.packets.length, 0);
  wire.heal();
  p.dialled.write(Buffer.from('three'));
  clock.advance(5);
  await settle();
  assert.equal(p.log, ['server data one @115', 'server data two @115', 'server data three @115']);
});

test.run();
