import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryNic } from '../../../src/nic/memory-nic.js';

/** Lets pending setImmediate deliveries run. */
async function turn(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}

/** Records every batch (copied: the handler's frames are only valid during the call). */
function record(nic: MemoryNic): Uint8Array[][] {
  const batches: Uint8Array[][] = [];
  nic.onFrames((frames) => batches.push(frames.map((f) => f.slice())));
  return batches;
}

const frame = (n: number, length = 60): Uint8Array => new Uint8Array(length).fill(n);

test('pair: names, MTU and MACs from options, defaults otherwise', () => {
  const mac = Uint8Array.of(2, 1, 2, 3, 4, 5);
  const peerMac = Uint8Array.of(2, 1, 2, 3, 4, 6);
  const [a, b] = MemoryNic.pair({ name: 'veth0', mtu: 1500, mac, peerMac });
  assert.is(a.name, 'veth0');
  assert.is(b.name, 'veth0-peer');
  assert.is(a.mtu, 1500);
  assert.is(b.mtu, 1500);
  assert.equal(a.mac, mac);
  assert.equal(b.mac, peerMac);
  assert.is(MemoryNic.pair({ name: 'x', peerName: 'y' })[1].name, 'y');
  const [c, d] = MemoryNic.pair();
  assert.is(c.mtu, 65_000);
  assert.is(c.mac.length, 6);
  assert.not.equal(c.mac, d.mac, 'default MACs differ');
  for (const m of [c.mac, d.mac]) assert.is((m[0] as number) & 0x03, 0x02, 'locally administered unicast');
});

test('frames sent on one end arrive at the other, both ways, asynchronously', async () => {
  const [a, b] = MemoryNic.pair();
  const atA = record(a);
  const atB = record(b);
  assert.ok(a.send(frame(1)));
  assert.equal(atB, [], 'not delivered synchronously');
  await turn();
  assert.equal(atB, [[frame(1)]]);
  assert.equal(atA, [], 'not echoed back to the sender');
  assert.ok(b.send(frame(2, 100)));
  await turn();
  assert.equal(atA, [[frame(2, 100)]]);
  assert.equal(a.stats, { framesIn: 1, bytesIn: 100, framesOut: 1, bytesOut: 60, drops: {} });
  assert.equal(b.stats, { framesIn: 1, bytesIn: 60, framesOut: 1, bytesOut: 100, drops: {} });
});

test('several sends in one turn arrive as one batch, in order', async () => {
  const [a, b] = MemoryNic.pair();
  const atB = record(b);
  assert.ok(a.send(frame(1)));
  assert.ok(a.send(frame(2)));
  assert.is(a.sendBatch([frame(3), frame(4)]), 2);
  await turn();
  assert.equal(atB, [[frame(1), frame(2), frame(3), frame(4)]]);
  a.send(frame(5));
  await turn();
  assert.equal(atB.length, 2, 'a later turn is a new batch');
  assert.equal(atB[1], [frame(5)]);
});

test('a frame sent from inside the handler arrives in a later batch', async () => {
  const [a, b] = MemoryNic.pair();
  const atA = record(a);
  let echoes = 0;
  b.onFrames((frames) => {
    for (const f of frames) if (echoes++ < 1) b.send(f);
  });
  a.send(frame(7));
  await turn();
  await turn();
  assert.equal(atA, [[frame(7)]]);
});

test('frames are copied: changing the sent buffer afterwards does not change what arrives', async () => {
  const [a, b] = MemoryNic.pair();
  const atB = record(b);
  const buf = frame(1);
  a.send(buf);
  buf.fill(9);
  a.send(buf);
  buf.fill(3);
  await turn();
  assert.equal(atB, [[frame(1), frame(9)]]);
});

test('frames longer than MTU + 18 are dropped as too-big', async () => {
  const [a, b] = MemoryNic.pair({ mtu: 1500 });
  const atB = record(b);
  assert.ok(a.send(new Uint8Array(1518)), 'MTU plus Ethernet header and VLAN tag fits');
  assert.not.ok(a.send(new Uint8Array(1519)));
  assert.is(a.sendBatch([new Uint8Array(1519), new Uint8Array(64), new Uint8Array(9000)]), 1);
  await turn();
  assert.equal(atB.map((batch) => batch.map((f) => f.length)), [[1518, 64]]);
  assert.equal(a.stats.drops, { 'too-big': 3 });
  assert.is(a.stats.framesOut, 2);
  assert.is(a.stats.bytesOut, 1518 + 64);
});

test('sends beyond the queue limit are dropped as queue-full until the other end drains', async () => {
  const [a, b] = MemoryNic.pair({ queueLimit: 3 });
  const atB = record(b);
  assert.is(a.sendBatch([frame(1), frame(2), frame(3), frame(4), frame(5)]), 3);
  assert.equal(a.stats.drops, { 'queue-full': 2 });
  await turn();
  assert.equal(atB, [[frame(1), frame(2), frame(3)]]);
  assert.ok(a.send(frame(6)), 'room again once delivered');
  await turn();
  assert.equal(atB[1], [frame(6)]);
  assert.is(b.stats.framesIn, 4);
});

test('a closed end refuses to send and to receive; the other end counts closed drops', async () => {
  const [a, b] = MemoryNic.pair();
  const atA = record(a);
  const atB = record(b);
  b.send(frame(1)); // queued for a, then a closes before delivery
  await a.close();
  assert.not.ok(a.send(frame(2)));
  assert.not.ok(b.send(frame(3)));
  assert.is(b.sendBatch([frame(4), frame(5)]), 0);
  await turn();
  assert.equal(atA, [], 'frames queued before close are discarded');
  assert.equal(atB, []);
  assert.equal(a.stats.drops, { closed: 1 });
  assert.equal(b.stats.drops, { closed: 3 });
  assert.is(a.stats.framesIn, 0);
  await a.close(); // idempotent
});

test('frames arriving with no handler set are counted and discarded', async () => {
  const [a, b] = MemoryNic.pair();
  a.send(frame(1));
  await turn();
  assert.is(b.stats.framesIn, 1);
  const atB = record(b);
  await turn();
  assert.equal(atB, []);
});

test.run();
