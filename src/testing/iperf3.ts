// iperf3 over any TCP endpoint: the control protocol of iperf 3 (TCP tests), so in-process endpoints measure against `iperf3 -s` and `iperf3 -c`.
//
// The protocol (esnet/iperf, iperf_api.c, iperf_client_api.c, iperf_server_api.c; unchanged from 3.1 to 3.12+):
// the client opens a control connection and sends a 37-byte cookie (36 characters and a NUL). The server drives
// the test with one-byte states: PARAM_EXCHANGE (the client sends its parameters as JSON), CREATE_STREAMS (the
// client opens the data connections to the same port, each starting with the same cookie), TEST_START and
// TEST_RUNNING (data flows), then the client sends TEST_END, the server EXCHANGE_RESULTS (the client's results
// JSON, then the server's), DISPLAY_RESULTS, and the client IPERF_DONE. JSON goes as a 4-byte big-endian length
// and the text. Stream ids are 1, 3, 4, … (iperf_add_stream skips 2).
import type { Duplex } from 'node:stream';
import { ConnectionError, DecodeError, OptionsError } from '../errors.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { systemRandom, type Random } from '../random.js';

/** iperf3's default port. */
export const IPERF3_DEFAULT_PORT = 5201;
/** Bytes of the cookie that starts the control connection and every data connection. */
export const IPERF3_COOKIE_SIZE = 37;
/** Largest JSON message accepted (parameters and results are a few hundred bytes). */
export const IPERF3_MAX_JSON_BYTES = 1 << 20;
/** iperf3's default TCP block size (`-l`). */
const DEFAULT_BLOCK_SIZE = 128 * 1024;
const COOKIE_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** The state bytes of iperf3's control connection (iperf_api.h). */
export const Iperf3State = {
  /** Server: all data connections are there; the test starts. */
  TEST_START: 1,
  /** Server: data may flow now. */
  TEST_RUNNING: 2,
  /** Client: the time or byte limit is reached; data stops. */
  TEST_END: 4,
  /** Server: send the test parameters (JSON). */
  PARAM_EXCHANGE: 9,
  /** Server: open the data connections (each starts with the cookie). */
  CREATE_STREAMS: 10,
  /** Server: it is shutting down (signal); the test is abandoned. */
  SERVER_TERMINATE: 11,
  /** Client: it is shutting down (signal); the test is abandoned. */
  CLIENT_TERMINATE: 12,
  /** Server: exchange results (the client's JSON first, then the server's). */
  EXCHANGE_RESULTS: 13,
  /** Server: the test is over; the client prints its report. */
  DISPLAY_RESULTS: 14,
  /** Client: done; the control connection closes. */
  IPERF_DONE: 16,
  /** -1 as a signed byte: the server is busy or the cookie is wrong. */
  ACCESS_DENIED: 0xff,
  /** -2 as a signed byte, followed by two 32-bit big-endian integers (iperf's i_errno and errno). */
  SERVER_ERROR: 0xfe,
} as const;

/**
 * What iperf3 needs of an endpoint: dialling and listening with `net`'s shapes. A `MemoryEndpoint` fits, and so
 * does `node:net` itself (`iperf3Client(net, …)` measures over the host's own TCP).
 */
export interface Iperf3Transport {
  /** Opens a TCP connection; `'connect'` follows the handshake, failures arrive as `'error'`. */
  connect(options: { port: number; host?: string | undefined }): Duplex;
  /** A TCP server; `listen` it. */
  createServer(options: Record<string, never>, connectionListener: (socket: Duplex) => void): Iperf3Listener;
}

/** The part of a TCP server (`net.Server`, `TcpServer`) that {@link iperf3Server} uses. */
export interface Iperf3Listener {
  /** Starts listening; `listeningListener` runs once it does. */
  listen(options: { port: number; host?: string | undefined }, listeningListener?: () => void): unknown;
  /** Stops listening. */
  close(callback?: (error?: Error) => void): unknown;
  /** Where it listens (`net.Server.address()`), for port 0. */
  address(): Iperf3ListenAddress | string | null;
  /** `'error'` (e.g. EADDRINUSE) before it listens. */
  once(event: 'error', listener: (error: Error) => void): unknown;
  /** Removes a listener added with `once`. */
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
}

