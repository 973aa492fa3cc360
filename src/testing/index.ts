// weave-ts/testing: public helpers for running whole meshes in one process, deterministically.
export { VirtualWire, VirtualHost } from './virtual-wire.js';
export type { LinkConditions, DatagramDropReason, VirtualWireStats, VirtualWireEvents, VirtualWireOptions, NatOptions } from './virtual-wire.js';
export { FakeClock } from './fake-clock.js';
export { seededRandom, type Random } from '../random.js';
export type { Clock, Timer, TimerOptions } from '../clock.js';
export { nodeTransport } from '../mesh/transport.js';
export type { Transport, StreamSocket, StreamListener, DatagramSocket, DatagramSender, DatagramBindOptions } from '../mesh/transport.js';
export { createTestMesh, randomTopology, type TestMesh, type TestMeshOptions, type TestTopology } from './test-mesh.js';
export {
  iperf3Client,
  iperf3Server,
  Iperf3Server,
  Iperf3State,
  IPERF3_DEFAULT_PORT,
  IPERF3_COOKIE_SIZE,
  IPERF3_MAX_JSON_BYTES,
  encodeIperf3Json,
  decodeIperf3Parameters,
  decodeIperf3Results,
} from './iperf3.js';
export type {
  Iperf3Transport,
  Iperf3Listener,
  Iperf3ListenAddress,
  Iperf3Parameters,
  Iperf3Results,
  Iperf3StreamResult,
  Iperf3ClientOptions,
  Iperf3ServerOptions,
  Iperf3Report,
  Iperf3ServerTest,
} from './iperf3.js';
