// TCP and UDP segmentation offload end to end: two host namespaces running the CLI agent with a password (every
// frame on the encrypted sleeve), a container on each. The bridge TAP hands TCP streams, and the datagrams of a UDP
// GSO sender (kernel 6.2 and later), over as super-frames of up to 64 KiB. In the default big-datagram mode they
// cross whole and the far kernel segments them; with --no-fragmentation (path-MTU mode) the sending agent cuts them
// into segments. Both modes, IPv4 and IPv6: iperf3 runs, a transfer of random bytes arrives with the same SHA-256 it
// left with, and every datagram of a UDP GSO sender arrives intact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, tapNamespaceSkipReason, parseIperf3 } from '../helpers/netns.js';
import { cli, retry, startAgent, stopAgent, type AgentHost as Host } from '../helpers/cli-agent.js';

const skipReason = tapNamespaceSkipReason(['ping', 'iperf3', 'python3']);
if (skipReason !== '') console.log(`offload namespace tests skipped: ${skipReason}`);
const nsTest = skipReason === '' ? test : test.skip;
/** TAP devices have UDP segmentation offload from Linux 6.2 (before, the kernel cuts UDP GSO sends before the TAP). */
const kernelHasUso = ((major, minor) => major > 6 || (major === 6 && minor >= 2))(...(release().split('.').map(Number) as [number, number]));
if (skipReason === '' && !kernelHasUso) console.log(`kernel ${release()} has no USO for TAP devices: UDP GSO datagrams are checked to arrive, not to travel in super-frames`);

interface Status {
  dataPlane: {
    links: { mode: string; established: boolean; encrypted: boolean }[];
    switch: { superFrames: number; segmented: number; fragmented: number; icmpTooBig: number; drops: Record<string, number> };
  };
}

/** Receives one TCP connection on port 7000, prints its byte count and SHA-256, exits. */
const SINK = `
const net = require('node:net'); const crypto = require('node:crypto');
const server = net.createServer((s) => { const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log(n + ' ' + h.digest('hex')); server.close(); s.end(); }); });
server.listen(7000, '::', () => console.log('listening'));`;

/** Sends N random bytes to HOST:7000, prints the count and SHA-256 of what it sent. */
const SOURCE = `
const net = require('node:net'); const crypto = require('node:crypto');
const [host, total] = [process.argv[1], Number(process.argv[2])]; const h = crypto.createHash('sha256');
const s = net.connect(7000, host, () => { let left = total;
  const more = () => { while (left > 0) { const chunk = crypto.randomBytes(Math.min(left, 1 << 18)); h.update(chunk); left -= chunk.length;
    if (!s.write(chunk)) return void s.once('drain', more); } s.end(() => console.log(total + ' ' + h.digest('hex'))); };
  more(); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;

/**
 * Receives UDP on port 7100 (IPv4 and IPv6) until it holds datagrams 0..N-1 or 4 s pass without one; each datagram is
 * a u32 sequence number, the SHA-256 of the number and the body, the body. Prints: distinct good, bad, sizes seen.
 */
const UDP_SINK = `
import socket,sys,select,hashlib
expected=int(sys.argv[1])
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)
s.setsockopt(socket.SOL_SOCKET,33,1<<23)  # SO_RCVBUFFORCE
s.bind(('::',7100))
seen=set(); bad=0; sizes=set()
while len(seen)<expected and select.select([s],[],[],4)[0]:
  d=s.recv(65535)
  if len(d)<36 or hashlib.sha256(d[:4]+d[36:]).digest()!=d[4:36]: bad+=1; continue
  if int.from_bytes(d[:4],'big')<expected: seen.add(int.from_bytes(d[:4],'big')); sizes.add(len(d))