/** Where an {@link Iperf3Listener} listens. */
export interface Iperf3ListenAddress {
  /** The bound port. */
  port: number;
}

/** The test parameters a client sends (the JSON of PARAM_EXCHANGE), as far as a TCP test uses them. */
export interface Iperf3Parameters {
  /** Seconds to run (`-t`); 0 when the test is limited by bytes. */
  time: number;
  /** Bytes to send (`-n`); 0 when the test is limited by time. */
  bytes: number;
  /** Parallel streams (`-P`). */
  parallel: number;
  /** The server sends and the client receives (`-R`). */
  reverse: boolean;
  /** Block size of each write (`-l`). */
  blockSize: number;
  /** Seconds omitted from the start of the statistics (`-O`). */
  omit: number;
  /** The client's version string, when it sent one. */
  clientVersion?: string | undefined;
}

/** One stream in an exchanged results message. */
export interface Iperf3StreamResult {
  /** Stream id (1, 3, 4, …). */
  id: number;
  /** Bytes the reporting side sent (as a sender) or received (as a receiver). */
  bytes: number;
  /** TCP retransmissions the sender counted; -1 when unknown or when the reporting side received. */
  retransmits: number;
  /** Seconds from the stream's start to its end, when reported. */
  seconds?: number | undefined;
}

/** The results message each side sends at EXCHANGE_RESULTS. */
export interface Iperf3Results {
  /** CPU use of the reporting process in percent: total, user, system. */
  cpu: {
    /** User plus system. */
    total: number;
    /** User time. */
    user: number;
    /** System time. */
    system: number;
  };
  /** 1 when the sender counted retransmissions, 0 when it could not, -1 from a receiver. */
  senderHasRetransmits: number;
  /** The reporting side's streams. */
  streams: Iperf3StreamResult[];
  /** The congestion control algorithm the reporting side used, when it said. */
  congestionUsed?: string | undefined;
}

/** Options of {@link iperf3Client}. */
export interface Iperf3ClientOptions {
  /** The server: an overlay name or address (or, with `node:net`, a host). */
  host: string;
  /** The server's port (default 5201). */
  port?: number | undefined;
  /** Seconds to send (`-t`, default 10 unless `bytes` is given). */
  seconds?: number | undefined;
  /** Bytes to send instead of a duration (`-n`). */
  bytes?: number | undefined;
  /** The server sends and this client receives (`-R`). */
  reverse?: boolean | undefined;
  /** Bytes per write (`-l`, default 128 KiB). */
  blockSize?: number | undefined;
  /** Give up after this many milliseconds in all (default the test's duration plus 30 s). */
  timeoutMs?: number | undefined;
  /** Time source (default the system clock). */
  clock?: Clock | undefined;
  /** Source of the cookie (default the system's randomness). */
  random?: Random | undefined;
}

/** What one test measured, on either side. */
export interface Iperf3Report {
  /** Whether the server sent (`-R`). */
  reverse: boolean;
  /** Bytes the sending side handed to its socket. */
  sentBytes: number;
  /** Bytes the receiving side read before the test ended. */
  receivedBytes: number;
  /** Seconds from TEST_RUNNING to TEST_END, measured on this side. */
  seconds: number;
  /** Bits per second as the receiving side counted them (`receivedBytes` × 8 / `seconds`). */
  receiverBitsPerSecond: number;
  /** Bits per second as the sending side counted them. */
  senderBitsPerSecond: number;
  /** TCP retransmissions the peer reported (-1 when it did not count them or received). */
  peerRetransmits: number;
  /** The results the peer sent at EXCHANGE_RESULTS, as it sent them. */
  peerResults: Iperf3Results;
}

/** A finished test on an {@link Iperf3Server}: the report plus the client's parameters. */
export interface Iperf3ServerTest extends Iperf3Report {
  /** The parameters the client sent. */
  parameters: Iperf3Parameters;
}

/** Options of {@link iperf3Server}. */
export interface Iperf3ServerOptions {
  /** Port to listen on (default 5201; 0 picks one, see {@link Iperf3Server.port}). */
  port?: number | undefined;
  /** Address to listen on, for transports that take one (`node:net`: e.g. `127.0.0.1`). */
  host?: string | undefined;
  /** A test that has not finished after this many milliseconds past its announced duration is abandoned (default 30 000). */
  graceMs?: number | undefined;
  /** Time source (default the system clock). */
  clock?: Clock | undefined;
}

