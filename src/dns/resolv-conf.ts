// Resolver configuration: the nameservers of a resolv.conf file, re-read when it changes (checked at most every 5 s).
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { systemClock, type Clock } from '../clock.js';

/** How often, at most, the file is checked for changes. */
export const RESOLV_CONF_RECHECK_MS = 5000;

/** The `nameserver` addresses of resolv.conf text, in order; comments (`#`, `;`) and invalid addresses are skipped. */
export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, address] = line.split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined) continue;
    if (isIP(address.split('%')[0] as string) !== 0) servers.push(address);
  }
  return servers;
}

/** A resolv.conf file whose nameservers are re-read when its size, mtime or inode changes; a missing file has none. */
export class ResolvConf {
  private readonly clock: Clock;
  private readonly recheckMs: number;
  private checkedAt = -Infinity;
  private version = '';
  private cached: readonly string[] = [];
  private pending: Promise<readonly string[]> | undefined;

  constructor(
    readonly path: string,
    options: { clock?: Clock; recheckMs?: number } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.recheckMs = options.recheckMs ?? RESOLV_CONF_RECHECK_MS;
  }

  /** The nameservers, from the file as it was at most `recheckMs` ago. */
  servers(): Promise<readonly string[]> {
    if (this.clock.now() - this.checkedAt < this.recheckMs) return Promise.resolve(this.cached);
    this.pending ??= this.reload().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async reload(): Promise<readonly string[]> {
    this.checkedAt = this.clock.now();
    try {
      const info = await stat(this.path, { bigint: true });
      const version = `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
      if (version !== this.version) {
        this.cached = parseResolvConf(await readFile(this.path, 'utf8'));
        this.version = version;
      }
    } catch {
      this.cached = [];
      this.version = '';
    }
    return this.cached;
  }
}
