// The public Peer class (defined beside the mesh router, which produces it).
export { Peer, type LinkInfo, type PeerSnapshot, type PeerSource } from './mesh/peer.js';
