// `parley stack <up|down|status|env|install>`: a native local stack that outlives the command, and its state files.
import { execFile } from 'node:child_process';
import { mkdir, readFile, readlink, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../observability/logger.js';
import { StackError } from './errors.js';
import { ensureFerretdb, ensureJaeger, ensureK6, ensureKustomize, ensureMailpit, ensureNatsServer, ensurePrometheus, ensureRedis } from './install.js';
import { answers, type ProbeKind } from './probe.js';
import type { ManagedService, ServiceName } from './process.js';
import { ensurePostgres, resolveMongoBackend } from './postgres.js';
import { launchFerretdb, launchNats, launchRedis, type FerretdbService, type StackEnv } from './services.js';
import { launchNatsCluster, launchRedisCluster, type EngineCluster } from './clusters.js';
import { DEFAULT_MONGO_BACKEND, parseMongoBackend, stackSettings, type StackSettings } from './settings.js';
import { pidAlive, sleep } from './util.js';

const SERVICES: readonly ServiceName[] = ['nats', 'redis', 'ferretdb'];
const ENV_KEY: Record<ServiceName, keyof StackEnv> = { nats: 'NATS_URL', redis: 'REDIS_URL', ferretdb: 'MONGO_URL' };
const PROBE: Record<ServiceName, ProbeKind> = { nats: 'nats', redis: 'redis', ferretdb: 'mongo' };
const ENV_FILE = 'stack.env';
const PIDS_FILE = 'stack.pids';

interface ServiceRecord {
  pid: number;
  port: number;
  url: string;
  /** Absolute path of the binary, as argv[0] of the process: checked before any signal is sent. */
  binary: string;
  dataDir: string;
  logFile: string;
}

interface PidsFile {
  version: 1;
  startedAt: string;
  services: Partial<Record<ServiceName, ServiceRecord>>;
  /** The PostgreSQL behind FerretDB (mongo backend `postgresql`): stopped after FerretDB, restarted with it. */
  backend?: ServiceRecord;
  /** `up --nats-cluster N` / `--redis-cluster`: the nodes of a clustered engine, which then replaces the single server. */
  clusters?: Partial<Record<'nats' | 'redis', ServiceRecord[]>>;
}

type ClusterKind = 'nats' | 'redis';

interface UpOptions {
  /** Nodes of a NATS JetStream cluster instead of one server (0: one server). */
  natsCluster: number;
  /** A Redis Cluster (3 masters + 3 replicas) instead of one server. */
  redisCluster: boolean;
}

const USAGE = `usage: parley stack <command>

  install [--k6] [--mongo-backend sqlite|postgresql]
                  build or find the server binaries, kustomize, Mailpit, Jaeger and
                  Prometheus (cached in $PARLEY_CACHE_DIR or ~/.cache/parley); with the
                  postgresql backend, install Debian's postgresql too (apt-get, as root)
  up [--mongo-backend sqlite|postgresql]
                  start NATS (JetStream), Redis and FerretDB on free ports of 127.0.0.1, in the background;
                  FerretDB stores into SQLite files, or into a PostgreSQL cluster the stack starts too
                  (default: PARLEY_STACK_MONGO_BACKEND, else ${DEFAULT_MONGO_BACKEND})
    --nats-cluster N  N nats-server nodes routed into one JetStream cluster (NATS_URL lists every node;
                      run Parley with PARLEY_STREAM_REPLICAS=3)
    --redis-cluster   a Redis Cluster of 3 masters + 3 replicas (REDIS_URL=redis+cluster://...)
    --cluster         both: --nats-cluster 3 --redis-cluster
  down            stop the servers that \`up\` started
  status          show whether each server runs and answers
  env             print NATS_URL, REDIS_URL and MONGO_URL of the running stack (.parley/stack.env)`;

/** Runs `parley stack …`; returns the process exit code. Human output goes to stdout, errors to stderr. */
export async function stackCommand(argv: string[], log: Logger): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    const settings = withBackendFlag(stackSettings(), rest);
    switch (cmd) {
      case 'install': return await install(settings, log, rest.includes('--k6'));
      case 'up': return await up(settings, log, upOptions(rest));
      case 'down': return await down(settings, log);
      case 'status': return await status(settings);
      case 'env': return await printEnv(settings);
      case undefined: case 'help': case '--help': case '-h':
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new StackError('BAD_USAGE', `unknown stack command "${cmd}"\n${USAGE}`);
    }
  } catch (err) {
    if (!(err instanceof StackError)) throw err;
    console.error(`parley stack ${cmd ?? ''}: ${err.message}`);
    log.debug({ err, code: err.code }, 'stack command failed');
    return err.code === 'BAD_USAGE' ? 2 : 1;
  }
}

