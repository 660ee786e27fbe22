// Instruments a JetStream batch handler (chat, notify): counts deliveries and redeliveries per consumer, and, with
// tracing on, gives every message of a batch attempt its own `process` span, parented to the context its publisher
// put in the NATS headers, so each message keeps one trace however it was batched. The handler wraps its steps
// (a database write, a publish) in `trace.step`, which opens one child span per message around the shared work.
// Log lines carry the trace's ids (the pino mixin reads the active span): a batch of one message runs its handler
// and steps with that message's span active; in a larger batch, what concerns one message runs in `trace.message`.
import type { Attributes, Span } from '@opentelemetry/api';
import type { Metrics } from './metrics.js';
import { ATTR, SpanKind, contextFromHeaders, endSpan, startSpan, traceparentOf, withSpan } from './tracing.js';
import type { Tracing } from './tracing.js';

/** What is read of a delivered message (a JsMsg fits). */
export interface DeliveredMessage {
  seq: number;
  subject: string;
  redelivered: boolean;
  headers?: { get(k: string): string; set(k: string, v: string): void } | undefined;
}

/** The W3C traceparent of message `seq` for the next hop; undefined with tracing off or for a seq not in the batch. */
export type TraceparentOf = (seq: number) => string | undefined;

export interface BatchTrace {
  /**
   * Runs `fn` once for the batch, inside one child span of each traced message's `process` span (steps may run
   * concurrently). `fn` gets the traceparent of each message's span of this step (e.g. the Redis publish), for the
   * payload it sends on.
   */
  step<T>(s: Step, fn: (traceparent: TraceparentOf) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` with message `seq`'s `process` span active, so that the log lines it writes carry that message's
   * `trace_id` and `span_id` (a batch of one message has its span active throughout); just `fn()` untraced.
   */
  message<T>(seq: number, fn: () => T): T;
}

/** A step's span: name, kind and attributes (tracing.ts has those of the message path). */
export interface Step {
  name: string;
  kind: SpanKind;
  attributes: Attributes;
}

export interface ConsumerInstrumentation {
  tracing: Tracing;
  metrics: Metrics;
  /** The durable consumer's name (a metric label: a handful per deployment). */
  consumer: string;
  /** The subject template, for span names (`process chat.message.created.{room}`): low cardinality. */
  destinationTemplate: string;
}

const NO_TRACEPARENT: TraceparentOf = () => undefined;
const UNTRACED: BatchTrace = Object.freeze({
  step: <T>(_s: Step, fn: (traceparent: TraceparentOf) => Promise<T>): Promise<T> => fn(NO_TRACEPARENT),
  message: <T>(_seq: number, fn: () => T): T => fn(),
});

/**
 * A handler may leave its work to two steps that the consumer runs later (chat: the ordered broadcast and the
 * concurrent store, lib/eventlog BatchSteps); the batch's spans then end when both have run once.
 */
export interface DeferredSteps {
  ordered(): Promise<void>;
  unordered(): Promise<void>;
}

export function instrumentBatch<M extends DeliveredMessage, R extends DeferredSteps | void>(
  o: ConsumerInstrumentation,
  handle: (batch: M[], trace: BatchTrace) => Promise<R>,
): (batch: M[]) => Promise<R> {
  const { metrics, consumer } = o;
  const labels = { consumer };
  // Exported from the start (at 0), so that a rate over them exists before the first redelivery.
  metrics.consumerDeliveries.inc(labels, 0);
  metrics.consumerRedeliveries.inc(labels, 0);
  const count = (batch: M[]): void => {
    let redelivered = 0;
    for (const m of batch) if (m.redelivered) redelivered++;
    metrics.consumerDeliveries.inc(labels, batch.length);
    if (redelivered > 0) metrics.consumerRedeliveries.inc(labels, redelivered);
  };
  if (!o.tracing.enabled) {
    return (batch) => {
      count(batch);
      return handle(batch, UNTRACED);
    };
  }
  const name = `process ${o.destinationTemplate}`;
  return async (batch) => {
    count(batch);
    const bySeq = new Map<number, Span>();
    for (const m of batch) {
      if (bySeq.has(m.seq)) continue;
      const process = startSpan(o.tracing, name, SpanKind.CONSUMER, {
        [ATTR.messagingSystem]: 'nats', [ATTR.operationType]: 'process', [ATTR.operationName]: 'process',
        [ATTR.destination]: m.subject, [ATTR.destinationTemplate]: o.destinationTemplate, [ATTR.consumerGroup]: consumer,
        [ATTR.seq]: m.seq, [ATTR.redelivered]: m.redelivered, [ATTR.batchCount]: batch.length,
      }, contextFromHeaders(m.headers));
      bySeq.set(m.seq, process);
    }
    // The span a batch-wide log line belongs to: only when the batch is one message (which of several would it be?).
    const onlySeq = bySeq.size === 1 ? bySeq.keys().next().value : undefined;
    const only = onlySeq === undefined ? undefined : bySeq.get(onlySeq);
    const trace: BatchTrace = {
      async step(s, fn) {
        // An unsampled message gets no step span: its traceparent (not sampled) is its process span's.
        const steps = new Map<number, Span>();
        for (const [seq, process] of bySeq) {
          steps.set(seq, process.isRecording() ? startSpan(o.tracing, s.name, s.kind, s.attributes, process) : process);
        }
        const traceparent: TraceparentOf = (seq) => {
          const span = steps.get(seq);
          return span === undefined ? undefined : traceparentOf(span);
        };
        let failed: unknown;
        try {
          return await withSpan(onlySeq === undefined ? undefined : steps.get(onlySeq), () => fn(traceparent));
        } catch (err) {
          failed = err ?? new Error('failed');
          throw err;
        } finally {
          for (const [seq, span] of steps) if (span !== bySeq.get(seq)) endSpan(span, failed);
        }
      },
      message: (seq, fn) => withSpan(bySeq.get(seq), fn),
    };
    let result: R;
    try {
      result = await withSpan(only, () => handle(batch, trace));
    } catch (err) {
      for (const span of bySeq.values()) endSpan(span, err);
      throw err;
    }
    if (!result) {
      for (const span of bySeq.values()) endSpan(span);
      return result;
    }
    // Each step settles the spans once (its first run; a retry is not traced again); the last of the two ends them.
    let open = 2;
    let failed: unknown;
    const settle = (err: unknown): void => {
      failed ??= err;
      if (--open === 0) for (const span of bySeq.values()) endSpan(span, failed);
    };
    const traced = (fn: () => Promise<void>): (() => Promise<void>) => {
      let settled = false;
      return async () => {
        try {
          await withSpan(only, fn);
          if (!settled) settle(undefined);
        } catch (err) {
          if (!settled) settle(err ?? new Error('failed'));
          throw err;
        } finally {
          settled = true;
        }
      };
    };
    const steps = result as DeferredSteps;
    return Object.assign(result, { ordered: traced(steps.ordered), unordered: traced(steps.unordered) });
  };
}
