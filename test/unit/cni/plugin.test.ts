// The plugin's commands against a fake agent: what it asks, what it prints, how failures map to the spec's codes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiError, EndpointError, StateFileError } from '../../../src/errors.js';
import { parseCniRequest } from '../../../src/cni/config.js';
import { runCni, type AgentApi, type AgentStatus, type OpenAgent } from '../../../src/cni/plugin.js';
import { cniResult } from '../../../src/cni/result.js';
import { CniCode, CniError } from '../../../src/cni/errors.js';
import type { EndpointInfo } from '../../../src/endpoint/memory-endpoint.js';

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const config = { cniVersion: '1.0.0', name: 'weave-ts', type: 'weave-ts-cni', dataDir: '/d' };
const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/proc/42/ns/net', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' };

function info(container: string, ifname = 'eth0'): EndpointInfo {
  return { kind: 'netns', name: container, id: `container:${container}`, container, address: '10.32.0.5/12', mac: '02:00:00:00:00:05', mtu: 1376, netns: '/proc/42/ns/net', ifname, hostIfname: 'weavevx', hostMac: '02:00:00:00:00:0a', gateway: '10.32.0.1' };
}

/** A fake agent that records calls; `fail` makes every call reject with that error. */
function fakeAgent(options: { fail?: Error; endpoints?: EndpointInfo[]; status?: AgentStatus; problems?: string[] } = {}): { open: OpenAgent; calls: string[] } {
  const calls: string[] = [];
  const endpoints = new Map((options.endpoints ?? []).map((e) => [e.container as string, e]));
  const guard = async <T>(call: string, value: () => T): Promise<T> => {
    calls.push(call);
    if (options.fail) throw options.fail;
    return value();
  };
  const agent: AgentApi = {
    attach: (r) => guard(`attach ${r.container} ${r.netns} ${r.ifname} ${r.name}`, () => endpoints.get(r.container) ?? info(r.container, r.ifname)),
    detach: (c) => guard(`detach ${c}`, () => endpoints.delete(c)),
    check: (c) => guard(`check ${c}`, () => (endpoints.has(c) ? { endpoint: endpoints.get(c) as EndpointInfo, problems: options.problems ?? [] } : undefined)),
    endpoints: () => guard('endpoints', () => [...endpoints.values()]),
    status: () => guard('status', () => options.status ?? { state: 'running', ipam: { state: 'ready' }, dns: { domain: 'weave.local.' } }),
  };
  return { open: async () => agent, calls };
}

test('ADD asks for POD.NAMESPACE under the agent domain and prints the result', async () => {
  const { open, calls } = fakeAgent();
  const out = await runCni(parseCniRequest(env, bytes(config)), open);
  assert.is(out.exitCode, 0);
  assert.equal(calls, ['status', 'attach abc /proc/42/ns/net eth0 web-0.shop.weave.local.']);
  assert.equal(out.output, cniResult('1.0.0', info('abc')));
});

test('DEL, CHECK, STATUS and GC', async () => {
  const { open, calls } = fakeAgent({ endpoints: [info('abc'), info('old'), info('kept', 'net1')] });
  const prevResult = cniResult('1.0.0', info('abc'));
  assert.equal(await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'CHECK' }, bytes({ ...config, prevResult })), open), { exitCode: 0, output: undefined });
  const gc = { ...config, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }, { containerID: 'kept', ifname: 'net1' }] };
  assert.equal(await runCni(parseCniRequest({ CNI_COMMAND: 'GC' }, bytes(gc)), open), { exitCode: 0, output: undefined });
  assert.ok(calls.includes('detach old') && !calls.includes('detach abc') && !calls.includes('detach kept'), calls.join());
  assert.equal(await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'DEL' }, bytes(config)), open), { exitCode: 0, output: undefined });
  assert.equal(await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'DEL' }, bytes(config)), open), { exitCode: 0, output: undefined }, 'DEL again');
  assert.equal(await runCni(parseCniRequest({ CNI_COMMAND: 'STATUS' }, bytes({ ...config, cniVersion: '1.1.0' })), open), { exitCode: 0, output: undefined });
  const waiting = fakeAgent({ status: { state: 'running', ipam: { state: 'awaiting-consensus' } } });
  const status = await runCni(parseCniRequest({ CNI_COMMAND: 'STATUS' }, bytes({ ...config, cniVersion: '1.1.0' })), waiting.open);
  assert.equal(status.output, { cniVersion: '1.1.0', code: 50, msg: "the weave-ts agent's address allocation is awaiting-consensus (waiting for peers?)" });
});

test('CHECK failures: an unknown container is 3, differences are 101 with every problem in details', async () => {
  const { open } = fakeAgent({ endpoints: [info('abc')], problems: ['the host end weavevx is missing'] });
  const prevResult = cniResult('1.0.0', { ...info('abc'), address: '10.32.0.9/12' });
  const differs = await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'CHECK' }, bytes({ ...config, prevResult })), open);
  assert.is(differs.exitCode, 1);
  const error = differs.output as { code: number; details: string };
  assert.is(error.code, 101);
  assert.match(error.details, /host end weavevx is missing; prevResult does not list 10\.32\.0\.5\/12/);
  const unknown = await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'nope' }, bytes({ ...config, prevResult })), open);
  assert.is((unknown.output as { code: number }).code, 3);
  const noPrev = await runCni(parseCniRequest({ ...env, CNI_COMMAND: 'CHECK' }, bytes(config)), open);
  assert.is((noPrev.output as { code: number }).code, 7);
});

test("the agent's failures map to the spec's codes", async () => {
  const cases: [Error, number][] = [
    [new ApiError('not-running', 'no weave-ts agent answers at 127.0.0.1:6784'), CniCode.tryAgainLater],
    [new ApiError('timeout', 'IPAM is not ready'), CniCode.tryAgainLater],
    [new CniError(CniCode.tryAgainLater, 'no agent.json'), CniCode.tryAgainLater],
    [new EndpointError('not-found', 'network namespace /proc/42/ns/net does not exist'), CniCode.unknownContainer],
    [new StateFileError('write-failed', 'disk full'), CniCode.ioFailure],
    [new ApiError('invalid-option', 'interface name is not valid'), CniCode.invalidNetworkConfig],
    [new ApiError('already-exists', 'container abc is already attached'), CniCode.agentRefused],
    [new TypeError('boom'), CniCode.internal],
  ];
  for (const [error, code] of cases) {
    const { open } = fakeAgent({ fail: error });
    const out = await runCni(parseCniRequest(env, bytes(config)), open);
    assert.is(out.exitCode, 1);
    const object = out.output as { cniVersion: string; code: number; msg: string };
    assert.is(object.code, code, `${error.message}: ${JSON.stringify(object)}`);
    assert.is(object.cniVersion, '1.0.0');
    assert.match(object.msg, error.message.slice(0, 10));
  }
  // ADD as a second plugin is refused before the agent is asked.
  const { open, calls } = fakeAgent();
  const chained = await runCni(parseCniRequest(env, bytes({ ...config, prevResult: { cniVersion: '1.0.0' } })), open);
  assert.is((chained.output as { code: number }).code, 7);
  assert.equal(calls, []);
});

test.run();
