import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DecodeError } from '../../../src/errors.js';
import { decodeNodeList, MAX_NODE_LIST_BYTES, MAX_NODES, peerAddress } from '../../../src/cli/kubernetes-nodes.js';
import { assertDecodesOrRejects, mutatedBytes } from '../../helpers/fuzz.js';

/** A node as the API sends it, trimmed to a realistic subset of its fields. */
function node(name: string, addresses: { type: string; address: string }[], extra: object = {}): object {
  return {
    metadata: { name, uid: `uid-${name}`, labels: { 'kubernetes.io/hostname': name } },
    spec: { podCIDR: '10.244.1.0/24' },
    status: { addresses, conditions: [{ type: 'Ready', status: 'True' }], nodeInfo: { kubeletVersion: 'v1.30.0' } },
    ...extra,
  };
}

function nodeList(items: unknown, metadata: object = { resourceVersion: '42' }): string {
  return JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata, items });
}

function rejects(body: string | Uint8Array, message: RegExp, code = 'bad-value'): void {
  try {
    decodeNodeList(body);
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, DecodeError);
    assert.is((error as DecodeError).code, code);
    assert.match((error as Error).message, message);
  }
}

test('a node list gives each node its InternalIP addresses, ExternalIP ones only without any InternalIP', () => {
  const page = decodeNodeList(
    nodeList([
      node('a', [
        { type: 'Hostname', address: 'a' },
        { type: 'ExternalIP', address: '203.0.113.1' },
        { type: 'InternalIP', address: '192.168.1.10' },
        { type: 'InternalIP', address: 'fd00::10' },
      ]),
      node('b', [
        { type: 'ExternalIP', address: '203.0.113.2' },
        { type: 'InternalDNS', address: 'b.internal' },
      ]),
      node('c', [{ type: 'Hostname', address: 'c' }]),
      { metadata: { name: 'd' } },
      { metadata: { name: 'e' }, status: {} },
    ]),
  );
  assert.equal(page, {
    nodes: [
      { name: 'a', addresses: ['192.168.1.10', 'fd00::10'] },
      { name: 'b', addresses: ['203.0.113.2'] },
      { name: 'c', addresses: [] },
      { name: 'd', addresses: [] },
      { name: 'e', addresses: [] },
    ],
  });
  assert.is(peerAddress(page.nodes[0]!), '192.168.1.10');
  assert.is(peerAddress({ name: 'v6', addresses: ['fd00::1', '10.0.0.1'] }), '10.0.0.1', 'IPv4 first');
  assert.is(peerAddress({ name: 'v6', addresses: ['fd00::1'] }), 'fd00::1');
  assert.is(peerAddress(page.nodes[2]!), undefined);
});

test('an empty list, items null, bytes, and the continue token of a paged list', () => {
  assert.equal(decodeNodeList(nodeList([])), { nodes: [] });
  assert.equal(decodeNodeList(nodeList(null)), { nodes: [] });
  assert.equal(decodeNodeList('{"items":[]}'), { nodes: [] }, 'kind and metadata are optional');
  const bytes = new TextEncoder().encode(nodeList([node('x', [{ type: 'InternalIP', address: '10.0.0.1' }])], { continue: 'abc' }));
  assert.equal(decodeNodeList(bytes), { nodes: [{ name: 'x', addresses: ['10.0.0.1'] }], continue: 'abc' });
  assert.equal(decodeNodeList(nodeList([], { continue: '' })), { nodes: [] }, 'an empty continue is the last page');
});

test('every malformed shape is a DecodeError naming the field', () => {
  const ip = [{ type: 'InternalIP', address: '10.0.0.1' }];
  const cases: [string | Uint8Array, RegExp][] = [
    ['', /not JSON/],
    ['{"items":[', /not JSON/],
    [new Uint8Array([0x7b, 0xff, 0x7d]), /not UTF-8/],
    ['[]', /field \(the body\): expected an object, got an array/],
    ['null', /field \(the body\): expected an object, got null/],
    ['"NodeList"', /field \(the body\): expected an object/],
    ['{}', /field items: expected an array, got nothing/],
    ['{"kind":"Status","status":"Failure","items":[]}', /field kind: expected "NodeList", got "Status"/],
    [nodeList({}), /field items: expected an array, got an object/],
    [nodeList([42]), /field items\[0\]: expected an object, got number 42/],
    [nodeList([node('a', ip), null]), /field items\[1\]: expected an object, got null/],
    [nodeList([{}]), /field items\[0\]\.metadata: expected an object, got nothing/],
    [nodeList([{ metadata: [] }]), /field items\[0\]\.metadata: expected an object, got an array/],
    [nodeList([{ metadata: {} }]), /field items\[0\]\.metadata\.name: expected a node name of 1 to 253 characters, got nothing/],
    [nodeList([{ metadata: { name: '' } }]), /items\[0\]\.metadata\.name: .*got ""/],
    [nodeList([{ metadata: { name: 7 } }]), /items\[0\]\.metadata\.name: .*got number 7/],
    [nodeList([{ metadata: { name: 'x'.repeat(254) } }]), /items\[0\]\.metadata\.name/],
    [nodeList([node('a', ip), node('a', ip)]), /items\[1\]\.metadata\.name: node "a" is listed twice/],
    [nodeList([{ metadata: { name: 'a' }, status: 'Ready' }]), /items\[0\]\.status: expected an object, got "Ready"/],
    [nodeList([{ metadata: { name: 'a' }, status: { addresses: {} } }]), /items\[0\]\.status\.addresses: expected an array, got an object/],
    [nodeList([{ metadata: { name: 'a' }, status: { addresses: new Array(65).fill({ type: 'Hostname', address: 'a' }) } }]), /items\[0\]\.status\.addresses: 65 addresses/],
    [nodeList([node('a', ['10.0.0.1'] as never)]), /items\[0\]\.status\.addresses\[0\]: expected an object, got "10\.0\.0\.1"/],
    [nodeList([node('a', [{ address: '10.0.0.1' }] as never)]), /items\[0\]\.status\.addresses\[0\]\.type: expected a string, got nothing/],
    [nodeList([node('a', [{ type: 'InternalIP' }] as never)]), /items\[0\]\.status\.addresses\[0\]\.address: expected a string, got nothing/],
    [nodeList([node('a', [{ type: 'InternalIP', address: 10 }] as never)]), /addresses\[0\]\.address: expected a string, got number 10/],
    [nodeList([node('b', ip), node('a', [{ type: 'Hostname', address: 'a' }, { type: 'InternalIP', address: 'a.example' }])]), /items\[1\]\.status\.addresses\[1\]\.address: an InternalIP must be an IP address, got "a\.example"/],
    [nodeList([node('a', [{ type: 'ExternalIP', address: '300.1.1.1' }])]), /addresses\[0\]\.address: an ExternalIP must be an IP address/],
    [nodeList([], 'x' as never), /field metadata: expected an object, got "x"/],
    [nodeList([], { continue: 5 }), /field metadata\.continue: expected a string, got number 5/],
  ];
  for (const [body, message] of cases) rejects(body, message);
});

