// The stack's settings: the one place in lib/stack that reads the environment.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Pinned versions of what the stack builds; bumping one invalidates nothing else in the cache. */
export const NATS_SERVER_VERSION = 'v2.14.9';
export const FERRETDB_VERSION = 'v1.24.2';
export const K6_VERSION = 'v1.8.1';
/** Jaeger for the tracing e2e test (and `parley stack install`): OTLP receiver and query API in one binary. */
export const JAEGER_VERSION = 'v1.76.0';

export interface StackSettings {
  /** Where binaries are built and cached, outside any repository. */
  cacheDir: string;
  /** `parley stack up` state: stack.env, stack.pids, logs/. */
  stateDir: string;
  /** Data of the services started by `parley stack up`. */
  dataDir: string;
  /** Use FerretDB's PostgreSQL backend instead of SQLite when set. */
  ferretdbPostgresqlUrl: string | undefined;
  /** An explicit Go binary; otherwise PATH, then /usr/local/go/bin/go. */
  goBinary: string | undefined;
}

export function stackSettings(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): StackSettings {
  const cacheDir = nonEmpty(env.PARLEY_CACHE_DIR)
    ?? join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'parley');
  const stateDir = resolve(cwd, '.parley');
  return {
    cacheDir: resolve(cwd, cacheDir),
    stateDir,
    dataDir: resolve(cwd, nonEmpty(env.PARLEY_STACK_DIR) ?? join(stateDir, 'data')),
    ferretdbPostgresqlUrl: nonEmpty(env.PARLEY_STACK_FERRETDB_POSTGRESQL_URL),
    goBinary: nonEmpty(env.PARLEY_GO),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}
