// The userspace IPv4 stack of in-process endpoints: its public classes and types.
export { NetStack, type NetStackOptions, type NetStackStats, type PingOptions, type PingResult, type LookupOptions, type ResolveOptions } from './net-stack.js';
export { StackUdpSocket, type RemoteInfo, type UdpSocketEvents, type ReceiveOptions, type ReceivedDatagram } from './udp-socket.js';
export type { ArpCacheOptions } from './arp-cache.js';
export type { ReassemblyOptions } from './reassembly.js';
