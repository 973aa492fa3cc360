import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { TapNic } from '../../../src/nic/tap-nic.js';
import { loadTapBinding } from '../../../src/nic/tap-binding.js';
import { internetChecksum } from '../../../src/wire/checksum.js';
import { segmentSuperFrame, superFrameVirtioHeader } from '../../../src/wire/super-frame.js';
import { udpSuperFrame } from '../../helpers/super-frame.js';
import { NicError, OptionsError } from '../../../src/errors.js';

// ---- options are checked before anything touches the kernel (runs everywhere) ----

const rejects = async (options: Parameters<typeof TapNic.open>[0], pattern: RegExp): Promise<void> => {
  try {
    await TapNic.open(options);
  } catch (error) {
    assert.instance(error, OptionsError);
    assert.is((error as OptionsError).code, 'invalid-option');
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable('open should have thrown');
};

test('bad options are rejected with invalid-option before opening anything', async () => {
  await rejects({ name: '' }, /interface name/);
  await rejects({ name: 'wtE-name-far-too-long' }, /1 to 15/);
  await rejects({ name: 'wtE x' }, /interface name/);
  await rejects({ name: 'wtEok', mtu: 40 }, /68 to 65535/);
  await rejects({ name: 'wtEok', mtu: 1500.5 }, /68 to 65535/);
  await rejects({ name: 'wtEok', mac: new Uint8Array(5) }, /6 bytes/);
  await rejects({ name: 'wtEok', mac: Uint8Array.of(1, 0, 0, 0, 0, 1) }, /unicast/);
  await rejects({ name: 'wtEok', batchSize: 0 }, /1 to 1024/);
});

// ---- the real device (root, /dev/net/tun, the addon built) ----

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function skipReason(): string | undefined {
  if (process.platform !== 'linux') return `TAP devices are Linux-only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root: creating TAP devices and namespaces needs root';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun does not exist';
  const load = loadTapBinding();
  if (load.binding === undefined) return `the native TAP binding is not built (${load.error.message}); run node scripts/build-native.mjs`;
  if (!has('ip')) return 'the `ip` command (iproute2) is not installed';
  if (!has('python3')) return 'python3 is not installed (used to ping and send UDP inside the namespace)';
  return undefined;
}

const DEVICE_TESTS = [
  'a second open of a busy TAP fails with tap-unavailable',
  'answers ARP and ICMP echo through the TAP: ping inside the namespace succeeds',
  'one callback delivers a batch of several frames, never more than batchSize',
  'sendBatch of N frames arrives as N frames (one write per frame)',
  'a frame larger than mtu+18 is dropped and counted as too-big',
  'close is idempotent, sending after close is counted as closed',
  'a process exits promptly after close, and with an unref()ed reader',
  'terminating a worker that is reading a TAP does not crash the process',
  'opening without CAP_NET_ADMIN fails with permission-denied',
  'opening without /dev/net/tun fails with tap-unavailable',
  'an offload TAP takes a UDP super-frame of 128 datagrams whole; its kernel refuses 129, which TapNic sends as datagrams',
];

const reason = skipReason();
if (reason !== undefined) {
  console.log(`tap-nic device tests skipped: ${reason}`);
  for (const name of DEVICE_TESTS) test.skip(name, () => {});
} else {
  deviceTests();
}

test.run();

function deviceTests(): void {
  const id = process.pid % 100000;
  const NS = `wtE${id}`;
  const TAP = `wtE${id}t`;
  const x = (process.pid % 250) + 1;
  const LOCAL_IP = [10, 199, x, 1];
  const PEER_IP = [10, 199, x, 2];
  const PEER_MAC = Uint8Array.of(0x02, 0x77, 0x74, 0x45, x, 0x02);
  const TAP_MAC = Uint8Array.of(0x02, 0x77, 0x74, 0x45, x, 0x01);
  const ipStr = (ip: number[]): string => ip.join('.');
  const here = dirname(fileURLToPath(import.meta.url));
  const tapNicModule = pathToFileURL(join(here, '..', '..', '..', 'src', 'nic', 'tap-nic.js')).href;

  const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const nsExec = (...args: string[]): string => ip('netns', 'exec', NS, ...args);
  const quiet = (fn: () => unknown): void => {
    try {
      fn();
    } catch {
      // already gone
    }
  };
  const cleanup = (): void => {
    quiet(() => ip('netns', 'del', NS));
    for (const suffix of ['t', 'b', 'c', 'u', 'p', 'n', 'w', 'o', 'r']) quiet(() => ip('link', 'del', `wtE${id}${suffix}`));
  };
  process.on('exit', cleanup);

  let nic: TapNic;
  /** What the responder saw, in order. */
  const seen: string[] = [];
  const batchSizes: number[] = [];
  let udpToPeer = 0;

  const rxCounters = (): { packets: number; bytes: number } => {
    const [link] = JSON.parse(ip('-n', NS, '-s', '-j', 'link', 'show', TAP)) as Array<{ stats64: { rx: { packets: number; bytes: number } } }>;
    return link!.stats64.rx;
  };

  const sameIp = (frame: Uint8Array, at: number, want: number[]): boolean => want.every((b, i) => frame[at + i] === b);

  /** Our made-up neighbour at PEER_IP: answers ARP requests and ICMP echo requests sent to it. */
  const responder = (frames: readonly Uint8Array[]): void => {
    batchSizes.push(frames.length);
    for (const frame of frames) {
      const type = (frame[12]! << 8) | frame[13]!;
      if (type === 0x0806 && frame.length >= 42) {
        const op = (frame[20]! << 8) | frame[21]!;
        if (op === 1 && sameIp(frame, 38, PEER_IP) && sameIp(frame, 28, LOCAL_IP)) {
          seen.push('arp-request');
          nic.send(arpReply(frame));
        }
      } else if (type === 0x0800 && frame.length >= 34 && sameIp(frame, 30, PEER_IP)) {
        const ihl = (frame[14]! & 15) * 4;
        const proto = frame[23];
        if (proto === 1 && frame[14 + ihl] === 8) {
          seen.push('icmp-echo-request');
          nic.send(echoReply(frame));
        } else if (proto === 17) {
          udpToPeer++;
        }
      }
    }
  };

  function arpReply(request: Uint8Array): Uint8Array {
    const f = new Uint8Array(42);
    f.set(request.subarray(6, 12), 0); // to the asker
    f.set(PEER_MAC, 6);
    f.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2], 12);
    f.set(PEER_MAC, 22);
    f.set(PEER_IP, 28);
    f.set(request.subarray(22, 28), 32); // target hardware = the asker's
    f.set(request.subarray(28, 32), 38); // target IP = the asker's
    return f;
  }

  function checksum(bytes: Uint8Array): number {
    let sum = 0;
    for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
    if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    return ~sum & 0xffff;
  }

  function echoReply(request: Uint8Array): Uint8Array {
    const f = new Uint8Array(request); // copy: the request view is only valid during the callback
    const ihl = (f[14]! & 15) * 4;
    const total = (f[16]! << 8) | f[17]!;
    f.set(request.subarray(6, 12), 0);
    f.set(PEER_MAC, 6);
    f.set(request.subarray(30, 34), 26); // source = the old destination
    f.set(request.subarray(26, 30), 30); // destination = the old source
    f[22] = 64; // TTL
    f[24] = 0;
    f[25] = 0;
    const ipSum = checksum(f.subarray(14, 14 + ihl));
    f[24] = ipSum >> 8;
    f[25] = ipSum & 0xff;
    const icmp = f.subarray(14 + ihl, 14 + total);
    icmp[0] = 0; // echo reply
    icmp[2] = 0;
    icmp[3] = 0;
    const icmpSum = checksum(icmp);
    icmp[2] = icmpSum >> 8;
    icmp[3] = icmpSum & 0xff;
    return f.subarray(0, 14 + total);
  }

  const run = (cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; ms: number }> =>
    new Promise((resolve) => {
      const started = Date.now();
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, ms: Date.now() - started });
      });
    });

  const waitFor = async (what: string, cond: () => boolean, ms = 3000): Promise<void> => {
    const until = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > until) assert.unreachable(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  const PING_PY = [
    'import socket,struct,sys,os',
    'dst=sys.argv[1]',
    's=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP); s.settimeout(5)',
    'ident=os.getpid()&0xffff',
    'def csum(b):',
    '  b=b+b"\\0"*(len(b)%2); t=sum(struct.unpack("!%dH"%(len(b)//2),b)); t=(t>>16)+(t&0xffff); t+=t>>16; return ~t&0xffff',
    'data=b"weave-ts tap test"',
    'h=struct.pack("!BBHHH",8,0,0,ident,1); s.sendto(struct.pack("!BBHHH",8,0,csum(h+data),ident,1)+data,(dst,0))',
    'while True:',
    '  d,a=s.recvfrom(2048); n=(d[0]&15)*4; t,c,k,i,q=struct.unpack("!BBHHH",d[n:n+8])',
    '  if a[0]==dst and t==0 and i==ident and csum(d[n:])==0: print("echo reply"); sys.exit(0)',
  ].join('\n');

  test.before(async () => {
    cleanup();
    ip('netns', 'add', NS);
    nic = await TapNic.open({ name: TAP, mtu: 1500, mac: TAP_MAC });
    nic.onFrames(responder);
    // The fd stays valid when the device moves to another namespace: the test traffic stays inside it.
    ip('link', 'set', TAP, 'netns', NS);
    nsExec('sysctl', '-qw', `net.ipv6.conf.${TAP}.disable_ipv6=1`);
    ip('-n', NS, 'link', 'set', 'lo', 'up');
    ip('-n', NS, 'addr', 'add', `${ipStr(LOCAL_IP)}/24`, 'dev', TAP);
    ip('-n', NS, 'link', 'set', TAP, 'up');
  });

  test.after(async () => {
    try {
      await nic?.close();
    } finally {
      cleanup();
    }
  });

  test(DEVICE_TESTS[0]!, async () => {
    const name = `wtE${id}b`;
    const first = await TapNic.open({ name });
    try {
      assert.is(first.name, name);
      try {
        await TapNic.open({ name });
        assert.unreachable('a second open should fail');
      } catch (error) {
        assert.instance(error, NicError);
        assert.is((error as NicError).code, 'tap-unavailable');
        assert.match((error as Error).message, /already in use/);
      }
    } finally {
      await first.close();
    }
  });

  test(DEVICE_TESTS[1]!, async () => {
    assert.is(nic.name, TAP);
    assert.is(nic.mtu, 1500);
    assert.equal([...nic.mac], [...TAP_MAC]);
    const [link] = JSON.parse(ip('-n', NS, '-j', 'link', 'show', TAP)) as Array<{ address: string; mtu: number }>;
    assert.is(link!.mtu, 1500);
    assert.is(link!.address, [...TAP_MAC].map((b) => b.toString(16).padStart(2, '0')).join(':'));
    seen.length = 0;
    const ping = await run('ip', ['netns', 'exec', NS, 'python3', '-c', PING_PY, ipStr(PEER_IP)], 10_000);
    assert.is(ping.code, 0, `ping failed: ${ping.out}`);
    assert.is(seen[0], 'arp-request', `first frame for the neighbour must be an ARP request: ${seen.join(',')}`);
    assert.ok(seen.includes('icmp-echo-request'), `no echo request seen: ${seen.join(',')}`);
    assert.ok(nic.stats.framesOut >= 2);
  });

  test(DEVICE_TESTS[2]!, async () => {
    ip('-n', NS, 'neigh', 'replace', ipStr(PEER_IP), 'lladdr', [...PEER_MAC].map((b) => b.toString(16)).join(':'), 'dev', TAP, 'nud', 'permanent');
    batchSizes.length = 0;
    udpToPeer = 0;
    const count = 200;
    // Synchronous on purpose: our event loop is blocked while the frames queue up in the TAP (its queue holds 500).
    nsExec('python3', '-c', `import socket\ns=socket.socket(2,2)\nfor _ in range(${count}): s.sendto(b"x"*1400,("${ipStr(PEER_IP)}",9))`);
    await waitFor(`${count} UDP frames`, () => udpToPeer >= count);
    assert.is(udpToPeer, count);
    const biggest = Math.max(...batchSizes);
    assert.ok(biggest > 1, `batches: ${batchSizes.join(',')}`);
    assert.is(biggest, 32, 'a wakeup drains at most batchSize (32) frames, then returns to the event loop');
  });

  test(DEVICE_TESTS[3]!, async () => {
    const before = rxCounters();
    const framesOut = nic.stats.framesOut;
    const frames: Uint8Array[] = [];
    let bytes = 0;
    for (let i = 0; i < 50; i++) {
      const f = new Uint8Array(60 + i * 27);
      f.fill(0xff, 0, 6); // broadcast
      f.set(PEER_MAC, 6);
      f[12] = 0x88; // local experimental ethertype: counted by the device, ignored by the stack
      f[13] = 0xb5;
      f[14] = i;
      frames.push(f);
      bytes += f.length;
    }
    assert.is(nic.sendBatch(frames), 50);
    const after = rxCounters();
    assert.is(after.packets - before.packets, 50);
    assert.is(after.bytes - before.bytes, bytes);
    assert.is(nic.stats.framesOut - framesOut, 50);
  });

  test(DEVICE_TESTS[4]!, async () => {
    const before = rxCounters();
    const frame = (length: number): Uint8Array => {
      const f = new Uint8Array(length);
      if (length < 14) return f;
      f.fill(0xff, 0, 6);
      f.set(PEER_MAC, 6);
      f.set([0x88, 0xb5], 12);
      return f;
    };
    const largest = nic.mtu + 18;
    assert.is(nic.send(frame(largest + 1)), false);
    assert.is(nic.stats.drops['too-big'], 1);
    assert.is(nic.send(frame(largest)), true);
    assert.is(nic.sendBatch([frame(100), frame(largest + 100), frame(200)]), 2);
    assert.is(nic.stats.drops['too-big'], 2);
    assert.is(nic.send(frame(10)), false);
    assert.is(nic.stats.drops['too-small'], 1);
    assert.is(rxCounters().packets - before.packets, 3);
  });

  test(DEVICE_TESTS[5]!, async () => {
    const other = await TapNic.open({ name: `wtE${id}n` });
    other.onFrames(() => {});
    await other.close();
    await other.close();
    assert.is(other.send(new Uint8Array(60)), false);
    assert.is(other.sendBatch([new Uint8Array(60), new Uint8Array(60)]), 0);
    assert.is(other.stats.drops['closed'], 3);
    assert.throws(() => ip('link', 'show', `wtE${id}n`), /does not exist/, 'the kernel deletes the device on close');
  });

  test(DEVICE_TESTS[6]!, async () => {
    const closing = [
      `import { TapNic } from ${JSON.stringify(tapNicModule)};`,
      `const nic = await TapNic.open({ name: 'wtE${id}c' });`,
      'nic.onFrames(() => {});',
      'await nic.close(); await nic.close();',
      'console.log("closed");',
    ].join('\n');
    const a = await run(process.execPath, ['--input-type=module', '-e', closing], 5000);
    assert.is(a.code, 0, a.out);
    assert.ok(a.ms < 2000, `exit took ${a.ms} ms`);
    const unrefd = [
      `import { TapNic } from ${JSON.stringify(tapNicModule)};`,
      `const nic = await TapNic.open({ name: 'wtE${id}u' });`,
      'nic.onFrames(() => {}); nic.unref();',
      'console.log("open");',
    ].join('\n');
    const b = await run(process.execPath, ['--input-type=module', '-e', unrefd], 5000);
    assert.is(b.code, 0, b.out);
    assert.ok(b.ms < 2000, `exit took ${b.ms} ms`);
  });

  test(DEVICE_TESTS[7]!, async () => {
    // Regression: the poll handle must be closed before Node unloads the addon with the worker's environment.
    const worker = [
      "import { Worker } from 'node:worker_threads';",
      'const code = `',
      `import { TapNic } from ${JSON.stringify(tapNicModule)};`,
      "import { parentPort } from 'node:worker_threads';",
      `const nic = await TapNic.open({ name: 'wtE${id}w' });`,
      'nic.onFrames(() => {});',
      "parentPort.postMessage('open');",
      '`;',
      "const w = new Worker(new URL('data:text/javascript,' + encodeURIComponent(code)));",
      "w.on('message', async () => { await w.terminate(); console.log('terminated'); });",
      "w.on('error', (e) => { console.error(e); process.exitCode = 1; });",
    ].join('\n');
    const r = await run(process.execPath, ['--input-type=module', '-e', worker], 5000);
    assert.is(r.code, 0, r.out);
    assert.match(r.out, /terminated/);
  });

  const childOpen = [
    `import { TapNic } from ${JSON.stringify(tapNicModule)};`,
    'try {',
    `  const nic = await TapNic.open({ name: 'wtE${id}p' }); await nic.close(); console.log(JSON.stringify({ opened: true }));`,
    '} catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }',
  ].join('\n');

  test(DEVICE_TESTS[8]!, async () => {
    if (!has('setpriv')) {
      console.log('  (skipped inside: setpriv is not installed)');
      return;
    }
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', childOpen], 5000);
    const result = JSON.parse(r.out.trim().split('\n').pop()!) as { name?: string; code?: string; message?: string };
    assert.is(result.name, 'NicError', r.out);
    assert.is(result.code, 'permission-denied');
    assert.match(result.message!, /needs root or CAP_NET_ADMIN/);
  });

  test(DEVICE_TESTS[9]!, async () => {
    if (!has('unshare')) {
      console.log('  (skipped inside: unshare is not installed)');
      return;
    }
    // A private mount namespace with an empty /dev/net: nothing outside it changes.
    const script = `mount -t tmpfs none /dev/net && exec "$0" --input-type=module -e "$1"`;
    const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, process.execPath, childOpen], 5000);
    if (r.code !== 0 && /mount|unshare/.test(r.out)) {
      console.log(`  (skipped inside: cannot make a private mount namespace: ${r.out.trim()})`);
      return;
    }
    const result = JSON.parse(r.out.trim().split('\n').pop()!) as { name?: string; code?: string; message?: string };
    assert.is(result.name, 'NicError', r.out);
    assert.is(result.code, 'tap-unavailable');
    assert.match(result.message!, /\/dev\/net\/tun is not available/);
  });

  /** Counts the datagrams to port 9999 whose bytes are the expected pattern, until `expected` came or 3 s passed. */
  const UDP_SINK_PY = [
    'import socket,select,sys,json',
    's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<22)',
    's.bind((sys.argv[1],9999)); expected=int(sys.argv[2]); print("ready",flush=True)',
    'good={}; bad=0; n=0',
    'while n<expected and select.select([s],[],[],3)[0]:',
    '  d=s.recv(65535); n+=1; r=d[0]; i=int.from_bytes(d[1:3],"big")',
    '  if d[3:]==bytes((i*7+k)&255 for k in range(len(d)-3)): good[r]=good.get(r,0)+1',
    '  else: bad+=1',
    'print(json.dumps({"good":good,"bad":bad}),flush=True)',
  ].join('\n');

  test(DEVICE_TESTS[10]!, async () => {
    const binding = loadTapBinding().binding!;
    const OFF = `wtE${id}o`;
    const RAW = `wtE${id}r`;
    const OFF_MAC = Uint8Array.of(0x02, 0x77, 0x74, 0x45, x, 0x11);
    const OFF_IP = [10, 198, x, 1];
    const SENDER_IP = [10, 198, x, 2];
    const off = await TapNic.open({ name: OFF, mtu: 1500, mac: OFF_MAC, offload: true });
    const raw = binding.open(RAW, { mtu: 1500, offload: true });
    try {
      off.onFrames(() => {});
      assert.ok(off.offload);
      assert.is(raw.udpOffload, off.udpOffload, 'the binding reports what the kernel took');
      const [major, minor] = release().split('.').map(Number) as [number, number];
      assert.is(off.udpOffload, major > 6 || (major === 6 && minor >= 2), `USO on TAP devices from Linux 6.2 (this is ${release()})`);
      if (!off.udpOffload) {
        console.log('  (skipped inside: this kernel has no USO for TAP devices, Linux 6.2 and later)');
        return;
      }
      for (const dev of [OFF, RAW]) {
        ip('link', 'set', dev, 'netns', NS);
        nsExec('sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`);
      }
      ip('-n', NS, 'addr', 'add', `${ipStr(OFF_IP)}/24`, 'dev', OFF);
      for (const dev of [OFF, RAW]) ip('-n', NS, 'link', 'set', dev, 'up');

      /** `count` 100-byte datagrams (the last `last` bytes) from SENDER_IP to OFF_IP:9999, as a kernel hands them over. */
      const superFrame = (round: number, count: number, last = 100): Uint8Array => {
        const payload = new Uint8Array((count - 1) * 100 + last);
        for (let i = 0; i < count; i++) {
          const d = payload.subarray(i * 100, Math.min(payload.length, i * 100 + 100));
          d.set([round, i >> 8, i & 0xff]);
          for (let k = 3; k < d.length; k++) d[k] = (i * 7 + k - 3) & 0xff;
        }
        const f = udpSuperFrame({ ipv6: false, payload, ipId: 1, ipOptions: 0, macs: [...OFF_MAC, ...PEER_MAC] });
        f.set([...SENDER_IP, ...OFF_IP], 26);
        f.set([0x27, 0x0f], 36); // destination port 9999
        f.set([0, 0], 24);
        const ipSum = internetChecksum(f, 14, 34);
        f.set([ipSum >> 8, ipSum & 0xff], 24);
        // The partial checksum the kernel expects: the pseudo-header sum (not complemented).
        const pseudo = Uint8Array.of(...SENDER_IP, ...OFF_IP, 0, 17, f[38]!, f[39]!);
        const partial = ~internetChecksum(pseudo, 0, pseudo.length) & 0xffff;
        f.set([partial >> 8, partial & 0xff], 40);
        return f;
      };

      // The kernel's own answer: 128 datagrams of 100 bytes in one write are taken, 129 refused with EINVAL.
      const header = new Uint8Array(10);
      const at128 = superFrame(9, 128);
      superFrameVirtioHeader(at128, 100, header, 0);
      assert.is(binding.writeBatch(raw.handle, [at128], header), 1, 'the kernel takes 128 datagrams in one write');
      const at129 = superFrame(9, 129, 3);
      superFrameVirtioHeader(at129, 100, header, 0);
      assert.is(binding.writeBatch(raw.handle, [at129], header), 0, 'and refuses 129');
      assert.is(binding.lastError(raw.handle), 22, 'with EINVAL (UDP_MAX_SEGMENTS)');

      // Through TapNic: 128 go whole, 129 as datagrams; every one arrives intact at a socket in the namespace.
      const sink = spawn('ip', ['netns', 'exec', NS, 'python3', '-c', UDP_SINK_PY, ipStr(OFF_IP), String(128 + 129 + 1)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      sink.stdout.on('data', (d) => (out += d));
      sink.stderr.on('data', (d) => (out += d));
      const done = new Promise<void>((resolve) => sink.on('close', () => resolve()));
      await waitFor('the UDP sink', () => out.includes('ready'), 5000);
      const framesOut = off.stats.framesOut;
      assert.is(off.sendBatch([superFrame(1, 128)], [100]), 1);
      assert.is(off.stats.framesOut - framesOut, 1, 'one write');
      const plain = segmentSuperFrame(superFrame(3, 1), 100)[0]!; // one complete datagram
      assert.is(off.sendBatch([superFrame(2, 129, 3), plain], [100, 0]), 2);
      assert.is(off.stats.framesOut - framesOut, 1 + 129 + 1, '129 datagrams, then a plain frame');
      assert.equal(off.stats.drops, {});
      await done;
      const result = JSON.parse(out.trim().split('\n').pop()!) as { good: Record<string, number>; bad: number };
      assert.equal(result, { good: { 1: 128, 2: 129, 3: 1 }, bad: 0 }, out);
    } finally {
      binding.close(raw.handle);
      await off.close();
    }
  });
}
