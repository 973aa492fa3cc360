// DNS server runner for bench:dns: a DnsServer on its own event loop, serving `count` benchmark names from memory.
//
// Usage: node dist/bench/lib/dns-server-runner.js [host] [count]     (defaults 127.0.0.1 and 1000)
// Prints `READY <port>` once UDP and TCP are bound, and stops cleanly on SIGTERM or SIGINT.
import { DnsServer, type NameSource } from '../../src/dns/server.js';
import { benchNames } from './dns-names.js';

/** A fixed name table: forward and reverse maps built once, looked up without allocation. */
export function staticNameSource(entries: readonly { name: string; address: string }[]): NameSource {
  const forward = new Map<string, readonly string[]>();
  const reverse = new Map<string, string[]>();
  for (const { name, address } of entries) {
    forward.set(name, [...(forward.get(name) ?? []), address]);
    const names = reverse.get(address) ?? [];
    names.push(name);
    reverse.set(address, names);
  }
  const none: readonly string[] = [];
  return {
    resolve: (name, family) => {
      const addresses = forward.get(name);
      if (addresses === undefined) return undefined;
      return family === 4 ? addresses : none;
    },
    reverse: (address) => reverse.get(address) ?? none,
  };
}

async function main(): Promise<void> {
  const host = process.argv[2] ?? '127.0.0.1';
  const count = Number(process.argv[3] ?? 1000);
  // No upstreams: every benchmark name is local, and nothing should ever leave loopback.
  const server = new DnsServer({ source: staticNameSource(benchNames(count)), listen: { host, port: 0 }, ttl: 5, upstream: [] });
  await server.start();
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void server.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`READY ${server.port}\n`);
}

await main();
