// TCP and UDP super-frames as a TAP device with offloads hands them over, for the segmentation and switch tests.

const IP = 14;

export interface SuperFrameSpec {
  ipv6: boolean;
  payload: Uint8Array;
  flags: number;
  sequence: number;
  ipId: number;
  /** Bytes of TCP options (a multiple of 4). */
  tcpOptions: number;
  /** Destination and source MAC (default 02:00:00:00:00:02 and 02:00:00:00:00:01). */
  macs?: readonly number[] | undefined;
}

/** A super-frame as the kernel hands it over: lengths cover everything, the TCP checksum holds the pseudo-header sum. */
export function superFrame(spec: SuperFrameSpec): Uint8Array {
  const ipHeader = spec.ipv6 ? 40 : 20;
  const tcpHeader = 20 + spec.tcpOptions;
  const frame = new Uint8Array(IP + ipHeader + tcpHeader + spec.payload.length);
  frame.set(spec.macs ?? [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
  const t = IP + ipHeader;
  if (spec.ipv6) {
    frame.set([0x86, 0xdd], 12);
    frame[IP] = 0x60;
    const payloadLength = tcpHeader + spec.payload.length;
    frame.set([payloadLength >>> 8, payloadLength & 0xff, 6, 64], IP + 4);
    frame.set([0xfd, 0x77, ...new Array<number>(13).fill(0), 1], IP + 8);
    frame.set([0xfd, 0x77, ...new Array<number>(13).fill(0), 2], IP + 24);
  } else {
    frame.set([0x08, 0x00], 12);
    const total = ipHeader + tcpHeader + spec.payload.length;
    frame.set([0x45, 0, total >>> 8, total & 0xff, spec.ipId >>> 8, spec.ipId & 0xff, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], IP);
  }
  frame.set([0x9c, 0x40, 0x14, 0x51], t);
  frame.set([spec.sequence >>> 24, (spec.sequence >>> 16) & 0xff, (spec.sequence >>> 8) & 0xff, spec.sequence & 0xff], t + 4);
  frame[t + 12] = (tcpHeader / 4) << 4;
  frame[t + 13] = spec.flags;
  frame.set([0xff, 0xff], t + 14);
  for (let i = 0; i < spec.tcpOptions; i++) frame[t + 20 + i] = 1; // NOPs
  frame.set(spec.payload, t + tcpHeader);
  frame.set([0x12, 0x34], t + 16); // a partial checksum: never trusted by the segmenter
  return frame;
}


export interface UdpSuperFrameSpec {
  ipv6: boolean;
  payload: Uint8Array;
  ipId: number;
  /** Bytes of IPv4 options (a multiple of 4, at most 40). */
  ipOptions: number;
  /** What the super-frame's UDP length field says (the kernel's own value is not trusted); default the whole length. */
  udpLength?: number | undefined;
  /** Destination and source MAC (default 02:00:00:00:00:02 and 02:00:00:00:00:01). */
  macs?: readonly number[] | undefined;
}

/** A UDP super-frame as the kernel hands it over: IP lengths cover everything, the UDP checksum holds a partial sum. */
export function udpSuperFrame(spec: UdpSuperFrameSpec): Uint8Array {
  const ipHeader = spec.ipv6 ? 40 : 20 + spec.ipOptions;
  const u = IP + ipHeader;
  const frame = new Uint8Array(u + 8 + spec.payload.length);
  frame.set(spec.macs ?? [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
  if (spec.ipv6) {
    frame.set([0x86, 0xdd], 12);
    frame[IP] = 0x60;
    const payloadLength = 8 + spec.payload.length;
    frame.set([payloadLength >>> 8, payloadLength & 0xff, 17, 64], IP + 4);
    frame.set([0xfd, 0x77, ...new Array<number>(13).fill(0), 1], IP + 8);
    frame.set([0xfd, 0x77, ...new Array<number>(13).fill(0), 2], IP + 24);
  } else {
    frame.set([0x08, 0x00], 12);
    const total = ipHeader + 8 + spec.payload.length;
    frame.set([0x40 | (ipHeader / 4), 0, total >>> 8, total & 0xff, spec.ipId >>> 8, spec.ipId & 0xff, 0x40, 0, 64, 17], IP); // DF
    frame.set([10, 0, 0, 1, 10, 0, 0, 2], IP + 12);
    for (let i = 0; i < spec.ipOptions; i++) frame[IP + 20 + i] = 1; // NOPs
  }
  const udpLength = (spec.udpLength ?? 8 + spec.payload.length) & 0xffff;
  frame.set([0x9c, 0x40, 0x11, 0xd7, udpLength >>> 8, udpLength & 0xff, 0x12, 0x34], u); // partial checksum: never trusted
  frame.set(spec.payload, u + 8);
  return frame;
}
