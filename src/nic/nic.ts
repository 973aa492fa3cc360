// Nic: the interface every endpoint attachment implements (kernel TAP device or in-process memory NIC).

/**
 * Receives batches of Ethernet frames. The array and the frames in it are only valid during the call:
 * implementations reuse their buffers, so a consumer that keeps a frame must copy it.
 *
 * `segmentSizes` comes only from a NIC with {@link Nic.offload}: where `segmentSizes[i]` is above 0, frame `i` is a
 * super-frame (up to 64 KiB of one TCP stream or of one flow's UDP datagrams, IPv4 or IPv6, with a partial checksum;
 * the frame's IP protocol says which) to be cut into segments of that many payload bytes (see `segmentSuperFrame`);
 * 0 marks a complete frame.
 */
export type FrameBatchHandler = (frames: readonly Uint8Array[], segmentSizes?: ArrayLike<number>) => void;

/** Counters every NIC keeps. */
export interface NicStats {
  /** Frames read from the NIC and handed to `onFrames`. */
  framesIn: number;
  /** Bytes of the frames read (Ethernet header included). */
  bytesIn: number;
  /** Frames sent out of the NIC. */
  framesOut: number;
  /** Bytes of the frames sent (Ethernet header included). */
  bytesOut: number;
  /** Frames not sent, by reason (for example `too-big`, `queue-full`, `closed`). */
  drops: Record<string, number>;
}

/** A network interface that carries Ethernet frames (14-byte header, no FCS). */
export interface Nic {
  /** Interface name (the kernel name for a TAP device). */
  readonly name: string;
  /** The NIC's own MAC address (6 bytes). */
  readonly mac: Uint8Array;
  /** Largest IP packet the NIC carries (the frame may be 14 bytes longer, 18 with a VLAN tag). */
  readonly mtu: number;
  /** Sets the one handler that receives every batch of frames read from the NIC. */
  onFrames(handler: FrameBatchHandler): void;
  /** Sends one frame out of the NIC; returns false when it was dropped (and counted in `stats`). */
  send(frame: Uint8Array): boolean;
  /**
   * True when the NIC hands over TCP super-frames and takes them back (a TAP device with offloads); without it, a
   * NIC never sees one.
   */
  readonly offload?: boolean | undefined;
  /**
   * True when a NIC with {@link Nic.offload} also hands over and takes UDP super-frames (a TAP device whose kernel has
   * USO, 6.2 and later); without it, UDP super-frames reach it as datagrams.
   */
  readonly udpOffload?: boolean | undefined;
  /**
   * Sends several frames; returns how many were sent. `segmentSizes` (NICs with {@link Nic.offload} only) marks
   * super-frames as in {@link FrameBatchHandler}.
   */
  sendBatch(frames: readonly Uint8Array[], segmentSizes?: ArrayLike<number>): number;
  /** Counters since the NIC was opened; the object is live and may be updated in place. */
  readonly stats: NicStats;
  /** Stops reading and releases the device; idempotent. */
  close(): Promise<void>;
}
