import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ARP_REPLY, ARP_REQUEST, IPV4_HEADER_BYTES, decodeArp, decodeIpv4, encodeArpFrame, encodeIcmpFrame, encodeIpv4Frame, encodeIpv4Header } from '../../../src/wire/inet.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from '../../../src/stack/tcp/contract.js';
import type { TcpImplementation } from '../../../src/stack/tcp/tcp-layer.js';
import { decodeSegment, encodeSegment, fakeTcp } from '../../helpers/fake-tcp.js';
import { stackOnRawWire, until } from '../../helpers/stack.js';

// The hand-driven end of the wire: MAC 02:00:00:00:00:99, address 10.32.0.9; the stack is 10.32.0.1.
const PEER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x99);
const PEER_IP = 0x0a200009;
const STACK_IP = 0x0a200001;

function segment(fields: Partial<TcpSegment>): TcpSegment {
  return { sourcePort: 40000, destinationPort: 80, seq: 1000, ack: 0, flags: TCP_SYN, window: 1000, urgentPointer: 0, options: {}, payload: new Uint8Array(0), ...fields };
}

/** A stack on a raw wire whose far end answers ARP and collects the TCP segments the stack sends. */
function tcpWire(implementation: TcpImplementation = fakeTcp, backlogConfig = {}) {
  const raw = stackOnRawWire({ tcp: { implementation, config: backlogConfig } });
  const sent: { segment: TcpSegment; dontFragment: boolean }[] = [];
  raw.wire.onFrames((frames) => {
    for (const frame of frames) {
      const type = ((frame[12] as number) << 8) | (frame[13] as number);
      if (type === 0x0806) {
        const arp = decodeArp(frame.subarray(14));
        if (arp.operation === ARP_REQUEST && arp.targetIp === PEER_IP) {
          raw.wire.send(encodeArpFrame(arp.senderMac, { operation: ARP_REPLY, senderMac: PEER_MAC, senderIp: PEER_IP, targetMac: arp.senderMac, targetIp: arp.senderIp }));
        }
        continue;
      }
      const packet = decodeIpv4(frame.subarray(14));
      if (packet.protocol === 6) sent.push({ segment: decodeSegment(packet.payload, packet.source, packet.destination), dontFragment: packet.dontFragment });
    }
  });
  const ipFields = { tos: 0, identification: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, ttl: 64, source: PEER_IP, destination: STACK_IP };
  const inject = (s: TcpSegment, bytes?: Uint8Array, destination = STACK_IP, mac = raw.nicMac): void => {
    raw.wire.send(encodeIpv4Frame({ destination: mac, source: PEER_MAC }, { ...ipFields, destination, protocol: 6, payload: bytes ?? encodeSegment(s, PEER_IP, destination) }));
  };
  return { ...raw, sent, inject, ipFields };
}

test('a SYN to a closed port is answered with RST|ACK acknowledging it (RFC 9293 §3.10.7.1), sent with DF', async () => {
  const { stack, sent, inject } = tcpWire();
  inject(segment({ flags: TCP_SYN, seq: 1000, payload: Uint8Array.of(1, 2, 3) }));
  await until(() => sent.length === 1, 'the RST');
  const rst = sent[0]!;
  assert.is(rst.segment.flags, TCP_RST | TCP_ACK);
  assert.is(rst.segment.seq, 0);
  assert.is(rst.segment.ack, 1004, 'SEG.SEQ + SEG.LEN, the SYN and 3 bytes');
  assert.is(rst.segment.sourcePort, 80);
  assert.is(rst.segment.destinationPort, 40000);
  assert.ok(rst.dontFragment);
  const stats = stack.tcpStats()!;
  assert.is(stats.resetsOut, 1);
  assert.is(stats.drops['no-listener'], 1);
  await stack.close();
});

test('an ACK to a closed port gets a RST with its ack as sequence; a RST gets nothing', async () => {
  const { stack, sent, inject } = tcpWire();
  inject(segment({ flags: TCP_ACK, seq: 5, ack: 0xfffffff0 }));
  inject(segment({ flags: TCP_RST, seq: 5 }));
  inject(segment({ flags: TCP_FIN | TCP_ACK, seq: 7, ack: 9 }));
  await until(() => stack.tcpStats()!.segmentsIn === 3, 'three segments');
  await until(() => sent.length === 2, 'two RSTs');
  assert.is(sent[0]!.segment.flags, TCP_RST);
  assert.is(sent[0]!.segment.seq, 0xfffffff0);
  assert.is(sent[1]!.segment.seq, 9);
  assert.is(stack.tcpStats()!.resetsIn, 1);
  await stack.close();
});

