// LinkOverlay: the contract between the mesh and a data plane that rides on its links.
import type { PeerName } from '../wire/peer-name.js';
import type { DatagramKeys } from './connection.js';

/** What a data plane learns about a newly admitted link. */
export interface OverlayLink {
  /** The neighbour at the other end. */
  peer: PeerName;
  /** The id both ends share (local XOR remote connection id). */
  connectionId: bigint;
  /** True when we dialled. */
  outbound: boolean;
  /** The neighbour's IP address as our TCP socket sees it. */
  remoteHost: string;
  /** The port the neighbour listens on (its data plane uses the same number). */
  remotePort: number;
  /** Per-direction data-plane keys from the handshake; undefined in a plain mesh. */
  keys: DatagramKeys | undefined;
  /** Capabilities the neighbour offered in its handshake (e.g. `super-frames`). */
  capabilities?: readonly string[] | undefined;
}

/**
 * A data plane plugged into the router. With one, links start not established and the data plane
 * says when its own path works (`MeshRouter.setLinkEstablished`), so routes only use working links.
 */
export interface LinkOverlay {
  /** Capabilities this data plane offers neighbours in the handshake's feature record. */
  readonly capabilities?: readonly string[] | undefined;
  /** Called by `MeshRouter.start()` once it listens (before any link), with where it listens. */
  start?(listen: { host: string; port: number } | undefined): Promise<void>;
  /** Called by `MeshRouter.stop()` after every link closed. */
  stop?(): Promise<void>;
  /** Called when a link is admitted after its handshake (it may replace an older link to the same peer). */
  linkUp(link: OverlayLink): void;
  /** Called when our link to `peer` closed and no newer link replaced it. */
  linkDown(peer: PeerName): void;
  /** A control message from a neighbour (sent with `MeshRouter.sendOverlayControl`). */
  onControl(peer: PeerName, kind: number, payload: Uint8Array): void;
}
