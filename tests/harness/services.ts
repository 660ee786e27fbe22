// Servers for e2e suites, per service: the URL from the environment, else a testcontainers container
// when a Docker engine is reachable, else a native server from lib/stack on a free port.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { StartedTestContainer } from 'testcontainers';
import type { Logger } from '../../lib/observability/logger.js';
import {
  freePort, launchFerretdb, launchNats, launchRedis, probeMongo, probeNats, probeRedis, stackSettings, type ManagedService,
  type MongoBackend,
} from '../../lib/stack/index.js';
import { dockerAvailable } from './docker.js';
import { until } from './wait.js';

export type ServiceSource = 'env' | 'container' | 'native';

export interface ServiceHandle {
  readonly url: string;
  readonly source: ServiceSource;
  /** Stops the server, keeping its data and port. Throws for a shared server from the environment. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data and waits until it answers. */
  start(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Freezes it (SIGSTOP, or docker pause): connections stay open but nothing answers, as with a hung server. */
  freeze(): Promise<void>;
  /** Lets a frozen server run again. */
  thaw(): Promise<void>;
  /** Releases the server and its data; idempotent. */
  close(): Promise<void>;
}

export interface ProvideOptions {
  /** A server of the suite's own even when NATS_URL & co. are set: needed to stop or kill it. */
  dedicated?: boolean;
  /**
   * Native FerretDB's backend; default PARLEY_STACK_MONGO_BACKEND when set, else SQLite: a suite's FerretDB starts in
   * a second instead of an initdb and a PostgreSQL (tests/e2e/store-backends.test.ts covers PostgreSQL).
   */
  mongoBackend?: MongoBackend;
}

type Kind = 'nats' | 'redis' | 'mongo';

const ENV_VAR: Record<Kind, string> = { nats: 'NATS_URL', redis: 'REDIS_URL', mongo: 'MONGO_URL' };
const PROBE: Record<Kind, (url: string, timeoutMs: number) => Promise<void>> = {
  nats: (url, ms) => probeNats(url, ms, { jetstream: true }),
  redis: probeRedis,
  mongo: probeMongo,
};
const IMAGES: Record<Kind, string> = { nats: 'nats:2.14', redis: 'redis:7', mongo: 'mongo:7' };
const CONTAINER_PORT: Record<Kind, number> = { nats: 4222, redis: 6379, mongo: 27017 };

let harnessLog: Logger | undefined;
/** Harness logs go to stderr (stdout belongs to the test runner); PARLEY_TEST_LOG_LEVEL=debug shows server output. */
function log(): Logger {
  harnessLog ??= pino({ name: 'test-harness', level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  return harnessLog;
}

export function provideNats(opts: ProvideOptions = {}): Promise<ServiceHandle> {
  return provide('nats', opts);
}

export function provideRedis(opts: ProvideOptions = {}): Promise<ServiceHandle> {
  return provide('redis', opts);
}

/** MongoDB: MONGO_URL, else a mongo:7 container, else FerretDB (the native stack's MongoDB-compatible server). */
export function provideMongo(opts: ProvideOptions = {}): Promise<ServiceHandle> {
  return provide('mongo', opts);
}

async function provide(kind: Kind, opts: ProvideOptions): Promise<ServiceHandle> {
  const fromEnv = process.env[ENV_VAR[kind]];
  if (!opts.dedicated && fromEnv) return envHandle(kind, fromEnv);
  if (await containersUsable()) return containerHandle(kind);
  const chosen = stackSettings();
  return nativeHandle(kind, opts.mongoBackend ?? (chosen.mongoBackendChosen ? chosen.mongoBackend : 'sqlite'));
}

let usable: Promise<boolean> | undefined;
/** Docker is reachable and testcontainers loads (12.x needs undici 8, which fails to load on Node 20). */
function containersUsable(): Promise<boolean> {
  usable ??= (async () => {
    if (!(await dockerAvailable())) return false;
    try {
      await import('testcontainers');
      return true;
    } catch (err) {
      log().warn({ err, node: process.version }, 'Docker is reachable but testcontainers does not load; using the native stack');
      return false;
    }
  })();
  return usable;
}

function envHandle(kind: Kind, url: string): ServiceHandle {
  const refuse = async (): Promise<never> => {
    throw new Error(`${ENV_VAR[kind]} is set, so this suite shares a server it must not stop, start or kill; `
      + `ask for a server of its own with provide${kind === 'nats' ? 'Nats' : kind === 'redis' ? 'Redis' : 'Mongo'}({ dedicated: true })`);
  };
  return { url, source: 'env', stop: refuse, start: refuse, kill: refuse, freeze: refuse, thaw: refuse, close: async () => {} };
}

async function nativeHandle(kind: Kind, mongoBackend: MongoBackend): Promise<ServiceHandle> {
  const dir = await mkdtemp(join(tmpdir(), `parley-${kind}-`));
  let service: ManagedService;
  try {
    const l = log();
    service = kind === 'nats' ? await launchNats({ storeDir: dir, log: l })
      : kind === 'redis' ? await launchRedis({ dir, log: l })
        : await launchFerretdb({ dataDir: dir, log: l, backend: mongoBackend });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  return {
    url: service.url,
    source: 'native',
    stop: () => service.stop(),
    start: () => service.start(),
    kill: () => service.kill('SIGKILL'),
    freeze: () => service.kill('SIGSTOP'),
    thaw: () => service.kill('SIGCONT'),
    async close() {
      if (closed) return;
      closed = true;
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function containerHandle(kind: Kind): Promise<ServiceHandle> {
  // Loaded only when Docker is reachable: the native path never pays for testcontainers.
  const { getContainerRuntimeClient } = await import('testcontainers');
  // A fixed host port keeps the URL valid across stop/start (Docker re-maps random ports on restart).
  const hostPort = await freePort();
  const exposed = { container: CONTAINER_PORT[kind], host: hostPort };
  let started: StartedTestContainer;
  let url: string;
  if (kind === 'nats') {
    const { NatsContainer } = await import('@testcontainers/nats');
    started = await new NatsContainer(IMAGES.nats).withJetStream().withExposedPorts(exposed).start();
    url = `nats://${started.getHost()}:${hostPort}`;
  } else if (kind === 'redis') {
    const { RedisContainer } = await import('@testcontainers/redis');
    started = await new RedisContainer(IMAGES.redis).withExposedPorts(exposed).start();
    url = `redis://${started.getHost()}:${hostPort}`;
  } else {
    const { MongoDBContainer } = await import('@testcontainers/mongodb');
    started = await new MongoDBContainer(IMAGES.mongo).withExposedPorts(exposed).start();
    // A single-member replica set: connect directly, its member host name does not resolve from here.
    url = `mongodb://${started.getHost()}:${hostPort}/?directConnection=true`;
  }
  const client = await getContainerRuntimeClient();
  const container = client.container.getById(started.getId());
  const answered = (): Promise<void> => until(async () => {
    await PROBE[kind](url, 1000);
    return true;
  }, { timeout: 60_000, interval: 100, message: `${kind} container answering on ${url}` });
  let closed = false;
  return {
    url,
    source: 'container',
    stop: () => client.container.stop(container, { timeout: 10 }),
    async start() {
      await client.container.start(container);
      await answered();
    },
    freeze: async () => { await container.pause(); },
    thaw: async () => { await container.unpause(); },
    async kill() {
      await container.kill({ signal: 'SIGKILL' });
      await until(async () => !(await client.container.inspect(container)).State.Running,
        { message: `${kind} container to stop after SIGKILL` });
    },
    async close() {
      if (closed) return;
      closed = true;
      await started.stop();
    },
  };
}
