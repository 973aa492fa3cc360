// Addresses: parsing and formatting of "host:port" targets.
import { OptionsError } from '../errors.js';

/** Default TCP (control) and UDP (data) port. */
export const DEFAULT_PORT = 6783;

/** A parsed "host[:port]" target. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a missing port means `defaultPort`. */
export function parseHostPort(text: string, defaultPort = DEFAULT_PORT): HostPort {
  return parseAddress(text, defaultPort, 'peer address', 1);
}

/** Parses a listen address; port 0 asks the OS for a free port. */
export function parseListenAddress(text: string, defaultPort = DEFAULT_PORT): HostPort {
  return parseAddress(text, defaultPort, 'listen address', 0);
}

function parseAddress(text: string, defaultPort: number, what: string, minPort: number): HostPort {
  const bad = (why: string) => new OptionsError(`${what} "${text}" is not valid: ${why} (expected HOST or HOST:PORT)`);
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // a bare IPv6 address
  } else {
    const [h, p] = text.split(':');
    host = h ?? '';
    portText = p;
  }
  if (host === '') throw bad('the host is empty');
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw bad(`port "${portText}" is not a number`);
    port = Number(portText);
  }
  if (port < minPort || port > 65535) throw bad(`port ${port} is out of range ${minPort}-65535`);
  return { host, port };
}

/** "host:port", with IPv6 hosts in brackets and IPv4-mapped IPv6 written as IPv4. */
export function formatHostPort(host: string, port: number): string {
  const bare = host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`;
}

/** Canonical form of a target, so "127.0.0.1" and "127.0.0.1:6783" are the same target. */
export function canonicalAddress(text: string, defaultPort = DEFAULT_PORT): string {
  const { host, port } = parseHostPort(text, defaultPort);
  return formatHostPort(host, port);
}
