// Tap binding: loads the optional native TAP addon (native/build/Release/weave_tap.node) and types its API.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An open TAP device inside the addon (an N-API external). */
export type TapHandle = { readonly __brand: 'TapHandle' };

/** What `open` created: the kernel may change the name (a `%d` pattern), MAC and MTU are the ones in effect. */
export interface TapOpenResult {
  handle: TapHandle;
  name: string;
  mac: Uint8Array;
  mtu: number;
  /** True when the device was opened with offloads (IFF_VNET_HDR, checksum and TSO). */
  offload: boolean;
  /** True when the kernel also took UDP segmentation offloads (USO4/6, kernel 6.2 and later); absent from older builds. */
  udpOffload?: boolean;
}

/** The shared read area of a reader: frame `i` is `buffer[i * slot, i * slot + lengths[i])`. */
export interface TapReadArea {
  buffer: ArrayBuffer;
  lengths: Uint32Array;
}

/** An error thrown by `open`: `errno` is positive, `code` is the errno name (`EPERM`, `ENOENT`, `EBUSY`…). */
export interface TapSystemError extends Error {
  errno?: number;
  code?: string;
  syscall?: string;
}

/** The native API; see native/README.md. */
export interface TapBinding {
  /**
   * Creates (or attaches to) the TAP device `name`, non-blocking, sets MAC and MTU, brings it up. Throws TapSystemError.
   * With `offload`, every read slot starts with the 10-byte virtio_net_hdr (the frame follows it; `lengths` count the
   * frame only), partial checksums of plain frames are completed before delivery, and every write carries a header.
   */
  open(name: string, options: { mtu?: number | undefined; mac?: Uint8Array | undefined; offload?: boolean | undefined }): TapOpenResult;
  /**
   * Polls the fd; on each wakeup reads up to `batch` frames into one reused buffer of `batch` slots of `slot` bytes and
   * calls `callback(count, errno)` once. `errno` is 0 unless reading failed. A frame that fills its slot is dropped
   * (counted by `truncated`). The returned buffer and lengths are reused for every call. `shared`, an area an earlier
   * call returned, is used instead of a new one (readers' callbacks never overlap, so they may share it). On a handle
   * from `adoptUdp`, each wakeup is one recvmmsg: datagram `i` in slot `i`, `lengths[i]` 0 for one cut short.
   */
  startReading(
    handle: TapHandle,
    batch: number,
    slot: number,
    callback: (count: number, errno: number) => void,
    shared?: TapReadArea,
  ): TapReadArea;
  stopReading(handle: TapHandle): void;
  /** One write() of one frame: bytes written, or -errno (-11 EAGAIN: the device queue is full). */
  write(handle: TapHandle, frame: Uint8Array): number;
  /**
   * One write() per frame, in order; stops at the first failure and returns how many were written (see lastError).
   * `headers` (offload only): 10 bytes of virtio_net_hdr per frame; without it each frame gets a zero header.
   */
  writeBatch(handle: TapHandle, frames: readonly Uint8Array[], headers?: Uint8Array): number;
  /** errno of the most recent failed write (0 if none). */
  lastError(handle: TapHandle): number;
  /** Frames read that did not fit their slot (dropped). */
  truncated(handle: TapHandle): number;
  /** An active reader keeps the event loop alive (the default). */
  ref(handle: TapHandle): void;
  /** An active reader does not keep the event loop alive. */
  unref(handle: TapHandle): void;
  /** Stops reading and closes the fd, which deletes the (non-persistent) device; idempotent. */
  close(handle: TapHandle): void;
  /** Sets IP(V6)_MTU_DISCOVER to DO (`on`) or WANT on a UDP socket's fd; returns 0 or -errno. */
  setDontFragment(fd: number, on: boolean, ipv6: boolean): number;
  /**
   * A UDP socket with SO_REUSEPORT bound to `host:port` (buffers sized to `bufferBytes`, forced past the sysctl cap
   * when the process may; 0 leaves them), connected to `remoteHost:remotePort` unless `remoteHost` is null.
   * Returns the fd (for `dgram.Socket#bind({ fd })`) or -errno.
   */
  openUdp(host: string, port: number, ipv6: boolean, bufferBytes: number, remoteHost: string | null, remotePort: number): number;
  /** The socket address of `host:port` as bytes for `sendBatch`, or null when `host` is not an IP literal. */
  udpAddress(host: string, port: number, ipv6: boolean): Uint8Array | null;
  /**
   * Sends `packets[i][0, lengths[i])` for `i < count` to `address` with sendmmsg on UDP socket `fd`. The kernel
   * copies them before it returns, so the buffers may be reused at once. Returns how many were sent (fewer when the
   * socket buffer filled), or -errno when the first one failed.
   */
  sendBatch(fd: number, address: Uint8Array, packets: readonly Uint8Array[], lengths: Uint32Array, count: number): number;
  /**
   * A reader handle over a duplicate of UDP socket `fd` (for `startReading`, `stopReading`, `truncated`, `ref`,
   * `unref`, `close`, which closes the duplicate only). Throws TapSystemError when `fd` is not a datagram socket.
   */
  adoptUdp(fd: number): TapHandle;
}

export type TapBindingLoad = { binding: TapBinding; path: string } | { binding: undefined; path: string | undefined; error: Error };

const ADDON = join('native', 'build', 'Release', 'weave_tap.node');

/** The package root: the nearest directory above this module that holds package.json (dist/src/nic/ or src/nic/). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let cached: TapBindingLoad | undefined;

/** Loads the addon once; when it was not built (or cannot load) returns `binding: undefined` with the reason. */
export function loadTapBinding(): TapBindingLoad {
  if (cached) return cached;
  const root = packageRoot();
  if (root === undefined) {
    cached = { binding: undefined, path: undefined, error: new Error('cannot find the weave-ts package root (no package.json above this module)') };
    return cached;
  }
  const path = join(root, ADDON);
  try {
    const binding = createRequire(import.meta.url)(path) as TapBinding;
    cached = { binding, path };
  } catch (error) {
    cached = { binding: undefined, path, error: error instanceof Error ? error : new Error(String(error)) };
  }
  return cached;
}
