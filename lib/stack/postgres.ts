// Debian's PostgreSQL as the backend of FerretDB's postgresql handler: a cluster of the stack's own (initdb into its
// data dir), on a free port of 127.0.0.1 and no Unix socket, so it never meets the machine's own server on 5432.
import { chmod, chown, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { StackError } from './errors.js';
import { ensureAptPackage } from './install.js';
import { launch, type ManagedService } from './process.js';
import { stackSettings, type MongoBackend, type StackSettings } from './settings.js';
import { childrenOf, isExecutable, run } from './util.js';

const PG_ROOT = '/usr/lib/postgresql';
/** The database role initdb creates; local TCP connections are trusted (the server listens on 127.0.0.1 only). */
export const POSTGRES_USER = 'parley';

/** The bin directory of the newest PostgreSQL under /usr/lib/postgresql/<version>/bin, undefined when none. */
async function findPostgresBin(): Promise<string | undefined> {
  let versions: string[];
  try {
    versions = await readdir(PG_ROOT);
  } catch {
    return undefined;
  }
  for (const v of versions.filter((x) => /^\d+$/.test(x)).sort((a, b) => Number(b) - Number(a))) {
    const bin = join(PG_ROOT, v, 'bin');
    if (await isExecutable(join(bin, 'postgres')) && await isExecutable(join(bin, 'initdb'))) return bin;
  }
  return undefined;
}

/** The bin directory of Debian's PostgreSQL (postgres, initdb, pg_isready); apt-get installs it when missing and we are root. */
export async function ensurePostgres(log: Logger, settings = stackSettings()): Promise<string> {
  return ensureAptPackage(settings, log, {
    pkg: 'postgresql', code: 'POSTGRES_MISSING', find: findPostgresBin,
    hint: `PostgreSQL was not found under ${PG_ROOT}/<version>/bin. Install it (Debian/Ubuntu: \`sudo apt-get install -y postgresql\`), `
      + 'or use the sqlite backend (PARLEY_STACK_MONGO_BACKEND=sqlite), or give FerretDB a PostgreSQL you run with '
      + 'PARLEY_STACK_FERRETDB_POSTGRESQL_URL.',
  });
}

/**
 * The backend FerretDB will use: the settings' one, except that the default (postgresql, not asked for) falls back to
 * SQLite with a warning where PostgreSQL cannot be found or installed (macOS, no root).
 */
export async function resolveMongoBackend(settings: StackSettings, log: Logger, ferretdbDataDir?: string): Promise<MongoBackend> {
  if (settings.mongoBackend !== 'postgresql' || settings.ferretdbPostgresqlUrl) return settings.mongoBackend;
  // A data dir a stack filled on SQLite (the default before ADR 0016's addendum) keeps it, unless PostgreSQL is asked
  // for: switching would start an empty store and hide the messages it holds.
  if (!settings.mongoBackendChosen && ferretdbDataDir && await holdsSqliteOnly(ferretdbDataDir)) {
    log.info({ dataDir: ferretdbDataDir }, 'FerretDB keeps SQLite: this data dir holds SQLite data (PARLEY_STACK_MONGO_BACKEND=postgresql starts an empty PostgreSQL store instead)');
    return 'sqlite';
  }
  try {
    await ensurePostgres(log, settings);
    return 'postgresql';
  } catch (err) {
    if (settings.mongoBackendChosen || !(err instanceof StackError) || err.code !== 'POSTGRES_MISSING') throw err;
    log.warn({ reason: err.message }, 'PostgreSQL is not available: FerretDB uses SQLite (PARLEY_STACK_MONGO_BACKEND=sqlite says so for good)');
    return 'sqlite';
  }
}

/** The user PostgreSQL runs as: ourselves, or Debian's `postgres` account when we are root (it refuses root). */
async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new StackError('POSTGRES_MISSING', 'running as root, and there is no `postgres` user to run PostgreSQL as (PostgreSQL refuses root)');
  }
  return { uid: Number(uid), gid: Number(gid) };
}

export interface PostgresOptions {
  /** The cluster's data directory (created with initdb on first start). */
  dataDir: string;
  port?: number;
  log: Logger;
  detached: boolean;
  logFile?: string;
  /** bin directory of PostgreSQL; default: found (or installed) by ensurePostgres. */
  binDir?: string;
}