/**
 * Encodes a JSON message of the control connection: a 4-byte big-endian length, then the text (UTF-8).
 * @category Testing
 */
export function encodeIperf3Json(value: unknown): Buffer {
  const text = Buffer.from(JSON.stringify(value), 'utf8');
  const out = Buffer.alloc(4 + text.length);
  out.writeUInt32BE(text.length, 0);
  text.copy(out, 4);
  return out;
}

/**
 * Decodes the parameters a client sends at PARAM_EXCHANGE. Only TCP tests are accepted; fields iperf3 may
 * add are ignored, and absent ones take iperf3's defaults.
 * @throws DecodeError (`bad-value`) for text that is not a JSON object, a UDP or SCTP test, or fields of the wrong type or range.
 * @category Testing
 */
export function decodeIperf3Parameters(text: string): Iperf3Parameters {
  const json = parseObject(text, 'parameters');
  if (json['udp'] !== undefined || json['sctp'] !== undefined) {
    throw new DecodeError('bad-value', 'iperf3 parameters ask for a UDP or SCTP test; only TCP tests are supported (drop -u / --sctp)');
  }
  const clientVersion = json['client_version'];
  const parameters: Iperf3Parameters = {
    time: optionalInteger(json, 'time', 0, 86_400, 10),
    bytes: optionalInteger(json, 'num', 0, Number.MAX_SAFE_INTEGER, 0),
    parallel: optionalInteger(json, 'parallel', 1, 128, 1),
    reverse: json['reverse'] !== undefined,
    blockSize: optionalInteger(json, 'len', 1, 16 * 1024 * 1024, DEFAULT_BLOCK_SIZE),
    omit: optionalInteger(json, 'omit', 0, 600, 0),
  };
  if (json['bidirectional'] !== undefined) throw new DecodeError('bad-value', 'iperf3 parameters ask for a bidirectional test (--bidir), which is not supported');
  if (typeof clientVersion === 'string') parameters.clientVersion = clientVersion;
  return parameters;
}

/**
 * Decodes a results message (EXCHANGE_RESULTS), as `get_results` in iperf_api.c reads it.
 * @throws DecodeError (`bad-value`) for text that is not a JSON object or lacks a field iperf3 requires.
 * @category Testing
 */
export function decodeIperf3Results(text: string): Iperf3Results {
  const json = parseObject(text, 'results');
  const cpu = { total: requiredNumber(json, 'cpu_util_total'), user: requiredNumber(json, 'cpu_util_user'), system: requiredNumber(json, 'cpu_util_system') };
  const senderHasRetransmits = requiredNumber(json, 'sender_has_retransmits');
  const streamsValue = json['streams'];
  if (!Array.isArray(streamsValue)) throw new DecodeError('bad-value', 'iperf3 results have no "streams" array');
  if (streamsValue.length > 128) throw new DecodeError('bad-value', `iperf3 results list ${streamsValue.length} streams; at most 128 are accepted`);
  const streams = streamsValue.map((value: unknown, index): Iperf3StreamResult => {
    if (!isObject(value)) throw new DecodeError('bad-value', `iperf3 results: stream ${index} is not an object`);
    for (const field of ['jitter', 'errors', 'packets']) requiredNumber(value, field);
    const stream: Iperf3StreamResult = { id: requiredNumber(value, 'id'), bytes: requiredNumber(value, 'bytes'), retransmits: requiredNumber(value, 'retransmits') };
    const start = value['start_time'];
    const end = value['end_time'];
    if (typeof start === 'number' && typeof end === 'number') stream.seconds = end - start;
    return stream;
  });
  const results: Iperf3Results = { cpu, senderHasRetransmits, streams };
  const congestion = json['congestion_used'];
  if (typeof congestion === 'string') results.congestionUsed = congestion;
  return results;
}

