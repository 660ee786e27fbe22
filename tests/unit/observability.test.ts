// Observability pieces that are pure logic or a library in-process: the OTEL_* configuration, the consumer
// instrumentation (spans per message, parented to the publisher's traceparent, on a real SDK with an in-memory
// exporter), the configured samplers along a send's hops, the pino mixin (also inside a batch), bounded close-code
// labels, and the shipped Prometheus configuration against its generator.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { parse } from 'yaml';
import { sampler } from '../../cmd/tracing.js';
import { ConfigError, loadConfig } from '../../lib/config/index.js';
import {
  REDIS_PUBLISH_STEP, SpanKind, TRACING_OFF, createLogger, createMetrics, createTracing, instrumentBatch, mongoInsertStep, startBroadcast,
  startPublish, startReceive, startSpan, traceparentOf, withSpan,
} from '../../lib/observability/index.js';
import type { DeliveredMessage, Logger, Tracing } from '../../lib/observability/index.js';
import { COMPOSE_SCRAPE, prometheusConfig } from '../../lib/observability/prometheus.js';

const ROOT = (p: string): string => fileURLToPath(new URL(`../../../${p}`, import.meta.url));

describe('tracing configuration (the standard OTEL_* variables)', () => {
  it('is off by default and on once an OTLP endpoint is set', () => {
    assert.equal(loadConfig({}).tracing.enabled, false);
    const on = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
    assert.equal(on.tracing.enabled, true);
    assert.equal(on.tracing.tracesUrl, 'http://collector:4318/v1/traces');
    assert.equal(on.tracing.sampler, 'parentbased_always_on');
    const traces = loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' });
    assert.equal(traces.tracing.tracesUrl, 'http://c:4318/custom', 'the signal-specific endpoint is used as given');
    assert.equal(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).tracing.tracesUrl, 'http://localhost:4318/v1/traces');
    assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).tracing.enabled, false);
    assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing.enabled, false);
    const sampled = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' });
    assert.equal(sampled.tracing.sampler, 'parentbased_traceidratio');
    assert.equal(sampled.tracing.samplerRatio, 0.1);
  });

  it('names the variable of a bad value', () => {
    const bad: Array<[Record<string, string>, string]> = [
      [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
      [{ OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://c:4317' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
      [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
      [{ OTEL_SDK_DISABLED: 'maybe' }, 'OTEL_SDK_DISABLED'],
    ];
    for (const [env, variable] of bad) {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable, variable);
    }
  });
});

describe('spans on a real SDK (in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  before(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
  });
  after(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  const headersWith = (traceparent?: string): NonNullable<DeliveredMessage['headers']> => {
    const h = new Map<string, string>(traceparent === undefined ? [] : [['traceparent', traceparent]]);
    return { get: (k) => h.get(k) ?? '', set: (k, v) => { h.set(k, v); } };
  };
  /** A logger writing into `lines` (parsed), like the services' own. */
  const memoryLogger = (): { log: Logger; lines: Array<Record<string, unknown>> } => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } });
    return { log: createLogger({ name: 'unit', level: 'info' }, sink), lines };
  };

  it('a batch gives each message a process span under its publisher, and each step a child per message', async () => {
    exporter.reset();
    const tracing = createTracing();
    const metrics = createMetrics('unit');
    const producers = [startSpan(tracing, 'send x', SpanKind.PRODUCER, {}), startSpan(tracing, 'send y', SpanKind.PRODUCER, {})];
    const batch: DeliveredMessage[] = producers.map((p, i) => ({
      seq: i + 1, subject: `chat.message.created.r${i}`, redelivered: i === 1, headers: headersWith(traceparentOf(p)!),
    }));
    const forwarded: Array<string | undefined> = [];
    const handle = instrumentBatch({ tracing, metrics, consumer: 'c1', destinationTemplate: 'chat.message.created.{room}' }, async (b, t) => {
      await t.step(mongoInsertStep('db'), async () => undefined);
      await t.step(REDIS_PUBLISH_STEP, async (tp) => { forwarded.push(...b.map((m) => tp(m.seq)), tp(99)); });
    });
    await handle(batch);
    for (const p of producers) p.end();
    const spans = exporter.getFinishedSpans();
    const processes = spans.filter((s) => s.name === 'process chat.message.created.{room}');
    assert.equal(processes.length, 2);
    for (const [i, p] of processes.entries()) {
      assert.equal(p.parentSpanContext?.spanId, producers[i]!.spanContext().spanId, 'parented to the publisher');
      assert.equal(p.spanContext().traceId, producers[i]!.spanContext().traceId);
      assert.equal(p.kind, SpanKind.CONSUMER);
      assert.equal(p.attributes['messaging.consumer.group.name'], 'c1');
      for (const name of ['insert messages', 'send room.{room}']) {
        const child = spans.filter((s) => s.name === name && s.parentSpanContext?.spanId === p.spanContext().spanId);
        assert.equal(child.length, 1, `${name} under message ${i}`);
      }
    }
    const sends = spans.filter((s) => s.name === 'send room.{room}');
    assert.deepEqual(forwarded.slice(0, 2), sends.map((s) => `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`),
      'the payload of each message names its own Redis publish span');
    assert.equal(forwarded[2], undefined, 'no traceparent for a seq outside the batch');
    const text = await metrics.render();
    assert.match(text, /consumer_deliveries_total\{consumer="c1",service="unit"\} 2/);
    assert.match(text, /consumer_redeliveries_total\{consumer="c1",service="unit"\} 1/);
  });

  it('a failing step and attempt end their spans as errors, and the error reaches the consumer', async () => {
    exporter.reset();
    const tracing = createTracing();
    const batch: DeliveredMessage[] = [{ seq: 7, subject: 's', redelivered: false, headers: undefined }];
    const handle = instrumentBatch({ tracing, metrics: createMetrics('unit'), consumer: 'c', destinationTemplate: 't' }, async (_b, t) => {
      await t.step(mongoInsertStep('db'), () => Promise.reject(new Error('mongo down')));
    });
    await assert.rejects(handle(batch), /mongo down/);
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(spans.map((s) => [s.name, s.status.code]).sort(), [['insert messages', 2], ['process t', 2]]);
  });

  it('with tracing off nothing is traced and the handler still runs and counts', async () => {
    exporter.reset();
    const metrics = createMetrics('unit');
    let ran = 0;
    const handle = instrumentBatch({ tracing: TRACING_OFF, metrics, consumer: 'c', destinationTemplate: 't' }, async (_b, t) => {
      await t.step(REDIS_PUBLISH_STEP, async (tp) => { assert.equal(tp(1), undefined); ran++; });
    });
    await handle([{ seq: 1, subject: 's', redelivered: false }]);
    assert.equal(ran, 1);
    assert.equal(startReceive(TRACING_OFF, 'r', 'id'), undefined);
    assert.equal(exporter.getFinishedSpans().length, 0);
    assert.match(await metrics.render(), /consumer_deliveries_total\{consumer="c",service="unit"\} 1/);
  });

  it('log lines carry trace_id and span_id while a span is active, and not otherwise', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } });
    const log = createLogger({ name: 'unit', level: 'info' }, sink);
    const span = startReceive(createTracing(), 'room', 'id')!;
    withSpan(span, () => log.info('inside'));
    log.info('outside');
    span.end();
    const inside = lines.find((l) => l.msg === 'inside')!;
    assert.equal(inside.trace_id, span.spanContext().traceId);
    assert.equal(inside.span_id, span.spanContext().spanId);
    const outside = lines.find((l) => l.msg === 'outside')!;
    assert.equal(outside.trace_id, undefined);
    assert.equal(outside.span_id, undefined);
  });
  it('a log line inside a batch carries the trace of its message: throughout a batch of one, in trace.message for several', async () => {
    exporter.reset();
    const tracing = createTracing();
    const { log, lines } = memoryLogger();
    const producers = [1, 2, 3].map(() => startSpan(tracing, 'send x', SpanKind.PRODUCER, {}));
    const msg = (seq: number): DeliveredMessage => ({ seq, subject: 's', redelivered: false, headers: headersWith(traceparentOf(producers[seq - 1]!)) });
    const o = { tracing, metrics: createMetrics('unit'), consumer: 'c', destinationTemplate: 't' };
    // As chat's handler: a line in the handler, in a step, and in each deferred step (run later by the consumer).
    const one = instrumentBatch(o, async (_b, t) => {
      log.info('handler');
      await t.step(mongoInsertStep('db'), async () => { log.info('step'); });
      return {
        ordered: () => t.step(REDIS_PUBLISH_STEP, async () => { log.info('ordered'); }),
        unordered: async () => { log.info('unordered'); },
      };
    });
    const steps = await one([msg(1)]);
    await steps.ordered();
    await steps.unordered();
    // As notify's handler: a batch of two, one line per message and one for the batch.
    const two = instrumentBatch(o, async (b, t) => {
      log.info('batch of two');
      await t.step(mongoInsertStep('db'), () => Promise.all(b.map((m) => t.message(m.seq, async () => {
        await new Promise((r) => setImmediate(r));
        log.info({ seq: m.seq }, 'message');
      }))));
    });
    await two([msg(2), msg(3)]);
    log.info('after');
    for (const p of producers) p.end();

    const spans = exporter.getFinishedSpans();
    const processOf = (seq: number) => spans.find((s) => s.name === 'process t' && s.attributes['parley.seq'] === seq)!;
    const ids = (l: Record<string, unknown> | undefined) => [l?.trace_id, l?.span_id];
    const line = (msg: string, seq?: number) => lines.find((l) => l.msg === msg && (seq === undefined || l.seq === seq));
    const p1 = processOf(1).spanContext();
    assert.equal(p1.traceId, producers[0]!.spanContext().traceId, 'the message keeps its publisher\'s trace');
    for (const m of ['handler', 'unordered']) assert.deepEqual(ids(line(m)), [p1.traceId, p1.spanId], `${m}: the message's process span`);
    for (const [m, step] of [['step', 'insert messages'], ['ordered', 'send room.{room}']] as const) {
      const s = spans.find((x) => x.name === step && x.parentSpanContext?.spanId === p1.spanId)!.spanContext();
      assert.deepEqual(ids(line(m)), [p1.traceId, s.spanId], `${m}: the message's ${step} span`);
    }
    for (const seq of [2, 3]) {
      const p = processOf(seq).spanContext();
      assert.deepEqual(ids(line('message', seq)), [p.traceId, p.spanId], `message ${seq}: its own trace`);
    }
    assert.deepEqual(ids(line('batch of two')), [undefined, undefined], 'a line of a batch of several names no one message');
    assert.deepEqual(ids(line('after')), [undefined, undefined]);
  });

  describe('sampling (cmd/tracing.ts sampler from OTEL_TRACES_SAMPLER/_ARG) along a send\'s hops', () => {
    const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-(0[01])$/;
    /**
     * One message through every helper of its path, each hop deciding with the configured sampler: the gateway's
     * receive and JetStream publish (or `incoming`, a traceparent another publisher put in the NATS headers), the
     * consumer's process span and Redis publish step, a gateway's broadcast from the bus payload's traceparent.
     */
    const send = async (env: Record<string, string>, incoming?: string) => {
      const exported = new InMemorySpanExporter();
      const cfg = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', ...env }).tracing;
      const provider = new TracerProvider({ sampler: sampler(cfg), spanProcessors: [new SimpleSpanProcessor({ exporter: exported })] });
      const tracing: Tracing = { enabled: true, tracer: provider.getTracer('parley') };
      const headers = headersWith(incoming);
      if (incoming === undefined) {
        const receive = startReceive(tracing, 'r', 'm-1');
        startPublish(tracing, receive, 'chat.message.created.r', 'chat.message.created.{room}', 'm-1', 5, headers)?.end();
        receive?.end();
      }
      let bus: string | undefined;
      const handle = instrumentBatch({ tracing, metrics: createMetrics('unit'), consumer: 'chat', destinationTemplate: 'chat.message.created.{room}' },
        async (_b, t) => { await t.step(REDIS_PUBLISH_STEP, async (tp) => { bus = tp(1); }); });
      await handle([{ seq: 1, subject: 'chat.message.created.r', redelivered: false, headers }]);
      startBroadcast(tracing, bus, 'r', 1, 'gw')?.end();
      await provider.forceFlush();
      const spans = exported.getFinishedSpans().map((s) => s.name).sort();
      await provider.shutdown();
      return { spans, nats: TRACEPARENT.exec(headers.get('traceparent')), bus: TRACEPARENT.exec(bus ?? '') };
    };
    const all = ['process chat.message.created.{room}', 'process room.{room}', 'receive send', 'send chat.message.created.{room}', 'send room.{room}'];

    it('ratio 1 exports every hop of the send (the control)', async () => {
      const r = await send({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' });
      assert.deepEqual(r.spans, all);
      assert.equal(r.nats?.[2], '01');
      assert.equal(r.bus?.[1], r.nats?.[1]);
    });

    it('ratio 0 and always_off export no span for a send, and the unsampled decision travels with it (flags 00)', async () => {
      for (const env of [
        { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' } as Record<string, string>,
        { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' },
        { OTEL_TRACES_SAMPLER: 'always_off' },
      ]) {
        const r = await send(env);
        assert.deepEqual(r.spans, [], JSON.stringify(env));
        if (env.OTEL_TRACES_SAMPLER === 'parentbased_traceidratio') {
          assert.equal(r.nats?.[2], '00', 'the NATS headers carry the unsampled traceparent');
          assert.deepEqual([r.bus?.[1], r.bus?.[2]], [r.nats?.[1], '00'], 'so does the bus payload, in the same trace');
        }
      }
    });

    it('parentbased keeps an unsampled incoming traceparent unsampled downstream, however high its ratio', async () => {
      const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
      const unsampled = await send({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, `00-${trace}-00f067aa0ba902b7-00`);
      assert.deepEqual(unsampled.spans, [], 'no hop starts a trace of its own');
      assert.deepEqual([unsampled.bus?.[1], unsampled.bus?.[2]], [trace, '00'], 'the bus payload carries the unsampled decision on');
      const sampled = await send({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, `00-${trace}-00f067aa0ba902b7-01`);
      assert.deepEqual(sampled.spans, ['process chat.message.created.{room}', 'process room.{room}', 'send room.{room}'],
        'and a sampled one sampled, whatever its root sampler');
      assert.deepEqual([sampled.bus?.[1], sampled.bus?.[2]], [trace, '01']);
    });
  });
});

describe('metrics', () => {
  it('every series carries service and instance; close codes are a bounded label', async () => {
    const m = createMetrics('gateway', { instance: 'gw-a' });
    m.observeClose(4009);
    m.observeClose(4999);
    m.observeClose(3000);
    const text = await m.render();
    assert.match(text, /connections_closed_total\{code="4009",service="gateway",instance="gw-a"\} 1/);
    assert.match(text, /connections_closed_total\{code="other",service="gateway",instance="gw-a"\} 2/);
    assert.match(text, /nodejs_eventloop_lag_p99_seconds\{service="gateway",instance="gw-a"\}/);
    await m.timeMongoWrite(async () => undefined);
    assert.match(await createMetrics('x', { renderCacheMs: 0 }).render(), /nodejs_gc_duration_seconds/);
  });

  it('deploy/prometheus/prometheus.yml is what the generator makes, and scrapes every compose service', async () => {
    const shipped = await readFile(ROOT('deploy/prometheus/prometheus.yml'), 'utf8');
    assert.equal(shipped, prometheusConfig(COMPOSE_SCRAPE),
      'regenerate: node -e "import(\'./dist/lib/observability/prometheus.js\').then(m => process.stdout.write(m.prometheusConfig(m.COMPOSE_SCRAPE)))" > deploy/prometheus/prometheus.yml');
    // Every service of compose.yaml that runs Parley (its image; each serves /metrics on the ops port 9464) is a
    // target of the job named after its command, and nothing else is.
    const compose = parse(await readFile(ROOT('compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, { image?: string; command?: string[] }>;
    };
    const parley = Object.entries(compose.services).filter(([, s]) => s.image === 'parley:dev')
      .map(([name, s]) => `${s.command?.[0]} ${name}:9464`).sort();
    assert.ok(parley.length >= 5, `compose.yaml's Parley services: ${parley.join(', ')}`);
    const scraped = Object.entries(COMPOSE_SCRAPE.targets).flatMap(([job, targets]) => targets.map((t) => `${job} ${t}`)).sort();
    assert.deepEqual(scraped, parley, 'every Parley service of compose.yaml is scraped, by the job of its command');
  });
});
