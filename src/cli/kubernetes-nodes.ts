// Kubernetes node lists: the names and addresses of nodes, decoded from a `GET /api/v1/nodes` answer (pure).
import { isIP } from 'node:net';
import { DecodeError } from '../errors.js';

/** Largest answer decoded (one page; the reader asks for pages of {@link NODE_LIST_PAGE_SIZE} nodes). */
export const MAX_NODE_LIST_BYTES = 32 * 1024 * 1024;

/** Most nodes in one answer (Kubernetes supports clusters of 5000). */
export const MAX_NODES = 10_000;

/** Nodes asked for per page (`?limit=`); a node object with its image list is a few tens of KiB. */
export const NODE_LIST_PAGE_SIZE = 500;

/** Most addresses one node may list (a node has a handful: InternalIP, ExternalIP, Hostname, per family). */
const MAX_ADDRESSES = 64;

/** One node, as peer discovery needs it. */
export interface KubernetesNode {
  /** `metadata.name`, unique in the cluster. */
  name: string;
  /**
   * The addresses peers dial, in the API's order: the node's `InternalIP` addresses, or its `ExternalIP`
   * ones when it has no InternalIP; empty while the node reports none (just registered).
   */
  addresses: string[];
}

/** One page of a node list. */
export interface NodeListPage {
  nodes: KubernetesNode[];
  /** `metadata.continue`: present when more pages follow (ask again with `?continue=`). */
  continue?: string;
}

/**
 * Decodes a `v1.NodeList` (the body of `GET /api/v1/nodes`). Only what discovery uses is checked:
 * `items` (required), `items[].metadata.name` (a non-empty string, unique), `items[].status.addresses[]` (objects with string
 * `type` and `address`; `InternalIP` and `ExternalIP` ones must be IP addresses), `metadata.continue`, and
 * `kind` when present. Other fields are ignored. Anything malformed is a {@link DecodeError} whose message
 * names the field (`items[2].status.addresses[0].address`); nothing else is ever thrown.
 */
export function decodeNodeList(body: Uint8Array | string): NodeListPage {
  const size = typeof body === 'string' ? body.length : body.byteLength;
  if (size > MAX_NODE_LIST_BYTES) {
    throw new DecodeError('too-large', `node list of ${size} bytes is over the ${MAX_NODE_LIST_BYTES}-byte limit`);
  }
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch (cause) {
      throw new DecodeError('bad-value', 'node list is not UTF-8 text', { cause });
    }
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (cause) {
    throw new DecodeError('bad-value', `node list is not JSON: ${(cause as Error).message}`, { cause });
  }
  const list = object(root, '(the body)');
  const kind = own(list, 'kind');
  if (kind !== undefined && kind !== 'NodeList') throw bad('kind', `expected "NodeList", got ${describe(kind)}`);
  const items = own(list, 'items');
  // Required: an answer without it (a proxy's `{}`) must not read as "no nodes", which forgets every peer.
  // `null` is Go's empty slice.
  if (items !== null && !Array.isArray(items)) throw bad('items', `expected an array, got ${describe(items)}`);
  const entries = (items ?? []) as unknown[];
  if (entries.length > MAX_NODES) throw new DecodeError('too-large', `node list has ${entries.length} items, over the limit of ${MAX_NODES}`);
  const names = new Set<string>();
  const nodes = entries.map((entry, i): KubernetesNode => {
    const node = object(entry, `items[${i}]`);
    const metadata = object(own(node, 'metadata'), `items[${i}].metadata`);
    const name = own(metadata, 'name');
    if (typeof name !== 'string' || name.length === 0 || name.length > 253) {
      throw bad(`items[${i}].metadata.name`, `expected a node name of 1 to 253 characters, got ${describe(name)}`);
    }
    if (names.has(name)) throw bad(`items[${i}].metadata.name`, `node ${JSON.stringify(name)} is listed twice`);
    names.add(name);
    return { name, addresses: nodeAddresses(own(node, 'status'), `items[${i}].status`) };
  });
  const metadata = own(list, 'metadata');
  const next = metadata === undefined || metadata === null ? undefined : own(object(metadata, 'metadata'), 'continue');
  if (next !== undefined && typeof next !== 'string') throw bad('metadata.continue', `expected a string, got ${describe(next)}`);
  return next ? { nodes, continue: next } : { nodes };
}

/** The address a peer on `node` is dialled at: its first IPv4 address, else its first one; undefined when it has none. */
export function peerAddress(node: KubernetesNode): string | undefined {
  return node.addresses.find((a) => isIP(a) === 4) ?? node.addresses[0];
}

/** `status.addresses` → InternalIP addresses, else ExternalIP ones; a node without status has none yet. */
function nodeAddresses(status: unknown, path: string): string[] {
  if (status === undefined || status === null) return [];
  const addresses = own(object(status, path), 'addresses');
  if (addresses === undefined || addresses === null) return [];
  if (!Array.isArray(addresses)) throw bad(`${path}.addresses`, `expected an array, got ${describe(addresses)}`);
  if (addresses.length > MAX_ADDRESSES) throw bad(`${path}.addresses`, `${addresses.length} addresses, over the limit of ${MAX_ADDRESSES}`);
  const internal: string[] = [];
  const external: string[] = [];
  (addresses as unknown[]).forEach((entry, j) => {
    const at = `${path}.addresses[${j}]`;
    const item = object(entry, at);
    const type = own(item, 'type');
    const address = own(item, 'address');
    if (typeof type !== 'string') throw bad(`${at}.type`, `expected a string, got ${describe(type)}`);
    if (typeof address !== 'string') throw bad(`${at}.address`, `expected a string, got ${describe(address)}`);
    if (type !== 'InternalIP' && type !== 'ExternalIP') return; // Hostname, InternalDNS, ExternalDNS: not dialled
    if (isIP(address) === 0) throw bad(`${at}.address`, `an ${type} must be an IP address, got ${describe(address)}`);
    const into = type === 'InternalIP' ? internal : external;
    if (!into.includes(address)) into.push(address);
  });
  return internal.length > 0 ? internal : external;
}

/** `value` as a JSON object (not an array, not null), else a DecodeError naming `path`. */
function object(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(path, `expected an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

/** An own property only: `{"items": …}` may not reach `Object.prototype`'s members. */
function own(value: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(value, key) ? value[key] : undefined;
}

function bad(path: string, why: string): DecodeError {
  return new DecodeError('bad-value', `node list field ${path}: ${why}`);
}

/** A short description of a JSON value for messages: its type, and strings and numbers themselves (cut). */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}