/**
 * Runs one iperf3 TCP test as the client against an iperf3 server (`iperf3 -s`, or {@link iperf3Server})
 * through an endpoint, like `iperf3 -c host [-t seconds | -n bytes] [-R]` with one stream.
 *
 * ```ts
 * const api = await overlay.attach({ name: 'api' });
 * const report = await iperf3Client(api, { host: 'db', seconds: 5 });
 * console.log(`${(report.receiverBitsPerSecond / 1e6).toFixed(0)} Mbit/s`);
 * ```
 * @throws ConnectionError `protocol` (the server refused the test or broke the protocol), `closed` (it closed
 *   the control connection early), `timeout`; DecodeError for a results message that does not decode; and the
 *   transport's own errors (ECONNREFUSED, …); OptionsError for options that cannot work.
 * @category Testing
 */
export async function iperf3Client(transport: Iperf3Transport, options: Iperf3ClientOptions): Promise<Iperf3Report> {
  const clock = options.clock ?? systemClock;
  const port = options.port ?? IPERF3_DEFAULT_PORT;
  const bytesLimit = options.bytes ?? 0;
  const seconds = options.seconds ?? (bytesLimit > 0 ? 0 : 10);
  const reverse = options.reverse ?? false;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(bytesLimit) || bytesLimit < 0) throw new OptionsError(`iperf3Client: bytes must be a non-negative integer, got ${bytesLimit}`);
  if (!Number.isInteger(seconds) || seconds < 0 || (seconds === 0 && bytesLimit === 0)) throw new OptionsError(`iperf3Client: seconds must be a positive integer (or give bytes), got ${seconds}`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new OptionsError(`iperf3Client: blockSize must be a positive integer, got ${blockSize}`);
  const cookie = makeCookie(options.random ?? systemRandom);
  const timeoutMs = options.timeoutMs ?? seconds * 1000 + 30_000;

  const control = new ControlChannel(transport.connect({ port, host: options.host }));
  const streams: DataStream[] = [];
  let timer: Timer | undefined;
  const deadline = clock.setTimer(timeoutMs, () => control.fail(new ConnectionError('timeout', `iperf3 test with ${options.host}:${port} did not finish within ${timeoutMs} ms`)), { keepAlive: true });
  try {
    await control.connected();
    control.write(cookie);
    let running: { startedAt: number; endedAt?: number; stop: () => void } | undefined;
    let peerResults: Iperf3Results | undefined;
    for (;;) {
      const state = await control.readState();
      switch (state) {
        case Iperf3State.PARAM_EXCHANGE:
          control.write(
            encodeIperf3Json({
              tcp: true,
              omit: 0,
              time: seconds,
              num: bytesLimit,
              blockcount: 0,
              parallel: 1,
              ...(reverse ? { reverse: true } : {}),
              len: blockSize,
              pacing_timer: 1000,
              client_version: 'weave-ts',
            }),
          );
          break;
        case Iperf3State.CREATE_STREAMS: {
          const stream = new DataStream(transport.connect({ port, host: options.host }), streams.length === 0 ? 1 : streams.length + 2);
          streams.push(stream);
          control.watch(stream);
          await Promise.race([stream.connected(), control.closedEarly()]);
          stream.socket.write(cookie);
          break;
        }
        case Iperf3State.TEST_START:
          break;
        case Iperf3State.TEST_RUNNING: {
          if (running) break;
          const startedAt = clock.now();
          const end = (): void => {
            if (!running || running.endedAt !== undefined) return;
            running.endedAt = clock.now();
            timer?.cancel();
            for (const s of streams) s.stop();
            // The server closes the data connections now; a reset on them is no longer an error.
            control.testEnded();
            control.write(Buffer.of(Iperf3State.TEST_END));
          };
          running = { startedAt, stop: end };
          if (seconds > 0) timer = clock.setTimer(seconds * 1000, end, { keepAlive: true });
          for (const s of streams) {
            if (reverse) s.receive(bytesLimit, end);
            else s.send(blockSize, bytesLimit, end);
          }
          break;
        }
        case Iperf3State.EXCHANGE_RESULTS:
          running?.stop();
          control.write(encodeIperf3Json(resultsOf(streams, !reverse, running)));
          peerResults = decodeIperf3Results(await control.readJson());
          break;
        case Iperf3State.DISPLAY_RESULTS: {
          for (const s of streams) s.close();
          control.write(Buffer.of(Iperf3State.IPERF_DONE));
          control.end();
          if (!peerResults || !running) throw new ConnectionError('protocol', 'the iperf3 server sent DISPLAY_RESULTS before the results were exchanged');
          return report(streams, !reverse, reverse, running, peerResults);
        }
        case Iperf3State.ACCESS_DENIED:
          throw new ConnectionError('protocol', `the iperf3 server at ${options.host}:${port} refused the test (ACCESS_DENIED): it is busy with another test; retry later`);
        case Iperf3State.SERVER_ERROR: {
          const codes = await control.read(8);
          throw new ConnectionError('protocol', `the iperf3 server at ${options.host}:${port} failed (SERVER_ERROR, iperf error ${codes.readInt32BE(0)}, errno ${codes.readInt32BE(4)})`);
        }
        case Iperf3State.SERVER_TERMINATE:
          throw new ConnectionError('closed', `the iperf3 server at ${options.host}:${port} terminated the test`);
        default:
          throw new ConnectionError('protocol', `the iperf3 server sent an unknown state byte ${state}`);
      }
    }
  } catch (error) {
    for (const s of streams) s.close();
    control.destroy();
    throw error;
  } finally {
    timer?.cancel();
    deadline.cancel();
  }
}

