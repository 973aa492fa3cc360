// Metrics: an overlay status rendered in the Prometheus text exposition format (Weave's names where it had one).
import type { OverlayStatus } from './overlay-status.js';
import type { NicStats } from '../nic/nic.js';

type Labels = Record<string, string>;

/** Builds one exposition: each family once, with HELP and TYPE, samples in insertion order. */
class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter', help: string, samples: readonly [Labels, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
  }

  one(name: string, type: 'gauge' | 'counter', help: string, value: number, labels: Labels = {}): void {
    this.family(name, type, help, [[labels, value]]);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** Renders metrics from a status snapshot (and the TAP's counters when kernel endpoints are in use). */
export function renderMetrics(status: OverlayStatus, tap?: NicStats): string {
  const m = new Exposition();
  const { router, dataPlane } = status;
  m.one('weave_build_info', 'gauge', 'Always 1; labels name the version and this peer.', 1, { version: status.version, peer: router.name, nickname: router.nickname });

  // Connections by state, as Weave counts them: established and pending links plus targets still being dialled.
  const encryption = router.encryption ? 'yes' : '';
  const states = new Map<string, number>([['established', 0], ['pending', 0], ['connecting', 0], ['retrying', 0], ['failed', 0]]);
  const fastLinks = new Set(status.dataPlane.fastPath.links.filter((l) => l.mode === 'fastdp').map((l) => l.peer));
  const fastEstablished = router.links.filter((l) => l.established && fastLinks.has(l.peer)).length;
  for (const link of router.links) states.set(link.established ? 'established' : 'pending', (states.get(link.established ? 'established' : 'pending') ?? 0) + 1);
  states.set('established', (states.get('established') ?? 0) - fastEstablished);
  const weaveState = { attempting: 'connecting', waiting: 'retrying', failed: 'failed' } as const;
  for (const target of router.targets) {
    if (target.state === 'connected') continue;
    const state = weaveState[target.state];
    states.set(state, (states.get(state) ?? 0) + 1);
  }
  m.family(
    'weave_connections',
    'gauge',
    'Connections to other peers by state.',
    [
      ...[...states].map(([state, n]): [Labels, number] => [{ state, type: 'sleeve', encryption }, n]),
      ...(status.dataPlane.fastPath.enabled ? [[{ state: 'established', type: 'fastdp', encryption: '' }, fastEstablished] as [Labels, number]] : []),
    ],
  );
  m.one('weave_connection_terminations_total', 'counter', 'Links that ended after being established.', router.stats.terminations);
  m.one('weave_peers', 'gauge', 'Peers this peer knows about (itself included).', router.peers.length);
  m.one('weave_peers_reachable', 'gauge', 'Peers reachable over established links (itself included).', router.peers.filter((p) => p.reachable).length);
  m.family(
    'weave_handshake_failures_total',
    'counter',
    'Failed handshakes by reason.',
    Object.entries(router.stats.handshakeFailures).map(([reason, n]) => [{ reason }, n]),
  );
  // Per reason, how many hosts are failing now (status keeps an hour): alert on bad-password > 0 and the like.
  const sources = new Map<string, Set<string>>();
  for (const f of status.handshakeFailures) sources.set(f.code, (sources.get(f.code) ?? new Set()).add(f.source));
  m.family(
    'weave_handshake_failure_sources',
    'gauge',
    'Hosts with a handshake failure an operator should look at (wrong password, mismatch, name collision) in the last hour, by reason.',
    [...sources].map(([reason, hosts]) => [{ reason }, hosts.size]),
  );
  m.family(
    'weave_gossip_rejected_total',
    'counter',
    'Gossip payloads rejected as malformed, by channel.',
    Object.entries(router.gossip).map(([channel, s]) => [{ channel }, s.rejected]),
  );

  // Data plane: per-peer traffic, switch work, drops by reason.
  const byPeer = dataPlane.links.map((l) => [l, { peer: l.peer, nickname: status.links.find((v) => v.peer === l.peer)?.nickname ?? '' }] as const);
  m.family('weave_sleeve_packets_total', 'counter', 'UDP packets on each direct link, by direction.', byPeer.flatMap(([l, labels]) => [
    [{ ...labels, direction: 'in' }, l.packetsIn],
    [{ ...labels, direction: 'out' }, l.packetsOut],
  ]));
  m.family('weave_sleeve_frames_total', 'counter', 'Ethernet frames on each direct link, by direction.', byPeer.flatMap(([l, labels]) => [
    [{ ...labels, direction: 'in' }, l.framesIn],
    [{ ...labels, direction: 'out' }, l.framesOut],
  ]));
  m.family('weave_sleeve_bytes_total', 'counter', 'Frame bytes on each direct link, by direction.', byPeer.flatMap(([l, labels]) => [
    [{ ...labels, direction: 'in' }, l.bytesIn],
    [{ ...labels, direction: 'out' }, l.bytesOut],
  ]));
  m.family('weave_link_mtu', 'gauge', 'Largest IP packet each direct link carries in one piece.', byPeer.map(([l, labels]) => [{ ...labels, mode: l.mode }, l.mtu]));
  m.family('weave_link_established', 'gauge', '1 when a direct link carries data.', byPeer.map(([l, labels]) => [labels, l.established ? 1 : 0]));
  const fast = dataPlane.fastPath;
  m.one('weave_fastdp_enabled', 'gauge', '1 while kernel VXLAN tunnels may carry frames to neighbours.', fast.enabled ? 1 : 0);
  m.one('weave_fastdp_malformed_total', 'counter', 'Fast-path control messages and heartbeat frames that did not decode.', fast.malformed);
  const fastByPeer = fast.links.map((l) => [l, { peer: l.peer, nickname: status.links.find((v) => v.peer === l.peer)?.nickname ?? '' }] as const);
  m.family('weave_fastdp_link', 'gauge', '1 when unicast to the neighbour takes its VXLAN tunnel.', fastByPeer.map(([l, labels]) => [labels, l.mode === 'fastdp' ? 1 : 0]));
  m.family('weave_fastdp_packets_total', 'counter', 'Packets through each VXLAN tunnel (kernel counters), by direction.', fastByPeer.flatMap(([l, labels]): [Labels, number][] =>
    l.counters ? [[{ ...labels, direction: 'in' }, l.counters.rxPackets], [{ ...labels, direction: 'out' }, l.counters.txPackets]] : [],
  ));
  m.family('weave_fastdp_bytes_total', 'counter', 'Bytes through each VXLAN tunnel (kernel counters), by direction.', fastByPeer.flatMap(([l, labels]): [Labels, number][] =>
    l.counters ? [[{ ...labels, direction: 'in' }, l.counters.rxBytes], [{ ...labels, direction: 'out' }, l.counters.txBytes]] : [],
  ));
  const sw = dataPlane.switch;
  m.family('weave_switch_frames_total', 'counter', 'Frames the switch handled, by what it did.', [
    [{ action: 'captured' }, sw.captured],
    [{ action: 'delivered' }, sw.delivered],
    [{ action: 'forwarded' }, sw.forwarded],
    [{ action: 'relayed' }, sw.relayed],
    [{ action: 'fragmented' }, sw.fragmented],
    [{ action: 'icmp-too-big' }, sw.icmpTooBig],
    [{ action: 'super-frame' }, sw.superFrames],
    [{ action: 'segmented' }, sw.segmented],
  ]);
  m.family('weave_dropped_frames_total', 'counter', 'Frames and packets dropped, by where and why.', [
    ...Object.entries(sw.drops).map(([reason, n]): [Labels, number] => [{ where: 'switch', reason }, n]),
    ...Object.entries(dataPlane.sleeveDrops).map(([reason, n]): [Labels, number] => [{ where: 'sleeve', reason }, n]),
    ...Object.entries(tap?.drops ?? {}).map(([reason, n]): [Labels, number] => [{ where: 'tap', reason }, n]),
  ]);
  m.family('weave_sleeve_auth_failures_total', 'counter', 'Datagrams from a link\'s own address that failed authentication.', byPeer.map(([l, labels]) => [labels, l.authFailures]));
  const receive = dataPlane.receive;
  m.one('weave_sleeve_receive_pauses_total', 'counter', 'Times the shared sleeve socket stopped reading because a flood spent the slow path\'s budget.', receive.pauses);
  m.one('weave_sleeve_blocked_sources', 'gauge', 'Source addresses refused before decryption (their failure budget is spent).', receive.sources.filter((x) => x.blocked).length);
  m.one('weave_macs', 'gauge', 'MAC addresses in the switch table.', dataPlane.macs.length);
  if (tap) {
    m.family('weave_tap_frames_total', 'counter', 'Frames through the TAP device, by direction.', [
      [{ direction: 'in' }, tap.framesIn],
      [{ direction: 'out' }, tap.framesOut],
    ]);
  }

  // IPAM, with Weave's names.
  const ipam = status.ipam;
  if (ipam) {
    const localUsed = ipam.allocated.reduce((n, a) => n + a.addresses.length, 0);
    m.one('weave_ips', 'gauge', 'Addresses allocated by this peer.', localUsed, { state: 'local-used' });
    m.one('weave_max_ips', 'gauge', 'Size of the allocation range.', ipam.size);
    m.one('weave_ipam_owned_ips', 'gauge', 'Addresses of the range this peer owns.', ipam.owners.find((o) => o.peer === router.name)?.size ?? 0);
    m.one('weave_ipam_unreachable_count', 'gauge', 'Peers owning part of the range that are unreachable.', ipam.owners.filter((o) => !o.reachable).length);
    m.one('weave_ipam_unreachable_percentage', 'gauge', 'Share of the range owned by unreachable peers.', ipam.unreachablePct);
    m.one('weave_ipam_pending_allocates', 'gauge', 'Allocations waiting for space or consensus.', ipam.pending.allocates);
    m.one('weave_ipam_pending_claims', 'gauge', 'Claims waiting for the owner to answer.', ipam.pending.claims);
    m.one('weave_ipam_conflicts', 'gauge', 'Allocations found inside a range another peer owns.', ipam.conflicts.length);
    m.one('weave_ipam_seed_conflicts', 'gauge', 'Peers whose ring is refused because it was seeded by different peers.', ipam.refusedRings.length);
  }

  // DNS: this peer's live entries (Weave's metric), every record by state, and server counters.
  const dns = status.dns;
  if (dns) {
    m.one('weave_dns_entries', 'gauge', "This peer's live DNS entries.", dns.records.filter((r) => r.origin === router.name && !r.tombstone).length);
    m.family('weave_dns_records', 'gauge', 'DNS records held, by state.', [
      [{ state: 'live' }, dns.records.filter((r) => !r.tombstone && !r.stale).length],
      [{ state: 'stale' }, dns.records.filter((r) => !r.tombstone && r.stale).length],
      [{ state: 'tombstone' }, dns.records.filter((r) => r.tombstone).length],
    ]);
    const totals = { queries: 0, answered: 0, nxdomain: 0, nodata: 0, forwarded: 0, servfail: 0, dropped: 0 };
    for (const s of dns.servers) for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += s[key];
    m.family('weave_dns_queries_total', 'counter', 'DNS messages the servers handled, by outcome (queries counts all).', Object.entries(totals).map(([result, n]) => [{ result }, n]));
    const forwarding = { upstreamErrors: 'upstream-error', upstreamTimeouts: 'upstream-timeout', upstreamRejected: 'upstream-rejected', upstreamBusy: 'upstream-busy', ownUpstreamsSkipped: 'own-upstream-skipped', loopsRefused: 'loop-refused', coalesced: 'coalesced' } as const;
    m.family('weave_dns_forwarding_events_total', 'counter', 'DNS forwarding failures and loop prevention, by event.', Object.entries(forwarding).map(([key, event]) => [{ event }, dns.servers.reduce((n, s) => n + s[key as keyof typeof forwarding], 0)]));
  }
  m.one('weave_endpoints', 'gauge', 'Endpoints attached on this peer.', status.endpoints.length);
  renderTcp(m, status);
  return m.text();
}

/** TCP of in-process endpoints, labelled by endpoint name (absent when none has TCP). */
function renderTcp(m: Exposition, status: OverlayStatus): void {
  const tcp = status.endpoints.flatMap((e) => (e.tcp ? [[e.name, e.tcp] as const] : []));
  if (tcp.length === 0) return;
  const states = ['LISTEN', 'SYN-SENT', 'SYN-RECEIVED', 'ESTABLISHED', 'FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSE-WAIT', 'CLOSING', 'LAST-ACK', 'TIME-WAIT'] as const;
  m.family('weave_tcp_connections', 'gauge', 'TCP connections of in-process endpoints, by state.', tcp.flatMap(([endpoint, s]) => states.map((state): [Labels, number] => [{ endpoint, state }, s.connections[state] ?? 0])));
  m.family('weave_tcp_segments_total', 'counter', 'TCP segments of in-process endpoints, by direction.', tcp.flatMap(([endpoint, s]): [Labels, number][] => [[{ endpoint, direction: 'in' }, s.segmentsIn], [{ endpoint, direction: 'out' }, s.segmentsOut]]));
  m.family('weave_tcp_bytes_total', 'counter', 'TCP payload bytes of in-process endpoints, by direction.', tcp.flatMap(([endpoint, s]): [Labels, number][] => [[{ endpoint, direction: 'in' }, s.bytesIn], [{ endpoint, direction: 'out' }, s.bytesOut]]));
  m.family('weave_tcp_retransmits_total', 'counter', 'TCP segments retransmitted (timeouts and fast retransmits).', tcp.map(([endpoint, s]): [Labels, number] => [{ endpoint }, s.retransmits]));
  m.family('weave_tcp_resets_total', 'counter', 'TCP RST segments, by direction.', tcp.flatMap(([endpoint, s]): [Labels, number][] => [[{ endpoint, direction: 'in' }, s.resetsIn], [{ endpoint, direction: 'out' }, s.resetsOut]]));
  m.family('weave_tcp_opens_total', 'counter', 'TCP opens, active (connect) and passive (SYNs taken by a listener).', tcp.flatMap(([endpoint, s]): [Labels, number][] => [[{ endpoint, kind: 'active' }, s.activeOpens], [{ endpoint, kind: 'passive' }, s.passiveOpens]]));
  m.family('weave_tcp_drops_total', 'counter', 'TCP segments dropped by the stack, by reason (backlog-full counts SYNs a full listen backlog refused).', tcp.flatMap(([endpoint, s]) => [...Object.entries(s.drops).map(([reason, n]): [Labels, number] => [{ endpoint, reason }, n]), [{ endpoint, reason: 'connection' }, s.connectionDrops] as [Labels, number]]));
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
