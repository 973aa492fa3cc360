// Addresses: parsing and formatting of "host:port" targets.
import { isIP, isIPv6 } from 'node:net';
import { OptionsError } from '../errors.js';

/** Default TCP (control) and UDP (data) port. */
export const DEFAULT_PORT = 6783;

/** A parsed "host[:port]" target. */
export interface HostPort {
  host: string;
  port: number;
}

/** Host names a peer may be given by: dot-separated labels of letters, digits, `-` and `_`, 253 characters at most. */
const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a missing port means `defaultPort`. The host is an
 * IP address or a host name (resolved when dialled); anything no dial could use is an OptionsError.
 */
export function parseHostPort(text: string, defaultPort = DEFAULT_PORT): HostPort {
  const parsed = parseAddress(text, defaultPort, 'peer address', 1);
  if (isIP(parsed.host) === 0 && (!HOST_NAME.test(parsed.host) || /^[\d.]+$/.test(parsed.host))) {
    throw invalid(text, 'peer address', `${JSON.stringify(parsed.host)} is neither an IP address nor a host name`, 'HOST, HOST:PORT or [IPv6]:PORT');
  }
  return parsed;
}

/** Parses a listen address: an IP address of this host (or `localhost`); port 0 asks the OS for a free port. */
export function parseListenAddress(text: string, defaultPort = DEFAULT_PORT): HostPort {
  const parsed = parseAddress(text, defaultPort, 'listen address', 0);
  if (isIP(parsed.host) === 0 && parsed.host !== 'localhost') {
    throw invalid(text, 'listen address', `${JSON.stringify(parsed.host)} is not an IP address`, `IP:PORT, like 0.0.0.0:${defaultPort}, 127.0.0.1:0 or [::]:${defaultPort}`);
  }
  return parsed;
}

function invalid(text: string, what: string, why: string, expected = 'HOST or HOST:PORT'): OptionsError {
  return new OptionsError(`${what} ${JSON.stringify(text)} is not valid: ${why} (expected ${expected})`);
}

function parseAddress(text: string, defaultPort: number, what: string, minPort: number): HostPort {
  if (typeof text !== 'string') throw new OptionsError(`${what} must be a string like HOST:PORT, got ${typeof text}`);
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2];
    if (!isIPv6(host)) throw invalid(text, what, `${JSON.stringify(host)} is not an IPv6 address`, '[IPv6]:PORT');
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // a bare IPv6 address (without a port: put it in brackets to give one)
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (host === '') throw invalid(text, what, 'the host is empty');
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw invalid(text, what, `port ${JSON.stringify(portText)} is not a number`);
    port = Number(portText);
  }
  if (port < minPort || port > 65535) throw invalid(text, what, `port ${port} is out of range ${minPort}-65535`);
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
