// The e2e harness: servers per suite, waiting on conditions, unique names.
export { dockerAvailable } from './docker.js';
export { provideMongo, provideNats, provideRedis } from './services.js';
export { uniqueName, until } from './wait.js';

export type { ProvideOptions, ServiceHandle, ServiceSource } from './services.js';
export type { UntilOptions } from './wait.js';
