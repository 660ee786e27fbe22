// The three servers of the native stack (NATS with JetStream, Redis, FerretDB), alone or together.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../observability/logger.js';
import { ensureFerretdb, ensureNatsServer, ensureRedis } from './install.js';
import { probeMongo, probeNats, probeRedis } from './probe.js';
import { freePort, launch, type ManagedService, type ServiceName } from './process.js';
import { launchPostgres, resolveMongoBackend } from './postgres.js';
import { stackSettings, type MongoBackend } from './settings.js';

interface CommonOptions {
  /** Fixed port; default: a free port on 127.0.0.1, kept across restarts of the handle. */
  port?: number;
  log?: Logger;
  /** Keep running after this process exits (for `parley stack up`); output goes to `logFile`. */
  detached?: boolean;
  logFile?: string;
  /** Binary to run; default: the cached build (built on first use). */
  binary?: string;
}

export interface NatsOptions extends CommonOptions { storeDir: string }
export interface RedisOptions extends CommonOptions { dir: string }
export interface FerretdbOptions extends CommonOptions {
  dataDir: string;
  /** Use the PostgreSQL backend at this URL instead of SQLite files under dataDir. */
  postgresqlUrl?: string;
  /**
   * `postgresql` without `postgresqlUrl`: start a PostgreSQL cluster of its own under <dataDir>/postgres too; the
   * handle then starts, stops and kills both (FerretDB first). Default `sqlite`.
   */
  backend?: MongoBackend;
  /** Where the PostgreSQL started for `backend: 'postgresql'` writes its output when detached. */
  backendLogFile?: string;
}

/** A FerretDB handle that owns the PostgreSQL it runs on (`backend` undefined for SQLite or an external server). */
export type FerretdbService = ManagedService & { readonly backend?: ManagedService };

const STOP_TIMEOUT_MS = 10_000;
const silent = (): Logger => pino({ enabled: false });

export async function launchNats(opts: NatsOptions): Promise<ManagedService> {
  const log = opts.log ?? silent();
  const storeDir = resolve(opts.storeDir);
  await mkdir(storeDir, { recursive: true });
  const binary = opts.binary ?? (await ensureNatsServer(log));
  return launch({
    name: 'nats',
    binary,
    args: async (port) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir],
    url: (port) => `nats://127.0.0.1:${port}`,
    probe: (url, ms) => probeNats(url, ms, { jetstream: true }),
    readyTimeoutMs: 20_000,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    detached: opts.detached ?? false,
    logFile: opts.logFile,
    log,
  }, opts.port);
}

