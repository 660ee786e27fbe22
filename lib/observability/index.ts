export { createLogger } from './logger.js';
export { createMetrics } from './metrics.js';
export { startOpsServer } from './http.js';
export { metricsResponse, probeResponse } from './probes.js';
export type { Logger, LoggerOptions } from './logger.js';
export type { Metrics } from './metrics.js';
export type { OpsServer } from './http.js';
export type { OpsResponse, Readiness } from './probes.js';
