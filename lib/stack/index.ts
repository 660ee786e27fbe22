// Public surface of the native local stack: cached server binaries, managed server processes, `parley stack`.
export { StackError } from './errors.js';
export { ensureFerretdb, ensureK6, ensureMailpit, ensureNatsServer, ensureRedis } from './install.js';
export { launchMailpit } from './mailpit.js';
export { freePort } from './process.js';
export { answers, probeMongo, probeNats, probeRedis } from './probe.js';
export { launchFerretdb, launchNats, launchRedis, startStack } from './services.js';
export { FERRETDB_VERSION, K6_VERSION, MAILPIT_VERSION, NATS_SERVER_VERSION, stackSettings } from './settings.js';
export { readStackEnv, stackCommand } from './cli.js';

export type { StackErrorCode } from './errors.js';
export type { ManagedService, ServiceName } from './process.js';
export type { Mailpit, MailpitOptions } from './mailpit.js';
export type { ProbeKind } from './probe.js';
export type {
  FerretdbOptions, NatsOptions, RedisOptions, Stack, StackEnv, StartStackOptions,
} from './services.js';
export type { StackSettings } from './settings.js';