/** Starts (after initdb on first use) a PostgreSQL cluster of the stack's own; its url is a postgres:// URL. */
export async function launchPostgres(opts: PostgresOptions): Promise<ManagedService> {
  const bin = opts.binDir ?? (await ensurePostgres(opts.log));
  const dataDir = resolve(opts.dataDir);
  const owner = await runAs();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (owner) {
    await chown(dataDir, owner.uid, owner.gid);
    // The stack's directory is often a mkdtemp (0700): the postgres user must be able to pass through it. Only
    // directories of ours under the temp dir are opened for traversal; anywhere else initdb says what it cannot reach.
    const tmp = resolve(tmpdir());
    for (let d = resolve(dataDir, '..'); d.startsWith(`${tmp}/`); d = resolve(d, '..')) {
      const st = await stat(d);
      if ((st.mode & 0o001) === 0 && st.uid === process.getuid?.()) await chmod(d, (st.mode & 0o7777) | 0o011);
    }
  }
  if (!(await exists(join(dataDir, 'PG_VERSION')))) {
    opts.log.info({ dataDir }, 'initdb: creating the PostgreSQL cluster of the stack');
    try {
      await run(join(bin, 'initdb'), ['-D', dataDir, '-U', POSTGRES_USER, '-A', 'trust', '-E', 'UTF8', '--no-instructions'], {
        ...owner, env: { ...process.env, LC_ALL: 'C' },
      });
    } catch (err) {
      throw new StackError('START_FAILED', `initdb of ${dataDir} failed (as ${owner ? 'user postgres' : 'this user'}; `
        + `every directory above it must be searchable by that user): ${(err as Error).message}`, { cause: err });
    }
  }
  const postmaster = await launch({
    name: 'postgres',
    binary: join(bin, 'postgres'),
    args: async (port) => [
      '-D', dataDir, '-p', String(port),
      // TCP on 127.0.0.1 only, and no Unix socket: nothing here can collide with the machine's own cluster.
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
      // FerretDB opens a pool per client connection's user; the default 100 is short for several services and tests.
      '-c', 'max_connections=200',
    ],
    url: (port) => `postgres://${POSTGRES_USER}@127.0.0.1:${port}/postgres`,
    probe: (_url, ms) => pgReady(bin, portOf(_url), ms),
    ...owner,
    env: { ...process.env, LC_ALL: 'C' },
    readyTimeoutMs: 30_000,
    stopTimeoutMs: 10_000,
    detached: opts.detached,
    logFile: opts.logFile,
    log: opts.log,
  }, opts.port);
  return withBackends(postmaster);
}

/**
 * A kill (a crash, in fault tests) takes the postmaster's children with it, as a crash of the machine or container
 * would: killing the postmaster alone leaves backends that hold its shared memory and delay the restart.
 */
function withBackends(pm: ManagedService): ManagedService {
  return {
    get name() { return pm.name; },
    get url() { return pm.url; },
    get port() { return pm.port; },
    get pid() { return pm.pid; },
    get running() { return pm.running; },
    start: () => pm.start(),
    stop: () => pm.stop(),
    async kill(signal = 'SIGKILL') {
      const kids = pm.pid === undefined ? [] : childrenOf(pm.pid);
      await pm.kill(signal);
      if (signal !== 'SIGKILL') return;
      for (const k of kids) {
        try {
          process.kill(k, signal);
        } catch {
          // gone already
        }
      }
    },
  };
}


function portOf(url: string): string {
  return new URL(url).port;
}

async function pgReady(bin: string, port: string, timeoutMs: number): Promise<void> {
  await run(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', port, '-U', POSTGRES_USER, '-d', 'postgres',
    '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000)))]);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether FerretDB's data dir holds SQLite databases and no PostgreSQL cluster (services.ts lays them out so). */
export async function holdsSqliteOnly(ferretdbDataDir: string): Promise<boolean> {
  const entries = async (d: string): Promise<string[]> => readdir(d).catch(() => []);
  if ((await entries(join(ferretdbDataDir, 'postgres'))).length > 0) return false;
  return (await entries(join(ferretdbDataDir, 'sqlite'))).some((f) => f.endsWith('.sqlite'));
}
