// NetCommand: runs iproute2 (`ip`, `bridge`) for what the kernel does for us; injectable so tests can
// record the commands or run them inside a namespace.
import { execFile } from 'node:child_process';
import { EndpointError, OptionsError } from '../errors.js';

/** Runs an iproute2 command (`argv[0]` is `ip` or `bridge`, or `nsenter` running `ip` in a namespace given by path) and returns its standard output. */
export type NetCommand = (argv: readonly string[]) => Promise<string>;

/** The real `ip`, `bridge` and `nsenter` binaries on the PATH; rejects with `EndpointError('command-failed')`. */
export const systemNetCommand: NetCommand = ([command, ...args]) =>
  new Promise((resolve, reject) => {
    if (command !== 'ip' && command !== 'bridge' && command !== 'nsenter') {
      reject(new OptionsError(`only ip, bridge and nsenter are run, not ${String(command)}`));
      return;
    }
    execFile(command, args, { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      const detail = missing
        ? `the \`${command}\` command is not installed (Debian: apt-get install ${command === 'nsenter' ? 'util-linux' : 'iproute2'})`
        : String(stderr).trim() || error.message;
      reject(new EndpointError('command-failed', `${command} ${args.join(' ')}: ${detail}`, { cause: error }));
    });
  });
