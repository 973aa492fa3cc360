// The names bench:dns serves and queries: svcN.weave.local. → 10.32.x.y, the same table for every system.

/** One benchmark record. */
export interface BenchName {
  /** Lower-case FQDN with the trailing dot, as a NameSource sees it. */
  name: string;
  address: string;
}

/** `count` (at most 62 500) distinct names `svc0.weave.local.`… with distinct addresses 10.32.(N / 250).(N % 250 + 1). */
export function benchNames(count: number): BenchName[] {
  if (!Number.isInteger(count) || count < 1 || count > 62_500) throw new Error(`name count must be a whole number from 1 to 62500, got ${count}`);
  return Array.from({ length: count }, (_, n) => ({ name: `svc${n}.weave.local.`, address: `10.32.${Math.floor(n / 250)}.${(n % 250) + 1}` }));
}

/** The names as an /etc/hosts-style file (for dnsmasq --addn-hosts). */
export function hostsFile(names: readonly BenchName[]): string {
  return names.map(({ name, address }) => `${address} ${name.slice(0, -1)}\n`).join('');
}

/** A dnsperf query file: one `name A` line per name. */
export function dnsperfQueries(names: readonly BenchName[]): string {
  return names.map(({ name }) => `${name.slice(0, -1)} A\n`).join('');
}
