// Endpoint registry file: the kernel endpoints and the host address an agent set up, so a restarted agent resumes them.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DecodeError } from '../errors.js';
import { isValidNetnsName } from './ip-command.js';
import { isValidInterfaceName } from '../nic/tap-nic.js';

/** One kernel endpoint as persisted. */
export interface PersistedNetnsEndpoint {
  netns: string;
  /** DNS name (as given). */
  name: string;
  ifname: string;
  hostIfname: string;
  /** CIDR. */
  address: string;
  mac: string;
}

/** Everything the registry file holds. */
export interface EndpointState {
  /** The host's overlay address on the bridge (CIDR), if exposed. */
  exposed?: string;
  endpoints: PersistedNetnsEndpoint[];
}

const VERSION = 1;
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Encodes the state as JSON text (one line per endpoint for readable diffs). */
export function encodeEndpointState(state: EndpointState): string {
  return `${JSON.stringify({ version: VERSION, ...(state.exposed ? { exposed: state.exposed } : {}), endpoints: state.endpoints }, null, 1)}\n`;
}

/** Decodes registry text; anything malformed is a `DecodeError('bad-value')` naming the field. */
export function decodeEndpointState(text: string): EndpointState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new DecodeError('bad-value', `endpoint registry is not JSON: ${(cause as Error).message}`, { cause });
  }
  const root = asObject(value, 'registry');
  if (root.version !== VERSION) throw new DecodeError('version-mismatch', `endpoint registry version ${String(root.version)} is not ${VERSION}`);
  const exposed = root.exposed === undefined ? undefined : cidr(root.exposed, 'exposed');
  if (!Array.isArray(root.endpoints)) throw new DecodeError('bad-value', 'endpoint registry: "endpoints" is not an array');
  const endpoints = root.endpoints.map((item: unknown, i: number): PersistedNetnsEndpoint => {
    const e = asObject(item, `endpoints[${i}]`);
    const netns = text_(e.netns, `endpoints[${i}].netns`);
    if (!isValidNetnsName(netns)) throw new DecodeError('bad-value', `endpoints[${i}].netns is not a namespace name`);
    const ifname = text_(e.ifname, `endpoints[${i}].ifname`);
    const hostIfname = text_(e.hostIfname, `endpoints[${i}].hostIfname`);
    if (!isValidInterfaceName(ifname) || !isValidInterfaceName(hostIfname)) throw new DecodeError('bad-value', `endpoints[${i}] has an invalid interface name`);
    const mac = text_(e.mac, `endpoints[${i}].mac`);
    if (!MAC.test(mac)) throw new DecodeError('bad-value', `endpoints[${i}].mac is not a MAC address`);
    return { netns, name: text_(e.name, `endpoints[${i}].name`), ifname, hostIfname, address: cidr(e.address, `endpoints[${i}].address`), mac };
  });
  return { ...(exposed ? { exposed } : {}), endpoints };
}

/** Reads the registry; a missing file is an empty registry. */
export async function loadEndpointState(path: string): Promise<EndpointState> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > MAX_FILE_BYTES) throw new DecodeError('too-large', `endpoint registry ${path} is larger than ${MAX_FILE_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { endpoints: [] };
    throw error;
  }
  return decodeEndpointState(text);
}

/** Writes the registry atomically (temporary file, fsync, rename). */
export async function saveEndpointState(path: string, state: EndpointState): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(encodeEndpointState(state));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DecodeError('bad-value', `endpoint registry: ${what} is not an object`);
  return value as Record<string, unknown>;
}

function text_(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 255) throw new DecodeError('bad-value', `endpoint registry: ${what} is not a non-empty string`);
  return value;
}

function cidr(value: unknown, what: string): string {
  const s = text_(value, what);
  const m = CIDR.exec(s);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new DecodeError('bad-value', `endpoint registry: ${what} is not an IPv4 CIDR`);
  return s;
}