/** `--mongo-backend <name>` or `--mongo-backend=<name>` overrides PARLEY_STACK_MONGO_BACKEND. */
function withBackendFlag(settings: StackSettings, args: string[]): StackSettings {
  const i = args.findIndex((a) => a === '--mongo-backend' || a.startsWith('--mongo-backend='));
  if (i < 0) return settings;
  const arg = args[i]!;
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args[i + 1];
  return { ...settings, mongoBackend: parseMongoBackend(value, '--mongo-backend'), mongoBackendChosen: true };
}

/**
 * The URLs of the stack `parley stack up` started from this directory, or undefined unless all
 * three servers answer (then `npm start` can reuse it instead of needing NATS_URL & co.).
 */
export async function readStackEnv(dir = '.parley'): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, ENV_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const env = parseEnvFile(text);
  const checks = SERVICES.map((name) => {
    const url = firstNode(env[ENV_KEY[name]]);
    return url === undefined ? Promise.resolve(false) : answers(PROBE[name], url, 1000);
  });
  return (await Promise.all(checks)).every(Boolean) ? env : undefined;
}

/** The first server of a NATS URL list or a redis+cluster:// URL (what the readiness check probes). */
function firstNode(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const first = url.split(',')[0]!.trim();
  return first.replace(/^(rediss?)\+cluster:/, '$1:');
}

