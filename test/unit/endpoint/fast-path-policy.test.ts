// Which links may take the fast path, and the IPsec ESP probe behind the reason status gives.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EndpointError } from '../../../src/errors.js';
import { encryptedRefusal, isTrusted, parseTrustedSubnets, probeEsp } from '../../../src/endpoint/fast-path-policy.js';
import type { NetCommand } from '../../../src/ethernet/net-command.js';

test('an underlay address is trusted when a trusted subnet holds it', () => {
  const subnets = parseTrustedSubnets(['10.250.41.0/24', '192.168.0.0/16']);
  assert.ok(isTrusted(subnets, '10.250.41.7'));
  assert.ok(isTrusted(subnets, '192.168.200.1'));
  assert.not.ok(isTrusted(subnets, '10.250.42.1'));
  assert.not.ok(isTrusted([], '10.250.41.7'), 'no trusted subnets: nothing is');
});

test('the ESP probe adds a state on loopback and deletes it; a refusal is the kernel\'s answer', async () => {
  const calls: string[] = [];
  const accepting: NetCommand = (argv) => {
    calls.push(argv.join(' '));
    return Promise.resolve('');
  };
  assert.is(await probeEsp(accepting), '');
  assert.match(calls[0] ?? '', /^ip xfrm state add src 127\.0\.0\.1 dst 127\.0\.0\.1 proto esp spi 0x7774e5b1 reqid 1 mode transport aead rfc4106\(gcm\(aes\)\) 0x0{72} 128$/);
  assert.is(calls[1], 'ip xfrm state del src 127.0.0.1 dst 127.0.0.1 proto esp spi 0x7774e5b1');
  const refusing: NetCommand = (argv) => Promise.reject(new EndpointError('command-failed', `${argv.join(' ')}: RTNETLINK answers: Function not implemented`));
  const answer = await probeEsp(refusing);
  assert.is(answer, 'RTNETLINK answers: Function not implemented');
  assert.match(encryptedRefusal(answer), /password .* not in trustedSubnets .* this kernel refuses IPsec ESP \(RTNETLINK answers: Function not implemented\)/);
  assert.match(encryptedRefusal(''), /weave-ts does not encrypt the fast path with IPsec ESP/);
});

test('the real kernel answers the probe without leaving a state behind (root only)', async () => {
  if (process.getuid?.() !== 0) {
    console.log('ESP probe on the real kernel skipped: needs root');
    return;
  }
  const { systemNetCommand } = await import('../../../src/ethernet/net-command.js');
  await probeEsp(systemNetCommand);
  const left = await systemNetCommand(['ip', 'xfrm', 'state', 'list', 'spi', '0x7774e5b1']).catch(() => '');
  assert.is(left.trim(), '', 'no xfrm state left');
});

test.run();
