// weave-ts: the public entry point.
export { MeshRouter, TOPOLOGY_CHANNEL } from './mesh/router.js';
export type { MeshRouterOptions, MeshRouterEvents, MeshRouterStatus, MeshRouterStats, LinkFailure, NameCollision } from './mesh/router.js';
export type { Refusal } from './wire/incarnation.js';
export { Peer } from './peer.js';
export type { LinkInfo, PeerSnapshot, PeerSource } from './peer.js';
export type { GossipHandler, GossipChannel, GossipChannelStats } from './mesh/gossip.js';
export type { TargetStatus, TargetState, BackoffOptions } from './mesh/connection-maker.js';
export type { ConnectionTimings, DatagramKeys } from './mesh/connection.js';
export type { ConnectionSummary, PeerRecord } from './wire/topology.js';
export { Routes, type TopologyView } from './mesh/routes.js';
export type { LinkOverlay, OverlayLink } from './mesh/overlay.js';
export { DataPlane, type DataPlaneOptions, type DataPlaneStatus, type DataPlaneReceiveStatus, type FastPathStatus } from './ethernet/data-plane.js';
export type { FastHeartbeatCounts, FastLinkMode, FastLinkState, FastLinkStatus, FastPathTimings } from './ethernet/fast-path.js';
export type { VxlanCounters } from './ethernet/kernel-vxlan.js';
export type { SleeveLinkStatus, SleeveTimings, LinkMode, LinkCounters, SleeveReceiveStatus } from './ethernet/sleeve.js';
export type { SlowPathLimits } from './ethernet/slow-path.js';
export type { SourceFailureStatus, SourceFailureLimits } from './ethernet/source-failures.js';
export type { SwitchStats } from './ethernet/switch.js';
export type { Nic, NicStats, FrameBatchHandler } from './nic/nic.js';
export { MemoryNic, type MemoryNicOptions } from './nic/memory-nic.js';
export { TapNic, type TapNicOptions } from './nic/tap-nic.js';
export { Ipam, IpamError, IPAM_CHANNEL, TAKEOVER_BUMP, type IpamOptions, type IpamInit, type IpamStatus, type IpamState, type IpamConflict, type IpamEvents, type IpamRefusedRing } from './ipam/ipam.js';
export type { Cidr } from './ipam/address.js';
export { Dns, DNS_CHANNEL, type DnsOptions, type DnsStatus, type DnsEvents, type DnsWaitOptions } from './dns/dns.js';
export type { DnsRecord } from './wire/dns-records.js';
export { DnsServer, type DnsServerOptions, type DnsServerStats, type NameSource, type DnsTransport } from './dns/server.js';
export type { ForwarderStats, DnsListener } from './dns/forwarder.js';
export { formatPeerName, parsePeerName, type PeerName } from './wire/peer-name.js';
export { deriveNetworkKey, ARGON2ID_OPSLIMIT, ARGON2ID_MEMLIMIT, NETWORK_KEY_SALT, type NetworkKey } from './crypto/network-key.js';
export { loadSodium, type SodiumBackend, type SodiumBackendName, type Preference as SodiumPreference } from './crypto/sodium.js';
export { WeaveError, DecodeError, HandshakeError, ConnectionError, OptionsError, CryptoError, NicError, StackError, EndpointError, StateFileError, ApiError, NotReadyError, type WeaveErrorCode } from './errors.js';
export { systemClock, type Clock, type Timer, type TimerOptions } from './clock.js';
export type { WaitOptions } from './wait.js';
export { systemRandom, seededRandom, type Random } from './random.js';
export { Overlay, DEFAULT_ENDPOINT_MTU, EXPOSE_ID } from './overlay.js';
export type {
  OverlayOptions,
  OverlayIpamOptions,
  OverlayDnsOptions,
  OverlayTuning,
  OverlayEvents,
  OverlayStatus,
  OverlayState,
  AttachOptions,
  Endpoint,
  NetnsEndpoint,
  ReadyOptions,
} from './overlay.js';
export type { OverlayReadiness, PeerReadiness, PeerReadinessState, IpamReadiness, ReadinessQuery } from './status/readiness.js';
export type { OverlayLinkView, OverlayLinkState, EstablishedLinkView, ConnectingLinkView, UnreachableLinkView } from './status/links.js';
export type { HandshakeFailureView } from './status/handshake-failures.js';
export { MemoryEndpoint, type EndpointInfo, type EndpointResolver, type ContainerCheck } from './endpoint/memory-endpoint.js';
export {
  EndpointHttpAgent,
  serveHttp,
  endpointConnector,
  type ServeHttpOptions,
  type TcpEndpoint,
  type EndpointConnector,
  type EndpointConnectOptions,
  type EndpointConnectCallback,
  type EndpointConnectorOptions,
} from './endpoint/http.js';
export { EndpointHttpsAgent } from './endpoint/https.js';
export type { IpCommand } from './endpoint/ip-command.js';
export { nodeFileSystem, type FileSystem } from './persist/file-system.js';
export { NetStack, StackUdpSocket, TcpSocket, TcpSocketError, TcpServer, DEFAULT_TCP_CONFIG, type TcpConnectOptions, type TcpSocketErrorCode, type TcpSocketReadyState, type TcpServerOptions, type TcpListenOptions, type TcpServerEvents, type TcpDropInfo, type TcpAddressInfo, type TcpStackStats, type TcpConfigOptions, type TcpStateCounts, type TcpConfig, type TcpState, type TcpErrorCode, type NetStackTcpOptions, type NetStackOptions, type NetStackStats, type PingOptions, type PingResult, type LookupOptions, type ResolveOptions, type RemoteInfo, type UdpSocketEvents, type ReceiveOptions, type ReceivedDatagram, type ArpCacheOptions, type ReassemblyOptions } from './stack/index.js';
export { silentLogger, jsonLineLogger, type Logger, type LogMethod } from './logger.js';
export { VERSION } from './version.js';
export type { Overrides } from './options.js';
export { nodeTransport, type Transport, type StreamSocket, type StreamListener, type DatagramSocket, type DatagramSender, type DatagramBindOptions, type DatagramBatchSender } from './mesh/transport.js';
