// TapNic: a kernel TAP device as a Nic, over the native binding (poll-driven batch reads, one write per frame).
import { endianness } from 'node:os';
import { NicError, OptionsError } from '../errors.js';
import { segmentSuperFrame, superFrameVirtioHeader, tapTakesWhole } from '../wire/super-frame.js';
import { VIRTIO_HEADER_BYTES, virtioSegmentSize } from '../wire/virtio.js';
import type { FrameBatchHandler, Nic, NicStats } from './nic.js';
import { loadTapBinding, type TapBinding, type TapHandle, type TapSystemError } from './tap-binding.js';

/** Options of {@link TapNic.open}; only `name` is required. */
export interface TapNicOptions {
  /** Kernel interface name, at most 15 bytes; a name ending in `%d` lets the kernel pick the number. */
  name: string;
  /** IP MTU of the device (68..65535); default: the kernel's (1500). */
  mtu?: number | undefined;
  /** Unicast MAC of the device (6 bytes); default: a random one chosen by the kernel. */
  mac?: Uint8Array | undefined;
  /**
   * Most frames read per event-loop turn, delivered in one `onFrames` call (1..1024, default 32). More than ~32
   * starves UDP sockets, which libuv reads at most 32 datagrams per turn (see docs/architecture.md).
   */
  batchSize?: number | undefined;
  /**
   * Checksum and segmentation offloads (IFF_VNET_HDR with TSO4/6, and USO4/6 where the kernel has them, 6.2 and
   * later): the kernel hands over TCP (and UDP GSO) super-frames of up to 64 KiB and takes them back, so a TCP stream
   * costs one frame per 64 KiB instead of one per MTU. Reads then carry `segmentSizes` (see `FrameBatchHandler`).
   * Default false; only on little-endian hosts (ignored elsewhere).
   */
  offload?: boolean | undefined;
}

/** Ethernet header (14) + one VLAN tag (4): a frame may be this much longer than the MTU. */
const FRAME_OVERHEAD = 18;
const MIN_FRAME = 14;
const DEFAULT_BATCH = 32;
/** The largest super-frame: an IPv6 header plus the largest payload length, behind an Ethernet header. */
const MAX_SUPER_FRAME = 14 + 40 + 0xffff;
const MAX_BATCH = 1024;
const EAGAIN = 11;
const EIO = 5;

function mapOpenError(error: unknown, name: string): Error {
  const e = error as TapSystemError;
  const detail = e instanceof Error ? e.message : String(error);
  switch (e?.code) {
    case 'EPERM':
    case 'EACCES':
      return new NicError(
        'permission-denied',
        `creating a TAP device needs root or CAP_NET_ADMIN (TAP "${name}": ${detail}); run as root or grant the capability, e.g. setcap cap_net_admin+ep $(which node)`,
        { cause: error },
      );
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return new NicError(
        'tap-unavailable',
        `/dev/net/tun is not available (${detail}); load the tun module (modprobe tun) or, in a container, pass the device (--device /dev/net/tun)`,
        { cause: error },
      );
    case 'EBUSY':
      return new NicError('tap-unavailable', `TAP device "${name}" is already in use by another process (${detail})`, { cause: error });
    case 'EINVAL':
      if (e.syscall === 'ioctl(TUNSETIFF)') {
        return new NicError('tap-unavailable', `an interface named "${name}" already exists and is not a TAP device (${detail})`, { cause: error });
      }
      break;
  }
  return new NicError('tap-unavailable', `cannot open TAP device "${name}": ${detail}`, { cause: error });
}

/** Linux interface names: 1–15 bytes, no whitespace, '/' or ':', not `.` or `..`. */
export function isValidInterfaceName(name: string): boolean {
  return name.length > 0 && Buffer.byteLength(name) <= 15 && !/[\s/:]/.test(name) && name !== '.' && name !== '..';
}