async function install(settings: StackSettings, log: Logger, k6: boolean): Promise<number> {
  const started = Date.now();
  const jobs: Array<[string, Promise<string>]> = [
    ['nats-server', ensureNatsServer(log, settings)],
    ['redis-server', ensureRedis(log, settings)],
    ['ferretdb', ensureFerretdb(log, settings)],
    ['kustomize', ensureKustomize(log, settings)],
    ['mailpit', ensureMailpit(log, settings)],
    // For the observability e2e tests (tracing, metrics); the services never need them.
    ['jaeger', ensureJaeger(log, settings)],
    ['prometheus', ensurePrometheus(log, settings)],
  ];
  if (k6) jobs.push(['k6', ensureK6(log, settings)]);
  if (settings.mongoBackend === 'postgresql' && !settings.ferretdbPostgresqlUrl) {
    jobs.push(['postgresql', resolveMongoBackend(settings, log).then((b) => (b === 'postgresql' ? 'installed' : 'not available: FerretDB uses SQLite'))]);
  }
  const results = await Promise.allSettled(jobs.map(([, p]) => p));
  let failed: unknown;
  results.forEach((r, i) => {
    const name = jobs[i]?.[0];
    if (r.status === 'fulfilled') console.log(`${name?.padEnd(12)} ${r.value}`);
    else failed ??= r.reason;
  });
  if (failed) throw failed;
  console.log(`binaries ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

function upOptions(args: string[]): UpOptions {
  const o: UpOptions = { natsCluster: 0, redisCluster: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--cluster') {
      o.natsCluster = 3;
      o.redisCluster = true;
    } else if (a === '--mongo-backend') {
      i++; // read by withBackendFlag
    } else if (a?.startsWith('--mongo-backend=')) {
      // read by withBackendFlag
    } else if (a === '--redis-cluster') {
      o.redisCluster = true;
    } else if (a === '--nats-cluster') {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 3 || n > 9) throw new StackError('BAD_USAGE', `--nats-cluster needs a node count from 3 to 9, got ${String(args[i])}`);
      o.natsCluster = n;
    } else {
      throw new StackError('BAD_USAGE', `unknown option for stack up: ${String(a)}\n${USAGE}`);
    }
  }
  return o;
}

/** The nodes of a cluster `up` started before, if every one still runs our binary and answers. */
async function liveCluster(kind: ClusterKind, recs: ServiceRecord[] | undefined, size: number): Promise<boolean> {
  if (!recs || recs.length !== size) return false;
  for (const rec of recs) if (!(await isOurs(rec)) || !(await answers(kind, rec.url, 1500))) return false;
  return true;
}

async function upCluster(kind: ClusterKind, size: number, settings: StackSettings, log: Logger, previous: ServiceRecord[] | undefined): Promise<ServiceRecord[]> {
  for (const rec of previous ?? []) if (await isOurs(rec)) await stopPid(rec, log);
  const dir = join(settings.dataDir, `${kind}-cluster`);
  const logDir = join(settings.stateDir, 'logs');
  // Same ports as last time: a node's address is part of the cluster's configuration (routes, nodes.conf).
  const ports = previous?.length === (kind === 'nats' ? size : 6) ? previous.map((r) => r.port) : undefined;
  const c: EngineCluster = kind === 'nats'
    ? await launchNatsCluster({ size, dir, log, detached: true, logDir, ports })
    : await launchRedisCluster({ size: 3, replicas: 1, dir, log, detached: true, logDir, ports });
  const binary = kind === 'nats' ? await ensureNatsServer(log, settings) : await ensureRedis(log, settings);
  return c.nodes.map((n, i) => ({
    pid: n.pid as number, port: n.port, url: n.url, binary, dataDir: join(dir, `${kind === 'nats' ? 'n' : 'r'}${i}`),
    logFile: join(logDir, `${kind}-${i}.log`),
  }));
}

async function up(settings: StackSettings, log: Logger, opts: UpOptions = { natsCluster: 0, redisCluster: false }): Promise<number> {
  await mkdir(join(settings.stateDir, 'logs'), { recursive: true });
  const previous = await readPids(settings.stateDir);
  const next: PidsFile = { version: 1, startedAt: previous?.startedAt ?? new Date().toISOString(), services: {}, clusters: {} };
  const toStart: ServiceName[] = [];
  const clustered: Partial<Record<ClusterKind, number>> = {
    ...(opts.natsCluster > 0 ? { nats: opts.natsCluster } : {}), ...(opts.redisCluster ? { redis: 6 } : {}),
  };
  for (const kind of ['nats', 'redis'] as const) {
    const size = clustered[kind];
    const prev = previous?.clusters?.[kind];
    if (size === undefined) {
      // Asked for a single server now: the cluster of an earlier `up` goes.
      for (const rec of prev ?? []) if (await isOurs(rec)) await stopPid(rec, log);
      continue;
    }
    const single = previous?.services[kind];
    if (single && (await isOurs(single))) await stopPid(single, log);
    if (await liveCluster(kind, prev, size)) {
      next.clusters![kind] = prev;
      continue;
    }
    next.clusters![kind] = await upCluster(kind, kind === 'nats' ? size : 3, settings, log, prev);
    toStart.push(kind);
  }
  for (const name of SERVICES) {
    if (name !== 'ferretdb' && clustered[name] !== undefined) continue;
    const rec = previous?.services[name];
    if (rec && (await isOurs(rec)) && (await answers(PROBE[name], rec.url, 1500))) {
      next.services[name] = rec;
      if (name === 'ferretdb' && previous?.backend) next.backend = previous.backend;
      continue;
    }
    // Running but not answering (hung), or gone: stop what is still ours and start it afresh.
    if (rec && (await isOurs(rec))) await stopPid(rec, log);
    if (name === 'ferretdb' && previous?.backend && (await isOurs(previous.backend))) await stopPid(previous.backend, log);
    toStart.push(name);
  }
  const singles = toStart.filter((n) => n === 'ferretdb' || clustered[n] === undefined);
  if (toStart.length > 0) {
    next.startedAt = toStart.length === SERVICES.length ? new Date().toISOString() : next.startedAt;
    const launched = await Promise.allSettled(
      singles.map((name) => launchDetached(name, settings, log, previous?.services[name]?.port)),
    );
    launched.forEach((r, i) => {
      const name = singles[i] as ServiceName;
      if (r.status !== 'fulfilled') return;
      next.services[name] = r.value.service;
      if (r.value.backend) next.backend = r.value.backend;
    });
    // Record what runs even when something failed, so `down` can stop it.
    await writeState(settings.stateDir, next);
    const failed = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
  console.log(toStart.length === 0 ? 'stack already up' : `stack up (started: ${toStart.join(', ')})`);
  console.log(envText(next).trimEnd());
  console.log(`data: ${settings.dataDir}\nenv file: ${join(settings.stateDir, ENV_FILE)}`);
  return 0;
}

async function launchDetached(
  name: ServiceName, settings: StackSettings, log: Logger, port?: number,
): Promise<{ service: ServiceRecord; backend?: ServiceRecord }> {
  const logFile = join(settings.stateDir, 'logs', `${name}.log`);
  const dataDir = join(settings.dataDir, name);
  const binary = name === 'nats' ? await ensureNatsServer(log, settings)
    : name === 'redis' ? await ensureRedis(log, settings) : await ensureFerretdb(log, settings);
  const backendLog = join(settings.stateDir, 'logs', 'postgres.log');
  const backend = name === 'ferretdb' ? await resolveMongoBackend(settings, log, dataDir) : settings.mongoBackend;
  const start = (p: number | undefined): Promise<FerretdbService> => {
    const common = { log, detached: true, logFile, port: p, binary };
    if (name === 'nats') return launchNats({ ...common, storeDir: dataDir });
    if (name === 'redis') return launchRedis({ ...common, dir: dataDir });
    return launchFerretdb({
      ...common, dataDir, postgresqlUrl: settings.ferretdbPostgresqlUrl, backend, backendLogFile: backendLog,
    });
  };
  let service: FerretdbService;
  try {
    // The same port as last time keeps URLs already exported in shells valid.
    service = await start(port);
  } catch (err) {
    if (port === undefined) throw err;
    log.info({ service: name, port, err }, 'previous port unavailable; picking a new one');
    service = await start(undefined);
  }
  const record = (m: ManagedService, bin: string, data: string, logs: string): ServiceRecord =>
    ({ pid: m.pid as number, port: m.port, url: m.url, binary: bin, dataDir: data, logFile: logs });
  const pg = service.backend;
  return {
    service: record(service, binary, dataDir, logFile),
    backend: pg && record(pg, join(await ensurePostgres(log, settings), 'postgres'), join(dataDir, 'postgres'), backendLog),
  };
}

async function down(settings: StackSettings, log: Logger): Promise<number> {
  const pids = await readPids(settings.stateDir);
  if (!pids) {
    console.log('stack is not up (no .parley/stack.pids)');
    return 0;
  }
  const records: Array<[string, ServiceRecord]> = [
    ...SERVICES.flatMap((name) => (pids.services[name] ? [[name, pids.services[name]!] as [string, ServiceRecord]] : [])),
    ...(['nats', 'redis'] as const).flatMap((k) => (pids.clusters?.[k] ?? []).map((rec, i) => [`${k}-${i}`, rec] as [string, ServiceRecord])),
  ];
  for (const [name, rec] of records) {
    if (!pidAlive(rec.pid)) {
      console.log(`${name.padEnd(9)} already stopped`);
    } else if (await isOurs(rec)) {
      await stopPid(rec, log);
      console.log(`${name.padEnd(9)} stopped (pid ${rec.pid})`);
    } else {
      console.log(`${name.padEnd(9)} pid ${rec.pid} now runs another program; left alone`);
    }
  }
  // PostgreSQL last: FerretDB, its only client, is gone by now.
  const pg = pids.backend;
  if (pg && pidAlive(pg.pid) && (await isOurs(pg))) {
    await stopPid(pg, log);
    console.log(`${'postgres'.padEnd(9)} stopped (pid ${pg.pid})`);
  }
  await rm(join(settings.stateDir, ENV_FILE), { force: true });
  await rm(join(settings.stateDir, PIDS_FILE), { force: true });
  console.log(`data kept in ${settings.dataDir}`);
  return 0;
}

async function status(settings: StackSettings): Promise<number> {
  const pids = await readPids(settings.stateDir);
  if (!pids) {
    console.log('stack is not up (run `parley stack up`)');
    return 1;
  }
  let healthy = true;
  for (const kind of ['nats', 'redis'] as const) {
    for (const [i, rec] of (pids.clusters?.[kind] ?? []).entries()) {
      const alive = pidAlive(rec.pid) && (await isOurs(rec));
      const ok = alive && (await answers(kind, rec.url, 1500));
      healthy &&= ok;
      console.log(`${`${kind}-${i}`.padEnd(9)} ${(ok ? 'healthy' : alive ? 'not answering' : 'not running').padEnd(14)} pid ${String(rec.pid).padEnd(8)} ${rec.url}`);
    }
  }
  for (const name of SERVICES) {
    const rec = pids.services[name];
    if (!rec && name !== 'ferretdb' && pids.clusters?.[name]?.length) continue;
    if (!rec) {
      healthy = false;
      console.log(`${name.padEnd(9)} missing`);
      continue;
    }
    const alive = pidAlive(rec.pid) && (await isOurs(rec));
    const ok = alive && (await answers(PROBE[name], rec.url, 1500));
    healthy &&= ok;
    const state = ok ? 'healthy' : alive ? 'not answering' : 'not running';
    console.log(`${name.padEnd(9)} ${state.padEnd(14)} pid ${String(rec.pid).padEnd(8)} ${rec.url}`);
  }
  if (pids.backend) {
    const alive = pidAlive(pids.backend.pid) && (await isOurs(pids.backend));
    healthy &&= alive;
    console.log(`${'postgres'.padEnd(9)} ${(alive ? 'running' : 'not running').padEnd(14)} pid ${String(pids.backend.pid).padEnd(8)} ${pids.backend.url}`);
  }
  return healthy ? 0 : 1;
}

async function printEnv(settings: StackSettings): Promise<number> {
  try {
    process.stdout.write(await readFile(join(settings.stateDir, ENV_FILE), 'utf8'));
    return 0;
  } catch {
    console.error('stack is not up (run `parley stack up`)');
    return 1;
  }
}

async function readPids(stateDir: string): Promise<PidsFile | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(stateDir, PIDS_FILE), 'utf8')) as PidsFile;
    return parsed.version === 1 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

async function writeState(stateDir: string, pids: PidsFile): Promise<void> {
  await writeAtomic(join(stateDir, PIDS_FILE), `${JSON.stringify(pids, null, 2)}\n`);
  await writeAtomic(join(stateDir, ENV_FILE), envText(pids));
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

function envText(pids: PidsFile): string {
  const nats = pids.clusters?.nats;
  const redis = pids.clusters?.redis;
  return SERVICES.flatMap((name) => {
    if (name === 'nats' && nats?.length) return [`NATS_URL=${nats.map((r) => r.url).join(',')}\nPARLEY_STREAM_REPLICAS=3\n`];
    if (name === 'redis' && redis?.length) return [`REDIS_URL=redis+cluster://${redis.map((r) => `127.0.0.1:${r.port}`).join(',')}\n`];
    const rec = pids.services[name];
    return rec ? [`${ENV_KEY[name]}=${rec.url}\n`] : [];
  }).join('');
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) env[m[1]] = m[2].trim();
  }
  return env;
}

