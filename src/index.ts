// weave-ts: the public entry point.
export { MeshRouter, TOPOLOGY_CHANNEL } from './mesh/router.js';
export type { MeshRouterOptions, MeshRouterEvents, MeshRouterStatus, MeshRouterStats, LinkFailure } from './mesh/router.js';
export { Peer } from './peer.js';
export type { LinkInfo, PeerSnapshot, PeerSource } from './peer.js';
export type { GossipHandler, GossipChannel, GossipChannelStats } from './mesh/gossip.js';
export type { TargetStatus, TargetState, BackoffOptions } from './mesh/connection-maker.js';
export type { ConnectionTimings } from './mesh/connection.js';
export type { ConnectionSummary, PeerRecord } from './wire/topology.js';
export { Routes, type TopologyView } from './mesh/routes.js';
export { formatPeerName, parsePeerName, type PeerName } from './wire/peer-name.js';
export { deriveNetworkKey, ARGON2ID_OPSLIMIT, ARGON2ID_MEMLIMIT, NETWORK_KEY_SALT, type NetworkKey } from './crypto/network-key.js';
export { loadSodium, type SodiumBackend, type SodiumBackendName, type Preference as SodiumPreference } from './crypto/sodium.js';
export { WeaveError, DecodeError, HandshakeError, ConnectionError, OptionsError, CryptoError, type WeaveErrorCode } from './errors.js';
export { systemClock, type Clock, type Timer } from './clock.js';
export { systemRandom, seededRandom, type Random } from './random.js';