function validate(options: TapNicOptions): void {
  const { name, mtu, mac, batchSize } = options;
  if (typeof name !== 'string' || !isValidInterfaceName(name)) {
    throw new OptionsError(`TAP name ${JSON.stringify(name)} is not a valid interface name: use 1 to 15 characters without spaces, "/" or ":"`);
  }
  if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535)) {
    throw new OptionsError(`TAP mtu ${mtu} is out of range: use an integer from 68 to 65535`);
  }
  if (mac !== undefined && (!(mac instanceof Uint8Array) || mac.length !== 6 || (mac[0]! & 1) !== 0 || mac.every((b) => b === 0))) {
    throw new OptionsError('TAP mac must be 6 bytes of a unicast address (lowest bit of the first byte clear, not all zero)');
  }
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH)) {
    throw new OptionsError(`TAP batchSize ${batchSize} is out of range: use an integer from 1 to ${MAX_BATCH} (32 is recommended)`);
  }
}

/**
 * A Linux TAP device. Reading starts with the first `onFrames` call: each event-loop wakeup delivers up to `batchSize`
 * frames in one call, as views into one reused buffer (valid only during the call). An active reader keeps the
 * process alive like a listening socket; call `unref()` to let the process exit anyway. Without a reader the device
 * holds nothing on the event loop. The device is deleted by the kernel when it is closed (or the process exits).
 * @category Endpoints
 */
