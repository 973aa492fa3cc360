// Error classes with stable codes: programs match on `code`, people read `message`.

/** Every stable error code weave-ts throws or reports. */
export type WeaveErrorCode =
  | 'short-read'
  | 'trailing-bytes'
  | 'bad-value'
  | 'too-large'
  | 'bad-magic'
  | 'version-mismatch'
  | 'crypto-mismatch'
  | 'bad-password'
  | 'decrypt-failed'
  | 'handshake-timeout'
  | 'connect-to-self'
  | 'name-collision'
  | 'duplicate-connection'
  | 'connection-limit'
  | 'heartbeat-timeout'
  | 'closed'
  | 'protocol'
  | 'invalid-option'
  | 'unknown-peer'
  | 'crypto-unavailable'
  | 'counter-exhausted'
  | 'address-in-use'
  | 'no-free-port'
  | 'peer-reachable'
  | 'corrupt-state'
  | 'read-failed'
  | 'write-failed'
  | 'different-seeds'
  | 'tap-unavailable'
  | 'permission-denied'
  | 'timeout'
  | 'aborted'
  | 'unreachable'
  | 'message-too-big'
  | 'not-bound'
  | 'not-found'
  | 'already-exists'
  | 'not-running'
  | 'unauthorized'
  | 'command-failed';

/**
 * Base class of every error weave-ts throws; `code` is stable across releases.
 * @category Errors
 */
export class WeaveError extends Error {
  constructor(
    /** The stable code programs match on, e.g. `bad-password`; the message is for people. */
    readonly code: WeaveErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Bytes from outside (network, disk) that do not decode.
 * @category Errors
 */
export class DecodeError extends WeaveError {}

/**
 * A control connection that failed before or during the handshake.
 * @category Errors
 */
export class HandshakeError extends WeaveError {}

/**
 * An established control connection that broke (tampering, replay, silence, protocol violation).
 * @category Errors
 */
export class ConnectionError extends WeaveError {}

/**
 * Options that cannot work; the message says what to fix.
 * @category Errors
 */
export class OptionsError extends WeaveError {
  constructor(message: string, options?: ErrorOptions) {
    super('invalid-option', message, options);
  }
}

/**
 * A cryptographic operation that failed or is not available.
 * @category Errors
 */
export class CryptoError extends WeaveError {}

/**
 * A network interface that cannot be created or used (TAP binding not built, no /dev/net/tun, no privilege).
 * @category Errors
 */
export class NicError extends WeaveError {}

/**
 * An operation of the userspace IPv4 stack of an in-process endpoint that failed (timeout, unreachable, too big).
 * @category Errors
 */
export class StackError extends WeaveError {}

/**
 * An endpoint that cannot be attached or detached (namespace missing, command failed, name taken).
 * @category Errors
 */
export class EndpointError extends WeaveError {}

/**
 * A file of the data dir that cannot be read, written or trusted; the message names the file.
 * @category Errors
 */
export class StateFileError extends WeaveError {}

/**
 * The agent's control API refused or failed a request.
 * @category Errors
 */
export class ApiError extends WeaveError {}

/**
 * Peers could not be listed from the Kubernetes API: `unreachable` (no answer), `timeout`, `unauthorized`
 * (401/403: the service account's token or its ClusterRole), `protocol` (another HTTP status), `read-failed`
 * (the token or CA file), `aborted` (discovery stopped). A node list that does not decode is a
 * {@link DecodeError} instead.
 * @category Errors
 */
export class DiscoveryError extends WeaveError {}

/**
 * Something awaited (`overlay.ready()`, `dns.waitFor()`) did not become ready: `code` is `timeout` when
 * its deadline passed, `aborted` when its signal aborted; `waitingFor` lists, in words, what was still
 * missing (the message says the same).
 * @category Errors
 */
export class NotReadyError extends WeaveError {
  constructor(
    code: 'timeout' | 'aborted',
    message: string,
    /** What was still not ready, one item each: `"db.weave.local.": no address`, `"192.0.2.2:6783": connecting (…)`. */
    readonly waitingFor: readonly string[],
    options?: ErrorOptions,
  ) {
    super(code, message, options);
  }
}
