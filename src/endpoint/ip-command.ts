// IpCommand: runs iproute2 (`ip …`) for kernel endpoints; injectable so tests and other hosts can substitute it.
import { EndpointError, OptionsError } from '../errors.js';
import { systemNetCommand } from '../ethernet/net-command.js';

/** Runs `ip` with arguments and returns its standard output; rejects with `EndpointError('command-failed')`. */
export type IpCommand = (args: readonly string[]) => Promise<string>;

/**
 * The real `ip` binary (iproute2) on the PATH. `-n NETNS` with a namespace path (which `ip -n` does not
 * take: it only knows `ip netns` names) runs `ip` inside that namespace through `nsenter --net=PATH`.
 */
export const systemIpCommand: IpCommand = (args) => {
  const [option, netns] = args;
  if (option === '-n' && netns !== undefined && isNetnsPath(netns)) return systemNetCommand(['nsenter', `--net=${netns}`, '--', 'ip', ...args.slice(2)]);
  return systemNetCommand(['ip', ...args]);
};

/** True when the failure says the object (link, address, route) is already there. */
export function isExistsError(error: unknown): boolean {
  return error instanceof EndpointError && /File exists|already exists|already assigned/i.test(error.message);
}

/** True when the failure says the object is not there (deleting something already gone). */
export function isMissingError(error: unknown): boolean {
  return error instanceof EndpointError && /Cannot find device|does not exist|No such device|Cannot assign requested address|not found/i.test(error.message);
}

/** Longest namespace name weave-ts accepts. */
export const MAX_NETNS_NAME_CHARS = 64;

/** Names of `ip netns` namespaces: what `ip netns add` accepts and a path component under /run/netns. */
export function isValidNetnsName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) && name !== '.' && name !== '..';
}

/** Longest namespace path weave-ts accepts (a CNI runtime's `/proc/PID/ns/net` or `/var/run/netns/cni-…`). */
export const MAX_NETNS_PATH_CHARS = 1024;

/** True when `netns` names a namespace by the path of its file (absolute), not by an `ip netns` name. */
export function isNetnsPath(netns: string): boolean {
  return netns.startsWith('/');
}

/**
 * Throws an OptionsError unless `netns` is an `ip netns` name or an absolute path to a namespace file
 * (no `..` segments, no control characters, at most {@link MAX_NETNS_PATH_CHARS} characters).
 */
export function validateNetnsRef(netns: string): void {
  if (typeof netns === 'string' && isNetnsPath(netns)) {
    const shown = JSON.stringify(netns.length > 60 ? `${netns.slice(0, 60)}…` : netns);
    if (netns.length > MAX_NETNS_PATH_CHARS) throw new OptionsError(`netns path ${shown} is ${netns.length} characters long: at most ${MAX_NETNS_PATH_CHARS} are accepted`);
    if (/[\x00-\x1f\x7f]/.test(netns) || netns.split('/').includes('..')) {
      throw new OptionsError(`netns path ${shown} is not usable: it must be absolute, without ".." and without control characters`);
    }
    return;
  }
  validateNetnsName(netns);
}

/** Throws an OptionsError that says what is wrong with a namespace name (its length, or its characters). */
export function validateNetnsName(name: string): void {
  if (isValidNetnsName(name)) return;
  const shown = typeof name === 'string' && name.length > 40 ? `"${name.slice(0, 40)}…"` : JSON.stringify(name);
  const why =
    typeof name === 'string' && name.length > MAX_NETNS_NAME_CHARS
      ? `it is ${name.length} characters long, and at most ${MAX_NETNS_NAME_CHARS} are accepted`
      : `use 1 to ${MAX_NETNS_NAME_CHARS} letters, digits, "_", "." and "-" (not "." or "..")`;
  throw new OptionsError(`netns ${shown} is not a valid namespace name: ${why}`);
}
