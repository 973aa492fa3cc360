// The package version, reported in status and metrics (kept equal to package.json by a unit test).

/** The weave-ts version. */
export const VERSION = '0.1.0';
