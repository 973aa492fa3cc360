// DNS test helpers: dig on loopback, queries built with dns-packet, stub upstreams, relays and free ports.
import { execFile } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface Dig {
  status: string;
  flags: string[];
  answers: DigRecord[];
  authority: DigRecord[];
  raw: string;
}

function section(out: string, title: string): DigRecord[] {
  const start = out.indexOf(`;; ${title} SECTION:\n`);
  if (start < 0) return [];
  const lines = out.slice(start).split('\n').slice(1);
  const records: DigRecord[] = [];
  for (const line of lines) {
    if (line.trim() === '') break;
    const [name, ttl, , type, ...data] = line.split(/\s+/);
    records.push({ name: name as string, ttl: Number(ttl), type: type as string, data: data.join(' ') });
  }
  return records;
}

/** Runs dig against `server` (default 127.0.0.1) on `port`, one try, 2 s wait. */
export function dig(port: number, ...args: string[]): Promise<Dig> {
  return digAt('127.0.0.1', port, ...args);
}

/** Runs dig against `host:port`, one try, 2 s wait. */
export function digAt(host: string, port: number, ...args: string[]): Promise<Dig> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${host}`, '-p', String(port), '+tries=1', '+time=2', ...args], (error, stdout) => {
      if (error && stdout === '') {
        reject(error);
        return;
      }
      resolve({
        status: /status: ([A-Z]+)/.exec(stdout)?.[1] ?? '',
        flags: (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').trim().split(' '),
        answers: section(stdout, 'ANSWER'),
        authority: section(stdout, 'AUTHORITY'),
        raw: stdout,
      });
    });
  });
}

/** A query for `name` with RD set. */
export function query(name: string, type: dnsPacket.RecordType = 'A', id = 0x1234, options: { edns?: boolean; ednsOptions?: { code: number; data?: Buffer }[] } = {}): Buffer {
  const edns = options.edns || options.ednsOptions !== undefined;
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: options.ednsOptions ?? [] } as dnsPacket.Answer] : [],
  });
}

/** Sends raw bytes over UDP to 127.0.0.1:port; the reply, or undefined if none comes within `waitMs`. */
export function udpExchange(port: number, bytes: Uint8Array, waitMs = 300): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, waitMs);
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.send(bytes, port, '127.0.0.1');
  });
}

/** A loopback UDP port that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * A recording upstream on loopback (UDP, and TCP on the same port): every A query gets 192.0.2.1, echoing the
 * question as asked; names starting with `big.` are truncated (TC, no answers) over UDP and get 40 records over TCP.
 */
export async function recordingUpstream(): Promise<{ port: number; seen: dnsPacket.Packet[]; tcpSeen: number; sockets: object[]; close(): Promise<void> }> {
  const { udp, tcp } = await udpTcpPair();
  return serveRecording(udp, tcp);
}

/** A UDP socket and a TCP server on one loopback port (a port whose TCP twin is taken is given back, and another tried). */
export async function udpTcpPair(): Promise<{ udp: UdpSocket; tcp: Server }> {
  for (let attempt = 1; ; attempt++) {
    const udp: UdpSocket = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tcp = createServer();
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(udp.address().port, '127.0.0.1', () => resolve(true));
    });
    if (listening) return { udp, tcp };
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (attempt === 20) throw new Error('no loopback port free for both UDP and TCP');
  }
}

/** Answers the length-prefixed DNS messages of one TCP connection with `answer(message)`; `onQuery` counts them. */
export function serveDnsOverTcp(socket: Socket, answer: (message: Buffer) => Buffer, onQuery: () => void = () => undefined): void {
  socket.on('error', () => undefined);
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
      buffered = buffered.subarray(2 + message.length);
      onQuery();
      const reply = answer(message);
      const frame = Buffer.alloc(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
    }
  });
}

function serveRecording(udp: UdpSocket, tcp: Server): { port: number; seen: dnsPacket.Packet[]; tcpSeen: number; sockets: object[]; close(): Promise<void> } {
  const port = udp.address().port;
  const seen: dnsPacket.Packet[] = [];
  const answer = (message: Buffer, tcp: boolean): Buffer => {
    const q = dnsPacket.decode(message);
    const question = q.questions?.[0] as dnsPacket.Question;
    const opt = (q.additionals ?? []).some((a) => a.type === 'OPT');
    const big = question.name.toLowerCase().startsWith('big.');
    return dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED | (big && !tcp ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: q.questions,
      answers: big && !tcp ? [] : Array.from({ length: big ? 40 : 1 }, (_, i) => ({ type: 'A' as const, name: question.name, ttl: 60, data: `192.0.2.${i + 1}` })),
      additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as dnsPacket.Answer] : [],
    });
  };
  udp.on('error', () => undefined);
  udp.on('message', (message, peer) => {
    try {
      seen.push(dnsPacket.decode(message));
      udp.send(answer(message, false), peer.port, peer.address);
    } catch {
      // not a query
    }
  });
  const state = { port, seen, tcpSeen: 0, sockets: [udp] as object[], close: async (): Promise<void> => undefined };
  tcp.on('connection', (socket) => {
    state.sockets.push(socket);
    serveDnsOverTcp(socket, (message) => answer(message, true), () => state.tcpSeen++);
  });
  tcp.on('error', () => undefined);
  state.sockets.push(tcp);
  state.close = async () => {
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  };
  return state;
}

/**
 * A loopback UDP relay, as a third-party forwarder that drops EDNS options would be: each query is decoded,
 * re-encoded without its additional section and sent on to `target`; the answer goes back to the client.
 */
export async function strippingRelay(targetPort: () => number): Promise<{ port: number; relayed: number; close(): Promise<void> }> {
  const front: UdpSocket = createSocket('udp4');
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  const state = { port: front.address().port, relayed: 0, close: async (): Promise<void> => undefined };
  const back = new Set<UdpSocket>();
  front.on('message', (message, client) => {
    let stripped: Buffer;
    try {
      const q = dnsPacket.decode(message);
      stripped = dnsPacket.encode({ ...q, additionals: [] });
    } catch {
      return;
    }
    state.relayed++;
    const socket = createSocket('udp4');
    back.add(socket);
    socket.on('error', () => undefined);
    socket.on('message', (answer) => {
      front.send(answer, client.port, client.address);
      socket.close();
      back.delete(socket);
    });
    socket.send(stripped, targetPort(), '127.0.0.1');
  });
  state.close = async () => {
    for (const socket of back) socket.close();
    await new Promise<void>((resolve) => front.close(() => resolve()));
  };
  return state;
}
