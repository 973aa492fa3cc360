// A loopback TCP proxy that understands weave-ts framing well enough to tamper with, drop or replay one frame.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type FrameAction = 'flip' | 'drop' | 'replay';

export interface Mischief {
  /** Frames from the dialing side (`up`) or from the listening side (`down`). */
  direction: 'up' | 'down';
  /** Which framed message to touch (0 is the feature record). */
  frameIndex: number;
  action: FrameAction;
}

/** Splits a weave-ts stream into the clear prefix and frames, applying the mischief to one frame. */
class FrameMangler {
  private buffer = Buffer.alloc(0);
  private prefixDone = false;
  private frames = 0;

  constructor(private readonly mischief: Mischief | undefined) {}

  push(chunk: Buffer): Buffer[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: Buffer[] = [];
    if (!this.prefixDone) {
      if (this.buffer.length < 7) return out;
      const prefix = this.buffer[6] === 1 ? 39 : 7; // header + flag (+ public key)
      if (this.buffer.length < prefix) return out;
      out.push(this.buffer.subarray(0, prefix));
      this.buffer = this.buffer.subarray(prefix);
      this.prefixDone = true;
    }
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (this.buffer.length < 4 + length) break;
      const frame = Buffer.from(this.buffer.subarray(0, 4 + length));
      this.buffer = this.buffer.subarray(4 + length);
      const index = this.frames++;
      if (this.mischief && index === this.mischief.frameIndex) {
        if (this.mischief.action === 'drop') continue;
        if (this.mischief.action === 'flip') frame[frame.length - 1] = (frame[frame.length - 1] ?? 0) ^ 0x01;
        if (this.mischief.action === 'replay') out.push(frame);
      }
      out.push(frame);
    }
    return out;
  }
}

export interface TcpProxy {
  port: number;
  /** From now on every byte in either direction is dropped and no socket is closed: a frozen host. */
  freeze(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 that forwards to `targetPort`, applying `mischief` to every connection. */
export async function startProxy(targetPort: number, mischief?: Mischief): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const up = new FrameMangler(mischief?.direction === 'up' ? mischief : undefined);
    const down = new FrameMangler(mischief?.direction === 'down' ? mischief : undefined);
    client.on('data', (chunk: Buffer) => {
      if (!frozen) for (const b of up.push(chunk)) upstream.write(b);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!frozen) for (const b of down.push(chunk)) client.write(b);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    freeze: () => {
      frozen = true;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
