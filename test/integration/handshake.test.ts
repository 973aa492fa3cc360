import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { MeshRouter } from '../../src/mesh/router.js';
import { ConnectionError, HandshakeError, type WeaveError } from '../../src/errors.js';
import { deriveNetworkKey } from '../../src/crypto/network-key.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { FAST, testNetworkKey, waitUntil } from '../helpers/mesh.js';
import { startProxy, type FrameAction } from '../helpers/tcp-proxy.js';
import type { LinkFailure } from '../../src/mesh/router.js';

function nextEvent<T>(router: MeshRouter, event: 'connection:failed', timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    router.once(event, (value) => {
      clearTimeout(timer);
      resolve(value as T);
    });
  });
}

function nextDown(router: MeshRouter, timeoutMs = 5000): Promise<WeaveError | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection:down within ${timeoutMs} ms`)), timeoutMs);
    router.once('connection:down', (_link, error) => {
      clearTimeout(timer);
      resolve(error);
    });
  });
}

async function pair(a: ConstructorParameters<typeof MeshRouter>[0], b: ConstructorParameters<typeof MeshRouter>[0]) {
  const ra = new MeshRouter({ ...FAST, nickname: 'a', ...a });
  const rb = new MeshRouter({ ...FAST, nickname: 'b', ...b });
  await Promise.all([ra.start(), rb.start()]);
  return { ra, rb, stop: () => Promise.all([ra.stop(), rb.stop()]) };
}

test('wrong password: both ends fail with bad-password, and retries back off instead of storming', async () => {
  const clock = new FakeClock(1000);
  const wrong = await deriveNetworkKey('not the password');
  const { ra, rb, stop } = await pair(
    { networkKey: await testNetworkKey(), clock, backoff: { initialIntervalMs: 2000 } },
    { networkKey: wrong, clock },
  );
  try {
    const failedA = nextEvent<LinkFailure>(ra, 'connection:failed');
    const failedB = nextEvent<LinkFailure>(rb, 'connection:failed');
    ra.connect(`127.0.0.1:${rb.port}`);
    const [fa, fb] = await Promise.all([failedA, failedB]);
    assert.is(fa.error.code, 'bad-password');
    assert.is(fb.error.code, 'bad-password');
    assert.instance(fa.error, HandshakeError);
    assert.match(fa.error.message, /password/);
    // Time stands still: no further attempt may happen.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.is(ra.targets()[0]?.attempts, 1);
    assert.is(ra.targets()[0]?.state, 'waiting');
    const wait = ra.targets()[0]?.retryInMs ?? 0;
    assert.ok(wait >= 1000 && wait < 3000, `first retry waits 1-3 s, got ${wait}`);
    // After the wait exactly one more attempt happens, and the next wait is longer on average (x1.5).
    const again = nextEvent<LinkFailure>(ra, 'connection:failed');
    clock.advance(wait + 1);
    await again;
    assert.is(ra.targets()[0]?.attempts, 2);
    assert.is(ra.linkInfos().length, 0);
  } finally {
    await stop();
  }
});

test('a password on one side only fails clearly on both ends', async () => {
  const { ra, rb, stop } = await pair({ networkKey: await testNetworkKey() }, {});
  try {
    const failedA = nextEvent<LinkFailure>(ra, 'connection:failed');
    const failedB = nextEvent<LinkFailure>(rb, 'connection:failed');
    ra.connect(`127.0.0.1:${rb.port}`);
    const [fa, fb] = await Promise.all([failedA, failedB]);
    assert.is(fa.error.code, 'crypto-mismatch');
    assert.is(fb.error.code, 'crypto-mismatch');
    assert.match(fa.error.message, /has no network password but this peer has one/);
    assert.match(fb.error.message, /uses a network password but this peer has none/);
  } finally {
    await stop();
  }
});

for (const action of ['flip', 'drop', 'replay'] as FrameAction[]) {
  test(`a ${action === 'flip' ? 'tampered' : action === 'drop' ? 'dropped' : 'replayed'} TCP record closes the link with decrypt-failed`, async () => {
    const { ra, rb, stop } = await pair({ networkKey: await testNetworkKey() }, { networkKey: await testNetworkKey() });
    // Frame 0 is the feature record; frames 1 and 2 are the first gossip messages. Dropping frame 1
    // shows up when frame 2 arrives with the wrong counter.
    const proxy = await startProxy(rb.port, { direction: 'up', frameIndex: 1, action });
    try {
      const down = nextDown(rb);
      ra.connect(`127.0.0.1:${proxy.port}`);
      const error = await down;
      assert.instance(error, ConnectionError);
      assert.is(error?.code, 'decrypt-failed');
    } finally {
      await proxy.close();
      await stop();
    }
  });
}

test('the link is encrypted when both have the password, and plain (and says so) when neither has', async () => {
  const enc = await pair({ networkKey: await testNetworkKey() }, { networkKey: await testNetworkKey() });
  const plain = await pair({}, {});
  try {
    enc.ra.connect(`127.0.0.1:${enc.rb.port}`);
    plain.ra.connect(`127.0.0.1:${plain.rb.port}`);
    await waitUntil([enc.ra, plain.ra], () => enc.ra.linkInfos().length === 1 && plain.ra.linkInfos().length === 1, 5000);
    assert.is(enc.ra.linkInfos()[0]?.encrypted, true);
    assert.is(enc.ra.status().encryption, true);
    assert.is(plain.ra.linkInfos()[0]?.encrypted, false);
    assert.is(plain.ra.status().encryption, false);
  } finally {
    await enc.stop();
    await plain.stop();
  }
});

test('connecting to ourselves is detected and never retried', async () => {
  const r = new MeshRouter({ ...FAST });
  await r.start();
  try {
    const failed = nextEvent<LinkFailure>(r, 'connection:failed');
    r.connect(`127.0.0.1:${r.port}`);
    assert.is((await failed).error.code, 'connect-to-self');
    await waitUntil([r], () => r.targets()[0]?.state === 'failed', 2000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // several backoff intervals of FAST
    assert.is(r.targets()[0]?.attempts, 1);
  } finally {
    await r.stop();
  }
});

test('two peers with the same name: collision detected on both ends and never retried', async () => {
  const { ra, rb, stop } = await pair({ name: '::42' }, { name: '::42' });
  try {
    const failedA = nextEvent<LinkFailure>(ra, 'connection:failed');
    const failedB = nextEvent<LinkFailure>(rb, 'connection:failed');
    ra.connect(`127.0.0.1:${rb.port}`);
    assert.is((await failedA).error.code, 'name-collision');
    assert.is((await failedB).error.code, 'name-collision');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.is(ra.targets()[0]?.attempts, 1);
    assert.is(ra.targets()[0]?.state, 'failed');
  } finally {
    await stop();
  }
});

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
  });
}

function closed(s: Socket, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve();
    s.resume(); // a paused socket never reads far enough to see the remote's FIN
    const timer = setTimeout(() => reject(new Error('socket still open')), timeoutMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test('a non-weave client is rejected with bad-magic and the router keeps serving', async () => {
  const { ra, rb, stop } = await pair({}, {});
  try {
    const failed = nextEvent<LinkFailure>(rb, 'connection:failed');
    const s = await rawSocket(rb.port);
    s.write('GET / HTTP/1.1\r\n\r\n');
    assert.is((await failed).error.code, 'bad-magic');
    await closed(s);
    ra.connect(`127.0.0.1:${rb.port}`);
    await waitUntil([ra, rb], () => ra.linkInfos().length === 1, 5000, () => 'a real peer to link afterwards');
  } finally {
    await stop();
  }
});

test('an incompatible protocol version range is refused with version-mismatch', async () => {
  const { rb, stop } = await pair({}, {});
  try {
    const failed = nextEvent<LinkFailure>(rb, 'connection:failed');
    const s = await rawSocket(rb.port);
    s.write(Buffer.from([0x57, 0x56, 0x54, 0x53, 7, 9, 0]));
    const failure = await failed;
    assert.is(failure.error.code, 'version-mismatch');
    assert.match(failure.error.message, /speaks protocol 7\.\.9/);
    await closed(s);
  } finally {
    await stop();
  }
});

test('a frame over the 10 MiB cap closes the link before it is buffered', async () => {
  const { rb, stop } = await pair({}, {});
  try {
    const failed = nextEvent<LinkFailure>(rb, 'connection:failed');
    const s = await rawSocket(rb.port);
    const header = Buffer.from([0x57, 0x56, 0x54, 0x53, 1, 1, 0]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(10 * 1024 * 1024 + 100);
    s.write(Buffer.concat([header, length]));
    assert.is((await failed).error.code, 'too-large');
    await closed(s);
  } finally {
    await stop();
  }
});

test('a peer that completes the header but never finishes the handshake is dropped at the deadline', async () => {
  const clock = new FakeClock();
  const rb = new MeshRouter({ ...FAST, clock });
  await rb.start();
  try {
    const failed = nextEvent<LinkFailure>(rb, 'connection:failed');
    const s = await rawSocket(rb.port);
    s.write(Buffer.from([0x57, 0x56, 0x54, 0x53, 1, 1, 0]));
    await new Promise((resolve) => setTimeout(resolve, 50));
    clock.advance(9_999);
    assert.ok(!s.destroyed, 'still within the 10 s deadline');
    clock.advance(2);
    assert.is((await failed).error.code, 'handshake-timeout');
    await closed(s);
  } finally {
    await rb.stop();
  }
});

test('a silent neighbour is dropped after 60 s, while heartbeats keep a live one up', async () => {
  const clockA = new FakeClock();
  const clockB = new FakeClock(); // never advanced: b sends no heartbeats
  const { ra, rb, stop } = await pair({ clock: clockA }, { clock: clockB });
  try {
    ra.connect(`127.0.0.1:${rb.port}`);
    await waitUntil([ra, rb], () => ra.linkInfos().length === 1 && rb.linkInfos().length === 1, 5000);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the initial gossip land
    const down = nextDown(ra);
    clockA.advance(59_000);
    assert.is(ra.linkInfos().length, 1, 'not yet silent for 60 s');
    clockA.advance(1_100);
    assert.is((await down)?.code, 'heartbeat-timeout');
  } finally {
    await stop();
  }
});

test('simultaneous dials leave exactly one link, the same one on both ends', async () => {
  for (let round = 0; round < 10; round++) {
    const { ra, rb, stop } = await pair({}, {});
    try {
      ra.connect(`127.0.0.1:${rb.port}`);
      rb.connect(`127.0.0.1:${ra.port}`);
      await waitUntil([ra, rb], () => ra.linkInfos().length === 1 && rb.linkInfos().length === 1, 5000);
      await new Promise((resolve) => setTimeout(resolve, 100)); // let any loser finish closing
      const la = ra.linkInfos();
      const lb = rb.linkInfos();
      assert.is(la.length, 1);
      assert.is(lb.length, 1);
      // The surviving TCP connection is the same one: a's local end is b's remote end.
      assert.is(la[0]?.outbound, !lb[0]?.outbound);
      assert.ok(ra.targets().every((t) => t.state === 'connected'));
      assert.ok(rb.targets().every((t) => t.state === 'connected'));
    } finally {
      await stop();
    }
  }
});

test('the connection limit refuses links beyond it', async () => {
  const hub = new MeshRouter({ ...FAST, connectionLimit: 1 });
  const a = new MeshRouter({ ...FAST });
  const b = new MeshRouter({ ...FAST });
  await Promise.all([hub.start(), a.start(), b.start()]);
  try {
    a.connect(`127.0.0.1:${hub.port}`);
    await waitUntil([hub, a], () => hub.linkInfos().length === 1, 5000);
    b.connect(`127.0.0.1:${hub.port}`);
    await waitUntil([hub, b], () => hub.status().stats.connectionsRefused >= 1, 5000, () => 'a refusal');
    assert.is(hub.linkInfos().length, 1);
    assert.is(b.linkInfos().length, 0);
  } finally {
    await Promise.all([hub.stop(), a.stop(), b.stop()]);
  }
});

test('inbound accepts are rate limited by the token bucket', async () => {
  const clock = new FakeClock();
  const r = new MeshRouter({ ...FAST, clock, acceptRate: { burst: 3, refillMs: 50 } });
  await r.start();
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 8; i++) sockets.push(await rawSocket(r.port));
    await waitUntil([r], () => r.status().stats.acceptsThrottled === 5, 5000, () => '5 throttled accepts');
    clock.advance(100); // two tokens come back
    for (let i = 0; i < 3; i++) sockets.push(await rawSocket(r.port));
    await waitUntil([r], () => r.status().stats.acceptsThrottled === 6, 5000, () => 'one more throttled');
  } finally {
    for (const s of sockets) s.destroy();
    await r.stop();
  }
});

test.run();
