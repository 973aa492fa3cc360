// A socket factory for routers on loopback that can cut and heal the links between groups of peers.
import { connect, Socket } from 'node:net';
import type { PeerName } from '../../src/wire/peer-name.js';

interface Tracked {
  from: PeerName;
  to: PeerName | undefined;
  socket: Socket;
}

/** Tracks every dialled socket by (dialler, listener) so a partition can cut them and refuse new ones. */
export class PartitionableNetwork {
  private readonly portOwner = new Map<number, PeerName>();
  private readonly side = new Map<PeerName, number>();
  private readonly sockets = new Set<Tracked>();

  /** Records which peer listens on `port` (call after the router started). */
  register(name: PeerName, port: number): void {
    this.portOwner.set(port, name);
  }

  /** The `connectSocket` option for the router named `from`. */
  connector(from: PeerName): (host: string, port: number) => Socket {
    return (host, port) => {
      const to = this.portOwner.get(port);
      if (to !== undefined && this.blocked(from, to)) {
        const socket = new Socket();
        const refused = Object.assign(new Error(`connect ECONNREFUSED ${host}:${port} (partitioned)`), { code: 'ECONNREFUSED' });
        process.nextTick(() => socket.destroy(refused));
        return socket;
      }
      const socket = connect({ host, port });
      const tracked: Tracked = { from, to, socket };
      this.sockets.add(tracked);
      socket.once('close', () => this.sockets.delete(tracked));
      return socket;
    };
  }

  private blocked(a: PeerName, b: PeerName): boolean {
    const sa = this.side.get(a);
    const sb = this.side.get(b);
    return sa !== undefined && sb !== undefined && sa !== sb;
  }

  /** Splits the peers into groups that cannot reach each other; live links across are cut. */
  partition(...groups: PeerName[][]): void {
    this.side.clear();
    groups.forEach((group, i) => group.forEach((name) => this.side.set(name, i)));
    for (const t of this.sockets) if (t.to !== undefined && this.blocked(t.from, t.to)) t.socket.destroy();
  }

  /** Lets every peer reach every other again. */
  heal(): void {
    this.side.clear();
  }
}
