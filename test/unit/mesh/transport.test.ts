import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket, type Socket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { nodeTransport, type DatagramSender, type DatagramSocket } from '../../../src/mesh/transport.js';
import { loadTapBinding } from '../../../src/nic/tap-binding.js';

const native = loadTapBinding();
if (!native.binding) console.log(`shared-port transport tests skipped: ${native.error.message}`);
const nativeTest = native.binding ? test : test.skip;

function bind(host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, host, () => resolve(s));
  });
}

function collect(socket: DatagramSocket): string[] {
  const got: string[] = [];
  socket.on('message', (packet) => got.push(packet.toString()));
  return got;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

nativeTest('a connected socket on the shared port gets exactly its remote address; the shared socket the rest', async () => {
  const shared = await nodeTransport.bindDatagram('127.0.0.1', 0, { bufferBytes: 1 << 20, sharedPort: true });
  const port = shared.address().port;
  const [peer, stranger] = await Promise.all([bind(), bind('127.0.0.2')]);
  const own = await nodeTransport.connectDatagram!(shared, { address: '127.0.0.1', port: peer.address().port }, { bufferBytes: 1 << 20 });
  try {
    assert.is(own.address().port, port, 'the connected socket shares the port');
    const viaShared = collect(shared);
    const viaOwn = collect(own);
    for (let i = 0; i < 5; i++) {
      peer.send(`peer ${i}`, port, '127.0.0.1');
      stranger.send(`stranger ${i}`, port, '127.0.0.1');
    }
    await settle();
    assert.equal(viaOwn, ['peer 0', 'peer 1', 'peer 2', 'peer 3', 'peer 4']);
    assert.equal(viaShared, ['stranger 0', 'stranger 1', 'stranger 2', 'stranger 3', 'stranger 4']);
    assert.ok((shared.getRecvBufferSize?.() ?? 0) >= 1 << 20, 'the buffer was sized');

    // Paused, the shared socket reads nothing; the kernel keeps it queued until reading resumes.
    assert.ok(nodeTransport.setReceiving!(shared, false));
    stranger.send('while paused', port, '127.0.0.1');
    peer.send('peer while paused', port, '127.0.0.1');
    await settle();
    assert.is(viaShared.length, 5);
    assert.is(viaOwn.at(-1), 'peer while paused', 'the connected socket is not paused');
    assert.ok(nodeTransport.setReceiving!(shared, true));
    assert.ok(nodeTransport.setReceiving!(shared, true), 'resuming twice is fine');
    await settle();
    assert.is(viaShared.at(-1), 'while paused');
  } finally {
    own.close();
    shared.close();
    peer.close();
    stranger.close();
  }
});

nativeTest('shared binds fail with the system error code, as plain ones do', async () => {
  const taken = await bind();
  try {
    const error = await nodeTransport.bindDatagram('127.0.0.1', taken.address().port, { sharedPort: true }).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    assert.is(error?.code, 'EADDRINUSE');
    const bad = await nodeTransport.bindDatagram('not-an-address', 0, { sharedPort: true }).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    assert.is(bad?.code, 'EINVAL');
  } finally {
    taken.close();
  }
});

nativeTest('on a dual-stack IPv6 socket, an IPv4 sender (IPv4-mapped) gets its own connected socket too', async () => {
  const shared = await nodeTransport.bindDatagram('::', 0, { sharedPort: true }).catch((e: NodeJS.ErrnoException) => e);
  if (shared instanceof Error) {
    console.log(`  (no IPv6 here: ${shared.code})`);
    return;
  }
  const port = shared.address().port;
  const [peer, stranger] = await Promise.all([bind(), bind('127.0.0.2')]);
  try {
    const first = new Promise<DatagramSender>((resolve) => shared.on('message', (_p, rinfo) => resolve(rinfo)));
    peer.send('hello', port, '127.0.0.1');
    const seen = await first;
    assert.is(seen.address, '::ffff:127.0.0.1');
    const own = await nodeTransport.connectDatagram!(shared, seen);
    const viaOwn = collect(own);
    const viaShared = collect(shared);
    peer.send('again', port, '127.0.0.1');
    stranger.send('stranger', port, '127.0.0.1');
    await settle();
    assert.equal(viaOwn, ['again']);
    assert.equal(viaShared, ['stranger']);
    own.close();
  } finally {
    shared.close();
    peer.close();
    stranger.close();
  }
});

nativeTest('batch sends: one sendmmsg delivers every datagram in order, buffers reusable at once; plain sockets have none', async () => {
  const shared = await nodeTransport.bindDatagram('127.0.0.1', 0, { sharedPort: true });
  const receiver = createSocket('udp4');
  await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', () => resolve()));
  try {
    const batch = nodeTransport.batchSender?.(shared);
    assert.ok(batch, 'a native shared-port socket can batch');
    assert.is(batch.address('not-an-ip', 1), undefined);
    const address = batch.address('127.0.0.1', receiver.address().port) as Uint8Array;
    const got: string[] = [];
    const all = new Promise<void>((resolve) => receiver.on('message', (m) => got.push(m.toString()) === 3 && resolve()));
    const buffer = Buffer.from('one-two-three');
    const packets = [buffer, Buffer.from('two'), Buffer.from('three!!!')];
    assert.is(batch.send(address, packets, Uint32Array.of(3, 3, 5), 3), 3);
    buffer.fill(0); // reused at once: the kernel has its own copy
    await all;
    assert.equal(got, ['one', 'two', 'three']);
    const plain = await nodeTransport.bindDatagram('127.0.0.1', 0);
    assert.is(nodeTransport.batchSender?.(plain), undefined, 'a plain dgram socket sends one by one');
    plain.close();
  } finally {
    shared.close();
    receiver.close();
  }
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

nativeTest('batch receives: every datagram of a connected socket in order and intact, none through dgram; the reader closes with the socket', async () => {
  const shared = await nodeTransport.bindDatagram('127.0.0.1', 0, { bufferBytes: 4 << 20, sharedPort: true });
  const peer = await bind();
  const remote = { address: '127.0.0.1', port: peer.address().port };
  const own = await nodeTransport.connectDatagram!(shared, remote, { bufferBytes: 4 << 20 });
  const fdsBefore = openFds();
  try {
    assert.is(nodeTransport.receiveBatches?.(shared, () => undefined), false, 'only connected sockets: the shared one needs each sender');
    const viaDgram = collect(own);
    const sizes = [1, 1400, 65507, 0, 9000, ...Array.from({ length: 200 }, (_, i) => 100 + i * 7)];
    const got: { sha: string; length: number; sender: DatagramSender }[] = [];
    const all = new Promise<void>((resolve) => {
      assert.ok(
        nodeTransport.receiveBatches?.(own, (packet, sender) => {
          got.push({ sha: createHash('sha256').update(packet).digest('hex'), length: packet.byteLength, sender });
          if (got.length === sizes.length - 1) resolve();
        }),
      );
    });
    assert.ok(openFds() > fdsBefore, 'the reader holds a duplicate of the socket');
    const sent: string[] = [];
    for (const size of sizes) {
      const packet = randomBytes(size);
      if (size > 0) sent.push(createHash('sha256').update(packet).digest('hex'));
      peer.send(packet, port(shared));
    }
    await all;
    await settle();
    assert.equal(got.map((g) => g.sha), sent, 'in order and intact (an empty datagram is dropped)');
    assert.equal(got[0]?.sender, remote);
    assert.equal(viaDgram, [], 'dgram no longer reads the socket');
    await new Promise<void>((resolve) => own.close(() => resolve()));
    await settle();
    assert.ok(openFds() <= fdsBefore - 1, 'closing the socket closes the reader\'s duplicate too');
    peer.send(Buffer.from('late'), port(shared));
    await settle();
    assert.is(got.length, sizes.length - 1, 'nothing after close');
  } finally {
    shared.close();
    peer.close();
  }
});

function port(socket: DatagramSocket): number {
  return socket.address().port;
}

test('setReceiving on a closed socket reports that it could not', async () => {
  const s = await nodeTransport.bindDatagram('127.0.0.1', 0);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  assert.is(nodeTransport.setReceiving!(s, false), false);
});

test.run();
