// Tracing helpers on @opentelemetry/api only (the SDK and exporter are wired in cmd/tracing.ts). One trace per message:
//   gateway `receive send` (SERVER) -> `send <subject template>` (PRODUCER, traceparent in the NATS headers)
//   -> chat `process <subject template>` (CONSUMER) -> `insert messages` (CLIENT) and `send room.{room}` (PRODUCER,
//   traceparent in the bus payload) -> each gateway's `process room.{room}` (CONSUMER, the broadcast).
// Span names and attributes follow the OpenTelemetry messaging and database semantic conventions. With tracing off
// (`enabled` false) every helper returns at its first line: the hot path pays a branch, no allocation.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span, TextMapGetter, TextMapSetter, Tracer } from '@opentelemetry/api';

export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
}

/** Tracing off: no span is ever started. */
export const TRACING_OFF: Tracing = Object.freeze({ enabled: false, tracer: trace.getTracer('parley') });

/** Tracing through whatever provider is registered globally with @opentelemetry/api (cmd/tracing.ts). */
export function createTracing(version?: string): Tracing {
  return { enabled: true, tracer: trace.getTracer('parley', version) };
}

/** Semantic-convention attribute names used here (the incubating ones are not exported stably by the package). */
export const ATTR = {
  messagingSystem: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  destinationTemplate: 'messaging.destination.template',
  consumerGroup: 'messaging.consumer.group.name',
  messageId: 'messaging.message.id',
  bodySize: 'messaging.message.body.size',
  batchCount: 'messaging.batch.message_count',
  dbSystem: 'db.system.name',
  dbNamespace: 'db.namespace',
  dbCollection: 'db.collection.name',
  dbOperation: 'db.operation.name',
  room: 'parley.room',
  seq: 'parley.seq',
  duplicate: 'parley.duplicate',
  redelivered: 'parley.redelivered',
  gateway: 'parley.gateway.id',
} as const;

/** Any carrier with get/set of string headers (nats.js MsgHdrs). */
interface HeaderCarrier {
  get(k: string): string;
  set(k: string, v: string): void;
}
const headerGetter: TextMapGetter<HeaderCarrier> = {
  keys: () => [],
  get: (c, k) => c.get(k) || undefined,
};
const headerSetter: TextMapSetter<HeaderCarrier> = { set: (c, k, v) => c.set(k, v) };
const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => c[k],
};

/** The context a W3C `traceparent` names (ROOT_CONTEXT when it names none or is malformed). */
export function contextFrom(traceparent: string | undefined): Context {
  if (traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent }, recordGetter);
}

/** The context carried in message headers (NATS), or ROOT_CONTEXT. */
export function contextFromHeaders(h: HeaderCarrier | undefined): Context {
  return h === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, h, headerGetter);
}

/** Writes the span's context into message headers (NATS) as `traceparent`. */
export function injectHeaders(span: Span, h: HeaderCarrier): void {
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), h, headerSetter);
}

/** The span's context as a W3C `traceparent` string (for the bus payload). */
export function traceparentOf(span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => { c[k] = v; } });
  return carrier.traceparent;
}

/** Starts a span as a child of `parent` (a span, a context, or none: a new trace). */
export function startSpan(t: Tracing, name: string, kind: SpanKind, attributes: Attributes, parent?: Span | Context): Span {
  const ctx = parent === undefined ? ROOT_CONTEXT : isSpan(parent) ? trace.setSpan(ROOT_CONTEXT, parent) : parent;
  return t.tracer.startSpan(name, { kind, attributes }, ctx);
}

