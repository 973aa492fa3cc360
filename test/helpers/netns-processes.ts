// Commands inside an existing `ip netns` namespace (one a NetnsLab of another process created): run, spawn, wait for a
// listener, and stop everything started here by PID.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { ExecResult } from './netns.js';

export class NamespaceProcesses {
  private readonly children = new Set<ChildProcess>();

  constructor(readonly netns: string) {}

  /** Runs a command in the namespace; never throws for a non-zero exit (see `code`). */
  exec(argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = execFile('ip', ['netns', 'exec', this.netns, ...argv], { timeout: options.timeoutMs ?? 30_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err === null) return resolve({ code: 0, stdout, stderr });
        resolve({ code: typeof err.code === 'number' ? err.code : -1, stdout, stderr: stderr || err.message });
      });
      this.track(child);
    });
  }

  /** Like exec, but throws with the command's output when it exits non-zero. */
  async execOk(argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    const r = await this.exec(argv, options);
    if (r.code !== 0) throw new Error(`in ${this.netns}: \`${argv.join(' ')}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
  }

  /** Starts a long-running command (`ip netns exec` execs it, so the PID is the command's own). */
  spawn(argv: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    return child;
  }

  /** Resolves with the exit code once the child has exited. */
  exited(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Waits until something listens on a TCP port in the namespace (via `ss`). */
  async waitForListen(port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.exec(['ss', '-Hltn', `sport = :${port}`]);
      if (r.code === 0 && r.stdout.trim() !== '') return;
      if (Date.now() > deadline) throw new Error(`nothing listens on tcp port ${port} in ${this.netns} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops every process started here: SIGTERM, then SIGKILL after a grace period. */
  async stopAll(graceMs = 1_000): Promise<void> {
    await Promise.all(
      [...this.children].map(async (child) => {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = this.exited(child);
        kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => child.pid !== undefined && kill(child.pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Processes started here that are still running. */
  running(): number {
    return [...this.children].filter((c) => c.exitCode === null && c.signalCode === null).length;
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}
