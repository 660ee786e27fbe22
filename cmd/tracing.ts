// The OpenTelemetry SDK, set up once per process from cfg.tracing (the standard OTEL_* variables): a tracer provider
// with the configured sampler, a batch processor exporting OTLP/HTTP, the W3C trace-context propagator and an
// AsyncLocalStorage context manager. lib/ sees only @opentelemetry/api through the Tracing handle returned here.
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { Sampler } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../lib/config/index.js';
import { TRACING_OFF, createTracing } from '../lib/observability/index.js';
import type { Logger, Tracing } from '../lib/observability/index.js';

export interface TracingHandle {
  tracing: Tracing;
  /** Exports what is still buffered, then stops. */
  close(): Promise<void>;
}

const VERSION = '0.1.0';

/** The sampler cfg names (OTEL_TRACES_SAMPLER/_ARG); exported for the unit test that runs a send through it. */
export function sampler(cfg: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(cfg.samplerRatio);
  switch (cfg.sampler) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return ratio;
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: ratio });
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

export function startTracing(cfg: TracingConfig, service: string, instance: string, log: Logger): TracingHandle {
  if (!cfg.enabled) return { tracing: TRACING_OFF, close: async () => undefined };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const provider = new TracerProvider({
    sampler: sampler(cfg),
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: cfg.serviceName ?? `parley-${service}`,
      [ATTR_SERVICE_VERSION]: VERSION,
      'service.instance.id': instance,
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: cfg.tracesUrl }), scheduledDelayMillis: cfg.scheduleDelayMs })],
  });
  trace.setGlobalTracerProvider(provider);
  log.info({ url: cfg.tracesUrl, sampler: cfg.sampler, ratio: cfg.samplerRatio }, 'tracing on (OTLP/HTTP)');
  return {
    tracing: createTracing(VERSION),
    async close() {
      await provider.shutdown().catch((err: unknown) => log.warn({ err }, 'span export at shutdown failed'));
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
