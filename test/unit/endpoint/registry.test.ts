import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError } from '../../../src/errors.js';
import { decodeEndpointState, encodeEndpointState, loadEndpointState, saveEndpointState, type EndpointState } from '../../../src/endpoint/registry.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';

const octet = fc.integer({ min: 0, max: 255 });
const cidrArb = fc.tuple(octet, octet, octet, octet, fc.integer({ min: 0, max: 32 })).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`);
const ifnameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,14}$/);
const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const stateArb: fc.Arbitrary<EndpointState> = fc.record(
  {
    exposed: fc.option(cidrArb, { nil: undefined }),
    endpoints: fc.array(
      fc.record(
        { netns: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/), name: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), ifname: ifnameArb, hostIfname: ifnameArb, address: cidrArb, mac: macArb },
        { noNullPrototype: true },
      ),
      { maxLength: 5 },
    ),
  },
  { noNullPrototype: true },
).map((s) => (s.exposed === undefined ? { endpoints: s.endpoints } : { exposed: s.exposed, endpoints: s.endpoints }));

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const decodeBytes = (b: Uint8Array): EndpointState => decodeEndpointState(new TextDecoder().decode(b));

test('registry state round-trips', () => {
  fc.assert(fc.property(stateArb, (s) => assert.equal(decodeEndpointState(encodeEndpointState(s)), s)));
});

test('fuzzed registry text only ever gives a DecodeError', () => {
  fuzzDecoder(decodeBytes, stateArb.map((s) => bytes(encodeEndpointState(s))));
  fuzzDecoder(decodeBytes, fc.json().map(bytes), 500);
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
  ];
  for (const [text, message] of cases) {
    try {
      decodeEndpointState(text);
      assert.unreachable(`accepted ${text}`);
    } catch (error) {
      assert.instance(error, DecodeError, text);
      assert.match((error as Error).message, message);
    }
  }
});

test('save is atomic and private; a missing file is an empty registry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wt-registry-'));
  try {
    const path = join(dir, 'sub', 'endpoints.json');
    assert.equal(await loadEndpointState(path), { endpoints: [] });
    const state: EndpointState = { exposed: '10.32.0.1/12', endpoints: [{ netns: 'web', name: 'web', ifname: 'ethwe', hostIfname: 'weavev1234567', address: '10.32.0.2/12', mac: '02:00:00:00:00:01' }] };
    await saveEndpointState(path, state);
    assert.equal(await loadEndpointState(path), state);
    assert.is((await stat(path)).mode & 0o777, 0o600);
    await writeFile(path, '{"version":1,"endpoints":{}}');
    try {
      await loadEndpointState(path);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DecodeError);
    }
    assert.match(await readFile(path, 'utf8'), /endpoints/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