test('bad checksums and malformed segments are counted and dropped, never answered', async () => {
  const { stack, sent, inject } = tcpWire();
  const good = encodeSegment(segment({}), PEER_IP, STACK_IP);
  const corrupt = good.slice();
  corrupt[4] = (corrupt[4] as number) ^ 0xff;
  inject(segment({}), corrupt);
  inject(segment({}), good.subarray(0, 12));
  const badOffset = good.slice();
  badOffset[12] = 0x20; // 8-byte header
  inject(segment({}), badOffset);
  await until(() => stack.stats.packetsIn === 3, 'three packets');
  const drops = stack.tcpStats()!.drops;
  assert.is(drops['bad-checksum'], 1);
  assert.is(drops['malformed'], 2);
  assert.is(sent.length, 0);
  await stack.close();
});

test('a TCP segment to the broadcast address is dropped (TCP is unicast only)', async () => {
  const { stack, sent, inject } = tcpWire();
  inject(segment({}), undefined, 0x0a2fffff, new Uint8Array(6).fill(0xff));
  await until(() => stack.stats.packetsIn === 1, 'the packet');
  assert.is(stack.tcpStats()!.drops['not-unicast'], 1);
  assert.is(sent.length, 0);
  await stack.close();
});

test('a SYN flood fills the listen backlog and no more: the rest are dropped and counted', async () => {
  const { stack, sent, inject } = tcpWire();
  const server = stack.createServer();
  server.listen({ port: 80, backlog: 4 });
  for (let i = 0; i < 50; i++) inject(segment({ sourcePort: 20000 + i, seq: i * 1000 }));
  await until(() => stack.tcpStats()!.segmentsIn === 50, 'fifty SYNs');
  await until(() => sent.length === 4, 'four SYN-ACKs');
  const stats = stack.tcpStats()!;
  assert.is(stats.connections['SYN-RECEIVED'], 4);
  assert.is(stats.drops['backlog-full'], 46);
  assert.ok(sent.every((s) => s.segment.flags === (TCP_SYN | TCP_ACK)));
  // Completing one handshake frees its place in the backlog: the next SYN is taken.
  const synAck = sent[0]!.segment;
  inject(segment({ sourcePort: synAck.destinationPort, seq: (synAck.ack) >>> 0, ack: (synAck.seq + 1) >>> 0, flags: TCP_ACK }));
  const accepted = await new Promise<import('../../../src/stack/tcp/socket.js').TcpSocket>((resolve) => server.once('connection', resolve));
  accepted.on('error', () => {}); // closing the stack aborts it
  inject(segment({ sourcePort: 30000 }));
  await until(() => sent.length === 5, 'a fifth SYN-ACK');
  assert.is(stack.tcpStats()!.connections['SYN-RECEIVED'], 4);
  assert.is(stack.tcpStats()!.connections['ESTABLISHED'], 1);
  server.close();
  await stack.close();
});

test('a listener answers a stray ACK with RST and ignores a RST', async () => {
  const { stack, sent, inject } = tcpWire();
  stack.createServer().listen(80);
  inject(segment({ flags: TCP_ACK, ack: 77 }));
  inject(segment({ flags: TCP_RST }));
  await until(() => stack.tcpStats()!.segmentsIn === 2, 'both segments');
  await until(() => sent.length === 1, 'one RST');
  assert.is(sent[0]!.segment.flags, TCP_RST);
  assert.is(sent[0]!.segment.seq, 77);
  await stack.close();
});

test('ICMP fragmentation needed reaches the connection it quotes as pathMtuChanged; others are ignored', async () => {
  const mtus: number[] = [];
  const spying: TcpImplementation = {
    ...fakeTcp,
    open: (init) => {
      const connection = fakeTcp.open(init);
      connection.pathMtuChanged = (mtu) => mtus.push(mtu);
      return connection;
    },
  };
  const { stack, sent, wire, nicMac, ipFields } = tcpWire(spying);
  const socket = stack.connect({ port: 5000, host: '10.32.0.9' });
  socket.on('error', () => {});
  await until(() => sent.length === 1, 'the SYN');
  const syn = sent[0]!.segment;
  assert.is(syn.flags, TCP_SYN);
  assert.ok(syn.sourcePort >= 49152 && syn.sourcePort <= 65535, `ephemeral port ${syn.sourcePort}`);
  const quote = (sourcePort: number, destinationPort: number): Uint8Array => {
    const header = encodeIpv4Header({ ...ipFields, source: STACK_IP, destination: PEER_IP, protocol: 6 }, 20);
    const original = new Uint8Array(IPV4_HEADER_BYTES + 8);
    original.set(header);
    original.set([sourcePort >> 8, sourcePort & 0xff, destinationPort >> 8, destinationPort & 0xff], IPV4_HEADER_BYTES);
    return original;
  };
  const icmp = (nextHopMtu: number, original: Uint8Array) =>
    encodeIcmpFrame({ destination: nicMac, source: PEER_MAC }, { ...ipFields, dontFragment: false }, { type: 'destination-unreachable', code: 4, nextHopMtu, original });
  wire.send(icmp(1200, quote(syn.sourcePort, 5000)));
  wire.send(icmp(1200, quote(syn.sourcePort, 5001))); // no such connection
  wire.send(icmp(0, quote(syn.sourcePort, 5000))); // an old router's 0
  await until(() => stack.stats.packetsIn === 3, 'three ICMP messages');
  assert.equal(mtus, [1200]);
  const drops = stack.tcpStats()!.drops;
  assert.is(drops['icmp-no-connection'], 1);
  assert.is(drops['icmp-bad-mtu'], 1);
  socket.destroy();
  await stack.close();
});

