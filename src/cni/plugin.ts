// The CNI commands, carried out by the local agent over its API: ADD attaches the container's namespace,
// DEL detaches it, CHECK compares, STATUS and GC (CNI 1.1.0) ask and tidy. I/O only through `AgentApi`.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, WeaveError } from '../errors.js';
import type { ContainerCheck, EndpointInfo } from '../endpoint/memory-endpoint.js';
import { ApiClient } from '../cli/api-client.js';
import { AGENT_FILE, parseAgentRecord } from '../cli/agent-file.js';
import { DEFAULT_API_ADDRESS } from '../cli/api-protocol.js';
import { CniCode, CniError } from './errors.js';
import { endpointName, SUPPORTED_VERSIONS, type CniNetworkConfig, type CniRequest } from './config.js';
import { cniResult, compareWithPrevResult } from './result.js';

/** How long an ADD may wait for the agent (its IPAM may still be waiting for peers); the kubelet's own limit is 2 minutes. */
export const ADD_TIMEOUT_MS = 90_000;
const OTHER_TIMEOUT_MS = 30_000;

/** What the plugin asks of the agent. */
export interface AgentApi {
  attach(request: { container: string; netns: string; ifname: string; name: string }): Promise<EndpointInfo>;
  /** True when something was detached. */
  detach(container: string): Promise<boolean>;
  check(container: string): Promise<ContainerCheck | undefined>;
  endpoints(): Promise<EndpointInfo[]>;
  status(): Promise<AgentStatus>;
}

/** The parts of the agent's status the plugin reads. */
export interface AgentStatus {
  state: string;
  ipam?: { state: string };
  dns?: { domain: string };
}

/** Opens the agent a configuration names; a CniError (11: try again later) when none is running. */
export type OpenAgent = (config: CniNetworkConfig, timeoutMs: number) => Promise<AgentApi>;

/** What the plugin prints on stdout, and its exit code. */
export interface CniOutcome {
  exitCode: number;
  /** JSON to print; nothing for a successful DEL, CHECK or GC. */
  output: unknown;
}

/** Runs one request; every failure becomes a CNI error object. */
export async function runCni(request: CniRequest, openAgent: OpenAgent = openAgentApi): Promise<CniOutcome> {
  const version = request.cniVersion;
  try {
    return { exitCode: 0, output: await execute(request, openAgent) };
  } catch (error) {
    const cni = toCniError(error, request);
    return { exitCode: 1, output: cni.toJSON(version) };
  }
}

