// In-process meshes with a data plane: routers with DataPlanes and memory NICs on loopback UDP.
import { MeshRouter, type MeshRouterOptions } from '../../src/mesh/router.js';
import { DataPlane, type DataPlaneOptions } from '../../src/ethernet/data-plane.js';
import { MemoryNic } from '../../src/nic/memory-nic.js';
import { dataReady, edges, FAST, testName, testNetworkKey, waitUntil, type Shape } from './mesh.js';

export interface DataPeer {
  router: MeshRouter;
  dataPlane: DataPlane;
  /** The endpoint end of the peer's memory NIC: what an application stack would hold. */
  endpoint: MemoryNic;
  /** Every frame the endpoint received, copied. */
  received: Buffer[];
}

/** Starts `n` peers linked in `shape`, each with one memory NIC, and waits until they are {@link dataReady}. */
export async function startDataMesh(
  n: number,
  shape: Shape,
  options: { encrypted?: boolean; router?: MeshRouterOptions; dataPlane?: DataPlaneOptions } = {},
): Promise<{ peers: DataPeer[]; stop: () => Promise<void> }> {
  const networkKey = options.encrypted === false ? undefined : await testNetworkKey();
  const peers: DataPeer[] = [];
  for (let i = 0; i < n; i++) {
    const router = new MeshRouter({ ...FAST, name: testName(i), nickname: `p${i}`, ...(networkKey ? { networkKey } : {}), ...options.router });
    const dataPlane = new DataPlane(router, { timings: { fastHeartbeatMs: 50 }, ...options.dataPlane });
    const [port, endpoint] = MemoryNic.pair({ name: `nic${i}` });
    dataPlane.attach(port);
    const received: Buffer[] = [];
    endpoint.onFrames((frames) => {
      for (const f of frames) received.push(Buffer.from(f));
    });
    peers.push({ router, dataPlane, endpoint, received });
  }
  await Promise.all(peers.map((p) => p.router.start()));
  const links = edges(shape, n);
  for (const [i, j] of links) peers[i]?.router.connect(`127.0.0.1:${peers[j]?.router.port}`);
  const routers = peers.map((p) => p.router);
  await waitUntil(routers, () => dataReady(routers), 15_000, () => `data routes in a ${n}-peer ${shape}`);
  return { peers, stop: () => Promise.all(routers.map((r) => r.stop())).then(() => undefined) };
}

/** An Ethernet frame from `src` to `dst` carrying `text` (EtherType 0x88b5, local experimental). */
export function testFrame(dst: Uint8Array, src: Uint8Array, text: string, size = 64): Buffer {
  const frame = Buffer.alloc(Math.max(size, 14 + Buffer.byteLength(text)));
  frame.set(dst, 0);
  frame.set(src, 6);
  frame.writeUInt16BE(0x88b5, 12);
  frame.write(text, 14);
  return frame;
}

export const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
/** An IPv4 multicast MAC (239.1.2.3 → 01:00:5e:01:02:03). */
export const MULTICAST = Uint8Array.of(0x01, 0x00, 0x5e, 0x01, 0x02, 0x03);

/** The payload text of a test frame. */
export function frameText(frame: Buffer): string {
  return frame.subarray(14).toString().replace(/\0+$/, '');
}
