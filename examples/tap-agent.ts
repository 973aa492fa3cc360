// A TAP agent: one peer of an encrypted mesh whose data plane is a kernel TAP device with an overlay IP.
// Run as root: node dist/examples/tap-agent.js '{"tap":"weave0","address":"10.40.0.1/24","peers":["192.0.2.2"]}'
// Configuration (JSON argument): listen (default 0.0.0.0:6783), peers, password (or env WEAVE_PASSWORD),
// name, nickname, tap (device name), address (CIDR for the TAP), mtu (default 65000), noFragmentation,
// offload (TCP segmentation offload on the TAP, default true), discovery. Prints one line `READY {...}` when running and a line `STATUS {...}` on SIGUSR1; stops
// cleanly on SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MeshRouter } from '../src/mesh/router.js';
import { DataPlane } from '../src/ethernet/data-plane.js';
import { TapNic } from '../src/nic/tap-nic.js';

interface AgentConfig {
  listen?: string;
  peers?: string[];
  password?: string;
  name?: string;
  nickname?: string;
  tap: string;
  address?: string;
  mtu?: number;
  noFragmentation?: boolean;
  offload?: boolean;
  discovery?: boolean;
}

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as AgentConfig;
  if (!config.tap) throw new Error('config needs "tap": the TAP device name');
  const password = config.password ?? process.env.WEAVE_PASSWORD;
  const router = new MeshRouter({
    listen: config.listen ?? '0.0.0.0:6783',
    peers: config.peers ?? [],
    ...(password ? { password } : {}),
    ...(config.name ? { name: config.name } : {}),
    ...(config.nickname ? { nickname: config.nickname } : {}),
    ...(config.discovery === false ? { discovery: false } : {}),
  });
  const offload = config.offload ?? true;
  const dataPlane = new DataPlane(router, { noFragmentation: config.noFragmentation ?? false, superFrames: offload });
  const tap = await TapNic.open({ name: config.tap, mtu: config.mtu ?? 65_000, offload });
  if (config.address) execFileSync('ip', ['addr', 'add', config.address, 'dev', tap.name]);
  execFileSync('ip', ['link', 'set', tap.name, 'up']);
  dataPlane.attach(tap);
  await router.start();

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await router.stop();
    await tap.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // How long the event loop stalls is how long heartbeats and gossip could wait behind data.
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  process.on('SIGUSR1', () => {
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const eventLoopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) };
    loopDelay.reset();
    out(`STATUS ${JSON.stringify({ router: router.status(), dataPlane: dataPlane.status(), tap: tap.stats, eventLoopDelayMs })}`);
  });
  out(`READY ${JSON.stringify({ name: router.self.id, listen: router.listenAddress, tap: tap.name, mtu: tap.mtu })}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`tap-agent: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