const execFileAsync = promisify(execFile);

/** Whether `rec.pid` still runs the binary we started (pids are reused; never signal a stranger). */
async function isOurs(rec: ServiceRecord): Promise<boolean> {
  if (!pidAlive(rec.pid)) return false;
  try {
    // The executable, not argv: redis-server rewrites its argv into a process title.
    const exe = (await readlink(`/proc/${rec.pid}/exe`)).replace(/ \(deleted\)$/, '');
    return exe === (await realpath(rec.binary).catch(() => rec.binary));
  } catch {
    // No /proc (macOS): ask ps; the title still starts with the path we ran.
    try {
      const { stdout } = await execFileAsync('ps', ['-o', 'command=', '-p', String(rec.pid)]);
      return stdout.trim().split(' ')[0] === rec.binary;
    } catch {
      return false;
    }
  }
}

/** SIGTERM, then SIGKILL after 10 s, and wait until the pid is gone. */
async function stopPid(rec: ServiceRecord, log: Logger): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(rec.pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  signal('SIGTERM');
  if (await gone(rec.pid, 10_000)) return;
  log.warn({ pid: rec.pid, binary: rec.binary }, 'server ignored SIGTERM; killing it');
  signal('SIGKILL');
  if (!(await gone(rec.pid, 5000))) throw new StackError('STOP_TIMEOUT', `pid ${rec.pid} did not exit after SIGKILL`);
}

async function gone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await sleep(50);
  }
  return !pidAlive(pid);
}
