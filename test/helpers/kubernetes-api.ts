// A stand-in for the Kubernetes API on 127.0.0.1: GET /api/v1/nodes answers the documented v1.NodeList
// (paged with limit/continue), checks the bearer token, and can be told to refuse or to send garbage.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

/** A node as the fake API lists it. */
export interface FakeNode {
  name: string;
  internal?: string[];
  external?: string[];
}

/** What the fake API answers next. */
export type FakeMode = { kind: 'ok' } | { kind: 'status'; status: number } | { kind: 'garbage'; body: string };

/** The fake API server. */
export interface FakeKubernetesApi {
  /** `http://127.0.0.1:PORT` (or https). */
  url: string;
  nodes: FakeNode[];
  /** The token a request must carry (`Authorization: Bearer …`); undefined accepts any or none. */
  token: string | undefined;
  mode: FakeMode;
  /** Nodes per page at most, whatever `limit` says (to test paging). */
  pageSize: number;
  /** Every request: path with query, and its Authorization header. */
  requests: { url: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/** The JSON of one v1.Node, as the API sends it (trimmed to a realistic subset). */
function nodeJson(node: FakeNode): object {
  const addresses = [
    ...(node.internal ?? []).map((address) => ({ type: 'InternalIP', address })),
    ...(node.external ?? []).map((address) => ({ type: 'ExternalIP', address })),
    { type: 'Hostname', address: node.name },
  ];
  return {
    metadata: { name: node.name, uid: `uid-${node.name}`, resourceVersion: '1', labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' } },
    spec: { podCIDR: '10.244.0.0/24' },
    status: {
      addresses,
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      nodeInfo: { kubeletVersion: 'v1.30.0', containerRuntimeVersion: 'containerd://1.7.0' },
    },
  };
}

/** Starts the fake API on 127.0.0.1, plain HTTP unless given a TLS key and certificate. */
export async function startFakeKubernetesApi(nodes: FakeNode[] = [], tls?: { key: string; cert: string }): Promise<FakeKubernetesApi> {
  const api: FakeKubernetesApi = {
    url: '',
    nodes,
    token: undefined,
    mode: { kind: 'ok' },
    pageSize: 500,
    requests: [],
    close: async () => undefined,
  };
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    api.requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
    const url = new URL(request.url ?? '/', 'http://x');
    const status = (code: number, reason: string, message: string): void => {
      response.writeHead(code, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
    };
    if (request.method !== 'GET' || url.pathname !== '/api/v1/nodes') return status(404, 'NotFound', 'the server could not find the requested resource');
    if (api.token !== undefined && request.headers.authorization !== `Bearer ${api.token}`) return status(401, 'Unauthorized', 'Unauthorized');
    if (api.mode.kind === 'status') return status(api.mode.status, 'Forbidden', 'nodes is forbidden: User "system:serviceaccount:kube-system:weave-ts" cannot list resource "nodes"');
    if (api.mode.kind === 'garbage') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(api.mode.body);
      return;
    }
    const limit = Math.min(Number(url.searchParams.get('limit') ?? api.nodes.length) || api.nodes.length, api.pageSize);
    const from = Number(url.searchParams.get('continue') ?? 0);
    const page = api.nodes.slice(from, from + limit);
    const next = from + limit < api.nodes.length ? String(from + limit) : undefined;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '42', ...(next ? { continue: next } : {}) }, items: page.map(nodeJson) }));
  };
  const server: Server = tls ? createHttpsServer(tls, handle) : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  api.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  api.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return api;
}
