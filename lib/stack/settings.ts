// The stack's settings: the one place in lib/stack that reads the environment.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { StackError } from './errors.js';

/** Pinned versions of what the stack builds; bumping one invalidates nothing else in the cache. */
export const NATS_SERVER_VERSION = 'v2.14.9';
export const FERRETDB_VERSION = 'v1.24.2';
export const K6_VERSION = 'v1.8.1';
/** v5.7.1: the newest kustomize that builds with Go 1.22 (5.8.x needs Go 1.24 and later). */
export const KUSTOMIZE_VERSION = 'v5.7.1';

export const MONGO_BACKENDS = ['sqlite', 'postgresql'] as const;
export type MongoBackend = (typeof MONGO_BACKENDS)[number];
/**
 * docs/decisions/0016 (addendum): PostgreSQL, now that chat keeps several insert batches in flight. In `bench ack`
 * it sustained 4,000 acked and persisted msg/s where SQLite fell short at 2,000. A host without PostgreSQL falls back
 * to SQLite, and so does a data dir that already holds SQLite data (resolveMongoBackend).
 */
export const DEFAULT_MONGO_BACKEND: MongoBackend = 'postgresql';
/** The SMTP server the email sink's tests send to (its HTTP API lists what it received). */
export const MAILPIT_VERSION = 'v1.33.1';
/** Jaeger for the tracing e2e test (and `parley stack install`): OTLP receiver and query API in one binary. */
export const JAEGER_VERSION = 'v1.76.0';

export interface StackSettings {
  /** Where binaries are built and cached, outside any repository. */
  cacheDir: string;
  /** `parley stack up` state: stack.env, stack.pids, logs/. */
  stateDir: string;
  /** Data of the services started by `parley stack up`. */
  dataDir: string;
  /** Use FerretDB's PostgreSQL backend at this URL (a server you run) instead of SQLite when set. */
  ferretdbPostgresqlUrl: string | undefined;
  /**
   * FerretDB's backend when the stack starts it: `sqlite` (files under its data dir) or `postgresql` (a PostgreSQL
   * cluster the stack starts too). PARLEY_STACK_MONGO_BACKEND; docs/decisions/0016 says why the default is what it is.
   */
  mongoBackend: MongoBackend;
  /** The backend was asked for (variable or flag): no falling back to SQLite when PostgreSQL cannot be had. */
  mongoBackendChosen: boolean;
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
    mongoBackend: parseMongoBackend(nonEmpty(env.PARLEY_STACK_MONGO_BACKEND), 'PARLEY_STACK_MONGO_BACKEND'),
    mongoBackendChosen: nonEmpty(env.PARLEY_STACK_MONGO_BACKEND) !== undefined,
    goBinary: nonEmpty(env.PARLEY_GO),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** A FerretDB backend name, or the default when undefined; `source` names the variable or flag in the error. */
export function parseMongoBackend(v: string | undefined, source: string): MongoBackend {
  if (v === undefined) return DEFAULT_MONGO_BACKEND;
  if ((MONGO_BACKENDS as readonly string[]).includes(v)) return v as MongoBackend;
  throw new StackError('BAD_USAGE', `${source}: expected ${MONGO_BACKENDS.join(' or ')}, got ${JSON.stringify(v)}`);
}