test('ephemeral ports are distinct, an explicit port in use is EADDRINUSE, a second listener on a port fails', async () => {
  const { stack, sent } = tcpWire();
  const ports = new Set<number>();
  const sockets = Array.from({ length: 20 }, () => stack.connect({ port: 5000, host: '10.32.0.9' }).on('error', () => {}));
  await until(() => sent.length === 20, 'twenty SYNs');
  for (const s of sent) ports.add(s.segment.sourcePort);
  assert.is(ports.size, 20);
  const taken = sent[0]!.segment.sourcePort;
  const clash = stack.connect({ port: 6000, host: '10.32.0.9', localPort: taken });
  const error = await new Promise<Error & { code?: string; syscall?: string; errno?: number }>((resolve) => clash.once('error', resolve));
  assert.is(error.code, 'EADDRINUSE');
  assert.is(error.syscall, 'connect');
  assert.is(error.errno, -98);
  const first = stack.createServer().listen(80);
  const second = stack.createServer().listen(80);
  const listenError = await new Promise<Error & { code?: string; syscall?: string }>((resolve) => second.once('error', resolve));
  assert.is(listenError.code, 'EADDRINUSE');
  assert.is(listenError.syscall, 'listen');
  assert.ok(first.listening);
  for (const s of sockets) s.destroy();
  first.close();
  await stack.close();
});

test('when every ephemeral port to one destination is taken (connections and TIME-WAIT), connect fails with EADDRNOTAVAIL saying why; other destinations still get ports', async () => {
  const { stack, sent } = tcpWire();
  const first = stack.connect({ port: 5000, host: '10.32.0.9' }).on('error', () => {});
  await until(() => sent.length === 1, 'the first SYN (after ARP)');
  const sockets = [first, ...Array.from({ length: 65536 - 49152 - 1 }, () => stack.connect({ port: 5000, host: '10.32.0.9' }).on('error', () => {}))];
  // The raw wire keeps only the first frames of a burst: count what the stack sent instead.
  await until(() => stack.tcpStats()?.segmentsOut === sockets.length, 'a SYN from every ephemeral port', 100_000);
  assert.is(new Set(sockets.map((s) => s.localPort)).size, sockets.length, 'every socket has its own port');
  const exhausted = stack.connect({ port: 5000, host: '10.32.0.9' });
  const error = await new Promise<Error & { code?: string; syscall?: string; cause?: unknown }>((resolve) => exhausted.once('error', resolve));
  assert.is(error.code, 'EADDRNOTAVAIL');
  assert.is(error.syscall, 'connect');
  assert.match(String((error.cause as Error).message), /every ephemeral TCP port \(49152-65535\) of 10\.32\.0\.1 is in use or in TIME-WAIT for 10\.32\.0\.9:5000 \(a closed connection holds its port for 2·MSL = 60 s\): reuse connections/);
  const otherPort = stack.connect({ port: 5001, host: '10.32.0.9' }).on('error', () => {});
  await until(() => stack.tcpStats()?.segmentsOut === sockets.length + 1, 'a SYN to another destination');
  for (const s of [...sockets, otherPort]) s.destroy();
  await stack.close();
});

test('closing the stack resets every connection so the peer learns at once', async () => {
  const { stack, sent, inject } = tcpWire();
  const server = stack.createServer().listen(80);
  inject(segment({ sourcePort: 41000, seq: 100 }));
  await until(() => sent.length === 1, 'the SYN-ACK');
  const synAck = sent[0]!.segment;
  inject(segment({ sourcePort: 41000, seq: 101, ack: (synAck.seq + 1) >>> 0, flags: TCP_ACK }));
  const socket = await new Promise<import('../../../src/stack/tcp/socket.js').TcpSocket>((resolve) => server.once('connection', resolve));
  const closed = new Promise<Error | undefined>((resolve) => socket.once('error', resolve).once('close', () => resolve(undefined)));
  await stack.close();
  await until(() => sent.some((s) => (s.segment.flags & TCP_RST) !== 0), 'a RST');
  const error = (await closed) as (Error & { code?: string }) | undefined;
  assert.is(error?.code, 'ECONNABORTED');
});

test.run();
