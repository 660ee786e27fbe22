#!/usr/bin/env node
// The one executable: `parley all | gateway | chat | presence | stack | token | client`. Builds config once, starts services,
// and closes them in reverse order on SIGTERM/SIGINT within PARLEY_SHUTDOWN_TIMEOUT_MS.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../lib/config/index.js';
import type { Config } from '../lib/config/index.js';
import { mintToken } from '../lib/auth/index.js';
import { createLogger, createMetrics, startOpsServer } from '../lib/observability/index.js';
import type { Logger } from '../lib/observability/index.js';
import { readStackEnv, stackCommand, startStack, stackSettings } from '../lib/stack/index.js';
import { loadNativeUws } from '../lib/gateway/index.js';
import { runClient } from './client.js';
import { connectShared, reconcileOnce, runChat, runGateway, runNotify, runPresence } from './services.js';
import { dlqCommand } from './dlq.js';
import { ROOM_ID } from '../lib/protocol/index.js';
import type { Closeable } from './services.js';
import { startTracing } from './tracing.js';

const USAGE = `usage: parley <command>
  all                 every service in one process (starts the local stack if no service URLs are set)
  gateway             WebSocket gateway
  chat                chat service (JetStream consumer -> MongoDB -> Redis)
  presence            presence service (reaps dead gateways, announces offline after the grace period)
  notify              notification service (JetStream consumer -> log / webhook / email, exactly once per recipient)
  dlq list | replay [--id <notification>]   the notifications' dead-letter stream (prints JSON)
  stack <up|down|status|env|install>   the native local stack (nats-server, redis-server, FerretDB)
  token <user> [--ttl 3600]            print a development JWT (HS256, JWT_SECRET or the dev secret)
  client --user <u> --room <r> [--url ws://127.0.0.1:8080/ws] [--token <jwt>]   interactive CLI client
  reconcile [--room <r>] [--since <seq>]   re-insert into MongoDB what it lacks of the stream (prints counts as JSON)
  bench <scenario|all> [--check]       load scenarios with latency budgets (see bench/README.md)`;

const SERVICE_URLS = ['NATS_URL', 'REDIS_URL', 'MONGO_URL'] as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const bootLog = createLogger({ name: 'parley', level: process.env.LOG_LEVEL ?? 'info' });
  switch (command) {
    case 'all':
    case 'gateway':
    case 'chat':
    case 'presence':
    case 'notify':
      return runServices(command, bootLog);
    case 'dlq':
      return dlqCommand(rest, await envWithStack());
    case 'stack':
      return stackCommand(rest, bootLog);
    case 'token':
      return token(rest);
    case 'client':
      return runClient(rest, await envWithStack(), bootLog);
    case 'reconcile':
      return reconcileCommand(rest);
    case 'bench': {
      // The runtime image leaves the bench out (its imports are dev-only packages): say so instead of a stack trace.
      const bench = await import('../bench/index.js').catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
        bootLog.fatal('the bench is not part of this installation; run it from a source checkout (npm ci && npm run bench)');
        return undefined;
      });
      return bench ? bench.benchCommand(rest, bootLog) : 69; // EX_UNAVAILABLE
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

/** The environment with the running local stack's URLs filled in for any service URL not set explicitly. */
async function envWithStack(): Promise<NodeJS.ProcessEnv> {
  if (SERVICE_URLS.every((k) => process.env[k])) return process.env;
  const stack = await readStackEnv(stackSettings().stateDir);
  return stack ? { ...stack, ...process.env } : process.env;
}

