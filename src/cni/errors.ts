// CNI error objects: the specification's well-known codes and the JSON a plugin prints when it fails.

/** Error codes of the CNI specification (1.0.0, "Error"), and ours from 100 up. */
export const CniCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
  /** STATUS (1.1.0): the plugin cannot serve ADD now (the agent is down or its IPAM not ready). */
  notAvailable: 50,
  /** The agent refused the request (its own code and message are in `details`). */
  agentRefused: 100,
  /** CHECK found the container's network different from `prevResult` or from the agent's record. */
  checkFailed: 101,
  /** Something the plugin did not expect (a bug): the message says what. */
  internal: 102,
} as const;

/** One of {@link CniCode}'s values. */
export type CniErrorCode = (typeof CniCode)[keyof typeof CniCode];

/** A failure the plugin reports as a CNI error object (stdout, non-zero exit). */
export class CniError extends Error {
  constructor(
    readonly code: CniErrorCode,
    message: string,
    readonly details = '',
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CniError';
  }

  /** The error object of the specification: `{ cniVersion, code, msg, details }`. */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}