/**
 * An iperf3 server on an endpoint (see {@link iperf3Server}): runs one test at a time, as `iperf3 -s`, and
 * keeps a report of every test that finished.
 * @category Testing
 */
export class Iperf3Server {
  /** Reports of the tests that finished, oldest first. */
  readonly tests: Iperf3ServerTest[] = [];
  /** Errors of tests that failed (a client that disconnected, a malformed message), oldest first. */
  readonly errors: Error[] = [];
  private active: ServerTest | undefined;
  private readonly waiters: { resolve: (test: Iperf3ServerTest) => void; reject: (error: Error) => void }[] = [];
  private readonly sockets = new Set<Duplex>();
  private closed = false;

  /** @internal Created by {@link iperf3Server}. */
  constructor(
    private readonly listener: Iperf3Listener,
    /** The port it listens on. */
    readonly port: number,
    private readonly options: { clock: Clock; graceMs: number },
  ) {}

  /** Resolves with the report of the next test to finish (or rejects with its error). */
  nextTest(): Promise<Iperf3ServerTest> {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops listening and ends any test in progress. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.active?.abort(new ConnectionError('closed', 'the iperf3 server was closed during the test'));
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  /** @internal Every accepted connection: a new test's control connection, a data stream of the running one, or refused. */
  accept(socket: Duplex): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const channel = new ControlChannel(socket);
    const timer = this.options.clock.setTimer(10_000, () => channel.fail(new ConnectionError('timeout', 'an iperf3 connection sent no cookie within 10 s')));
    channel
      .read(IPERF3_COOKIE_SIZE)
      .then((cookie) => {
        timer.cancel();
        if (this.active === undefined) {
          const test = new ServerTest(channel, cookie, this.options);
          this.active = test;
          test.run().then(
            (result) => this.finish(test, result),
            (error: unknown) => this.finish(test, error instanceof Error ? error : new Error(String(error))),
          );
        } else if (!this.active.addStream(socket, cookie, channel)) {
          // Busy, or not a stream of the running test: refused as iperf3 does.
          socket.end(Buffer.of(Iperf3State.ACCESS_DENIED));
        }
      })
      .catch(() => {
        timer.cancel();
        socket.destroy();
      });
  }

  private finish(test: ServerTest, result: Iperf3ServerTest | Error): void {
    if (this.active === test) this.active = undefined;
    if (result instanceof Error) this.errors.push(result);
    else this.tests.push(result);
    for (const waiter of this.waiters.splice(0)) {
      if (result instanceof Error) waiter.reject(result);
      else waiter.resolve(result);
    }
  }
}

/**
 * Starts an iperf3 server on an endpoint, like `iperf3 -s -p port`: clients (`iperf3 -c`, or
 * {@link iperf3Client}) run TCP tests against it, one at a time, in either direction (`-R`). The server only
 * counts what it receives and sends blocks of zeros; it never writes files or runs commands.
 *
 * ```ts
 * const sink = await iperf3Server(api, { port: 5201 });
 * // in a namespace: iperf3 -c api -t 5 --json
 * const test = await sink.nextTest();
 * await sink.close();
 * ```
 * @throws the transport's listen error (EADDRINUSE, …).
 * @category Testing
 */
