// Helpers for the stack tests: stacks on memory NICs, a flooding hub, waiting for events by turns of the event loop.
import * as assert from 'uvu/assert';
import { MemoryNic } from '../../src/nic/memory-nic.js';
import { NetStack, type NetStackOptions, type RemoteInfo, type StackUdpSocket } from '../../src/stack/index.js';
import { seededRandom } from '../../src/random.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

/** Lets the memory NICs deliver: one turn of the event loop. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits (by event-loop turns, never by time) until `condition` holds. */
export async function until(condition: () => boolean, what: string, turns = 2000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await turn();
  }
  assert.unreachable(`gave up waiting for ${what}`);
}

/** The next datagram a socket receives. */
export function nextMessage(socket: StackUdpSocket): Promise<{ msg: Buffer; rinfo: RemoteInfo }> {
  return new Promise((resolve) => socket.once('message', (msg, rinfo) => resolve({ msg, rinfo })));
}

/** Two stacks on the two ends of one memory NIC pair (a direct wire), sharing a fake clock. */
export function wiredPair(options: { mtu?: number; a?: Partial<NetStackOptions>; b?: Partial<NetStackOptions> } = {}) {
  const clock = new FakeClock();
  const [nicA, nicB] = MemoryNic.pair({ ...(options.mtu ? { mtu: options.mtu } : {}) });
  const a = new NetStack({ nic: nicA, address: '10.32.0.1/12', clock, random: seededRandom(1), ...options.a });
  const b = new NetStack({ nic: nicB, address: '10.32.0.2/12', clock, random: seededRandom(2), ...options.b });
  return { clock, a, b, close: () => Promise.all([a.close(), b.close()]) };
}

/** One stack on a memory NIC whose other end the test drives by hand (`wire.send`, `received`). */
export function stackOnRawWire(options: Partial<NetStackOptions> & { mtu?: number } = {}) {
  const clock = new FakeClock();
  const { mtu, ...rest } = options;
  const [nic, wire] = MemoryNic.pair({ ...(mtu ? { mtu } : {}), peerMac: Uint8Array.of(0x02, 0, 0, 0, 0, 0x99) });
  const received: Uint8Array[] = [];
  wire.onFrames((frames) => {
    for (const f of frames) received.push(f.slice());
  });
  const stack = new NetStack({ nic, address: '10.32.0.1/12', clock, random: seededRandom(3), ...rest });
  return { clock, stack, wire, received, nicMac: nic.mac };
}

/** `n` stacks on a hub that floods every frame to every other port (an unswitched segment). */
export function hub(n: number) {
  const clock = new FakeClock();
  const ports: MemoryNic[] = [];
  const stacks: NetStack[] = [];
  for (let i = 0; i < n; i++) {
    const [endpoint, port] = MemoryNic.pair({ name: `hub${i}` });
    ports.push(port);
    stacks.push(new NetStack({ nic: endpoint, address: `10.32.0.${i + 1}/12`, clock, random: seededRandom(10 + i) }));
  }
  ports.forEach((port, i) =>
    port.onFrames((frames) => {
      ports.forEach((other, j) => {
        if (j !== i) other.sendBatch(frames);
      });
    }),
  );
  return { clock, stacks, close: () => Promise.all(stacks.map((s) => s.close())) };
}

/** Asserts that `promise` rejects with a StackError (or other WeaveError) carrying `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, Error);
    assert.is((error as { code?: string }).code, code, (error as Error).message);
    return error as Error;
  }
  assert.unreachable(`expected a rejection with ${code}`);
  throw new Error('unreachable');
}
