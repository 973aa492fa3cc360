// HTTP over in-process endpoints: node:http (and https/tls) servers fed from an endpoint's TCP, and an Agent that dials through it.
import { Agent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TcpConnectOptions, TcpSocket } from '../stack/tcp/socket.js';
import type { TcpServer, TcpServerOptions } from '../stack/tcp/server.js';

/** What the HTTP helpers need of an endpoint: dialling and listening (a `MemoryEndpoint` or its `NetStack`). */
export interface TcpEndpoint {
  /** Opens a TCP connection through the endpoint. */
  connect(options: TcpConnectOptions, connectListener?: () => void): TcpSocket;
  /** A TCP server on the endpoint's address. */
  createServer(options?: TcpServerOptions, connectionListener?: (socket: TcpSocket) => void): TcpServer;
}

/**
 * An `http.Agent` whose connections go through an in-process endpoint: `http.request(url, { agent })`
 * and `http.get` reach overlay names and addresses. Keep-alive is on by default, so requests to one
 * host reuse their connections as with the default agent of `fetch`.
 * @category Endpoints
 */
export class EndpointHttpAgent extends Agent {
  private readonly endpoint: TcpEndpoint;

  /** `options` are `http.Agent`'s (`keepAlive` defaults to true here). */
  constructor(endpoint: TcpEndpoint, options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
    this.endpoint = endpoint;
  }

  /** Dials the request's host (an overlay name or address) and port through the endpoint. */
  override createConnection(options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    const port = Number(options.port ?? options.defaultPort ?? 80);
    const host = options.hostname ?? options.host ?? undefined;
    const socket = this.endpoint.connect({ port, ...(host ? { host: host.replace(/^\[|\]$/g, '') } : {}) });
    if (callback) {
      const onConnect = (): void => {
        socket.removeListener('error', onError);
        callback(null, socket);
      };
      const onError = (error: Error): void => {
        socket.removeListener('connect', onConnect);
        callback(error, socket);
      };
      socket.once('connect', onConnect);
      socket.once('error', onError);
      return socket;
    }
    return socket;
  }
}

/** Options of {@link serveHttp}. */
export interface ServeHttpOptions extends TcpServerOptions {
  /** Handshakes plus unaccepted connections at most (default 511). */
  backlog?: number | undefined;
}

/**
 * Serves a `node:http` (or `https`, `tls`, `http2`) server on `port` of an endpoint: every accepted
 * connection is handed to it with `server.emit('connection', socket)`, as its own listener would.
 * Resolves with the TCP server once it listens; closing it stops accepting, and closing `server`
 * closes it too.
 *
 * ```ts
 * const web = await overlay.attach({ name: 'web' });
 * await serveHttp(web, http.createServer((req, res) => res.end('hello')), 8080);
 * ```
 * @category Endpoints
 */
export async function serveHttp(endpoint: TcpEndpoint, server: NetServer, port: number, options: ServeHttpOptions = {}): Promise<TcpServer> {
  const { backlog, ...serverOptions } = options;
  const tcp = endpoint.createServer(serverOptions, (socket) => server.emit('connection', socket));
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    tcp.once('error', onError);
    tcp.listen({ port, ...(backlog !== undefined ? { backlog } : {}) }, () => {
      tcp.removeListener('error', onError);
      resolve();
    });
  });
  server.once('close', () => {
    if (tcp.listening) tcp.close();
  });
  return tcp;
}
