// ApiClient: what the CLI commands use to talk to a running agent's HTTP API.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, type WeaveErrorCode } from '../errors.js';
import { TOKEN_FILE, type ApiErrorBody, type ApiRequests, type ApiRoute } from './api-protocol.js';

/** Where the agent is and how to authenticate. */
export interface ApiClientOptions {
  /** "host:port" of the agent's API. */
  api: string;
  /** The token (default: read from `dataDir`/api-token). */
  token?: string;
  dataDir?: string;
  timeoutMs?: number;
}

/** A client of one agent. */
export class ApiClient {
  private constructor(
    private readonly api: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {}

  /** Reads the token and returns a client; a missing token file says where it was looked for. */
  static async open(options: ApiClientOptions): Promise<ApiClient> {
    let token = options.token;
    if (token === undefined) {
      const path = join(options.dataDir ?? '.', TOKEN_FILE);
      token = await readFile(path, 'utf8').then(
        (t) => t.trim(),
        (cause: unknown) => {
          throw new ApiError('unauthorized', `cannot read the API token at ${path} (${(cause as Error).message}): is the agent running with --data-dir ${options.dataDir ?? '.'}, and are you allowed to read it?`, { cause });
        },
      );
    }
    return new ApiClient(options.api, token, options.timeoutMs ?? 120_000);
  }

  /** GETs a JSON route. */
  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path, undefined);
  }

  /** GETs a text route. */
  getText(path: string): Promise<string> {
    return this.request<string>('GET', path, undefined, true);
  }

  /** POSTs a body to a route. */
  post<R extends ApiRoute, T = unknown>(route: R, body: ApiRequests[R]): Promise<T> {
    const path = route.slice('POST '.length);
    return this.request<T>('POST', path, body);
  }

  private async request<T>(method: string, path: string, body: unknown, text = false): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`http://${this.api}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new ApiError('not-running', `no weave-ts agent answers at ${this.api} (${(cause as Error).message}): start one with "weave-ts launch"`, { cause });
    }
    const payload = await response.text();
    if (!response.ok) {
      let message = payload;
      let code = 'command-failed';
      try {
        const parsed = JSON.parse(payload) as ApiErrorBody;
        message = parsed.error.message;
        code = parsed.error.code;
      } catch {
        // not our JSON: keep the raw text
      }
      throw new ApiError(isKnownCode(code) ? code : 'command-failed', message);
    }
    return (text ? payload : JSON.parse(payload)) as T;
  }
}

/** Codes the server sends that the client passes on as they are; anything else becomes `command-failed`. */
const KNOWN: ReadonlySet<string> = new Set<WeaveErrorCode>([
  'unauthorized', 'not-found', 'already-exists', 'address-in-use', 'peer-reachable', 'not-running',
  'invalid-option', 'bad-value', 'too-large', 'command-failed', 'timeout', 'tap-unavailable', 'permission-denied',
  'corrupt-state', 'read-failed', 'write-failed',
]);

function isKnownCode(code: string): code is WeaveErrorCode {
  return KNOWN.has(code);
}
