// NetCommand: runs iproute2 (`ip`, `bridge`) for what the kernel does for us; injectable so tests can
// record the commands or run them inside a namespace.
import { execFile } from 'node:child_process';
import { EndpointError, OptionsError } from '../errors.js';

/** Runs an iproute2 command (`argv[0]` is `ip` or `bridge`) and returns its standard output. */
export type NetCommand = (argv: readonly string[]) => Promise<string>;

/** The real `ip` and `bridge` binaries on the PATH; rejects with `EndpointError('command-failed')`. */
export const systemNetCommand: NetCommand = ([command, ...args]) =>
  new Promise((resolve, reject) => {
    if (command !== 'ip' && command !== 'bridge') {
      reject(new OptionsError(`only ip and bridge are run, not ${String(command)}`));
      return;
    }
    execFile(command, args, { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      const detail = missing ? `the \`${command}\` command is not installed (Debian: apt-get install iproute2)` : String(stderr).trim() || error.message;
      reject(new EndpointError('command-failed', `${command} ${args.join(' ')}: ${detail}`, { cause: error }));
    });
  });
