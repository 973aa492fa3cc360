// Human output of the CLI: Weave-style status blocks and aligned tables (JSON output bypasses this).
import type { OverlayStatus } from '../overlay.js';
import type { EndpointInfo } from '../endpoint/memory-endpoint.js';
import type { PeerSnapshot } from '../mesh/peer.js';

/** Left-aligned columns separated by two spaces; the header row first. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Width of the longest key of any block ("PeerDiscovery"), so every block lines up. */
const KEY_WIDTH = 13;

/** `key: value` lines with the keys right-aligned, as `weave status` prints them. */
function block(entries: readonly [string, string][]): string {
  return entries.map(([k, v]) => `${k.padStart(KEY_WIDTH + 4)}: ${v}`).join('\n');
}

/** The `status` report. */
export function formatStatus(s: OverlayStatus): string {
  const r = s.router;
  const established = r.links.filter((l) => l.established).length;
  const reachable = r.peers.filter((p) => p.reachable).length;
  const parts = [
    block([
      ['Version', s.version],
      ['Service', 'router'],
      ['State', s.state],
      ['Name', `${r.name}(${r.nickname})`],
      ['Encryption', r.encryption ? 'enabled' : 'DISABLED (no password: anyone who reaches the port can join)'],
      ['PeerDiscovery', r.peerDiscovery ? 'enabled' : 'disabled'],
      ['Listen', r.listenAddress ?? 'none'],
      ['Targets', String(r.targets.length)],
      ['Connections', `${r.links.length} (${established} established)`],
      ['Peers', `${r.peers.length} (${reachable} reachable)`],
      ...(s.bridge ? ([['Bridge', `${s.bridge.name} (tap ${s.bridge.tap}, mtu ${s.bridge.mtu})`]] as [string, string][]) : []),
      ...(s.exposed ? ([['Exposed', s.exposed]] as [string, string][]) : []),
      ['FastDatapath', fastPathLine(s)],
      ['Endpoints', String(s.endpoints.length)],
    ]),
  ];
  if (s.ipam) {
    const i = s.ipam;
    const used = i.allocated.reduce((n, a) => n + a.addresses.length, 0);
    parts.push(
      block([
        ['Service', 'ipam'],
        ['Status', i.state + (i.consensus ? ` (quorum: ${i.consensus.quorum}, known: ${i.consensus.known})` : '')],
        ['Range', i.range],
        ['DefaultSubnet', i.defaultSubnet],
        ['Seeds', i.seeds.length > 0 ? i.seeds.join(', ') : 'none yet'],
        ...(i.refusedRings.length > 0
          ? ([['RefusedRings', `${i.refusedRings.length} peer(s) whose ring was seeded by different peers (see WARNING)`]] as [string, string][])
          : []),
        ['Allocated', `${used} on this peer`],
        ['Unreachable', `${i.unreachablePct}% of the range`],
      ]),
    );
  }
  if (s.dns) {
    const live = s.dns.records.filter((x) => !x.tombstone);
    parts.push(
      block([
        ['Service', 'dns'],
        ['Domain', s.dns.domain],
        ['Listen', s.dns.servers.map((x) => `${x.address}:${x.port}`).join(', ') || 'none (expose the host to serve)'],
        ['Entries', `${live.length} (${live.filter((x) => x.stale).length} stale)`],
        ['Forwarding', forwardingLine(s.dns.servers)],
      ]),
    );
  }
  if (s.links.length > 0) {
    parts.push(
      table(
        ['PEER', 'NICKNAME', 'PATH', 'STATE', 'DATAPATH', 'MODE', 'MTU', 'ENCRYPTED'],
        s.links.map((l) => [
          l.peer,
          l.nickname,
          l.direct ? 'direct' : l.via ? `via ${l.via}` : '-',
          l.established ? 'established' : 'pending',
          l.state === 'unreachable' ? '-' : l.datapath,
          l.mode,
          l.mtu === undefined ? '-' : String(l.mtu),
          l.encrypted ? 'yes' : 'NO',
        ]),
      ),
    );
  }
  // With the fast path on, say why each direct link that could use it does not (off: the FastDatapath line says why).
  if (s.dataPlane.fastPath.enabled) {
    const reasons = s.links.flatMap((l) => (l.state !== 'unreachable' && l.direct && l.datapath === 'sleeve' ? [`sleeve to ${l.nickname || l.peer}: ${l.datapathReason ?? ''}`] : []));
    if (reasons.length > 0) parts.push(reasons.join('\n'));
  }
  if (s.handshakeFailures.length > 0) {
    parts.push(
      table(
        ['SOURCE', 'PEER', 'ERROR', 'COUNT', 'LAST', 'REASON'],
        s.handshakeFailures.map((f) => [f.source, f.peer ?? '-', f.code, String(f.count), `${formatAgo(f.lastAgoMs)} ago`, f.reason]),
      ),
    );
  }
  if (s.warnings.length > 0) parts.push(s.warnings.map((w) => `WARNING: ${w}`).join('\n'));
  return `${parts.join('\n\n')}\n`;
}

/** A duration as people say it: 42s, 5m, 3h. */
function formatAgo(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

/** The `peers` table. */
export function formatPeers(peers: readonly PeerSnapshot[]): string {
  return `${table(
    ['NAME', 'NICKNAME', 'SELF', 'REACHABLE', 'DIRECT', 'ADDRESS', 'CONNECTIONS'],
    peers.map((p) => [p.name, p.nickname, p.self ? 'yes' : '', p.reachable ? 'yes' : 'no', p.direct ? 'yes' : '', p.address ?? '', String(p.connections.length)]),
  )}\n`;
}

/** The `ps` table. */
export function formatEndpoints(endpoints: readonly EndpointInfo[]): string {
  return `${table(
    ['NAME', 'KIND', 'NETNS', 'MAC', 'IP', 'DNS'],
    endpoints.map((e) => [e.name, e.kind, e.netns ?? '', e.mac, e.address, e.fqdn ?? '']),
  )}\n`;
}

/** Upstream answers relayed, failures and loops stopped, summed over the DNS servers. */
function forwardingLine(servers: NonNullable<OverlayStatus['dns']>['servers']): string {
  const sum = (key: 'forwarded' | 'upstreamErrors' | 'upstreamTimeouts' | 'loopsRefused' | 'ownUpstreamsSkipped'): number => servers.reduce((n, x) => n + x[key], 0);
  return `${sum('forwarded')} relayed, ${sum('upstreamErrors')} upstream errors, ${sum('upstreamTimeouts')} timeouts, ${sum('loopsRefused') + sum('ownUpstreamsSkipped')} loops stopped`;
}

/** The fast path in one line: on with its port and how many links use it, or off and why. */
function fastPathLine(s: OverlayStatus): string {
  const f = s.dataPlane.fastPath;
  if (!f.enabled) return `off (${f.reason ?? 'not running'})`;
  const fast = f.links.filter((l) => l.mode === 'fastdp').length;
  return `on (VXLAN UDP port ${f.port ?? '?'}, ${fast} of ${f.links.length} direct links fast)`;
}
