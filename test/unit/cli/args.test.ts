import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OptionsError } from '../../../src/errors.js';
import { flag, parseArgs, requiredFlag } from '../../../src/cli/args.js';
import { kubernetesPeerCount, launchOptions, LAUNCH_FLAGS, parseIpamInit } from '../../../src/cli/launch.js';

function throwsOptions(fn: () => unknown, message: RegExp): void {
  try {
    fn();
    assert.unreachable('no error');
  } catch (error) {
    assert.instance(error, OptionsError);
    assert.match((error as Error).message, message);
  }
}

test('flags with values, repeats, booleans, = form and positionals', () => {
  const args = parseArgs('x', ['--peer', 'a', '--peer=b:1', '--json', 'pos', '--name', 'n', '--', '--literal'], {
    values: { peer: { repeat: true }, name: {} },
    booleans: ['json'],
    positionals: { names: ['one', 'two'], min: 1, max: 2 },
  });
  assert.equal(args.values.get('peer'), ['a', 'b:1']);
  assert.is(flag(args, 'name'), 'n');
  assert.ok(args.booleans.has('json'));
  assert.equal(args.positionals, ['pos', '--literal']);
});

test('mistakes are OptionsErrors that say what to fix', () => {
  throwsOptions(() => parseArgs('launch', ['--nope'], {}), /unknown option --nope/);
  throwsOptions(() => parseArgs('launch', ['--name'], { values: { name: {} } }), /--name needs a value/);
  throwsOptions(() => parseArgs('launch', ['--name', 'a', '--name', 'b'], { values: { name: {} } }), /more than once/);
  throwsOptions(() => parseArgs('launch', ['--json=1'], { booleans: ['json'] }), /takes no value/);
  throwsOptions(() => parseArgs('dns-add', ['x'], { positionals: { names: ['name', 'ip'], min: 2, max: 2 } }), /missing IP/);
  throwsOptions(() => parseArgs('connect', ['a', 'b'], { positionals: { names: ['addr'], min: 1, max: 1 } }), /unexpected argument "b"/);
  throwsOptions(() => requiredFlag('attach', parseArgs('attach', [], { values: { netns: {} } }), 'netns'), /--netns is required/);
});

test('--ipalloc-init forms', () => {
  assert.equal(parseIpamInit(undefined, 2), { consensus: 3 });
  assert.equal(parseIpamInit('consensus', 0), { consensus: 1 });
  assert.equal(parseIpamInit('consensus=5', 0), { consensus: 5 });
  assert.equal(parseIpamInit('observer', 0), { observer: true });
  assert.equal(parseIpamInit('seed=aa:bb:cc:dd:ee:01, aa:bb:cc:dd:ee:02', 0), { seed: ['aa:bb:cc:dd:ee:01', 'aa:bb:cc:dd:ee:02'] });
  throwsOptions(() => parseIpamInit('consensus=0', 0), /N ≥ 1/);
  throwsOptions(() => parseIpamInit('sometimes', 0), /not understood/);
});

test('launch options: defaults, password from the environment, numbers checked', async () => {
  const { overlay, api, dataDir } = await launchOptions(parseArgs('launch', ['--peer', '10.0.0.2', '--data-dir', '/tmp/wt-x', '--no-dns'], LAUNCH_FLAGS), { WEAVE_PASSWORD: 'pw' });
  assert.is(api, '127.0.0.1:6784');
  assert.is(dataDir, '/tmp/wt-x');
  assert.is(overlay.listen, '0.0.0.0:6783');
  assert.is(overlay.password, 'pw');
  assert.is(overlay.dns, false);
  assert.equal(overlay.ipam && overlay.ipam.init, { consensus: 2 });
  try {
    await launchOptions(parseArgs('launch', ['--mtu', '9'], LAUNCH_FLAGS), {});
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /--mtu 9 is not an integer from 576 to 65000/);
  }
  try {
    await launchOptions(parseArgs('launch', ['--password-file', '/nonexistent/wt-pw'], LAUNCH_FLAGS), {});
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /cannot read --password-file/);
  }
});