export async function iperf3Server(transport: Iperf3Transport, options: Iperf3ServerOptions = {}): Promise<Iperf3Server> {
  let server: Iperf3Server | undefined;
  const pending: Duplex[] = [];
  const listener = transport.createServer({}, (socket) => (server ? server.accept(socket) : pending.push(socket)));
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    listener.once('error', onError);
    listener.listen({ port: options.port ?? IPERF3_DEFAULT_PORT, ...(options.host !== undefined ? { host: options.host } : {}) }, () => {
      listener.removeListener('error', onError);
      resolve();
    });
  });
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? IPERF3_DEFAULT_PORT);
  server = new Iperf3Server(listener, port, { clock: options.clock ?? systemClock, graceMs: options.graceMs ?? 30_000 });
  for (const socket of pending) server.accept(socket);
  return server;
}

// ---- internals ----

/** One test on the server side, from the control connection's cookie to IPERF_DONE. */
class ServerTest {
  private readonly streams: DataStream[] = [];
  private expectedStreams = 0;
  private streamsReady: (() => void) | undefined;

  constructor(
    private readonly control: ControlChannel,
    private readonly cookie: Buffer,
    private readonly options: { clock: Clock; graceMs: number },
  ) {}

  /** Takes a data connection whose cookie matches, while streams are being created. */
  addStream(socket: Duplex, cookie: Buffer, channel: ControlChannel): boolean {
    if (this.streamsReady === undefined || !cookie.equals(this.cookie) || this.streams.length >= this.expectedStreams) return false;
    const stream = new DataStream(socket, this.streams.length === 0 ? 1 : this.streams.length + 2, channel.drain());
    this.streams.push(stream);
    this.control.watch(stream);
    if (this.streams.length === this.expectedStreams) this.streamsReady();
    return true;
  }

  abort(error: Error): void {
    this.control.fail(error);
  }

  async run(): Promise<Iperf3ServerTest> {
    const { clock } = this.options;
    let deadline: Timer | undefined;
    try {
      this.control.write(Buffer.of(Iperf3State.PARAM_EXCHANGE));
      const parameters = decodeIperf3Parameters(await this.control.readJson());
      this.expectedStreams = parameters.parallel;
      const ready = new Promise<void>((resolve) => (this.streamsReady = resolve));
      this.control.write(Buffer.of(Iperf3State.CREATE_STREAMS));
      await Promise.race([ready, this.control.closedEarly()]);
      this.streamsReady = undefined;
      const limitMs = (parameters.time + parameters.omit) * 1000 + this.options.graceMs;
      deadline = clock.setTimer(limitMs, () => this.control.fail(new ConnectionError('timeout', `the iperf3 test did not end within ${limitMs} ms`)), { keepAlive: true });
      this.control.write(Buffer.of(Iperf3State.TEST_START, Iperf3State.TEST_RUNNING));
      const running: { startedAt: number; endedAt?: number } = { startedAt: clock.now() };
      for (const s of this.streams) {
        if (parameters.reverse) s.send(parameters.blockSize, parameters.bytes, () => undefined);
        else s.receive(0, () => undefined);
      }
      const state = await this.control.readState();
      running.endedAt = clock.now();
      this.control.testEnded();
      if (state !== Iperf3State.TEST_END) throw new ConnectionError('protocol', `the iperf3 client sent state ${state} while the test ran; expected TEST_END (4)`);
      // As iperf3: the data connections close at once (unread data makes the kernel answer with a RST).
      for (const s of this.streams) s.close();
      this.control.write(Buffer.of(Iperf3State.EXCHANGE_RESULTS));
      const peerResults = decodeIperf3Results(await this.control.readJson());
      this.control.write(encodeIperf3Json(resultsOf(this.streams, parameters.reverse, running)));
      this.control.write(Buffer.of(Iperf3State.DISPLAY_RESULTS));
      // IPERF_DONE, or just the close: the test is over either way.
      await this.control.readState().catch(() => undefined);
      this.control.end();
      return { ...report(this.streams, parameters.reverse, parameters.reverse, running, peerResults), parameters };
    } catch (error) {
      for (const s of this.streams) s.close();
      this.control.destroy();
      throw error;
    } finally {
      deadline?.cancel();
    }
  }
}

