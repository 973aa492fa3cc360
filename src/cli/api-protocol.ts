// The agent's HTTP API: routes, request bodies and their validation (pure; shared by server and client).
import { DecodeError } from '../errors.js';

/** Default address of the control API (Weave's). */
export const DEFAULT_API_ADDRESS = '127.0.0.1:6784';
/** Name of the token file in the data dir. */
export const TOKEN_FILE = 'api-token';
/** Largest request body the API reads; a larger one is answered 413. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Longest value of one body field, in characters. */
export const MAX_FIELD_CHARS = 1024;

/** The error for a body over {@link MAX_BODY_BYTES} (the server maps `too-large` to 413). */
export function bodyTooLarge(): DecodeError {
  return new DecodeError('too-large', `request body is over the API's limit of ${MAX_BODY_BYTES} bytes (64 KiB)`);
}

/** Request bodies by route (`METHOD /path`). Every field is a string so the shapes stay simple to check. */
export interface ApiRequests {
  'POST /connect': { address: string };
  'POST /forget': { address: string };
  /** `netns` is an `ip netns` name or a namespace path; with `container`, the endpoint is keyed by that id (CNI). */
  'POST /attach': { netns: string; name: string; ip?: string; container?: string; ifname?: string };
  /** Exactly one of the two; a container that is not attached is not an error (`detached: false`). */
  'POST /detach': { netns?: string; container?: string };
  'POST /expose': { ip?: string };
  'POST /hide': Record<string, never>;
  /** Stops the agent after answering; `transfer: "true"` hands its address ranges to a live peer first. */
  'POST /stop': { transfer?: string };
  'POST /dns/add': { name: string; ip: string };
  'POST /dns/remove': { name: string; ip?: string };
  'POST /rmpeer': { peer: string };
}

/** A route that takes a body. */
export type ApiRoute = keyof ApiRequests;

/** Field lists per route: required and optional. */
const FIELDS: { [R in ApiRoute]: { required: readonly string[]; optional: readonly string[] } } = {
  'POST /connect': { required: ['address'], optional: [] },
  'POST /forget': { required: ['address'], optional: [] },
  'POST /attach': { required: ['netns', 'name'], optional: ['ip', 'container', 'ifname'] },
  'POST /detach': { required: [], optional: ['netns', 'container'] },
  'POST /expose': { required: [], optional: ['ip'] },
  'POST /hide': { required: [], optional: [] },
  'POST /stop': { required: [], optional: ['transfer'] },
  'POST /dns/add': { required: ['name', 'ip'], optional: [] },
  'POST /dns/remove': { required: ['name'], optional: ['ip'] },
  'POST /rmpeer': { required: ['peer'], optional: [] },
};

/** True when `route` is one the API accepts a body for. */
export function isApiRoute(route: string): route is ApiRoute {
  return Object.hasOwn(FIELDS, route);
}

/**
 * Decodes a request body: a JSON object with exactly the route's string fields (an empty body is `{}`).
 * Anything else is a `DecodeError` that says which field is wrong.
 */
export function decodeApiRequest<R extends ApiRoute>(route: R, body: Uint8Array): ApiRequests[R] {
  if (body.byteLength > MAX_BODY_BYTES) throw bodyTooLarge();
  const text = new TextDecoder('utf-8', { fatal: false }).decode(body).trim();
  let value: unknown = {};
  if (text.length > 0) {
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new DecodeError('bad-value', `request body is not JSON: ${(cause as Error).message}`, { cause });
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DecodeError('bad-value', 'request body must be a JSON object');
  const { required, optional } = FIELDS[route];
  const out: Record<string, string> = {};
  for (const [key, field] of Object.entries(value)) {
    if (!required.includes(key) && !optional.includes(key)) throw new DecodeError('bad-value', `unknown field "${key}" for ${route}`);
    if (typeof field !== 'string' || field.length === 0) throw new DecodeError('bad-value', `field "${key}" must be a non-empty string`);
    if (field.length > MAX_FIELD_CHARS) {
      throw new DecodeError('bad-value', `field "${key}" is ${field.length} characters long: at most ${MAX_FIELD_CHARS} are accepted`);
    }
    out[key] = field;
  }
  for (const key of required) if (!(key in out)) throw new DecodeError('bad-value', `field "${key}" is required for ${route}`);
  return out as unknown as ApiRequests[R];
}

/** The JSON body of every error reply. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}