async function execute(request: CniRequest, openAgent: OpenAgent): Promise<unknown> {
  const config = request.config;
  if (request.command === 'VERSION' || !config) return { cniVersion: request.cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
  switch (request.command) {
    case 'ADD': {
      if (config.prevResult) throw new CniError(CniCode.invalidNetworkConfig, 'weave-ts-cni must be the first plugin of its chain (it got a prevResult)');
      const agent = await openAgent(config, ADD_TIMEOUT_MS);
      // A dotted name is taken as absolute: POD.NAMESPACE goes under the agent's domain explicitly.
      const domain = (await agent.status()).dns?.domain;
      const name = endpointName(request);
      const endpoint = await agent.attach({ container: request.containerId, netns: request.netns, ifname: request.ifname, name: domain ? `${name}.${domain}` : name });
      return cniResult(config.cniVersion, endpoint);
    }
    case 'DEL': {
      const agent = await openAgent(config, OTHER_TIMEOUT_MS);
      await agent.detach(request.containerId);
      return undefined;
    }
    case 'CHECK': {
      if (!config.prevResult) throw new CniError(CniCode.invalidNetworkConfig, 'CHECK needs the prevResult of the ADD');
      const agent = await openAgent(config, OTHER_TIMEOUT_MS);
      const checked = await agent.check(request.containerId);
      if (!checked) throw new CniError(CniCode.unknownContainer, `container ${request.containerId} is not attached to weave-ts`);
      const problems = [...checked.problems, ...compareWithPrevResult(config.prevResult, checked.endpoint)];
      if (checked.endpoint.ifname !== request.ifname) problems.push(`the container is attached as ${checked.endpoint.ifname ?? '?'}, not ${request.ifname}`);
      if (problems.length > 0) throw new CniError(CniCode.checkFailed, `container ${request.containerId}'s network is not as it was set up`, problems.join('; '));
      return undefined;
    }
    case 'STATUS': {
      const agent = await openAgent(config, OTHER_TIMEOUT_MS).catch((error: unknown) => {
        throw new CniError(CniCode.notAvailable, 'the weave-ts agent is not running', (error as Error).message);
      });
      const status = await agent.status().catch((error: unknown) => {
        throw new CniError(CniCode.notAvailable, 'the weave-ts agent does not answer', (error as Error).message);
      });
      if (status.state !== 'running') throw new CniError(CniCode.notAvailable, `the weave-ts agent is ${status.state}`);
      if (status.ipam && status.ipam.state !== 'ready') throw new CniError(CniCode.notAvailable, `the weave-ts agent's address allocation is ${status.ipam.state} (waiting for peers?)`);
      return undefined;
    }
    case 'GC': {
      const agent = await openAgent(config, OTHER_TIMEOUT_MS);
      const valid = new Set((config.validAttachments ?? []).map((a) => `${a.containerId}\n${a.ifname}`));
      for (const e of await agent.endpoints()) {
        if (e.container !== undefined && !valid.has(`${e.container}\n${e.ifname ?? ''}`)) await agent.detach(e.container);
      }
      return undefined;
    }
  }
  throw new CniError(CniCode.invalidEnvironment, `CNI_COMMAND ${String(request.command)} is not supported`);
}

/** Maps the agent's refusals and failures to the specification's codes. */
function toCniError(error: unknown, request: CniRequest): CniError {
  if (error instanceof CniError) return error;
  if (!(error instanceof WeaveError)) return new CniError(CniCode.internal, `weave-ts-cni failed: ${(error as Error).message ?? String(error)}`);
  const details = `${error.code}: ${error.message}`;
  switch (error.code) {
    case 'not-running':
    case 'timeout':
      return new CniError(CniCode.tryAgainLater, `the weave-ts agent is not ready: ${error.message}`, details);
    case 'not-found':
      return request.command === 'ADD'
        ? new CniError(CniCode.unknownContainer, `cannot attach container ${request.containerId}: ${error.message}`, details)
        : new CniError(CniCode.agentRefused, error.message, details);
    case 'read-failed':
    case 'write-failed':
    case 'corrupt-state':
      return new CniError(CniCode.ioFailure, `the weave-ts agent could not keep its state: ${error.message}`, details);
    case 'invalid-option':
    case 'bad-value':
      return new CniError(CniCode.invalidNetworkConfig, error.message, details);
    default:
      return new CniError(CniCode.agentRefused, `the weave-ts agent refused ${request.command} of ${request.containerId}: ${error.message}`, details);
  }
}

/** The real agent: `DATA_DIR/agent.json` says where its API is (unless `api` is configured), `DATA_DIR/api-token` how to get in. */
export const openAgentApi: OpenAgent = async (config, timeoutMs) => {
  let api = config.api;
  if (api === undefined) {
    const text = await readFile(join(config.dataDir, AGENT_FILE), 'utf8').catch(() => undefined);
    if (text === undefined) {
      throw new CniError(CniCode.tryAgainLater, `no weave-ts agent is running with data dir ${config.dataDir} (no ${AGENT_FILE} there): try again later`);
    }
    api = parseAgentRecord(text)?.api ?? DEFAULT_API_ADDRESS;
  }
  const client = await ApiClient.open({ api, dataDir: config.dataDir, timeoutMs }).catch((error: unknown) => {
    throw new CniError(CniCode.tryAgainLater, `cannot read the weave-ts agent's API token: ${(error as Error).message}`);
  });
  return {
    attach: (r) => client.post('POST /attach', { netns: r.netns, name: r.name, container: r.container, ifname: r.ifname }),
    detach: async (container) => (await client.post<'POST /detach', { detached?: boolean }>('POST /detach', { container })).detached === true,
    check: async (container) => {
      try {
        return await client.get<ContainerCheck>(`/endpoints/check?container=${encodeURIComponent(container)}`);
      } catch (error) {
        if (error instanceof ApiError && error.code === 'not-found') return undefined;
        throw error;
      }
    },
    endpoints: () => client.get<EndpointInfo[]>('/endpoints'),
    status: () => client.get<AgentStatus>('/status'),
  };
};