test('launch options: --trusted-subnets, --no-fastdp and --no-offload', async () => {
  const fast = await launchOptions(parseArgs('launch', ['--trusted-subnets', '10.0.0.0/8, 192.168.1.0/24', '--data-dir', '/tmp/wt-x'], LAUNCH_FLAGS), {});
  assert.equal(fast.overlay.trustedSubnets, ['10.0.0.0/8', '192.168.1.0/24']);
  assert.is(fast.overlay.fastdp, undefined, 'on by default');
  const off = await launchOptions(parseArgs('launch', ['--no-fastdp', '--data-dir', '/tmp/wt-x'], LAUNCH_FLAGS), {});
  assert.is(off.overlay.fastdp, false);
  assert.is(fast.overlay.offload, undefined, 'offload on by default');
  const noOffload = await launchOptions(parseArgs('launch', ['--no-offload', '--data-dir', '/tmp/wt-x'], LAUNCH_FLAGS), {});
  assert.is(noOffload.overlay.offload, false);
  try {
    await launchOptions(parseArgs('launch', ['--trusted-subnets', ' , '], LAUNCH_FLAGS), {});
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /--trusted-subnets needs at least one CIDR/);
  }
});

test('launch options: --peers-from-kubernetes, --kubernetes-api, the peer port, and the consensus count', async () => {
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof launchOptions> => launchOptions(parseArgs('launch', [...argv, '--data-dir', '/tmp/wt-x'], LAUNCH_FLAGS), env);
  assert.is((await parse([])).kubernetes, undefined, 'off by default');
  const inPod = await parse(['--peers-from-kubernetes', '--peer', '192.0.2.7'], { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.equal(inPod.kubernetes, { apiServer: 'https://10.96.0.1/', port: 6783, keep: ['192.0.2.7:6783'] });
  const explicit = await parse(['--peers-from-kubernetes', '--kubernetes-api', 'http://127.0.0.1:8001', '--listen', '127.0.0.2:7000']);
  assert.equal(explicit.kubernetes, { apiServer: 'http://127.0.0.1:8001/', port: 7000, keep: [] });
  assert.is((await parse(['--peers-from-kubernetes', '--kubernetes-api', 'http://127.0.0.1:8001', '--listen', '127.0.0.1:0'])).kubernetes?.port, 6783, 'port 0 cannot be dialled');
  for (const [argv, message] of [
    [['--kubernetes-api', 'http://127.0.0.1:8001'], /--kubernetes-api is the API server of --peers-from-kubernetes/],
    [['--peers-from-kubernetes'], /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/],
    [['--peers-from-kubernetes', '--kubernetes-api', 'nope'], /is not a URL/],
  ] as [string[], RegExp][]) {
    try {
      await parse(argv);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, OptionsError);
      assert.match((error as Error).message, message);
    }
  }
  // Consensus: the other nodes (all listed, with an address or not), and --peer targets that are no node.
  const snapshot = { nodes: [{ name: 'self', addresses: [] }, { name: 'a', addresses: ['10.0.0.1'] }, { name: 'b', addresses: [] }], self: [{ name: 'self', addresses: [] }], peers: new Map([['10.0.0.1:6783', 'a']]) };
  assert.is(kubernetesPeerCount(snapshot, []), 2);
  assert.is(kubernetesPeerCount(snapshot, ['10.0.0.1:6783', '192.0.2.7:6783']), 3);
  assert.is(kubernetesPeerCount({ ...snapshot, self: [] }, []), 3, 'this host counts once even when it is not listed yet');
  assert.equal(parseIpamInit(undefined, kubernetesPeerCount(snapshot, [])), { consensus: 3 }, 'consensus = every node');
});

test.run();