/** Ends a span (if any), as failed when `err` is given. */
export function endSpan(span: Span | undefined, err?: unknown, attributes?: Attributes): void {
  if (span === undefined) return;
  if (attributes) span.setAttributes(attributes);
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/** Runs `fn` with `span` active (log lines written meanwhile carry its ids); just `fn()` without a span. */
export function withSpan<T>(span: Span | undefined, fn: () => T): T {
  return span === undefined ? fn() : context.with(trace.setSpan(context.active(), span), fn);
}

/** Runs `fn` in a child span of `parent` that ends with fn's outcome; no span when `parent` is undefined. */
export async function inSpan<T>(t: Tracing, parent: Span | undefined, name: string, kind: SpanKind, attributes: Attributes,
  fn: () => Promise<T>): Promise<T> {
  if (parent === undefined) return fn();
  const span = startSpan(t, name, kind, attributes, parent);
  try {
    const result = await context.with(trace.setSpan(ROOT_CONTEXT, span), fn);
    span.end();
    return result;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}

// The hops of the message path, named once here so that every service (and notify later) names them alike.

/** Gateway: a client's `send` frame arrived (the root of the message's trace). */
export function startReceive(t: Tracing, room: string, id: string): Span | undefined {
  if (!t.enabled) return undefined;
  return startSpan(t, 'receive send', SpanKind.SERVER, { [ATTR.room]: room, [ATTR.messageId]: id });
}

/**
 * A publish to JetStream (PRODUCER, child of `parent`); its context goes into `headers` as `traceparent`, so the
 * consumers' `process` spans hang from it. Undefined without a parent (tracing off).
 */
export function startPublish(t: Tracing, parent: Span | undefined, subject: string, template: string, msgId: string,
  bytes: number, headers: HeaderCarrier): Span | undefined {
  if (parent === undefined) return undefined;
  const span = startSpan(t, `send ${template}`, SpanKind.PRODUCER, {
    [ATTR.messagingSystem]: 'nats', [ATTR.operationType]: 'send', [ATTR.operationName]: 'publish',
    [ATTR.destination]: subject, [ATTR.destinationTemplate]: template, [ATTR.messageId]: msgId, [ATTR.bodySize]: bytes,
  }, parent);
  injectHeaders(span, headers);
  return span;
}

/** Gateway: a broadcast from the bus delivered to local members (CONSUMER, child of the payload's traceparent). */
export function startBroadcast(t: Tracing, traceparent: string | undefined, room: string, seq: number, gateway: string): Span | undefined {
  if (!t.enabled || traceparent === undefined) return undefined;
  return startSpan(t, 'process room.{room}', SpanKind.CONSUMER, {
    [ATTR.messagingSystem]: 'redis', [ATTR.operationType]: 'process', [ATTR.operationName]: 'broadcast',
    [ATTR.destinationTemplate]: 'room.{room}', [ATTR.room]: room, [ATTR.seq]: seq, [ATTR.gateway]: gateway,
  }, contextFrom(traceparent));
}

/** Attributes of chat's Redis publish step (PRODUCER) and of its MongoDB insert step (CLIENT). */
export const REDIS_PUBLISH_STEP = {
  name: 'send room.{room}',
  kind: SpanKind.PRODUCER,
  attributes: { [ATTR.messagingSystem]: 'redis', [ATTR.operationType]: 'send', [ATTR.operationName]: 'publish', [ATTR.destinationTemplate]: 'room.{room}' },
} as const;

/** Notify's step: the sinks' sends of a batch's notifications (CLIENT: a webhook, an SMTP server, a log). */
export const NOTIFY_SEND_STEP = {
  name: 'notify',
  kind: SpanKind.CLIENT,
  attributes: { [ATTR.operationName]: 'notify' },
} as const;

export function mongoInsertStep(db: string, collection = 'messages'): { name: string; kind: SpanKind; attributes: Attributes } {
  return {
    name: `insert ${collection}`,
    kind: SpanKind.CLIENT,
    attributes: { [ATTR.dbSystem]: 'mongodb', [ATTR.dbNamespace]: db, [ATTR.dbCollection]: collection, [ATTR.dbOperation]: 'insert' },
  };
}

function isSpan(x: Span | Context): x is Span {
  return typeof (x as Span).spanContext === 'function';
}

/** The ids a log line carries while a span is active (pino mixin); empty otherwise. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const sc = span.spanContext();
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

export { SpanKind };
export type { Span };
