// Debian packages the data-plane benchmark needs, installed with apt-get when missing (root only).
import { execFileSync } from 'node:child_process';
import { cpus, release } from 'node:os';

/** Whether a Debian package is installed. */
export function isInstalled(pkg: string): boolean {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }) === 'install ok installed';
  } catch {
    return false;
  }
}

/**
 * Installs the missing ones among `packages` (apt-get update first, only if something is missing).
 * Returns the packages it installed; throws with apt's message on failure.
 */
export function ensurePackages(packages: readonly string[]): string[] {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return [];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  process.stdout.write(`installing ${missing.join(', ')} with apt-get…\n`);
  execFileSync('apt-get', ['update', '-qq'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return missing;
}

/** First line of `command --version`-style output, or 'unknown'. */
export function versionOf(argv: readonly string[]): string {
  const [file, ...args] = argv;
  if (file === undefined) return 'unknown';
  try {
    const out = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** When and on what a benchmark ran, at the head of every results meta file. */
export function machineMeta(smoke: boolean): { date: string; smoke: boolean; kernel: string; cpu: string; cores: number } {
  return { date: new Date().toISOString(), smoke, kernel: release(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length };
}
