import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { cniResult, compareWithPrevResult } from '../../../src/cni/result.js';
import type { EndpointInfo } from '../../../src/endpoint/memory-endpoint.js';

const endpoint: EndpointInfo = {
  kind: 'netns',
  name: 'web-0.shop.weave.local.',
  id: 'container:abc',
  container: 'abc',
  address: '10.32.0.5/12',
  mac: '02:00:00:00:00:05',
  mtu: 1376,
  netns: '/var/run/netns/cni-1',
  ifname: 'eth0',
  hostIfname: 'weavev0123456789',
  hostMac: '02:00:00:00:00:0a',
  gateway: '10.32.0.1',
  dns: { nameserver: '10.32.0.1', domain: 'weave.local' },
};

test('the result of an attached container: both ends, address on the sandbox interface, default route, resolver', () => {
  assert.equal(cniResult('1.0.0', endpoint), {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'weavev0123456789', mac: '02:00:00:00:00:0a' },
      { name: 'eth0', mac: '02:00:00:00:00:05', sandbox: '/var/run/netns/cni-1' },
    ],
    ips: [{ address: '10.32.0.5/12', gateway: '10.32.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.32.0.1' }, { dst: '224.0.0.0/4' }],
    dns: { nameservers: ['10.32.0.1'], search: ['weave.local'] },
  });
  // Without DNS or a host end known: no resolver, the container's interface is index 0.
  const bare = cniResult('1.1.0', { ...endpoint, hostMac: undefined, dns: undefined });
  assert.is(bare.interfaces.length, 1);
  assert.is(bare.ips[0]?.interface, 0);
  assert.equal(bare.dns, {});
});

test('CHECK: our own result agrees; a different address, MAC, sandbox or gateway is named; chained additions are fine', () => {
  const result = cniResult('1.0.0', endpoint) as unknown as Record<string, unknown>;
  assert.equal(compareWithPrevResult(result, endpoint), []);
  const chained = { ...result, interfaces: [...(result.interfaces as unknown[]), { name: 'ifb0', mac: '02:00:00:00:00:99' }] };
  assert.equal(compareWithPrevResult(chained, endpoint), []);
  assert.match(compareWithPrevResult(result, { ...endpoint, address: '10.32.0.6/12' }).join(), /does not list 10\.32\.0\.6\/12/);
  assert.match(compareWithPrevResult(result, { ...endpoint, mac: '02:00:00:00:00:06' }).join(), /MAC/);
  assert.match(compareWithPrevResult(result, { ...endpoint, netns: '/proc/1/ns/net' }).join(), /is in \/var\/run\/netns\/cni-1/);
  assert.match(compareWithPrevResult(result, { ...endpoint, gateway: '10.32.0.9' }).join(), /gateway/);
  assert.match(compareWithPrevResult({}, endpoint).join(), /no interface eth0/);
});

test('CHECK never crashes on a malformed prevResult', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('interfaces', 'ips', 'routes', 'dns', 'x'), fc.jsonValue()), (prev) => {
      assert.ok(Array.isArray(compareWithPrevResult(prev, endpoint)));
    }),
    { numRuns: 2000 },
  );
});

test.run();
