// HTTPS over in-process endpoints: an https.Agent whose TLS sessions run over the endpoint's TCP.
import { Agent, type AgentOptions } from 'node:https';
import type { ClientRequestArgs } from 'node:http';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import { callWhenReady, requestTarget, type TcpEndpoint } from './http.js';

/**
 * An `https.Agent` whose connections go through an in-process endpoint: `https.request(url, { agent })`
 * reaches overlay names and addresses, with TLS over the endpoint's TCP. The certificate is checked as
 * usual against the name in the URL (pass `ca` for a private CA or a self-signed certificate).
 * Keep-alive is on by default.
 * @category Endpoints
 */
export class EndpointHttpsAgent extends Agent {
  private readonly endpoint: TcpEndpoint;

  /** `options` are `https.Agent`'s (`ca`, `cert`, `key`, `rejectUnauthorized`, …; `keepAlive` defaults to true here). */
  constructor(endpoint: TcpEndpoint, options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
    this.endpoint = endpoint;
  }

  /** Dials the request's host and port through the endpoint and starts TLS on that stream. */
  override createConnection(options: ClientRequestArgs & ConnectionOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    const raw = this.endpoint.connect(requestTarget(options, 443));
    // As https.Agent itself does, the request's options go to tls.connect: servername (set by the agent from a
    // name) and host (what an address is checked against); with `socket` given, TLS dials nothing itself.
    const secure = tlsConnect({ ...(options as ConnectionOptions), socket: raw });
    raw.once('error', (error) => secure.destroy(error)); // a refused or reset dial surfaces on the TLS stream
    if (callback) callWhenReady(secure, 'secureConnect', callback);
    return secure;
  }
}