/** The results message of this side, as send_results writes it. */
function resultsOf(streams: readonly DataStream[], sender: boolean, running: { startedAt: number; endedAt?: number } | undefined): object {
  const seconds = running ? ((running.endedAt ?? running.startedAt) - running.startedAt) / 1000 : 0;
  return {
    cpu_util_total: 0,
    cpu_util_user: 0,
    cpu_util_system: 0,
    sender_has_retransmits: sender ? 0 : -1,
    streams: streams.map((s) => ({ id: s.id, bytes: sender ? s.sent : s.received, retransmits: -1, jitter: 0, errors: 0, packets: 0, start_time: 0, end_time: seconds })),
  };
}

function report(streams: readonly DataStream[], localSends: boolean, reverse: boolean, running: { startedAt: number; endedAt?: number }, peerResults: Iperf3Results): Iperf3Report {
  const seconds = ((running.endedAt ?? running.startedAt) - running.startedAt) / 1000;
  const local = streams.reduce((sum, s) => sum + (localSends ? s.sent : s.received), 0);
  const peer = peerResults.streams.reduce((sum, s) => sum + s.bytes, 0);
  const sentBytes = localSends ? local : peer;
  const receivedBytes = localSends ? peer : local;
  const retransmits = peerResults.streams.reduce((sum, s) => (s.retransmits >= 0 ? sum + s.retransmits : sum), 0);
  const rate = (bytes: number): number => (seconds > 0 ? (bytes * 8) / seconds : 0);
  return {
    reverse,
    sentBytes,
    receivedBytes,
    seconds,
    receiverBitsPerSecond: rate(receivedBytes),
    senderBitsPerSecond: rate(sentBytes),
    peerRetransmits: !localSends && peerResults.senderHasRetransmits === 1 ? retransmits : -1,
    peerResults,
  };
}

/** 36 characters from iperf3's alphabet and a NUL, as make_cookie does. */
function makeCookie(random: Random): Buffer {
  const bytes = new Uint8Array(IPERF3_COOKIE_SIZE - 1);
  random.fill(bytes);
  const cookie = Buffer.alloc(IPERF3_COOKIE_SIZE);
  for (let i = 0; i < bytes.length; i++) cookie[i] = COOKIE_ALPHABET.charCodeAt((bytes[i] as number) % COOKIE_ALPHABET.length);
  return cookie;
}

/** A data connection: counts what it sends or receives. */
class DataStream {
  sent = 0;
  received = 0;
  private stopped = false;