print(len(seen),bad,','.join(map(str,sorted(sizes))),flush=True)`;

/**
 * A UDP GSO sender (UDP_SEGMENT, as QUIC stacks send) to HOST:7100: ROUNDS sends of PER datagrams of SIZE bytes each,
 * one sendmsg per round, numbered from 0, after one probe send numbered past them (the receiver ignores it; the path
 * MTU is learned from what comes back). With DF=do it sets IP_PMTUDISC_DO. A send refused for a segment size above the
 * path MTU (EMSGSIZE, or EINVAL on older kernels) is made again with datagrams that fit it, as a QUIC stack would.
 * Prints the datagram size it ended with.
 */
const UDP_GSO_SOURCE = `
import socket,sys,os,hashlib,time
host,rounds,per,size,df=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),sys.argv[5]
v6=':' in host
s=socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,socket.SOCK_DGRAM)
if df=='do': s.setsockopt(socket.IPPROTO_IP,10,2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect((host,7100))
def send(first):
  global size
  for attempt in range(3):
    s.setsockopt(socket.IPPROTO_UDP,103,size)  # UDP_SEGMENT
    buf=bytearray()
    for i in range(per):
      seq=(first+i).to_bytes(4,'big'); body=os.urandom(size-36)
      buf+=seq+hashlib.sha256(seq+body).digest()+body
    try:
      s.send(buf); return
    except OSError as e:
      if e.errno not in (22,90): raise
      size=(s.getsockopt(socket.IPPROTO_IPV6,24)-48) if v6 else (s.getsockopt(socket.IPPROTO_IP,14)-28)  # IPV6_MTU, IP_MTU
  raise SystemExit('the path MTU did not settle')
send(1<<30)
time.sleep(0.3)
for r in range(rounds):
  send(r*per); time.sleep(0.005)
print(size)`;

nsTest('super-frames across the encrypted sleeve: whole in big-datagram mode, cut by the agent in path-MTU mode, IPv4 and IPv6', async () => {
  const lab = new NetnsLab('o');
  const root = mkdtempSync(join(tmpdir(), 'wt-offload-'));
  const passwordFile = join(root, 'password');
  writeFileSync(passwordFile, 'a long network password for the offload scenario\n', { mode: 0o600 });
  lab.defer(() => rmSync(root, { recursive: true, force: true }));
  try {
    for (const h of ['ha', 'hb', 'cabig', 'cbbig', 'capmtu', 'cbpmtu']) await lab.addHost(h);
    for (const c of ['cabig', 'cbbig', 'capmtu', 'cbpmtu']) lab.defer(() => rmSync(join('/etc/netns', lab.ns(c)), { recursive: true, force: true }));
    await lab.link('ha', 'hb', { subnet: '10.250.51.0/24', mtu: 1500 });
    const bridge = `${lab.prefix}b`;
    const common = ['--password-file', passwordFile, '--ipalloc-range', '10.46.0.0/16', '--ipalloc-init', 'consensus=2', '--bridge', bridge, '--no-fastdp'];
    const hosts = (mode: string, extra: string[]): Record<'a' | 'b', Host> => ({
      b: { name: 'hb', dataDir: join(root, `b-${mode}`), launchArgs: [...common, ...extra, '--nickname', 'hb', '--listen', '10.250.51.2:6783'] },
      a: { name: 'ha', dataDir: join(root, `a-${mode}`), launchArgs: [...common, ...extra, '--nickname', 'ha', '--listen', '10.250.51.1:6783', '--peer', '10.250.51.2'] },
    });
    const status = async (host: Host): Promise<Status> => JSON.parse(await cli(lab, host, ['status', '--json'])) as Status;

    for (const mode of ['big', 'pmtu'] as const) {
      const h = hosts(mode, mode === 'pmtu' ? ['--no-fragmentation'] : []);
      const [ca, cb] = [`ca${mode}`, `cb${mode}`];
      for (const host of [h.b, h.a]) await startAgent(lab, host, 'error');
      const attach = async (host: Host, netns: string, name: string): Promise<string> =>
        (JSON.parse(await cli(lab, host, ['attach', '--netns', lab.ns(netns), '--name', name, '--json'])) as { address: string }).address.split('/')[0] as string;
      const client = await attach(h.a, ca, 'client');
      const server = await attach(h.b, cb, 'server');
      // IPv6 on the overlay: unique local addresses on the containers' interfaces (the segment carries any protocol).
      await lab.execOk(ca, ['ip', '-6', 'addr', 'add', 'fd77::1/64', 'dev', 'ethwe', 'nodad']);
      await lab.execOk(cb, ['ip', '-6', 'addr', 'add', 'fd77::2/64', 'dev', 'ethwe', 'nodad']);
      await retry(`ping ${server} from ${client} (${mode})`, 20_000, async () => ((await lab.exec(ca, ['ping', '-c', '1', '-W', '1', server])).code === 0 ? true : undefined));
      await retry(`ping fd77::2 (${mode})`, 20_000, async () => ((await lab.exec(ca, ['ping', '-6', '-c', '1', '-W', '1', 'fd77::2'])).code === 0 ? true : undefined));
      const a0 = await status(h.a);
      assert.is(a0.dataPlane.links[0]?.mode, mode === 'big' ? 'fragmenting' : 'pmtu', `the link is in ${mode} mode`);
      assert.ok(a0.dataPlane.links[0]?.encrypted, 'the link is encrypted');

      // iperf3 over IPv4 and IPv6.
      const iperf = lab.spawn(cb, ['iperf3', '-s']);
      await lab.waitForListen(cb, 5201);
      for (const target of [server, 'fd77::2']) {
        const run = await lab.exec(ca, ['iperf3', '-c', target, '-t', '2', '--json'], { timeoutMs: 30_000 });
        assert.is(run.code, 0, `iperf3 to ${target} (${mode}): ${run.stderr}${run.stdout}`);
        assert.ok(parseIperf3(run.stdout).receiverBps > 10e6, `iperf3 to ${target} (${mode}) moved data`);
      }
      // UDP: partial checksums of plain frames are completed by the TAP binding (a wrong one loses every datagram).
      const udp = await lab.exec(ca, ['iperf3', '-c', server, '-u', '-b', '20M', '-l', '1200', '-t', '1', '--json'], { timeoutMs: 30_000 });
      assert.is(udp.code, 0, udp.stderr + udp.stdout);
      const lost = parseIperf3(udp.stdout).udp?.lostPct ?? 100;
      assert.ok(lost < 5, `UDP datagrams arrive (${lost.toFixed(1)} % lost, ${mode})`);
      await lab.kill(iperf);

      // Random bytes arrive intact, over IPv4 and IPv6.
      for (const target of [server, 'fd77::2']) {
        const sink = lab.spawn(cb, [process.execPath, '-e', SINK]);
        const received = new Promise<string>((resolve) => {
          let out = '';
          sink.stdout?.on('data', (d: Buffer) => {
            out += d.toString();
            const line = out.split('\n').find((l) => /^\d+ [0-9a-f]{64}$/.test(l));
            if (line) resolve(line);
          });
        });
        await lab.waitForListen(cb, 7000);
        const sent = await lab.execOk(ca, [process.execPath, '-e', SOURCE, target, String(24 << 20)], { timeoutMs: 60_000 });
        const got = await Promise.race([received, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 30_000))]);
        assert.is(got, sent.stdout.trim(), `24 MiB to ${target} (${mode}) arrive with the same SHA-256`);
        await lab.kill(sink);
      }

      // Super-frames were in play: whole across the link in big mode, cut by the sender in path-MTU mode.
      const a = await status(h.a);
      const b = await status(h.b);
      assertSuperFrames(mode, a, b, 100, 'TCP');

      // A UDP GSO sender: 50 sends of 40 datagrams. With USO each send is one super-frame (whole across the link and
      // into the far TAP in big mode, cut by the sending agent in path-MTU mode); every datagram arrives intact.
      const udpGso = async (target: string, size: number, df: 'want' | 'do' = 'want'): Promise<{ got: string; size: number; a: Status; b: Status }> => {
        const [a0, b0] = [await status(h.a), await status(h.b)];
        const sink = lab.spawn(cb, ['python3', '-c', UDP_SINK, '2000']);
        let got = '';
        const exited = new Promise<void>((resolve) => sink.once('exit', () => resolve()));
        sink.stdout?.on('data', (d: Buffer) => (got += d.toString()));
        await lab.waitForListen(cb, 7100, 'udp');
        const sent = await lab.execOk(ca, ['python3', '-c', UDP_GSO_SOURCE, target, '50', '40', String(size), df], { timeoutMs: 30_000 });
        await exited;
        const [a1, b1] = [await status(h.a), await status(h.b)];
        return { got: got.trim(), size: Number(sent.stdout.trim()), a: delta(a0, a1), b: delta(b0, b1) };
      };
      for (const target of [server, 'fd77::2']) {
        const r = await udpGso(target, 1200);
        assert.is(r.got, '2000 0 1200', `every UDP GSO datagram to ${target} (${mode}) arrives intact: received, bad, sizes`);
        if (kernelHasUso) assertSuperFrames(mode, r.a, r.b, 50, `UDP to ${target}`);
      }

      // Datagrams larger than the endpoint MTU (the sender's own MTU is larger: its kernel sizes them, and UDP cannot be
      // cut smaller). Whole in big mode; in path-MTU mode IPv4 without DF (what a GSO socket sends by default) is
      // fragmented to the endpoint MTU by the sending agent, and IPv4 with DF and IPv6 get one ICMP answer with it per
      // super-frame, after which the sender sends datagrams that fit.
      await lab.execOk(ca, ['ip', 'link', 'set', 'ethwe', 'mtu', '1500']);
      for (const [target, df, fits] of [[server, 'want', 1400], [server, 'do', 1376 - 28], ['fd77::2', 'want', 1376 - 48]] as const) {
        const r = await udpGso(target, 1400, df);
        const what = `1400-byte datagrams to ${target}${df === 'do' ? ' with DF' : ''} (${mode})`;
        const size = mode === 'big' ? 1400 : fits;
        assert.is(r.got, `2000 0 ${size}`, `${what}: every datagram arrives intact: received, bad, sizes`);
        assert.is(r.size, size, `${what}: the sender ends with ${size}-byte datagrams`);
        if (!kernelHasUso) continue;
        assertSuperFrames(mode, r.a, r.b, 50, what);
        if (mode === 'pmtu' && size === 1400) assert.ok(r.a.dataPlane.switch.fragmented >= 2000, `${what}: A fragmented them (${r.a.dataPlane.switch.fragmented})`);
        if (mode === 'pmtu' && size !== 1400) assert.ok(r.a.dataPlane.switch.icmpTooBig >= 1, `${what}: A told the sender the MTU`);
      }
      await lab.execOk(ca, ['ip', 'link', 'set', 'ethwe', 'mtu', '1376']);

      for (const s of [await status(h.a), await status(h.b)]) assert.is(s.dataPlane.switch.drops['bad-super-frame'], undefined, 'no super-frame was refused');
      for (const host of [h.a, h.b]) await stopAgent(lab, host);
    }
  } finally {
    await lab.cleanup();
  }
});

/** Super-frames in play: whole across the link and into B's TAP in big mode, cut by A in path-MTU mode. */
function assertSuperFrames(mode: 'big' | 'pmtu', a: Status, b: Status, least: number, what: string): void {
  if (mode === 'big') {
    assert.ok(a.dataPlane.switch.superFrames >= least, `${what}: A sent super-frames whole (${a.dataPlane.switch.superFrames})`);
    assert.ok(b.dataPlane.switch.superFrames >= least, `${what}: B handed super-frames whole to its TAP (${b.dataPlane.switch.superFrames})`);
  } else {
    assert.ok(a.dataPlane.switch.segmented >= least, `${what}: A cut super-frames into segments (${a.dataPlane.switch.segmented})`);
  }
}

/** The switch counters that rose from `before` to `after`. */
function delta(before: Status, after: Status): Status {
  const [s0, s1] = [before.dataPlane.switch, after.dataPlane.switch];
  const switchDelta = {
    superFrames: s1.superFrames - s0.superFrames,
    segmented: s1.segmented - s0.segmented,
    fragmented: s1.fragmented - s0.fragmented,
    icmpTooBig: s1.icmpTooBig - s0.icmpTooBig,
    drops: {},
  };
  return { dataPlane: { links: after.dataPlane.links, switch: switchDelta } };
}

test.run();