export class TapNic implements Nic {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** True when the device hands over and takes TCP super-frames (see {@link TapNicOptions.offload}). */
  readonly offload: boolean;
  /** True when it also hands over and takes UDP super-frames (its kernel took USO). */
  readonly udpOffload: boolean;
  private readonly binding: TapBinding;
  private readonly handle: TapHandle;
  private readonly batchSize: number;
  private readonly slot: number;
  private readonly maxFrame: number;
  private readonly counters: NicStats = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, drops: {} };
  private handler: FrameBatchHandler | undefined;
  private reading = false;
  private closed = false;
  private readBuffer: ArrayBuffer | undefined;
  private readLengths: Uint32Array | undefined;
  /** Reused frame views, one per slot (a new view only when a slot's length changes). */
  private views: Uint8Array[] = [];
  private readonly batch: Uint8Array[] = [];
  /** Segment size per frame of the current batch (offload only). */
  private readonly sizes: number[] = [];
  /** virtio headers for a batch write with super-frames (grown as needed). */
  private headers = new Uint8Array(0);
  /** The whole read buffer as bytes (offload: the virtio header of slot i is at i * slot). */
  private readBytes: Uint8Array | undefined;
  private readError: NicError | undefined;

  private constructor(
    binding: TapBinding,
    handle: TapHandle,
    name: string,
    mac: Uint8Array,
    mtu: number,
    batchSize: number,
    offload: boolean,
    udpOffload: boolean,
  ) {
    this.binding = binding;
    this.handle = handle;
    this.name = name;
    this.mac = mac;
    this.mtu = mtu;
    this.offload = offload;
    this.udpOffload = offload && udpOffload;
    this.batchSize = batchSize;
    this.maxFrame = mtu + FRAME_OVERHEAD;
    // A slot is bigger than any frame the kernel can hand us, so a frame that fills its slot means it was cut.
    const largest = offload ? VIRTIO_HEADER_BYTES + MAX_SUPER_FRAME : this.maxFrame;
    this.slot = Math.ceil((largest + 64) / 64) * 64;
  }

  /** Creates the TAP device (or attaches to an existing persistent one), sets MAC and MTU and brings it up. */
  static async open(options: TapNicOptions): Promise<TapNic> {
    validate(options);
    const load = loadTapBinding();
    if (load.binding === undefined) {
      throw new NicError(
        'tap-unavailable',
        `the native TAP binding was not built (${load.path ?? 'native/build/Release/weave_tap.node'}: ${load.error.message.split('\n')[0]}): ` +
          'install a C compiler, make and python3, then run `npm rebuild weave-ts` (or `node scripts/build-native.mjs`)',
        { cause: load.error },
      );
    }
    const binding = load.binding;
    let opened;
    const offload = options.offload === true && endianness() === 'LE';
    try {
      opened = binding.open(options.name, { mtu: options.mtu, mac: options.mac, offload });
    } catch (error) {
      throw mapOpenError(error, options.name);
    }
    return new TapNic(
      binding,
      opened.handle,
      opened.name,
      new Uint8Array(opened.mac),
      opened.mtu,
      options.batchSize ?? DEFAULT_BATCH,
      opened.offload === true,
      opened.udpOffload === true,
    );
  }

  /** Counters since the device was opened; drops include `read-too-big` for frames the kernel truncated. */
  get stats(): NicStats {
    if (!this.closed) {
      const truncated = this.binding.truncated(this.handle);
      if (truncated > 0) this.counters.drops['read-too-big'] = truncated;
    }
    return this.counters;
  }

  /** Why reading stopped, if a read failed (reading stops instead of spinning on a broken device). */
  get error(): NicError | undefined {
    return this.readError;
  }

  onFrames(handler: FrameBatchHandler): void {
    this.handler = handler;
    if (this.reading || this.closed) return;
    const area = this.binding.startReading(this.handle, this.batchSize, this.slot, this.onRead);
    this.readBuffer = area.buffer;
    this.readBytes = new Uint8Array(area.buffer);
    this.readLengths = area.lengths;
    this.views = [];
    this.reading = true;
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return this.drop('closed', 1);
    const length = frame.length;
    if (length > this.maxFrame) return this.drop('too-big', 1);
    if (length < MIN_FRAME) return this.drop('too-small', 1);
    const r = this.binding.write(this.handle, frame);
    if (r < 0) return this.drop(reasonOf(-r), 1);
    this.counters.framesOut += 1;
    this.counters.bytesOut += length;
    return true;
  }

  sendBatch(frames: readonly Uint8Array[], segmentSizes?: ArrayLike<number>): number {
    const n = frames.length;
    if (n === 0) return 0;
    if (this.closed) {
      this.drop('closed', n);
      return 0;
    }
    let bytes = 0;
    let headers: Uint8Array | undefined;
    for (let i = 0; i < n; i++) {
      const length = frames[i]!.length;
      if (segmentSizes !== undefined && (segmentSizes[i] ?? 0) > 0) {
        headers ??= this.headerArea(n);
        if (
          !this.offload ||
          length > MAX_SUPER_FRAME ||
          !tapTakesWhole(frames[i]!, segmentSizes[i]!, this.udpOffload) ||
          !this.writeHeader(frames[i]!, segmentSizes[i]!, headers, i)
        ) {
          return this.sendEach(frames, segmentSizes);
        }
      } else if (length > this.maxFrame || length < MIN_FRAME) {
        return this.sendEach(frames, segmentSizes);
      }
      bytes += length;
    }
    const written = this.binding.writeBatch(this.handle, frames, headers);
    if (written < n) {
      // Counted once per frame not written: the native side stops at the first failure (full queue, device down).
      bytes = 0;
      for (let i = 0; i < written; i++) bytes += frames[i]!.length;
      this.drop(reasonOf(this.binding.lastError(this.handle)), n - written);
    }
    this.counters.framesOut += written;
    this.counters.bytesOut += bytes;
    return written;
  }

  /** An active reader keeps the event loop alive (the default). */
  ref(): this {
    if (!this.closed) this.binding.ref(this.handle);
    return this;
  }

  /** An active reader no longer keeps the event loop alive. */
  unref(): this {
    if (!this.closed) this.binding.unref(this.handle);
    return this;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    void this.stats; // last read of the native counters
    this.closed = true;
    this.reading = false;
    this.handler = undefined;
    this.readBuffer = undefined;
    this.readBytes = undefined;
    this.readLengths = undefined;
    this.views = [];
    this.batch.length = 0;
    this.binding.close(this.handle);
  }

  /** Same as close(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Frames one by one: a batch with a frame that cannot go (each failure is counted). */
  private sendEach(frames: readonly Uint8Array[], segmentSizes?: ArrayLike<number>): number {
    let sent = 0;
    for (let i = 0; i < frames.length; i++) {
      const size = segmentSizes?.[i] ?? 0;
      if (size > 0 ? this.sendSuperFrame(frames[i]!, size) : this.send(frames[i]!)) sent++;
    }
    return sent;
  }

  /**
   * One super-frame with its virtio header, or as datagrams when it is a UDP one the kernel would refuse (no USO, or
   * more datagrams than it takes in one write); false (counted) when it cannot go.
   */
  private sendSuperFrame(frame: Uint8Array, segmentSize: number): boolean {
    if (this.closed) return this.drop('closed', 1);
    if (!this.offload) return this.drop('super-frame-without-offload', 1);
    if (frame.length > MAX_SUPER_FRAME) return this.drop('too-big', 1);
    if (!tapTakesWhole(frame, segmentSize, this.udpOffload)) return this.sendSegments(frame, segmentSize);
    const header = this.headerArea(1);
    if (!this.writeHeader(frame, segmentSize, header, 0)) return false;
    if (this.binding.writeBatch(this.handle, [frame], header) !== 1) return this.drop(reasonOf(this.binding.lastError(this.handle)), 1);
    this.counters.framesOut += 1;
    this.counters.bytesOut += frame.length;
    return true;
  }

  /** A super-frame cut into segments, each sent on its own; true when all of them went. */
  private sendSegments(frame: Uint8Array, segmentSize: number): boolean {
    let segments: Uint8Array[];
    try {
      segments = segmentSuperFrame(frame, segmentSize);
    } catch {
      return this.drop('bad-super-frame', 1);
    }
    return this.sendEach(segments) === segments.length;
  }

  /** A zeroed area of `count` virtio headers. */
  private headerArea(count: number): Uint8Array {
    const bytes = count * VIRTIO_HEADER_BYTES;
    if (this.headers.length < bytes) this.headers = new Uint8Array(Math.max(bytes, 64 * VIRTIO_HEADER_BYTES));
    this.headers.fill(0, 0, bytes);
    return this.headers;
  }

  /** The header of super-frame `i`; false (counted) when the frame is not a super-frame we can hand over. */
  private writeHeader(frame: Uint8Array, segmentSize: number, headers: Uint8Array, i: number): boolean {
    try {
      superFrameVirtioHeader(frame, segmentSize, headers, i * VIRTIO_HEADER_BYTES);
      return true;
    } catch {
      this.drop('bad-super-frame', 1);
      return false;
    }
  }

  private drop(reason: string, count: number): false {
    this.counters.drops[reason] = (this.counters.drops[reason] ?? 0) + count;
    return false;
  }

  /** Called by the binding once per wakeup with `count` frames in the shared buffer. */
  private readonly onRead = (count: number, errno: number): void => {
    const buffer = this.readBuffer;
    const lengths = this.readLengths;
    if (count > 0 && buffer !== undefined && lengths !== undefined) {
      const views = this.views;
      const batch = this.batch;
      const slot = this.slot;
      const offload = this.offload;
      const bytesArea = this.readBytes as Uint8Array;
      const sizes = this.sizes;
      const frameStart = offload ? VIRTIO_HEADER_BYTES : 0;
      let bytes = 0;
      let taken = 0;
      for (let i = 0; i < count; i++) {
        const length = lengths[i]!;
        if (offload) {
          const size = virtioSegmentSize(bytesArea, i * slot);
          if (size < 0) {
            this.drop('offload-unsupported', 1);
            continue;
          }
          sizes[taken] = size;
        }
        let view = views[i];
        if (view === undefined || view.length !== length) {
          view = new Uint8Array(buffer, i * slot + frameStart, length);
          views[i] = view;
        }
        batch[taken++] = view;
        bytes += length;
      }
      batch.length = taken;
      sizes.length = offload ? taken : 0;
      this.counters.framesIn += taken;
      this.counters.bytesIn += bytes;
      if (taken > 0) this.handler?.(batch, offload ? sizes : undefined);
    }
    if (errno !== 0 && !this.closed) {
      this.readError = new NicError('tap-unavailable', `reading TAP device "${this.name}" failed (errno ${errno}); reading stopped`);
      this.reading = false;
      this.binding.stopReading(this.handle);
    }
  };
}

function reasonOf(errno: number): string {
  if (errno === EAGAIN) return 'queue-full';
  if (errno === EIO) return 'link-down';
  return 'write-error';
}
