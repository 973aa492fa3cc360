// ApiServer: the agent's HTTP control API on loopback, every request authenticated by the token in the data dir.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ApiError, DecodeError, OptionsError, WeaveError } from '../errors.js';
import type { Overlay } from '../overlay.js';
import { parseListenAddress } from '../mesh/address.js';
import { bodyTooLarge, decodeApiRequest, isApiRoute, MAX_BODY_BYTES, type ApiErrorBody, type ApiRequests, type ApiRoute } from './api-protocol.js';

/**
 * Bytes of an oversized body read and thrown away so the 413 reaches the client (closing a socket with
 * unread data resets it, and the client may never see the answer); past this the connection is closed.
 */
const MAX_DISCARDED_BODY_BYTES = 1024 * 1024;

/** Where the API listens and the token clients must present (`Authorization: Bearer TOKEN`). */
export interface ApiServerOptions {
  listen: string;
  token: string;
  /** Allow a non-loopback listen address (the token is then the only protection, and it travels in clear). */
  allowRemote?: boolean;
  /** Stops the agent (`POST /stop`), called after the answer is sent; without it the route is refused. */
  onStop?: (options: { transfer: boolean }) => void;
}

/** Records added with `dns-add` are owned by this id. */
export const MANUAL_DNS_ID = 'weave:manual';

/** The agent's control API; see docs/cli.md for the routes. */
export class ApiServer {
  private server: Server | undefined;
  private readonly token: Buffer;

  constructor(
    private readonly overlay: Overlay,
    private readonly options: ApiServerOptions,
  ) {
    this.token = Buffer.from(options.token);
    const { host } = parseListenAddress(options.listen, 6784);
    if (!options.allowRemote && !isLoopback(host)) {
      throw new OptionsError(`--api ${options.listen} is not a loopback address: the control API only listens on 127.0.0.1 or ::1`);
    }
  }

