#!/usr/bin/env node
// weave-ts-cni: the CNI plugin a container runtime runs (CNI_COMMAND in the environment, the network
// configuration on stdin, the result or a CNI error object on stdout), and `weave-ts-cni install`.
import { readFileSync } from 'node:fs';
import { parseArgs, flag } from '../cli/args.js';
import { OptionsError } from '../errors.js';
import { VERSION } from '../version.js';
import { CniCode, CniError } from './errors.js';
import { parseCniRequest, requestedVersion } from './config.js';
import { runCni } from './plugin.js';
import { install } from './install.js';

const USAGE = `weave-ts-cni ${VERSION}: the weave-ts CNI plugin, run by a container runtime (CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC).

  weave-ts-cni install [--bin-dir DIR] [--conf-dir DIR] [--data-dir DIR] [--node PATH]
      copies the plugin (with this Node) to DIR (default /opt/cni/bin) and writes
      10-weave-ts.conflist (weave-ts, portmap, bandwidth) to --conf-dir (default /etc/cni/net.d).
  See docs/cni.md.
`;

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (env.CNI_COMMAND === undefined && argv[0] === 'install') {
    const args = parseArgs('install', argv.slice(1), { values: { 'bin-dir': {}, 'conf-dir': {}, 'data-dir': {}, node: {} } });
    const written = await install({
      binDir: flag(args, 'bin-dir') ?? '/opt/cni/bin',
      confDir: flag(args, 'conf-dir') ?? '/etc/cni/net.d',
      dataDir: flag(args, 'data-dir'),
      node: flag(args, 'node'),
    });
    process.stdout.write(`weave-ts-cni installed: ${written.join(', ')}\n`);
    return 0;
  }
  if (env.CNI_COMMAND === undefined) {
    process.stderr.write(USAGE);
    return argv.includes('--help') || argv.includes('-h') ? 0 : 2;
  }
  let stdin: Uint8Array = new Uint8Array(0);
  try {
    stdin = readFileSync(0);
    const outcome = await runCni(parseCniRequest(env, stdin));
    if (outcome.output !== undefined) process.stdout.write(`${JSON.stringify(outcome.output)}\n`);
    return outcome.exitCode;
  } catch (error) {
    const cni = error instanceof CniError ? error : new CniError(CniCode.internal, `weave-ts-cni failed: ${(error as Error).message}`);
    process.stdout.write(`${JSON.stringify(cni.toJSON(requestedVersion(stdin) ?? '1.0.0'))}\n`);
    return 1;
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`weave-ts-cni: ${(error as Error).message}\n`);
    process.exitCode = error instanceof OptionsError ? 2 : 1; // 2: bad arguments, as weave-ts
  },
);