test('fields are read as own properties: __proto__ and prototype names in the JSON change nothing', () => {
  assert.equal(decodeNodeList('{"items":[{"metadata":{"__proto__":{"name":"evil"},"name":"n"}}]}'), { nodes: [{ name: 'n', addresses: [] }] });
  rejects('{"items":[{"metadata":{"__proto__":{"name":"evil"}}}]}', /items\[0\]\.metadata\.name: .*got nothing/);
  rejects('{"__proto__":{"items":[]}}', /field items: expected an array, got nothing/);
  rejects('{"items":[{"metadata":{"name":"constructor"},"status":{"addresses":[{"type":"toString","address":"x"},{"type":"InternalIP","address":"hasOwnProperty"}]}}]}', /addresses\[1\]\.address: an InternalIP must be an IP address/);
});

test('size caps: bytes and number of nodes', () => {
  rejects(' '.repeat(MAX_NODE_LIST_BYTES + 1), /over the 33554432-byte limit/, 'too-large');
  rejects(new Uint8Array(MAX_NODE_LIST_BYTES + 1), /over the 33554432-byte limit/, 'too-large');
  rejects(`{"items":[${new Array(MAX_NODES + 1).fill('0').join(',')}]}`, /10001 items, over the limit of 10000/, 'too-large');
  const many = decodeNodeList(nodeList(Array.from({ length: MAX_NODES }, (_, i) => ({ metadata: { name: `n${i}` } }))));
  assert.is(many.nodes.length, MAX_NODES);
});

const address = fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 8 }));
const addressEntry = fc.record({ type: fc.constantFrom('InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS'), address });
const validNode = fc.record({
  metadata: fc.record({ name: fc.string({ minLength: 1, maxLength: 20 }) }),
  status: fc.record({ addresses: fc.array(fc.record({ type: fc.constantFrom('InternalIP', 'ExternalIP'), address: fc.oneof(fc.ipV4(), fc.ipV6()) }), { maxLength: 4 }) }),
});

test('fuzz: random and mutated JSON and bytes never throw anything but DecodeError', () => {
  const decode = (bytes: Uint8Array): unknown => decodeNodeList(bytes);
  const shapes = fc.record(
    {
      kind: fc.oneof(fc.constant('NodeList'), fc.anything()),
      metadata: fc.oneof(fc.record({ continue: fc.oneof(fc.string(), fc.anything()) }), fc.anything()),
      items: fc.oneof(
        fc.array(validNode, { maxLength: 4 }),
        fc.array(fc.oneof(validNode, fc.anything(), fc.record({ metadata: fc.anything(), status: fc.anything() })), { maxLength: 4 }),
        fc.array(fc.record({ metadata: fc.record({ name: fc.anything() }), status: fc.record({ addresses: fc.oneof(fc.array(fc.oneof(addressEntry, fc.anything()), { maxLength: 4 }), fc.anything()) }) }), { maxLength: 4 }),
        fc.anything(),
      ),
    },
    { requiredKeys: [] },
  );
  const encoded = shapes.map((value) => new TextEncoder().encode(JSON.stringify(value) ?? ''));
  fc.assert(fc.property(fc.oneof(encoded, mutatedBytes(encoded), fc.string().map((s) => new TextEncoder().encode(s)), fc.json().map((s) => new TextEncoder().encode(s))), (bytes) => assertDecodesOrRejects(decode, bytes)), { numRuns: 3000 });
});

test('fuzz: generated valid lists decode to their names and their InternalIP (else ExternalIP) addresses', () => {
  fc.assert(
    fc.property(fc.uniqueArray(validNode, { maxLength: 8, selector: (n) => n.metadata.name }), (items) => {
      const page = decodeNodeList(nodeList(items));
      assert.equal(page.nodes.map((n) => n.name), items.map((n) => n.metadata.name));
      items.forEach((item, i) => {
        const of = (type: string): string[] => [...new Set(item.status.addresses.filter((a) => a.type === type).map((a) => a.address))];
        const internal = of('InternalIP');
        assert.equal(page.nodes[i]?.addresses, internal.length > 0 ? internal : of('ExternalIP'));
      });
    }),
    { numRuns: 500 },
  );
});

test.run();
