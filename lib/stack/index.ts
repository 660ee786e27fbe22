// Public surface of the native local stack: cached server binaries, managed server processes, `parley stack`.
export { StackError } from './errors.js';
export { ensureFerretdb, ensureJaeger, ensureK6, ensureNatsServer, ensurePrometheus, ensureRedis } from './install.js';
export { freePort } from './process.js';
export { answers, probeMongo, probeNats, probeRedis } from './probe.js';
export { launchFerretdb, launchNats, launchRedis, startStack } from './services.js';
export { FERRETDB_VERSION, JAEGER_VERSION, K6_VERSION, NATS_SERVER_VERSION, stackSettings } from './settings.js';
export { readStackEnv, stackCommand } from './cli.js';

export type { StackErrorCode } from './errors.js';
export type { ManagedService, ServiceName } from './process.js';
export type { ProbeKind } from './probe.js';
export type {
  FerretdbOptions, NatsOptions, RedisOptions, Stack, StackEnv, StartStackOptions,
} from './services.js';
export type { StackSettings } from './settings.js';