  constructor(
    readonly socket: Duplex,
    /** The stream id, as iperf_add_stream numbers them. */
    readonly id: number,
    /** Bytes that arrived after the cookie, before this stream was set up. */
    early?: Buffer,
  ) {
    if (early) this.received += early.length;
    // A peer that closes (or resets) its data connections at the end of a test is normal; errors surface on the control connection.
    socket.on('error', () => undefined);
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        this.socket.removeListener('connect', onConnect);
        reject(error);
      };
      const onConnect = (): void => {
        this.socket.removeListener('error', onError);
        resolve();
      };
      this.socket.once('connect', onConnect);
      this.socket.once('error', onError);
    });
  }

  /** Writes blocks until stopped or `limit` bytes (0: no limit) are written, then calls `done`. */
  send(blockSize: number, limit: number, done: () => void): void {
    const block = Buffer.alloc(blockSize);
    const pump = (): void => {
      while (!this.stopped) {
        if (limit > 0 && this.sent >= limit) {
          done();
          return;
        }
        const size = limit > 0 ? Math.min(blockSize, limit - this.sent) : blockSize;
        this.sent += size;
        if (!this.socket.write(size === blockSize ? block : block.subarray(0, size))) {
          this.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  /** Counts received bytes until stopped; calls `done` once `limit` (0: no limit) bytes arrived. */
  receive(limit: number, done: () => void): void {
    this.socket.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      this.received += chunk.length;
      if (limit > 0 && this.received >= limit) done();
    });
    this.socket.resume();
  }

  stop(): void {
    this.stopped = true;
  }

  close(): void {
    this.stopped = true;
    this.socket.destroy();
  }
}

/** The control connection: exact reads of state bytes and length-prefixed JSON over a stream. */
class ControlChannel {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private pendingRead: { n: number; resolve: (bytes: Buffer) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly closeWaiters: ((error: Error) => void)[] = [];

  private readonly onData = (chunk: Buffer): void => {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    this.deliver();
  };
  private readonly onEnd = (): void => this.fail(new ConnectionError('closed', 'the iperf3 peer closed the control connection before the test ended'));
  private readonly onClose = (): void => this.fail(new ConnectionError('closed', 'the iperf3 control connection closed before the test ended'));

  constructor(readonly socket: Duplex) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', (error: Error) => this.fail(error));
  }

  /** Stops listening for data and the end of the stream (the error listener stays, so errors are never unhandled). */
  private detach(): void {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onClose);
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.socket.once('connect', () => resolve());
      this.closeWaiters.push(reject);
    });
  }

  /** Rejects once the connection fails (for races against waits that do not read). */
  closedEarly(): Promise<never> {
    return new Promise((_resolve, reject) => {
      if (this.failure) reject(this.failure);
      else this.closeWaiters.push(reject);
    });
  }

  /** Watches a data stream: its failure before the test ends fails the test (a reset during a test is an error). */
  watch(stream: DataStream): void {
    stream.socket.once('error', (error: Error) => {
      if (!this.stoppedWatching) this.fail(error);
    });
  }

  private stoppedWatching = false;

  /** The data phase is over: failures of data streams no longer fail the test. */
  testEnded(): void {
    this.stoppedWatching = true;
  }

  read(n: number): Promise<Buffer> {
    if (this.pendingRead) return Promise.reject(new Error('ControlChannel: concurrent reads'));
    return new Promise((resolve, reject) => {
      this.pendingRead = { n, resolve, reject };
      this.deliver();
    });
  }

  async readState(): Promise<number> {
    return (await this.read(1))[0] as number;
  }

  async readJson(): Promise<string> {
    const length = (await this.read(4)).readUInt32BE(0);
    if (length > IPERF3_MAX_JSON_BYTES) {
      throw new DecodeError('too-large', `an iperf3 peer announced a ${length}-byte JSON message; at most ${IPERF3_MAX_JSON_BYTES} are accepted`);
    }
    const bytes = await this.read(length);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new DecodeError('bad-value', 'an iperf3 JSON message is not valid UTF-8');
    }
  }

  /** Takes whatever is buffered beyond what was read (data that followed a cookie). */
  drain(): Buffer {
    const rest = Buffer.concat(this.buffered);
    this.buffered = [];
    this.bufferedBytes = 0;
    this.detach();
    // Paused until the stream's receiver takes over, so no data event goes unheard.
    this.socket.pause();
    this.stoppedWatching = true;
    return rest;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  end(): void {
    this.stoppedWatching = true;
    this.detach();
    this.socket.end();
  }

  destroy(): void {
    this.stoppedWatching = true;
    this.socket.destroy();
  }

  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    const read = this.pendingRead;
    this.pendingRead = undefined;
    read?.reject(error);
    for (const reject of this.closeWaiters.splice(0)) reject(error);
  }

  private deliver(): void {
    const read = this.pendingRead;
    if (!read) return;
    if (this.bufferedBytes < read.n) {
      if (this.failure) {
        this.pendingRead = undefined;
        read.reject(this.failure);
      }
      return;
    }
    const all = this.buffered.length === 1 ? (this.buffered[0] as Buffer) : Buffer.concat(this.buffered);
    const out = all.subarray(0, read.n);
    const rest = all.subarray(read.n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    this.pendingRead = undefined;
    read.resolve(out);
  }
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DecodeError('bad-value', `iperf3 ${what} are not JSON`);
  }
  if (!isObject(value)) throw new DecodeError('bad-value', `iperf3 ${what} are not a JSON object`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requiredNumber(json: Record<string, unknown>, field: string): number {
  const value = json[field];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new DecodeError('bad-value', `iperf3 message: "${field}" is missing or not a number`);
  return value;
}

function optionalInteger(json: Record<string, unknown>, field: string, min: number, max: number, fallback: number): number {
  const value = json[field];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new DecodeError('bad-value', `iperf3 parameters: "${field}" must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}