async function runServices(command: 'all' | 'gateway' | 'chat' | 'presence' | 'notify', bootLog: Logger): Promise<number> {
  const closers: Closeable[] = [];
  if (command === 'all' || command === 'gateway') {
    // Before anything else: a gateway on uWS's JavaScript fallback must never start (nor be benchmarked).
    try {
      loadNativeUws();
    } catch (err) {
      bootLog.fatal((err as Error).message);
      return 70; // EX_SOFTWARE
    }
  }
  let env = await envWithStack();
  if (command === 'all' && SERVICE_URLS.some((k) => !env[k])) {
    // Laptop mode: nothing configured and no `parley stack up` running, so run the stack for this process.
    bootLog.info('no service URLs set and no local stack running: starting the local stack');
    const stack = await startStack({ dir: stackSettings().dataDir, log: bootLog });
    closers.push({ name: 'stack', close: () => stack.stop() });
    env = { ...stack.env, ...env };
  }
  // Laptop mode serves the demo page unless told otherwise; production never does by default.
  if (command === 'all' && env.PARLEY_DEMO === undefined && env.NODE_ENV !== 'production') env = { ...env, PARLEY_DEMO: '1' };
  let cfg: Config;
  try {
    cfg = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      bootLog.fatal(err.message);
      await closeAll(closers, bootLog, 10_000);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const log = createLogger({ name: `parley-${command}`, level: cfg.logLevel });
  const metrics = createMetrics(command, { renderCacheMs: cfg.metricsCacheMs, instance: cfg.instance });
  // Closed after every service (closers run in reverse), so their last spans are exported.
  const tracer = startTracing(cfg.tracing, command, cfg.instance, log);
  closers.push({ name: 'tracing', close: () => tracer.close() });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    void closeAll(closers, log, cfg.shutdownTimeoutMs).then(() => process.exit(0));
  };
  // A stray rejection in a library must not take down every connection of a gateway: log it loudly instead.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    const presence = command === 'all' || command === 'presence' ? await runPresence(cfg, log, closers) : undefined;
    if (command !== 'presence') {
      const shared = await connectShared(cfg, log, `parley-${command}-${cfg.gatewayId}`, closers);
      const chat = command === 'all' || command === 'chat' ? await runChat(cfg, log, metrics, shared, closers, tracer.tracing) : undefined;
      const notify = command === 'all' || command === 'notify' ? await runNotify(cfg, log, metrics, shared, closers, tracer.tracing) : undefined;
      const gateway = command === 'all' || command === 'gateway'
        ? await runGateway(cfg, log, metrics, shared, closers, tracer.tracing) : undefined;
      // Every service has one (gateways too: /metrics is never on the public port, ADR 0011); chat's /readyz also
      // reports MongoDB and its consumer (ADR 0012), and a process running presence its Redis.
      const ops = await startOpsServer(cfg.host, cfg.metricsPort, metrics, () => {
        const nats = shared.nats.connected();
        const st = chat?.status();
        const nt = notify?.status();
        const gw = gateway?.readiness();
        const presenceUp = presence?.ready() ?? true;
        const ready = nats && presenceUp && (st?.ready ?? true) && (nt?.ready ?? true) && (gw?.ready ?? true);
        return {
          ready,
          details: {
            ...gw?.details, ...st, ready, nats: nats ? 'connected' : 'disconnected', ...(presence ? { presence: presenceUp } : {}),
            ...(nt ? { notify: nt } : {}),
          },
        };
      }, log, { benchGc: cfg.benchGc });
      closers.push({ name: 'ops', close: () => ops.close() });
    } else if (presence) {
      const ops = await startOpsServer(cfg.host, cfg.metricsPort, metrics, () => {
        const ready = presence.ready();
        return { ready, details: { ready, presence: ready } };
      }, log);
      closers.push({ name: 'ops', close: () => ops.close() });
    }
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    await closeAll(closers, log, cfg.shutdownTimeoutMs);
    return 1;
  }
  log.info({ command, port: cfg.port }, 'parley started');
  return new Promise<number>(() => undefined); // runs until a signal
}

/** One reconciliation pass by hand, with the configured stream, consumer and database. */
async function reconcileCommand(args: string[]): Promise<number> {
  let opts: { room?: string; since?: number };
  let cfg: Config;
  try {
    const { values } = parseArgs({ args, options: { room: { type: 'string' }, since: { type: 'string' } } });
    const since = values.since === undefined ? undefined : Number(values.since);
    if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) throw new Error('--since takes a seq (a whole number >= 0)');
    if (values.room !== undefined && !ROOM_ID.test(values.room)) throw new Error('--room takes a room id ([A-Za-z0-9_-]{1,64})');
    opts = { room: values.room, since };
    cfg = loadConfig(await envWithStack());
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: parley reconcile [--room <r>] [--since <seq>]`);
    return err instanceof ConfigError ? 78 : 2;
  }
  const log = createLogger({ name: 'parley-reconcile', level: cfg.logLevel });
  const report = await reconcileOnce(cfg, log, opts);
  console.log(JSON.stringify(report));
  return 0;
}

async function closeAll(closers: Closeable[], log: Logger, deadlineMs: number): Promise<void> {
  const timer = setTimeout(() => {
    log.error({ deadlineMs }, 'shutdown deadline exceeded; exiting');
    process.exit(1);
  }, deadlineMs);
  timer.unref();
  for (const c of [...closers].reverse()) {
    try {
      await c.close();
    } catch (err) {
      log.warn({ err, component: c.name }, 'close failed');
    }
  }
  clearTimeout(timer);
}

function token(argv: string[]): number {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ttl: { type: 'string', default: '3600' } } });
  const user = positionals[0];
  if (!user) {
    console.error('usage: parley token <user> [--ttl seconds]');
    return 2;
  }
  const cfg = loadConfig();
  if (!cfg.jwt.secret) {
    console.error('parley token mints HS256 tokens and needs JWT_SECRET (or no JWT_PUBLIC_KEY, for the dev secret)');
    return 2;
  }
  const opts: Parameters<typeof mintToken>[0] = { secret: cfg.jwt.secret, user, ttlMs: Number(values.ttl) * 1000 };
  if (cfg.jwt.issuer) opts.issuer = cfg.jwt.issuer;
  if (cfg.jwt.audience) opts.audience = cfg.jwt.audience;
  console.log(mintToken(opts));
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: after a failed start-up, a half-open client (a reconnecting NATS connection) would keep the
  // process alive; service commands that succeed never resolve and stay up until a signal.
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
