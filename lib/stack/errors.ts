// Typed errors of the native stack: every failure has a stable code a caller (or the CLI) can branch on.

/** Stable codes of {@link StackError}. */
export type StackErrorCode =
  /** A binary is not cached and there is no Go toolchain to build it. */
  | 'GO_MISSING'
  /** `go install` / `go build` failed. */
  | 'BUILD_FAILED'
  /** redis-server is not installed and could not be installed with apt-get. */
  | 'REDIS_MISSING'
  /** PostgreSQL (for FerretDB's postgresql backend) is not installed and could not be installed with apt-get. */
  | 'POSTGRES_MISSING'
  /** prometheus is not installed and could not be installed with apt-get (the metrics e2e test needs it). */
  | 'PROMETHEUS_MISSING'
  /** Another process held the build lock for too long. */
  | 'LOCK_TIMEOUT'
  /** The server process exited before it answered. */
  | 'START_FAILED'
  /** The server process runs but did not answer before the deadline. */
  | 'START_TIMEOUT'
  /** The server process did not exit after SIGKILL. */
  | 'STOP_TIMEOUT'
  /** A recorded pid no longer runs the binary Parley started (it will not be signalled). */
  | 'NOT_OURS'
  /** Bad command line for `parley stack`. */
  | 'BAD_USAGE';

export class StackError extends Error {
  constructor(
    readonly code: StackErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'StackError';
  }
}
