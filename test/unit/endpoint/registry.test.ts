import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, StateFileError } from '../../../src/errors.js';
import { decodeEndpointState, encodeEndpointState, EndpointRegistry, type EndpointState, type PendingOperation } from '../../../src/endpoint/registry.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';

const octet = fc.integer({ min: 0, max: 255 });
const cidrArb = fc.tuple(octet, octet, octet, octet, fc.integer({ min: 0, max: 32 })).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`);
const ifnameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,14}$/);
// An `ip netns` name, or a namespace path as a container runtime gives it.
const netnsArb = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/), fc.nat().map((pid) => `/proc/${pid}/ns/net`), fc.stringMatching(/^\/var\/run\/netns\/cni-[0-9a-f-]{1,36}$/));
const containerArb = fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), { nil: undefined });
/** Drops an undefined `container` (the codec leaves the key out). */
const withContainer = <T extends { container: string | undefined }>({ container, ...rest }: T): Omit<T, 'container'> & { container?: string } =>
  container === undefined ? rest : { ...rest, container };
const nameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);
const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const linkOp = <Op extends 'attach' | 'detach'>(op: Op) =>
  fc.record({ op: fc.constant(op), netns: netnsArb, container: containerArb, name: nameArb, ifname: ifnameArb, hostIfname: ifnameArb, address: cidrArb }, { noNullPrototype: true }).map(withContainer);
const pendingArb: fc.Arbitrary<PendingOperation> = fc.oneof(
  linkOp('attach'),
  linkOp('detach'),
  fc.record({ op: fc.constant('expose' as const), address: cidrArb }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('hide' as const), address: cidrArb }, { noNullPrototype: true }),
);
const stateArb: fc.Arbitrary<EndpointState> = fc
  .record(
    {
      bridge: fc.option(ifnameArb, { nil: undefined }),
      exposed: fc.option(cidrArb, { nil: undefined }),
      endpoints: fc.array(
        fc.record({ netns: netnsArb, container: containerArb, name: nameArb, ifname: ifnameArb, hostIfname: ifnameArb, address: cidrArb, mac: macArb }, { noNullPrototype: true }).map(withContainer),
        { maxLength: 5 },
      ),
      pending: fc.array(pendingArb, { maxLength: 3 }),
    },
    { noNullPrototype: true },
  )
  .map((s) => ({ ...(s.bridge === undefined ? {} : { bridge: s.bridge }), ...(s.exposed === undefined ? {} : { exposed: s.exposed }), endpoints: s.endpoints, pending: s.pending }));

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** A format-1 file: the bare JSON object. */
const legacy = (s: EndpointState): Uint8Array => text(JSON.stringify({ version: 1, ...(s.bridge ? { bridge: s.bridge } : {}), ...(s.exposed ? { exposed: s.exposed } : {}), endpoints: s.endpoints }));
const WEB = { netns: 'web', name: 'web', ifname: 'ethwe', hostIfname: 'weavev1234567', address: '10.32.0.2/12', mac: '02:00:00:00:00:01' };

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wtj-registry-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function refused(registry: EndpointRegistry): Promise<StateFileError> {
  try {
    await registry.load();
  } catch (error) {
    assert.instance(error, StateFileError);
    assert.is((error as StateFileError).code, 'corrupt-state');
    assert.ok((error as Error).message.includes(registry.path), `the message names the file: ${(error as Error).message}`);
    assert.match((error as Error).message, /move it away/);
    return error as StateFileError;
  }
  return assert.unreachable('a damaged registry must not load') as never;
}

test('registry state round-trips, journal included; format-1 files still decode', () => {
  fc.assert(
    fc.property(stateArb, (s) => {
      assert.equal(decodeEndpointState(encodeEndpointState(s)), s);
      assert.equal(decodeEndpointState(legacy(s)), { ...s, pending: [] });
    }),
  );
});

test('the file is the envelope (WTEP, format 2) around readable JSON', () => {
  const bytes = encodeEndpointState({ exposed: '10.32.0.1/12', endpoints: [WEB], pending: [{ op: 'expose', address: '10.32.0.1/12' }] });
  assert.is(Buffer.from(bytes.subarray(0, 4)).toString(), 'WTEP');
  assert.is(bytes[4], 2);
  const body = Buffer.from(bytes.subarray(9, bytes.length - 32)).toString();
  assert.equal(JSON.parse(body), { exposed: '10.32.0.1/12', endpoints: [WEB], pending: [{ op: 'expose', address: '10.32.0.1/12' }] });
});

test('fuzzed registry files only ever give a DecodeError', () => {
  fuzzDecoder(decodeEndpointState, stateArb.map(encodeEndpointState));
  fuzzDecoder(decodeEndpointState, stateArb.map(legacy), 500);
  fuzzDecoder(decodeEndpointState, fc.json().map(text), 500);
});

test('a flipped bit anywhere is refused', () => {
  const bytes = encodeEndpointState({ exposed: '10.32.0.1/12', endpoints: [WEB], pending: [] });
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = bytes.slice();
      copy[i] = (copy[i] as number) ^ (1 << bit);
      assert.throws(() => decodeEndpointState(copy), (e: unknown) => e instanceof DecodeError, `bit ${bit} of byte ${i}`);
    }
  }
});

test('bad registries are rejected with what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['not json', /not JSON/],
    ['[]', /registry is not an object/],
    ['{"version":2,"endpoints":[]}', /version 2/],
    ['{"version":1}', /"endpoints" is not an array/],
    ['{"version":1,"endpoints":[{"netns":"a","name":"x","ifname":"ethwe","hostIfname":"v1","address":"10.0.0.300/8","mac":"02:00:00:00:00:01"}]}', /address is not an IPv4 CIDR/],
    ['{"version":1,"endpoints":[{"netns":"../x","name":"x","ifname":"ethwe","hostIfname":"v1","address":"10.0.0.3/8","mac":"02:00:00:00:00:01"}]}', /namespace name/],
    ['{"version":1,"endpoints":[{"netns":"a","name":"x","ifname":"a very long interface","hostIfname":"v1","address":"10.0.0.3/8","mac":"02:00:00:00:00:01"}]}', /interface name/],
    ['{"version":1,"bridge":"a/b","endpoints":[]}', /bridge is an invalid interface name/],
    ['{"version":1,"endpoints":[{"netns":"/proc/1/../../etc","name":"x","ifname":"ethwe","hostIfname":"v1","address":"10.0.0.3/8","mac":"02:00:00:00:00:01"}]}', /not a namespace path/],
    ['{"version":1,"endpoints":[{"netns":"/proc/1/ns/net","container":"-x","name":"x","ifname":"ethwe","hostIfname":"v1","address":"10.0.0.3/8","mac":"02:00:00:00:00:01"}]}', /container is not a container id/],
    ['{"version":1,"endpoints":[{"netns":"/proc/1/ns/net","container":7,"name":"x","ifname":"ethwe","hostIfname":"v1","address":"10.0.0.3/8","mac":"02:00:00:00:00:01"}]}', /container is not a container id/],
  ];
  for (const [json, message] of cases) {
    try {
      decodeEndpointState(text(json));
      assert.unreachable(`accepted ${json}`);
    } catch (error) {
      assert.instance(error, DecodeError, json);
      assert.match((error as Error).message, message);
    }
  }
  // The journal is checked as strictly as the endpoints.
  const badOp = encodeEndpointState({ endpoints: [], pending: [{ op: 'attach', netns: '../x', name: 'x', ifname: 'ethwe', hostIfname: 'v1', address: '10.0.0.3/8' }] });
  assert.throws(() => decodeEndpointState(badOp), /pending\[0\]\.netns is not a namespace name/);
});

test('save is atomic and private; a missing file is an empty registry; a format-1 file loads', async () => {
  await inTempDir(async (dir) => {
    const registry = new EndpointRegistry(join(dir, 'sub', 'endpoints.json'));
    assert.equal(await registry.load(), { state: { endpoints: [], pending: [] }, exists: false, legacy: false });
    const state: EndpointState = { exposed: '10.32.0.1/12', endpoints: [WEB], pending: [{ op: 'attach', netns: 'db', name: 'db', ifname: 'ethwe', hostIfname: 'weavev7654321', address: '10.32.0.3/12' }] };
    await registry.save(state);
    assert.equal(await registry.load(), { state, exists: true, legacy: false });
    assert.is((await stat(registry.path)).mode & 0o777, 0o600);
    await writeFile(registry.path, legacy(state));
    assert.equal(await registry.load(), { state: { ...state, pending: [] }, exists: true, legacy: true });
  });
});

test('a damaged registry is refused naming the file (bit flip, bad JSON, truncation), and left in place', async () => {
  await inTempDir(async (dir) => {
    const registry = new EndpointRegistry(join(dir, 'endpoints.json'));
    const good = encodeEndpointState({ endpoints: [WEB], pending: [] });
    const flipped = good.slice();
    const at = Buffer.from(flipped).indexOf('10.32.0.2');
    flipped[at + 8] = (flipped[at + 8] as number) ^ 1; // 10.32.0.2 becomes 10.32.0.3
    for (const bytes of [flipped, good.subarray(0, good.length - 1), text('{"version":1,"endpoints":{}}'), text('{')]) {
      await writeFile(registry.path, bytes);
      const error = await refused(registry);
      assert.instance(error.cause, DecodeError);
      assert.equal(new Uint8Array(await readFile(registry.path)), new Uint8Array(bytes));
    }
  });
});

test.run();
