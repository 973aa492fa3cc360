// HTTP over in-process endpoints: node:http (and https/tls) servers fed from an endpoint's TCP, an Agent that dials
// through it, and a connect function for undici (and so `fetch`).
import { Agent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { isIP, type Server as NetServer, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../clock.js';
import { OptionsError } from '../errors.js';
import { TcpSocketError, type TcpConnectOptions, type TcpSocket } from '../stack/tcp/socket.js';
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
    const socket = this.endpoint.connect(requestTarget(options, 80));
    if (callback) callWhenReady(socket, 'connect', callback);
    return socket;
  }
}

/** @internal Where an agent's request goes: its host (brackets of an IPv6 literal removed) and port. */
export function requestTarget(options: ClientRequestArgs, defaultPort: number): TcpConnectOptions {
  const port = Number(options.port ?? options.defaultPort ?? defaultPort);
  const host = (options.hostname ?? options.host ?? undefined)?.replace(/^\[|\]$/g, '');
  return { port, ...(host ? { host } : {}) };
}

/** @internal Calls an agent's `createConnection` callback once `stream` emits `ready` or `'error'`, whichever comes first. */
export function callWhenReady(stream: Duplex, ready: 'connect' | 'secureConnect', callback: (err: Error | null, stream: Duplex) => void): void {
  const onReady = (): void => {
    stream.removeListener('error', onError);
    callback(null, stream);
  };
  const onError = (error: Error): void => {
    stream.removeListener(ready, onReady);
    callback(error, stream);
  };
  stream.once(ready, onReady);
  stream.once('error', onError);
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

/**
 * What undici passes to a `connect` function (its `buildConnector.Options`), declared here so weave-ts does not
 * depend on undici.
 * @category Endpoints
 */
export interface EndpointConnectOptions {
  /** The origin's host: an overlay name or address (IPv6 brackets are removed). */
  hostname: string;
  /** `hostname:port` as written in the URL. */
  host?: string | undefined;
  /** `'http:'` or `'https:'` (TLS over the endpoint's TCP). */
  protocol: string;
  /** The port as written in the URL; `''` for the protocol's default (80 or 443). */
  port: string;
  /** The TLS server name (SNI) undici chose, when it chose one; else the host name (never an address). */
  servername?: string | undefined;
  /** Ignored: connections always leave from the endpoint's own address. */
  localAddress?: string | null | undefined;
  /** A socket to run TLS over instead of dialling (a proxy tunnel undici opened). */
  httpSocket?: Socket | undefined;
}

/**
 * How an {@link EndpointConnector} reports: `(null, socket)` once connected (and, for https, once the TLS handshake
 * is done), or `(error, null)`. The socket is a {@link TcpSocket} (a Duplex shaped like `net.Socket`) or a
 * `tls.TLSSocket` over one; it is typed as `net.Socket` so that undici's `connect` option accepts the function.
 * @category Endpoints
 */
export type EndpointConnectCallback = (...args: [error: null, socket: Socket] | [error: Error, socket: null]) => void;

/**
 * A connect function with undici's signature: pass it as `connect` to undici's `Agent`, `Client` or `Pool`.
 * @category Endpoints
 */
export type EndpointConnector = (options: EndpointConnectOptions, callback: EndpointConnectCallback) => void;

/** Options of {@link endpointConnector}. */
export interface EndpointConnectorOptions {
  /**
   * TLS options for `https:` origins (`ca`, `cert`, `key`, `rejectUnauthorized`, `ALPNProtocols`, …), as for
   * `tls.connect`; `socket` and `servername` are set by the connector.
   */
  tls?: TlsConnectionOptions | undefined;
  /** Give up on a connection (and its TLS handshake) after this many milliseconds: `ETIMEDOUT` (default 10 000, as undici). */
  timeoutMs?: number | undefined;
  /** Time source for the timeout (default the system clock). */
  clock?: Clock | undefined;
}

/**
 * A `connect` function for undici that dials through an in-process endpoint, so undici's `fetch`, `request` and
 * `Agent` reach overlay names and addresses (`https:` runs TLS over the endpoint's TCP):
 *
 * ```ts
 * import { Agent, fetch } from 'undici';
 * const dispatcher = new Agent({ connect: endpointConnector(api) });   // or api.connector()
 * const res = await fetch('http://db.weave.local:8080/health', { dispatcher });
 * ```
 *
 * The overlay's DNS resolves names (waiting up to 5 s for one not known yet); errors carry Node's codes
 * (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, …) and reach the request as its failure.
 * @category Endpoints
 */
export function endpointConnector(endpoint: TcpEndpoint, options: EndpointConnectorOptions = {}): EndpointConnector {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OptionsError(`endpointConnector: timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  const clock = options.clock ?? systemClock;
  return (connectOptions, callback) => {
    const secure = connectOptions.protocol === 'https:';
    const host = connectOptions.hostname.replace(/^\[|\]$/g, '');
    const port = connectOptions.port === '' ? (secure ? 443 : 80) : Number(connectOptions.port);
    let settled = false;
    let tcp: Duplex | undefined;
    let tlsSocket: Socket | undefined;
    const timer = clock.setTimer(timeoutMs, () => fail(new TcpSocketError('ETIMEDOUT', 'connect', host, port)), { keepAlive: true });
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      tlsSocket?.destroy();
      tcp?.destroy();
      callback(error, null);
    };
    const succeed = (socket: Socket): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      // From here on the socket's errors are undici's to handle.
      socket.removeListener('error', fail);
      tcp?.removeListener('error', fail);
      callback(null, socket);
    };
    const startTls = (transport: Duplex): void => {
      const servername = connectOptions.servername ?? (isIP(host) === 0 ? host : undefined);
      // host: what an address is checked against (tls.connect would check "localhost"); with a socket it dials nothing.
      tlsSocket = tlsConnect({ ...options.tls, socket: transport, host, ...(servername !== undefined ? { servername } : {}) });
      const socket = tlsSocket;
      socket.once('error', fail);
      socket.once('secureConnect', () => succeed(socket));
    };
    if (secure && connectOptions.httpSocket) {
      startTls(connectOptions.httpSocket);
      return;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      fail(new OptionsError(`endpointConnector: port ${JSON.stringify(connectOptions.port)} of ${host} is not a port number`));
      return;
    }
    const socket = endpoint.connect({ port, host });
    tcp = socket;
    socket.once('error', fail);
    socket.once('connect', () => {
      if (secure) startTls(socket);
      else succeed(socket as unknown as Socket);
    });
  };
}
