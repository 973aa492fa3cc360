// Don't-fragment for the data plane's UDP socket: Node's dgram cannot set IP_MTU_DISCOVER, the native binding can.
import type { Socket as UdpSocket } from 'node:dgram';
import { loadTapBinding } from '../nic/tap-binding.js';

/** The fd behind a bound dgram socket, read from its internal state (no public API exposes it). */
function socketFd(socket: UdpSocket): number | undefined {
  for (const symbol of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, unknown>)[symbol];
    if (state !== null && typeof state === 'object' && 'handle' in state) {
      const fd = (state as { handle?: { fd?: unknown } }).handle?.fd;
      if (typeof fd === 'number' && fd >= 0) return fd;
    }
  }
  return undefined;
}

/**
 * Makes every datagram of `socket` carry DF and never be fragmented locally (IP_PMTUDISC_DO).
 * Returns why it could not, or undefined on success.
 */
export function setDontFragment(socket: UdpSocket, ipv6: boolean): string | undefined {
  const load = loadTapBinding();
  if (!load.binding) return `the native binding is not built (${load.error.message})`;
  const fd = socketFd(socket);
  if (fd === undefined) return 'the UDP socket has no file descriptor to configure';
  const result = load.binding.setDontFragment(fd, true, ipv6);
  return result === 0 ? undefined : `setsockopt(IP_MTU_DISCOVER) failed with errno ${-result}`;
}
