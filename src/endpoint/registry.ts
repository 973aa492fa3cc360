// Endpoint registry (`endpoints.json`): the kernel endpoints, the exposed address and the journal of operations in flight.
//
// The file is a state-file envelope (src/wire/state-file.ts: magic "WTEP", format 2, length, body,
// SHA-256) whose body is UTF-8 JSON: `{ "bridge"?: NAME, "exposed"?: CIDR, "endpoints": [...], "pending": [...] }`.
// `pending` is the journal: an operation is written there before its first side effect and removed
// when it is committed or undone, so a restart after a crash knows what to roll forward or back.
// Format 1 was the bare JSON object with `"version": 1` and no journal; it is still read.
import { DecodeError } from '../errors.js';
import { hasStateFileMagic, openStateFile, sealStateFile, type StateFileKind } from '../wire/state-file.js';
import { nodeFileSystem, type FileSystem } from '../persist/file-system.js';
import { StateFile } from '../persist/state-file.js';
import { isNetnsPath, isValidNetnsName, validateNetnsRef } from './ip-command.js';
import { isValidContainerId } from './container-id.js';
import { isValidInterfaceName } from '../nic/tap-nic.js';

/** The envelope of `endpoints.json`. */
export const ENDPOINTS_FILE_KIND: StateFileKind = { magic: 'WTEP', format: 2, what: 'endpoint registry' };
/** The registry's file name in the data dir. */
export const ENDPOINTS_FILE = 'endpoints.json';

/** One kernel endpoint as persisted. */
export interface PersistedNetnsEndpoint {
  /** The `ip netns` namespace, or the path of the namespace file. */
  netns: string;
  /** The container id a runtime attached it for (CNI); the endpoint is then keyed by it, not by `netns`. */
  container?: string;
  /** DNS name (as given). */
  name: string;
  /** Interface name inside the namespace. */
  ifname: string;
  /** The veth's host end, on the bridge. */
  hostIfname: string;
  /** CIDR. */
  address: string;
  /** MAC of the interface inside the namespace. */
  mac: string;
}

/**
 * An operation begun and not yet finished. `attach` and `expose` are written once their address is
 * allocated and before the kernel is touched; `detach` and `hide` once the endpoint or address is
 * gone from the committed state and before the kernel is touched.
 */
export type PendingOperation =
  | { op: 'attach'; netns: string; container?: string; name: string; ifname: string; hostIfname: string; address: string }
  | { op: 'detach'; netns: string; container?: string; name: string; ifname: string; hostIfname: string; address: string }
  | { op: 'expose'; address: string }
  | { op: 'hide'; address: string };

/** Everything the registry file holds. */
export interface EndpointState {
  /** The bridge the endpoints and the exposed address are on (absent in files of earlier versions). */
  bridge?: string;
  /** The host's overlay address on the bridge (CIDR), if exposed. */
  exposed?: string;
  /** Committed kernel endpoints. */
  endpoints: PersistedNetnsEndpoint[];
  /** The journal: operations in flight (empty after a clean run). */
  pending: PendingOperation[];
}

const LEGACY_VERSION = 1;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAX_ENTRIES = 100_000;

/** Encodes the state as the whole file: JSON (one line per field, readable) in the checksummed envelope. */
export function encodeEndpointState(state: EndpointState): Uint8Array {
  const json = { ...(state.bridge ? { bridge: state.bridge } : {}), ...(state.exposed ? { exposed: state.exposed } : {}), endpoints: state.endpoints, pending: state.pending };
  return sealStateFile(ENDPOINTS_FILE_KIND, new TextEncoder().encode(`${JSON.stringify(json, null, 1)}\n`));
}

/** True when `bytes` are a format-1 registry (bare JSON, no checksum). */
export function isLegacyEndpointState(bytes: Uint8Array): boolean {
  return !hasStateFileMagic(ENDPOINTS_FILE_KIND, bytes);
}

