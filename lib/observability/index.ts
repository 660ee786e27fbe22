export { createLogger } from './logger.js';
export { createMetrics } from './metrics.js';
export { startOpsServer } from './http.js';
export { metricsResponse, probeResponse } from './probes.js';
export {
  ATTR, SpanKind, TRACING_OFF, activeTraceIds, contextFrom, contextFromHeaders, createTracing, endSpan, inSpan, injectHeaders,
  NOTIFY_SEND_STEP, REDIS_PUBLISH_STEP, mongoInsertStep, startBroadcast, startPublish, startReceive, startSpan, traceparentOf, withSpan,
} from './tracing.js';
export { instrumentBatch } from './consumer.js';
export type { Logger, LoggerOptions } from './logger.js';
export type { Metrics } from './metrics.js';
export type { OpsServer } from './http.js';
export type { OpsResponse, Readiness } from './probes.js';
export type { Span, Tracing } from './tracing.js';
export type { BatchTrace, ConsumerInstrumentation, DeliveredMessage, Step, TraceparentOf } from './consumer.js';
