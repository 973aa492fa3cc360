// weave-ts/testing: public helpers for running whole meshes in one process, deterministically.
export { VirtualWire, VirtualHost } from './virtual-wire.js';
export type { LinkConditions, DatagramDropReason, VirtualWireStats, VirtualWireEvents, VirtualWireOptions, NatOptions } from './virtual-wire.js';
export { FakeClock } from './fake-clock.js';
export { seededRandom, type Random } from '../random.js';
export type { Clock, Timer, TimerOptions } from '../clock.js';
export { nodeTransport } from '../mesh/transport.js';
export type { Transport, StreamSocket, StreamListener, DatagramSocket, DatagramSender, DatagramBindOptions } from '../mesh/transport.js';
export { createTestMesh, type TestMesh, type TestMeshOptions, type TestTopology } from './test-mesh.js';
