// The userspace IPv4 stack of in-process endpoints: its public classes and types.
export { NetStack, type NetStackOptions, type NetStackTcpOptions, type NetStackStats, type PingOptions, type PingResult, type LookupOptions, type ResolveOptions } from './net-stack.js';
export { StackUdpSocket, type RemoteInfo, type UdpSocketEvents, type ReceiveOptions, type ReceivedDatagram } from './udp-socket.js';
export type { ArpCacheOptions } from './arp-cache.js';
export type { ReassemblyOptions } from './reassembly.js';
export { TcpSocket, TcpSocketError, type TcpConnectOptions, type TcpSocketErrorCode, type TcpSocketReadyState, type TcpAddressInfo } from './tcp/socket.js';
export { TcpServer, type TcpServerOptions, type TcpListenOptions, type TcpServerEvents, type TcpDropInfo } from './tcp/server.js';
export { checkTcpConfig, type TcpStackStats, type TcpImplementation, type TcpConfigOptions, type TcpStateCounts } from './tcp/tcp-layer.js';
export { DEFAULT_TCP_CONFIG, type TcpConfig, type TcpState, type TcpErrorCode } from './tcp/contract.js';