/** Decodes a whole file (format 2, checksum verified, or format 1); anything malformed is a `DecodeError` naming the field. */
export function decodeEndpointState(bytes: Uint8Array): EndpointState {
  const legacy = isLegacyEndpointState(bytes);
  const body = legacy ? bytes : openStateFile(ENDPOINTS_FILE_KIND, bytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch (cause) {
    throw new DecodeError('bad-value', 'endpoint registry is not UTF-8 text', { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new DecodeError('bad-value', `endpoint registry is not JSON: ${(cause as Error).message}`, { cause });
  }
  const root = asObject(value, 'registry');
  if (legacy && root.version !== LEGACY_VERSION) throw new DecodeError('version-mismatch', `endpoint registry version ${String(root.version)} is not ${LEGACY_VERSION}`);
  const bridge = root.bridge === undefined ? undefined : interfaceName(root.bridge, 'bridge');
  const exposed = root.exposed === undefined ? undefined : cidr(root.exposed, 'exposed');
  const endpoints = list(root.endpoints, 'endpoints').map((item, i) => endpoint(asObject(item, `endpoints[${i}]`), `endpoints[${i}]`));
  const pending = legacy ? [] : list(root.pending, 'pending').map((item, i) => operation(asObject(item, `pending[${i}]`), `pending[${i}]`));
  return { ...(bridge ? { bridge } : {}), ...(exposed ? { exposed } : {}), endpoints, pending };
}

/** Loaded registry state and whether the file existed (and in which format). */
export interface LoadedEndpointState {
  state: EndpointState;
  /** False when there was no file (a fresh data dir). */
  exists: boolean;
  /** True for a format-1 file, rewritten with the next save. */
  legacy: boolean;
}

/** The registry file of a data dir. */
export class EndpointRegistry {
  private readonly file: StateFile;

  constructor(
    /** Where the file lives (`DATA_DIR/endpoints.json`). */
    readonly path: string,
    fs: FileSystem = nodeFileSystem,
  ) {
    this.file = new StateFile(path, ENDPOINTS_FILE_KIND.what, fs);
  }

  /** Reads the registry; a missing file is an empty one, a damaged one a `StateFileError('corrupt-state')` naming it. */
  async load(): Promise<LoadedEndpointState> {
    const bytes = await this.file.read();
    if (bytes === undefined) return { state: { endpoints: [], pending: [] }, exists: false, legacy: false };
    try {
      return { state: decodeEndpointState(bytes), exists: true, legacy: isLegacyEndpointState(bytes) };
    } catch (cause) {
      throw this.file.corrupt(
        cause,
        'move it away to start without it: the namespaces it listed are then not resumed, the veths left on the bridge are removed and their addresses released; attach the namespaces again',
      );
    }
  }

  /** Replaces the file atomically; a `StateFileError('write-failed')` naming it when that is impossible. */
  save(state: EndpointState): Promise<void> {
    return this.file.write(encodeEndpointState(state));
  }
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DecodeError('bad-value', `endpoint registry: ${what} is not an object`);
  return value as Record<string, unknown>;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new DecodeError('bad-value', `endpoint registry: "${what}" is not an array`);
  if (value.length > MAX_ENTRIES) throw new DecodeError('too-large', `endpoint registry: "${what}" has more than ${MAX_ENTRIES} entries`);
  return value;
}

function text_(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 255) throw new DecodeError('bad-value', `endpoint registry: ${what} is not a string of 1 to 255 characters`);
  return value;
}

function cidr(value: unknown, what: string): string {
  const s = text_(value, what);
  const m = CIDR.exec(s);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new DecodeError('bad-value', `endpoint registry: ${what} is not an IPv4 CIDR`);
  return s;
}

/** An `ip netns` name or the path of a namespace file. */
function netnsRef(value: unknown, what: string): string {
  if (typeof value === 'string' && isNetnsPath(value)) {
    try {
      validateNetnsRef(value);
    } catch (cause) {
      throw new DecodeError('bad-value', `endpoint registry: ${what} is not a namespace path: ${(cause as Error).message}`, { cause });
    }
    return value;
  }
  const netns = text_(value, what);
  if (!isValidNetnsName(netns)) throw new DecodeError('bad-value', `endpoint registry: ${what} is not a namespace name or path`);
  return netns;
}

/** The optional container id of an entry. */
function container(value: unknown, what: string): { container?: string } {
  if (value === undefined) return {};
  if (typeof value !== 'string' || !isValidContainerId(value)) throw new DecodeError('bad-value', `endpoint registry: ${what} is not a container id`);
  return { container: value };
}

function interfaceName(value: unknown, what: string): string {
  const name = text_(value, what);
  if (!isValidInterfaceName(name)) throw new DecodeError('bad-value', `endpoint registry: ${what} is an invalid interface name`);
  return name;
}

function endpoint(e: Record<string, unknown>, at: string): PersistedNetnsEndpoint {
  const netns = netnsRef(e.netns, `${at}.netns`);
  const ifname = interfaceName(e.ifname, `${at}.ifname`);
  const hostIfname = interfaceName(e.hostIfname, `${at}.hostIfname`);
  const mac = text_(e.mac, `${at}.mac`);
  if (!MAC.test(mac)) throw new DecodeError('bad-value', `endpoint registry: ${at}.mac is not a MAC address`);
  return { netns, ...container(e.container, `${at}.container`), name: text_(e.name, `${at}.name`), ifname, hostIfname, address: cidr(e.address, `${at}.address`), mac };
}

function operation(o: Record<string, unknown>, at: string): PendingOperation {
  switch (o.op) {
    case 'attach':
    case 'detach':
      return {
        op: o.op,
        netns: netnsRef(o.netns, `${at}.netns`),
        ...container(o.container, `${at}.container`),
        name: text_(o.name, `${at}.name`),
        ifname: interfaceName(o.ifname, `${at}.ifname`),
        hostIfname: interfaceName(o.hostIfname, `${at}.hostIfname`),
        address: cidr(o.address, `${at}.address`),
      };
    case 'expose':
    case 'hide':
      return { op: o.op, address: cidr(o.address, `${at}.address`) };
    default:
      throw new DecodeError('bad-value', `endpoint registry: ${at}.op ${JSON.stringify(o.op)} is not attach, detach, expose or hide`);
  }
}
