import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { CniError } from '../../../src/cni/errors.js';
import { endpointName, parseCniArgs, parseCniRequest, requestedVersion } from '../../../src/cni/config.js';
import { isValidContainerId } from '../../../src/endpoint/container-id.js';

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const config = { cniVersion: '1.0.0', name: 'weave-ts', type: 'weave-ts-cni', dataDir: '/var/lib/weave-ts' };
const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/var/run/netns/cni-1', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0', CNI_PATH: '/opt/cni/bin' };

function codeOf(run: () => unknown): number {
  try {
    run();
  } catch (error) {
    assert.instance(error, CniError);
    return (error as CniError).code;
  }
  throw new Error('accepted');
}

test('a runtime request: command, container, namespace path, interface, Kubernetes args, configuration', () => {
  const r = parseCniRequest(env, bytes(config));
  assert.is(r.command, 'ADD');
  assert.is(r.containerId, 'abc');
  assert.is(r.netns, '/var/run/netns/cni-1');
  assert.is(r.ifname, 'eth0');
  assert.is(r.cniVersion, '1.0.0');
  assert.is(r.config?.dataDir, '/var/lib/weave-ts');
  assert.is(r.args.get('K8S_POD_NAME'), 'web-0');
  assert.is(endpointName(r), 'web-0.shop');
  // DEL may come without the namespace (it is gone); the default data dir applies.
  const del = parseCniRequest({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }, bytes({ ...config, dataDir: undefined }));
  assert.is(del.netns, '');
  assert.is(del.config?.dataDir, '/var/lib/weave-ts');
  // VERSION needs no valid configuration; it echoes a version it speaks.
  assert.is(parseCniRequest({ CNI_COMMAND: 'VERSION' }, bytes({ cniVersion: '1.1.0' })).cniVersion, '1.1.0');
  assert.is(parseCniRequest({ CNI_COMMAND: 'VERSION' }, bytes('garbage')).cniVersion, '1.0.0');
  // GC's list of the attachments the runtime still has.
  const gc = parseCniRequest({ CNI_COMMAND: 'GC' }, bytes({ ...config, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }));
  assert.equal(gc.config?.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
});

test('bad requests carry the specification codes', () => {
  const cases: [string, () => unknown, number][] = [
    ['no command', () => parseCniRequest({ ...env, CNI_COMMAND: undefined }, bytes(config)), 4],
    ['unknown command', () => parseCniRequest({ ...env, CNI_COMMAND: 'UP' }, bytes(config)), 4],
    ['no container id', () => parseCniRequest({ ...env, CNI_CONTAINERID: '' }, bytes(config)), 4],
    ['container id with a slash', () => parseCniRequest({ ...env, CNI_CONTAINERID: 'a/b' }, bytes(config)), 4],
    ['relative netns', () => parseCniRequest({ ...env, CNI_NETNS: 'cni-1' }, bytes(config)), 4],
    ['ADD without netns', () => parseCniRequest({ ...env, CNI_NETNS: undefined }, bytes(config)), 4],
    ['long ifname', () => parseCniRequest({ ...env, CNI_IFNAME: 'a-very-long-interface-name' }, bytes(config)), 4],
    ['CNI_ARGS without =', () => parseCniRequest({ ...env, CNI_ARGS: 'K8S_POD_NAME' }, bytes(config)), 4],
    ['not JSON', () => parseCniRequest(env, bytes('{"cniVersion":')), 6],
    ['not UTF-8', () => parseCniRequest(env, new Uint8Array([0x7b, 0xff, 0x7d])), 6],
    ['a list', () => parseCniRequest(env, bytes([config])), 6],
    ['old version', () => parseCniRequest(env, bytes({ ...config, cniVersion: '0.3.1' })), 1],
    ['GC at 1.0.0', () => parseCniRequest({ CNI_COMMAND: 'GC' }, bytes(config)), 1],
    ['no name', () => parseCniRequest(env, bytes({ ...config, name: '' })), 7],
    ['another type', () => parseCniRequest(env, bytes({ ...config, type: 'bridge' })), 7],
    ['relative data dir', () => parseCniRequest(env, bytes({ ...config, dataDir: 'var/lib' })), 7],
    ['api not host:port', () => parseCniRequest(env, bytes({ ...config, api: 'http://x' })), 7],
    ['prevResult not an object', () => parseCniRequest(env, bytes({ ...config, prevResult: [1] })), 7],
    ['ipMasq', () => parseCniRequest(env, bytes({ ...config, ipMasq: true })), 2],
    ['isGateway', () => parseCniRequest(env, bytes({ ...config, isGateway: true })), 2],
    ['ipam plugin', () => parseCniRequest(env, bytes({ ...config, ipam: { type: 'host-local' } })), 2],
    ['bad valid-attachments', () => parseCniRequest({ CNI_COMMAND: 'GC' }, bytes({ ...config, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] })), 7],
  ];
  for (const [what, run, code] of cases) assert.is(codeOf(run), code, what);
  assert.is(parseCniRequest(env, bytes({ ...config, ipam: {} })).command, 'ADD', 'an empty ipam section is fine');
});

test('names: POD.NAMESPACE, else the container id as a label, else a short id that is one', () => {
  const name = (containerId: string, args = ''): string => endpointName({ containerId, args: parseCniArgs(args) });
  assert.is(name('x', 'K8S_POD_NAMESPACE=Shop;K8S_POD_NAME=Web-0'), 'web-0.shop');
  assert.is(name('default-wtc1'), 'default-wtc1');
  assert.is(name('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'), '0123456789ab');
  assert.is(name('a_b.c'), 'a-b-c');
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$/), (id) => {
      fc.pre(isValidContainerId(id));
      assert.match(name(id), /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
    }),
  );
});

test('fuzzed environments and configurations only ever give a CniError', () => {
  const anyJson = fc.jsonValue().map((v) => JSON.stringify(v));
  const mutatedConfig = fc.record({
    cniVersion: fc.oneof(fc.constant('1.0.0'), fc.constant('1.1.0'), fc.string()),
    name: fc.oneof(fc.constant('weave-ts'), fc.string()),
    type: fc.oneof(fc.constant('weave-ts-cni'), fc.string()),
    dataDir: fc.oneof(fc.constant('/d'), fc.string(), fc.integer()),
    api: fc.option(fc.string(), { nil: undefined }),
    ipam: fc.option(fc.jsonValue(), { nil: undefined }),
    prevResult: fc.option(fc.jsonValue(), { nil: undefined }),
    'cni.dev/valid-attachments': fc.option(fc.jsonValue(), { nil: undefined }),
  }).map((c) => JSON.stringify(c));
  fc.assert(
    fc.property(
      fc.record({
        CNI_COMMAND: fc.constantFrom('ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC', 'X', ''),
        CNI_CONTAINERID: fc.option(fc.string(), { nil: undefined }),
        CNI_NETNS: fc.option(fc.oneof(fc.string(), fc.constant('/proc/1/ns/net')), { nil: undefined }),
        CNI_IFNAME: fc.option(fc.string(), { nil: undefined }),
        CNI_ARGS: fc.option(fc.string(), { nil: undefined }),
      }),
      fc.oneof(anyJson, mutatedConfig, fc.string()),
      (environment, stdin) => {
        try {
          parseCniRequest(environment, bytes(stdin));
        } catch (error) {
          if (!(error instanceof CniError)) throw error;
        }
        requestedVersion(bytes(stdin)); // never throws
      },
    ),
    { numRuns: 3000 },
  );
});

test.run();
