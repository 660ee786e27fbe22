// Public surface of the native local stack: cached server binaries, managed server processes, `parley stack`.
export { StackError } from './errors.js';
export { ensureFerretdb, ensureJaeger, ensureK6, ensureKustomize, ensureMailpit, ensureNatsServer, ensurePrometheus, ensureRedis } from './install.js';
export { launchMailpit } from './mailpit.js';
export { freePort } from './process.js';
export { childrenOf } from './util.js';
export { answers, probeMongo, probeNats, probeRedis } from './probe.js';
export { launchFerretdb, launchNats, launchRedis, startStack } from './services.js';
export { ensurePostgres, holdsSqliteOnly, launchPostgres, resolveMongoBackend } from './postgres.js';
export {
  DEFAULT_MONGO_BACKEND, FERRETDB_VERSION, JAEGER_VERSION, K6_VERSION, KUSTOMIZE_VERSION, MAILPIT_VERSION, MONGO_BACKENDS, NATS_SERVER_VERSION, parseMongoBackend, stackSettings,
} from './settings.js';
export { readStackEnv, stackCommand } from './cli.js';

export type { StackErrorCode } from './errors.js';
export type { ManagedService, ServiceName } from './process.js';
export type { Mailpit, MailpitOptions } from './mailpit.js';
export type { ProbeKind } from './probe.js';
export type {
  FerretdbOptions, FerretdbService, NatsOptions, RedisOptions, Stack, StackEnv, StartStackOptions,
} from './services.js';
export type { PostgresOptions } from './postgres.js';
export type { MongoBackend, StackSettings } from './settings.js';
