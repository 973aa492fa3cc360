import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StackError, OptionsError } from '../../../src/errors.js';
import { MemoryNic } from '../../../src/nic/memory-nic.js';
import { NetStack } from '../../../src/stack/index.js';
import { seededRandom } from '../../../src/random.js';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { hub, nextMessage, rejectsWith, turn, until, wiredPair } from '../../helpers/stack.js';

test('the constructor reads a CIDR address and refuses ones that cannot work', async () => {
  const [nic] = MemoryNic.pair({ mtu: 1500 });
  const stack = new NetStack({ nic, address: '10.32.0.5/12' });
  assert.is(stack.address, '10.32.0.5');
  assert.is(stack.prefixLength, 12);
  assert.is(stack.mtu, 1500);
  assert.match(stack.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  await stack.close();
  for (const address of ['10.32.0.5', '10.32.0.5/33', '10.32.0.0/12', '10.47.255.255/12', '300.1.1.1/8', '239.1.1.1/8']) {
    assert.throws(() => new NetStack({ nic, address }), (e: unknown) => e instanceof OptionsError);
  }
});

test('ARP resolves a neighbour once, the cache serves later sends until it expires', async () => {
  const { clock, a, b, close } = wiredPair();
  const server = b.createUdpSocket();
  await server.bind(5000);
  const client = a.createUdpSocket();
  const first = nextMessage(server);
  await client.send(Buffer.from('one'), 5000, b.address);
  assert.is((await first).msg.toString(), 'one');
  assert.is(a.stats.framesOut, 2, 'ARP request + datagram');
  assert.is(b.stats.framesOut, 1, 'ARP reply');

  const second = nextMessage(server);
  await client.send(Buffer.from('two'), 5000, b.address);
  assert.is((await second).msg.toString(), 'two');
  assert.is(a.stats.framesOut, 3, 'no new ARP request while the binding is fresh');

  clock.advance(60_001);
  const third = nextMessage(server);
  await client.send(Buffer.from('three'), 5000, b.address);
  assert.is((await third).msg.toString(), 'three');
  assert.is(a.stats.framesOut, 5, 'expired binding resolved again');
  await close();
});

test('a send to a silent address fails with unreachable after three ARP requests', async () => {
  const { clock, a, close } = wiredPair();
  const socket = a.createUdpSocket();
  const sent = socket.send(Buffer.from('x'), 9, '10.32.0.99');
  sent.catch(() => undefined);
  await until(() => a.stats.framesOut === 1, 'the first ARP request');
  clock.advance(999);
  assert.is(a.stats.framesOut, 1);
  clock.advance(1);
  assert.is(a.stats.framesOut, 2);
  clock.advance(2000);
  const error = await rejectsWith(sent, 'unreachable');
  assert.instance(error, StackError);
  assert.is(a.stats.framesOut, 3);
  assert.is(a.stats.drops['arp-timeout'], 1);
  await close();
});

test('sends waiting for ARP are bounded per address', async () => {
  const { a, close } = wiredPair({ a: { arp: { queuePerAddress: 2 } } });
  const socket = a.createUdpSocket();
  const waiting = [socket.send(Buffer.from('1'), 9, '10.32.0.99'), socket.send(Buffer.from('2'), 9, '10.32.0.99')];
  for (const w of waiting) w.catch(() => undefined);
  await until(() => a.stats.framesOut === 1, 'the first ARP request');
  await turn();
  await rejectsWith(socket.send(Buffer.from('3'), 9, '10.32.0.99'), 'unreachable');
  assert.is(a.stats.drops['arp-queue-full'], 1);
  await close();
  await rejectsWith(waiting[0] as Promise<void>, 'closed');
});

test('ping works both ways over a direct wire', async () => {
  const { a, b, close } = wiredPair();
  const there = await a.ping(b.address);
  assert.equal(there, { address: '10.32.0.2', rttMs: 0, ttl: 64, bytes: 64 });
  const back = await b.ping(a.address, { size: 1000 });
  assert.equal(back, { address: '10.32.0.1', rttMs: 0, ttl: 64, bytes: 1008 });
  assert.is(b.stats.framesOut, 3, 'ARP reply, echo reply, echo request: b learned a from its ARP request');
  await close();
});

test('ping reports the round trip by the stack clock', async () => {
  const clock = new FakeClock();
  const [nicA, relayA] = MemoryNic.pair();
  const [nicB, relayB] = MemoryNic.pair();
  relayA.onFrames((frames) => relayB.sendBatch(frames));
  // The clock moves while frames travel back: every frame towards a arrives 5 ms "later".
  relayB.onFrames((frames) => {
    clock.advance(5);
    relayA.sendBatch(frames);
  });
  const a = new NetStack({ nic: nicA, address: '10.32.0.1/24', clock, random: seededRandom(1) });
  const b = new NetStack({ nic: nicB, address: '10.32.0.2/24', clock, random: seededRandom(2) });
  await a.ping(b.address); // resolves ARP
  const result = await a.ping(b.address);
  assert.is(result.rttMs, 5);
  await Promise.all([a.close(), b.close()]);
});

test('a ping nobody answers times out by the fake clock, and can be aborted', async () => {
  const { clock, a, b, close } = wiredPair();
  await a.ping(b.address); // the binding is now cached
  await b.close(); // b stops answering
  const pending = a.ping('10.32.0.2', { timeoutMs: 500 });
  await turn();
  clock.advance(499);
  let settled = false;
  pending.then(
    () => (settled = true),
    () => (settled = true),
  );
  await turn();
  assert.not.ok(settled, 'still waiting before the timeout');
  clock.advance(1);
  await rejectsWith(pending, 'timeout');

  const controller = new AbortController();
  const aborted = a.ping('10.32.0.2', { signal: controller.signal });
  await turn();
  controller.abort();
  await rejectsWith(aborted, 'aborted');
  await rejectsWith(a.ping('10.32.0.2', { signal: controller.signal }), 'aborted');
  assert.is(clock.pending, 0, 'no timers left behind');
  await close();
});

test('a ping whose first ARP request is lost still succeeds: ARP retries 1 s later and the reply deadline starts when the request leaves', async () => {
  const clock = new FakeClock();
  const [nicA, portA] = MemoryNic.pair({ name: 'a' });
  const [nicB, portB] = MemoryNic.pair({ name: 'b' });
  // A segment that loses the first frame a sends (its first ARP request), as happens while a data link is being established.
  let lost = 0;
  portA.onFrames((frames) => {
    const rest = lost === 0 ? frames.slice(1) : frames;
    lost += frames.length - rest.length;
    if (rest.length > 0) portB.sendBatch(rest);
  });
  portB.onFrames((frames) => void portA.sendBatch(frames));
  const a = new NetStack({ nic: nicA, address: '10.32.0.1/12', clock, random: seededRandom(1) });
  const b = new NetStack({ nic: nicB, address: '10.32.0.2/12', clock, random: seededRandom(2) });
  const pending = a.ping(b.address, { timeoutMs: 1000 });
  await turn();
  await turn();
  assert.is(lost, 1, 'the first ARP request was lost');
  clock.advance(1000); // the ARP retry; the echo request leaves only now
  await until(() => a.stats.framesIn >= 2, 'the ARP reply and the echo reply');
  const reply = await pending;
  assert.is(reply.address, b.address);
  assert.is(reply.rttMs, 0, 'the round trip is timed from the echo request, not from the lost ARP request');
  await Promise.all([a.close(), b.close()]);
});

test('a stack pings itself without touching the wire', async () => {
  const { a, close } = wiredPair();
  const result = await a.ping(a.address);
  assert.is(result.address, a.address);
  assert.is(a.stats.framesOut, 0);
  await close();
});

test('UDP works both ways, and rinfo names the sender', async () => {
  const { a, b, close } = wiredPair();
  const server = b.createUdpSocket();
  await server.bind(7000);
  assert.equal(server.address(), { address: '10.32.0.2', port: 7000 });
  server.on('message', (msg, rinfo) => {
    void server.send(Buffer.from(msg.toString().toUpperCase()), rinfo.port, rinfo.address);
  });
  const client = a.createUdpSocket();
  await client.bind();
  const port = client.address().port;
  assert.ok(port >= 49152 && port <= 65535, `ephemeral port ${port}`);
  const reply = nextMessage(client);
  await client.send(Buffer.from('ping?'), 7000, '10.32.0.2');
  const { msg, rinfo } = await reply;
  assert.is(msg.toString(), 'PING?');
  assert.equal(rinfo, { address: '10.32.0.2', port: 7000, size: 5 });
  await close();
});

test('UDP to an unbound port gets a port unreachable, rate limited', async () => {
  const { a, b, close } = wiredPair({ b: { icmpErrorsPerSecond: 3 } });
  const client = a.createUdpSocket();
  for (let i = 0; i < 5; i++) await client.send(Buffer.from('anyone?'), 9, b.address);
  await until(() => (b.stats.drops['no-socket'] ?? 0) === 5, 'five datagrams to arrive');
  await until(() => (a.stats.drops['icmp-unreachable'] ?? 0) === 3, 'three port unreachables');
  assert.is(b.stats.drops['icmp-rate-limited'], 2);
  await close();
});

test('bind refuses a port in use and an already bound socket; close frees the port', async () => {
  const { a, close } = wiredPair();
  const one = a.createUdpSocket();
  assert.throws(() => one.address(), (e: unknown) => e instanceof StackError && e.code === 'not-bound');
  await one.bind(53);
  await rejectsWith(one.bind(54), 'invalid-option');
  const two = a.createUdpSocket();
  await rejectsWith(two.bind(53), 'address-in-use');
  await rejectsWith(two.bind(70000), 'invalid-option');
  let closed = 0;
  one.on('close', () => (closed += 1));
  one.close();
  one.close();
  assert.is(closed, 1);
  await two.bind(53);
  await rejectsWith(one.send(Buffer.from('x'), 1, '10.32.0.2'), 'closed');
  await close();
});

test('sends outside the subnet, too big or to port 0 are refused', async () => {
  const { a, close } = wiredPair();
  const socket = a.createUdpSocket();
  await rejectsWith(socket.send(Buffer.from('x'), 53, '8.8.8.8'), 'unreachable');
  await rejectsWith(socket.send(Buffer.from('x'), 53, '10.48.0.1'), 'unreachable');
  await rejectsWith(socket.send(Buffer.from('x'), 53, '10.32.0.0'), 'unreachable');
  await rejectsWith(a.ping('192.168.1.1'), 'unreachable');
  await rejectsWith(socket.send(new Uint8Array(65508), 53, '10.32.0.2'), 'message-too-big');
  await rejectsWith(socket.send(Buffer.from('x'), 0, '10.32.0.2'), 'invalid-option');
  await rejectsWith(a.ping('10.32.0.2', { size: 65508 }), 'message-too-big');
  assert.is(a.stats.framesOut, 0);
  await close();
});

test('broadcast sends need setBroadcast; both broadcast addresses are received', async () => {
  const { a, b, close } = wiredPair();
  const server = b.createUdpSocket();
  await server.bind(6000);
  const client = a.createUdpSocket();
  await rejectsWith(client.send(Buffer.from('all'), 6000, '255.255.255.255'), 'permission-denied');
  await rejectsWith(client.send(Buffer.from('all'), 6000, '10.47.255.255'), 'permission-denied');
  await rejectsWith(a.ping('10.47.255.255'), 'permission-denied');
  client.setBroadcast(true);
  const first = nextMessage(server);
  await client.send(Buffer.from('limited'), 6000, '255.255.255.255');
  assert.is((await first).msg.toString(), 'limited');
  const second = nextMessage(server);
  await client.send(Buffer.from('subnet'), 6000, '10.47.255.255');
  assert.is((await second).msg.toString(), 'subnet');
  assert.is(a.stats.framesOut, 2, 'broadcasts need no ARP');
  // A broadcast to a port nobody bound is dropped silently: no ICMP error answers a broadcast.
  await client.send(Buffer.from('nobody'), 6001, '255.255.255.255');
  await until(() => b.stats.drops['no-socket'] === 1, 'the broadcast to arrive');
  assert.is(b.stats.framesOut, 0);
  await close();
});

test('multicast is delivered to members only; joining and leaving change that', async () => {
  const { stacks, close } = hub(3);
  const [sender, one, two] = stacks as [NetStack, NetStack, NetStack];
  const s1 = one.createUdpSocket();
  const s2 = two.createUdpSocket();
  await s1.bind(7777);
  await s2.bind(7777);
  const got1: string[] = [];
  const got2: string[] = [];
  s1.on('message', (m) => got1.push(m.toString()));
  s2.on('message', (m) => got2.push(m.toString()));
  const out = sender.createUdpSocket();
  assert.throws(() => s1.addMembership('10.1.2.3'), (e: unknown) => e instanceof StackError && e.code === 'invalid-option');

  s1.addMembership('239.1.2.3');
  await out.send(Buffer.from('a'), 7777, '239.1.2.3');
  await until(() => got1.length === 1 && two.stats.drops['not-for-us'] === 1, 'a at one, dropped at two');
  assert.equal(got2, []);

  s2.addMembership('239.1.2.3');
  await out.send(Buffer.from('b'), 7777, '239.1.2.3');
  await until(() => got1.length === 2 && got2.length === 1, 'b at both');

  s1.dropMembership('239.1.2.3');
  assert.throws(() => s1.dropMembership('239.1.2.3'), (e: unknown) => e instanceof StackError && e.code === 'invalid-option');
  await out.send(Buffer.from('c'), 7777, '239.1.2.3');
  await until(() => got2.length === 2 && one.stats.drops['not-for-us'] === 1, 'c at two, dropped at one');
  assert.equal(got1, ['a', 'b']);
  assert.equal(got2, ['b', 'c']);
  assert.is(sender.stats.framesOut, 3, 'multicast needs no ARP');
  await close();
});

test('an 8000-byte datagram is fragmented to a 1500-byte MTU and reassembled, both ways', async () => {
  const { a, b, close } = wiredPair({ mtu: 1500 });
  const big = new Uint8Array(8000);
  seededRandom(7).fill(big);
  const server = b.createUdpSocket();
  await server.bind(4000);
  server.on('message', (msg, rinfo) => void server.send(msg, rinfo.port, rinfo.address));
  const client = a.createUdpSocket();
  const echoed = nextMessage(client);
  await client.send(big, 4000, b.address);
  const { msg, rinfo } = await echoed;
  assert.is(rinfo.size, 8000);
  assert.ok(Buffer.from(big).equals(msg), 'reassembled bytes equal the original');
  // 8008 UDP bytes in fragments of 1480: 6 frames, plus one ARP request.
  assert.is(a.stats.framesOut, 7);
  assert.is(b.stats.framesOut, 7, 'ARP reply + 6 fragments');
  assert.is(a.stats.packetsOut, 1);
  const pong = await a.ping(b.address, { size: 4000 });
  assert.is(pong.bytes, 4008);
  await close();
});

test('lookup returns dotted input, asks the resolve hook for names, and says not-found', async () => {
  const clock = new FakeClock();
  const [nicA, nicB] = MemoryNic.pair();
  const names: Record<string, string[]> = { 'b.weave.local': ['fd00::1', '10.32.0.2'], 'v6only.weave.local': ['fd00::2'] };
  const a = new NetStack({
    nic: nicA,
    address: '10.32.0.1/12',
    clock,
    resolve: async (name) => {
      const found = names[name];
      if (!found) throw new Error(`no such name ${name}`);
      return found;
    },
  });
  const b = new NetStack({ nic: nicB, address: '10.32.0.2/12', clock });
  assert.is(await a.lookup('10.32.0.7'), '10.32.0.7');
  assert.is(await a.lookup('b.weave.local'), '10.32.0.2');
  await rejectsWith(a.lookup('v6only.weave.local'), 'not-found');
  await rejectsWith(a.lookup('missing.weave.local'), 'not-found');
  await rejectsWith(b.lookup('b.weave.local'), 'not-found');
  assert.is((await a.ping('b.weave.local')).address, '10.32.0.2');
  await Promise.all([a.close(), b.close()]);
});

test('close fails pending pings, closes sockets and is idempotent', async () => {
  const { a, close } = wiredPair();
  const socket = a.createUdpSocket();
  await socket.bind(1234);
  let socketClosed = false;
  socket.on('close', () => (socketClosed = true));
  const pending = a.ping('10.32.0.77', { timeoutMs: 10_000 });
  await turn();
  await close();
  await close();
  await rejectsWith(pending, 'closed');
  assert.ok(socketClosed);
  assert.throws(() => a.createUdpSocket(), (e: unknown) => e instanceof StackError && e.code === 'closed');
});

test('receive() resolves with the next datagram, and rejects on its deadline, an abort, close, or an unbound socket', async () => {
  const { clock, a, b, close } = wiredPair();
  const server = b.createUdpSocket();
  await rejectsWith(server.receive(), 'not-bound');
  await server.bind(5000);
  const client = a.createUdpSocket();
  await client.bind(4000);
  const next = server.receive({ timeoutMs: 1000 });
  await client.send(Buffer.from('hello'), 5000, b.address);
  const got = await next;
  assert.is(got.message.toString(), 'hello');
  assert.equal([got.from.address, got.from.port], [a.address, 4000]);
  const late = server.receive({ timeoutMs: 1000 });
  clock.advance(1000);
  await rejectsWith(late, 'timeout');
  const controller = new AbortController();
  const aborted = server.receive({ signal: controller.signal });
  controller.abort();
  await rejectsWith(aborted, 'aborted');
  const closing = server.receive();
  server.close();
  await rejectsWith(closing, 'closed');
  await close();
});

test('lookup waits for a name the resolve hook learns later, up to its timeout, and says how long it waited', async () => {
  const clock = new FakeClock();
  const [nic] = MemoryNic.pair({ mtu: 1500 });
  let known: string[] = [];
  const stack = new NetStack({
    nic,
    address: '10.32.0.5/12',
    clock,
    resolve: (_name, { timeoutMs }) =>
      new Promise((resolve) => {
        if (known.length > 0) return resolve(known);
        clock.setTimer(Math.min(timeoutMs, 300), () => resolve(known));
      }),
  });
  const later = stack.lookup('db');
  known = ['10.32.0.9'];
  clock.advance(300);
  assert.is(await later, '10.32.0.9');
  known = [];
  const missing = stack.lookup('nobody', { timeoutMs: 200 });
  clock.advance(200);
  const error = await missing.catch((e: unknown) => e);
  assert.instance(error, StackError);
  assert.is((error as StackError).code, 'not-found');
  assert.match((error as StackError).message, /"nobody" has no IPv4 address \(waited 200 ms for one\)/);
  await rejectsWith(stack.lookup('db', { signal: AbortSignal.abort() }), 'aborted');
  await stack.close();
});

test.run();
