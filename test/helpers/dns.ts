// DNS test helpers: dig on loopback, queries built with dns-packet, stub upstreams, relays and free ports.
import { execFile } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
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

/** A recording UDP upstream on loopback that answers every A query with 192.0.2.1, echoing the question as asked. */
export async function recordingUpstream(): Promise<{ port: number; seen: dnsPacket.Packet[]; close(): Promise<void> }> {
  const udp: UdpSocket = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const seen: dnsPacket.Packet[] = [];
  udp.on('message', (message, peer) => {
    const q = dnsPacket.decode(message);
    seen.push(q);
    const question = q.questions?.[0] as dnsPacket.Question;
    const opt = (q.additionals ?? []).some((a) => a.type === 'OPT');
    udp.send(
      dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
        questions: q.questions,
        answers: [{ type: 'A', name: question.name, ttl: 60, data: '192.0.2.1' }],
        additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as dnsPacket.Answer] : [],
      }),
      peer.port,
      peer.address,
    );
  });
  return { port: udp.address().port, seen, close: () => new Promise<void>((resolve) => udp.close(() => resolve())) };
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