  /** Binds the API; returns the bound "host:port". */
  async start(): Promise<string> {
    const { host, port } = parseListenAddress(this.options.listen, 6784);
    const server = createServer((req, res) => void this.handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause: NodeJS.ErrnoException) => {
        const code = cause.code === 'EADDRINUSE' ? 'address-in-use' : cause.code === 'EACCES' ? 'permission-denied' : 'command-failed';
        const advice = cause.code === 'EADDRINUSE' ? ' is in use (another agent? give it another --api)' : `: ${cause.message}`;
        reject(new WeaveError(code, `cannot listen for the API on ${this.options.listen}${advice}`, { cause }));
      });
      server.listen(port, host, () => resolve());
    });
    // Replaces the listen-time handler: a later accept failure (EMFILE…) must not end the agent.
    server.removeAllListeners('error');
    server.on('error', () => undefined);
    this.server = server;
    const address = server.address();
    return typeof address === 'object' && address ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}` : this.options.listen;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.authorised(req)) throw new ApiError('unauthorized', 'missing or wrong API token (the token is in the data dir: api-token)');
      const url = new URL(req.url ?? '/', 'http://api');
      const route = `${req.method ?? 'GET'} ${url.pathname}`;
      if (req.method === 'GET') {
        await this.get(route, url, res);
        return;
      }
      if (!isApiRoute(route)) throw new ApiError('not-found', `no route ${route}`);
      const body = decodeApiRequest(route, await readBody(req));
      if (route === 'POST /stop') {
        this.stopAgent(body as ApiRequests['POST /stop'], res);
        return;
      }
      const result = await this.post<ApiRoute>(route, body);
      reply(res, 200, result);
    } catch (error) {
      const { status, body } = errorReply(error);
      // An oversized body may not have been read to its end: the connection cannot carry another request.
      if (status === 413 && !req.complete) res.setHeader('connection', 'close');
      reply(res, status, body);
    }
  }

  private async get(route: string, url: URL, res: ServerResponse): Promise<void> {
    switch (route) {
      case 'GET /status':
        reply(res, 200, this.overlay.status());
        return;
      case 'GET /peers':
        reply(res, 200, this.overlay.peers().map((p) => p.toJSON()));
        return;
      case 'GET /endpoints':
        reply(res, 200, this.overlay.endpoints());
        return;
      case 'GET /metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.overlay.metrics());
        return;
      case 'GET /endpoints/check': {
        const container = url.searchParams.get('container');
        if (!container) throw new ApiError('invalid-option', 'GET /endpoints/check needs ?container=');
        const result = await this.overlay.checkContainer(container);
        if (!result) throw new ApiError('not-found', `container ${container} is not attached`);
        reply(res, 200, result);
        return;
      }
      case 'GET /dns': {
        const name = url.searchParams.get('name');
        if (!name) throw new ApiError('invalid-option', 'GET /dns needs ?name=');
        reply(res, 200, { name, addresses: this.overlay.dns?.lookup(name) ?? [] });
        return;
      }
      default:
        throw new ApiError('not-found', `no route ${route}`);
    }
  }

  private async post<R extends ApiRoute>(route: R, body: ApiRequests[R]): Promise<unknown> {
    const overlay = this.overlay;
    switch (route) {
      case 'POST /connect': {
        const { address } = body as ApiRequests['POST /connect'];
        overlay.connect(address);
        return { ok: true };
      }
      case 'POST /forget': {
        const { address } = body as ApiRequests['POST /forget'];
        overlay.forget(address);
        return { ok: true };
      }
      case 'POST /attach': {
        const b = body as ApiRequests['POST /attach'];
        const endpoint = await overlay.attach({
          netns: b.netns,
          name: b.name,
          ...(b.ip ? { ip: b.ip } : {}),
          ...(b.container ? { container: b.container } : {}),
          ...(b.ifname ? { ifname: b.ifname } : {}),
        });
        return endpoint.info;
      }
      case 'POST /detach': {
        const b = body as ApiRequests['POST /detach'];
        if ((b.netns === undefined) === (b.container === undefined)) throw new ApiError('invalid-option', 'POST /detach needs exactly one of "netns" and "container"');
        if (b.container !== undefined) return { ok: true, detached: await overlay.detach({ container: b.container }) };
        await overlay.detach(b.netns as string);
        return { ok: true };
      }
      case 'POST /expose': {
        const b = body as ApiRequests['POST /expose'];
        return { address: await overlay.expose(b.ip ? { ip: b.ip } : {}) };
      }
      case 'POST /hide': {
        const address = overlay.status().exposed;
        await overlay.hide();
        return address ? { address } : {};
      }
      case 'POST /dns/add': {
        const b = body as ApiRequests['POST /dns/add'];
        const dns = this.requireDns();
        if (isIP(b.ip) === 0) throw new ApiError('invalid-option', `"${b.ip}" is not an IP address`);
        dns.add(b.name, b.ip, { id: MANUAL_DNS_ID });
        return { ok: true };
      }
      case 'POST /dns/remove': {
        const b = body as ApiRequests['POST /dns/remove'];
        return { removed: this.requireDns().remove({ name: b.name }, b.ip) };
      }
      case 'POST /rmpeer': {
        return { moved: overlay.rmpeer((body as ApiRequests['POST /rmpeer']).peer) };
      }
    }
    throw new ApiError('not-found', `no route ${String(route)}`);
  }

  /** Answers, then stops: the client learns the agent took the request before its connection goes. */
  private stopAgent(body: ApiRequests['POST /stop'], res: ServerResponse): void {
    const onStop = this.options.onStop;
    if (!onStop) throw new ApiError('invalid-option', 'this API cannot stop its overlay (it is embedded in another program)');
    if (body.transfer !== undefined && body.transfer !== 'true' && body.transfer !== 'false') {
      throw new ApiError('bad-value', `field "transfer" must be "true" or "false", not "${body.transfer}"`);
    }
    reply(res, 200, { ok: true });
    res.once('finish', () => onStop({ transfer: body.transfer === 'true' }));
  }

  private requireDns(): NonNullable<Overlay['dns']> {
    const dns = this.overlay.dns;
    if (!dns) throw new ApiError('invalid-option', 'DNS is off on this agent (--no-dns)');
    return dns;
  }

  private authorised(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (!match) return false;
    const presented = Buffer.from(match[1] as string);
    return presented.length === this.token.length && timingSafeEqual(presented, this.token);
  }
}

function isLoopback(host: string): boolean {
  return host === '::1' || host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Reads a body of at most {@link MAX_BODY_BYTES}. A larger one is read on and discarded (up to
 * {@link MAX_DISCARDED_BODY_BYTES}) so the client gets its 413 instead of a reset connection.
 */
function readBody(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY_BYTES + MAX_DISCARDED_BODY_BYTES) {
      reject(bodyTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      else if (size > MAX_BODY_BYTES + MAX_DISCARDED_BODY_BYTES) {
        req.off('data', onData);
        req.pause();
        reject(bodyTooLarge());
      }
    };
    req.on('data', onData);
    req.on('end', () => (size > MAX_BODY_BYTES ? reject(bodyTooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** Maps errors to HTTP statuses by their stable code; the body carries the code and message. */
function errorReply(error: unknown): { status: number; body: ApiErrorBody } {
  if (error instanceof WeaveError) {
    const status =
      error.code === 'unauthorized'
        ? 401
        : error.code === 'not-found'
          ? 404
          : error.code === 'already-exists' || error.code === 'address-in-use' || error.code === 'peer-reachable'
            ? 409
            : error.code === 'not-running'
              ? 503
              : error.code === 'too-large'
                ? 413
                : error.code === 'write-failed' // a change the data dir could not take: undone
                  ? 507
                  : error instanceof DecodeError || error instanceof OptionsError || error.code === 'invalid-option' || error.code === 'bad-value'
                    ? 400
                    : 500;
    return { status, body: { error: { code: error.code, message: error.message } } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: 500, body: { error: { code: 'internal', message } } };
}