export async function launchRedis(opts: RedisOptions): Promise<ManagedService> {
  const log = opts.log ?? silent();
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const binary = opts.binary ?? (await ensureRedis(log));
  return launch({
    name: 'redis',
    binary,
    // No persistence: Redis holds only ephemeral state (sessions, presence, limits, Pub/Sub).
    args: async (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no'],
    url: (port) => `redis://127.0.0.1:${port}`,
    probe: probeRedis,
    readyTimeoutMs: 10_000,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    detached: opts.detached ?? false,
    logFile: opts.logFile,
    log,
  }, opts.port);
}

export async function launchFerretdb(opts: FerretdbOptions): Promise<FerretdbService> {
  if (opts.backend !== 'postgresql' || opts.postgresqlUrl) return launchFerretdbOn(opts);
  const log = opts.log ?? silent();
  const pg = await launchPostgres({
    dataDir: join(resolve(opts.dataDir), 'postgres'), log, detached: opts.detached ?? false, logFile: opts.backendLogFile,
  });
  try {
    return withBackend(await launchFerretdbOn({ ...opts, postgresqlUrl: pg.url }), pg);
  } catch (err) {
    await pg.stop();
    throw err;
  }
}

/** FerretDB in front of the server it stores into: started after it, stopped and killed before it. */
function withBackend(front: ManagedService, backend: ManagedService): FerretdbService {
  return {
    backend,
    get name() { return front.name; },
    get url() { return front.url; },
    get port() { return front.port; },
    get pid() { return front.pid; },
    get running() { return front.running && backend.running; },
    async start() {
      await backend.start();
      await front.start();
    },
    async stop() {
      await front.stop();
      await backend.stop();
    },
    async kill(signal) {
      await front.kill(signal);
      await backend.kill(signal);
    },
  };
}

async function launchFerretdbOn(opts: FerretdbOptions): Promise<ManagedService> {
  const log = opts.log ?? silent();
  const dataDir = resolve(opts.dataDir);
  const sqliteDir = join(dataDir, 'sqlite');
  const stateDir = join(dataDir, 'state');
  await mkdir(sqliteDir, { recursive: true });
  await mkdir(stateDir, { recursive: true });
  const binary = opts.binary ?? (await ensureFerretdb(log));
  const backend = opts.postgresqlUrl
    ? ['--handler=postgresql', `--postgresql-url=${opts.postgresqlUrl}`]
    // WAL with synchronous=NORMAL: SQLite fsyncs at checkpoints instead of on every commit. The event log itself is
    // JetStream, whose file store also syncs on an interval; a per-commit fsync here bought latency, not durability.
    : ['--handler=sqlite', `--sqlite-url=file:${sqliteDir}/?_pragma=synchronous(normal)`];
  return launch({
    name: 'ferretdb',
    binary,
    args: async (port) => [
      ...backend,
      `--listen-addr=127.0.0.1:${port}`,
      `--state-dir=${stateDir}`,
      '--telemetry=disable',
      // Its debug HTTP listener defaults to 127.0.0.1:8088; give it a free port so it never collides.
      `--debug-addr=127.0.0.1:${await freePort()}`,
      '--log-level=warn',
    ],
    url: (port) => `mongodb://127.0.0.1:${port}/`,
    probe: probeMongo,
    // FerretDB reads its own FERRETDB_* variables; only the flags above may configure it.
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRETDB_'))),
    readyTimeoutMs: 30_000,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    detached: opts.detached ?? false,
    logFile: opts.logFile,
    log,
  }, opts.port);
}

export interface StackEnv {
  NATS_URL: string;
  REDIS_URL: string;
  MONGO_URL: string;
}

export interface Stack {
  env: StackEnv;
  services: Record<ServiceName, ManagedService>;
  /** Stops the three servers (data stays under `dir`). */
  stop(): Promise<void>;
}

export interface StartStackOptions {
  /** Data of the three servers goes to <dir>/nats, <dir>/redis, <dir>/ferretdb. */
  dir: string;
  log: Logger;
  /** Keep the servers running after this process exits; their output goes to <dir>/logs/<name>.log. */
  detached?: boolean;
  ports?: Partial<Record<ServiceName, number>>;
  /** FerretDB's backend; default: the settings' (PARLEY_STACK_MONGO_BACKEND). */
  mongoBackend?: MongoBackend;
}

export async function startStack(opts: StartStackOptions): Promise<Stack> {
  const dir = resolve(opts.dir);
  const log = opts.log.child({ component: 'stack' });
  const settings = stackSettings();
  const detached = opts.detached ?? false;
  const logDir = join(dir, 'logs');
  if (detached) await mkdir(logDir, { recursive: true });
  const common = (name: ServiceName): CommonOptions => ({
    log, detached, port: opts.ports?.[name], logFile: detached ? join(logDir, `${name}.log`) : undefined,
  });
  // Build or find all binaries first, so a failed build does not leave half a stack running.
  const [nats, redis, ferretdb] = await Promise.all([ensureNatsServer(log), ensureRedis(log), ensureFerretdb(log)]);
  const results = await Promise.allSettled([
    launchNats({ ...common('nats'), binary: nats, storeDir: join(dir, 'nats') }),
    launchRedis({ ...common('redis'), binary: redis, dir: join(dir, 'redis') }),
    launchFerretdb({
      ...common('ferretdb'), binary: ferretdb, dataDir: join(dir, 'ferretdb'), postgresqlUrl: settings.ferretdbPostgresqlUrl,
      backend: opts.mongoBackend ?? (await resolveMongoBackend(settings, log, join(dir, 'ferretdb'))), backendLogFile: detached ? join(logDir, 'postgres.log') : undefined,
    }),
  ]);
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw failed.reason;
  }
  const [n, r, f] = started as [ManagedService, ManagedService, ManagedService];
  log.info({ nats: n.url, redis: r.url, mongo: f.url }, 'stack started');
  return {
    env: { NATS_URL: n.url, REDIS_URL: r.url, MONGO_URL: f.url },
    services: { nats: n, redis: r, ferretdb: f },
    async stop() {
      const stops = await Promise.allSettled([f.stop(), r.stop(), n.stop()]);
      const err = stops.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (err) throw err.reason;
    },
  };
}
