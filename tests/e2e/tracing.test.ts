// One trace per message, end to end, in a real Jaeger: two gateways and a chat service as separate processes export
// OTLP/HTTP; one sent message must give one trace whose spans cover every hop (gateway receive, JetStream publish,
// chat process, MongoDB insert, Redis publish, each gateway's broadcast), correctly parented across the processes,
// with the W3C traceparent in the NATS headers and in the bus payload.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from 'redis';
import { redisKeys } from '../../lib/redis/index.js';
import { until } from '../harness/index.js';
import { startJaeger } from '../harness/observability.js';
import type { Jaeger } from '../harness/observability.js';
import type { ParleyProcess } from '../harness/parley.js';
import { Suite } from '../harness/suite.js';

interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; traceID: string; spanID: string }>;
  processID: string;
  tags: Array<{ key: string; value: unknown }>;
}
interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: Array<{ key: string; value: unknown }> }>;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

describe('tracing: one trace per message across every hop, in Jaeger', () => {
  let jaeger: Jaeger;
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;

  before(async () => {
    jaeger = await startJaeger();
    suite = await Suite.open('tracing', {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpUrl,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '1',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
    });
    await Promise.all([suite.start('chat'), suite.start('notify')]);
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(async () => {
    await suite?.close();
    await jaeger?.close();
  });

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${jaeger.url}${path}`);
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return ((await res.json()) as { data: T }).data;
  };
  const tag = (s: { tags: Array<{ key: string; value: unknown }> }, key: string): unknown => s.tags.find((t) => t.key === key)?.value;

  it('a sent message is one trace: receive -> JetStream send -> chat process -> insert + Redis send -> both gateways broadcast', async () => {
    const room = 'traced';
    const sender = await suite.connect(gw1, 'ann');
    const near = await suite.connect(gw1, 'ben');
    const far = await suite.connect(gw2, 'cat');
    for (const c of [sender, near, far]) assert.equal((await c.join(room)).type, 'joined');

    // The bus payload, as chat publishes it to the room's channel.
    const redis = createClient({ url: suite.redis.url });
    await redis.connect();
    const payloads: string[] = [];
    await redis.subscribe(redisKeys(suite.env.PARLEY_REDIS_PREFIX!).roomChannel(room), (p) => payloads.push(p));
    try {
      const ack = await sender.sendMessage(room, 'm-1', 'hello traces');
      assert.equal(ack.type, 'ack');
      for (const c of [near, far]) await c.waitFor((f) => f.type === 'message' && f.seq === ack.seq);
      await until(() => payloads.length > 0, { message: 'the broadcast on the bus' });
      const bus = JSON.parse(payloads[0]!) as { traceparent?: string; seq: number };
      assert.equal(bus.seq, ack.seq);
      assert.match(bus.traceparent ?? '', TRACEPARENT, 'the bus payload carries a sampled W3C traceparent');

      // The stored event's NATS headers carry the traceparent of the JetStream publish.
      const nc = await connect({ servers: suite.nats.url });
      let header: string | undefined;
      try {
        const jsm = await jetstreamManager(nc);
        const stored = await jsm.streams.getMessage(suite.env.PARLEY_STREAM!, { seq: ack.seq as number });
        header = stored?.header.get('traceparent');
      } finally {
        await nc.close();
      }
      const [, traceId, publishSpanId] = TRACEPARENT.exec(header ?? '') ?? [];
      assert.ok(traceId, `NATS header traceparent: ${header}`);
      assert.equal(TRACEPARENT.exec(bus.traceparent!)![1], traceId, 'the bus payload continues the same trace');

      // One trace holds every hop (spans arrive in batches from four processes: wait until all are there).
      const expected = 9;
      let t: JaegerTrace | undefined;
      await until(async () => {
        const found = await api<JaegerTrace[]>(`/api/traces/${traceId}`).catch(() => []);
        t = found[0];
        return (t?.spans.length ?? 0) >= expected;
      }, { timeout: 30_000, interval: 250, message: `trace ${traceId} with ${expected} spans in Jaeger` });
      const trace = t!;
      const searched = await api<JaegerTrace[]>(
        `/api/traces?service=parley-gateway&tags=${encodeURIComponent(JSON.stringify({ 'messaging.message.id': 'm-1' }))}&limit=20`);
      assert.deepEqual(searched.map((x) => x.traceID), [traceId], 'exactly one trace for the message');

      const service = (s: JaegerSpan): string => trace.processes[s.processID]!.serviceName;
      const instance = (s: JaegerSpan): unknown => tag(trace.processes[s.processID]!, 'service.instance.id');
      const parentOf = (s: JaegerSpan): JaegerSpan | undefined => {
        const ref = s.references.find((r) => r.refType === 'CHILD_OF');
        return ref ? trace.spans.find((x) => x.spanID === ref.spanID) : undefined;
      };
      const one = (name: string, svc: string): JaegerSpan => {
        const all = trace.spans.filter((s) => s.operationName === name && service(s) === svc);
        assert.equal(all.length, 1, `one ${name} span in ${svc}; spans: ${trace.spans.map((s) => `${service(s)}:${s.operationName}`).join(', ')}`);
        return all[0]!;
      };
      assert.equal(trace.spans.length, expected, trace.spans.map((s) => `${service(s)}:${s.operationName}`).join(', '));
      const subject = `${suite.env.PARLEY_SUBJECT_ROOT}.message.created.{room}`;

      const receive = one('receive send', 'parley-gateway');
      assert.equal(parentOf(receive), undefined, 'the gateway receive is the root');
      assert.equal(receive.references.length, 0);
      assert.equal(tag(receive, 'span.kind'), 'server');

      const publish = one(`send ${subject}`, 'parley-gateway');
      assert.equal(parentOf(publish), receive);
      assert.equal(publish.spanID, publishSpanId, 'the NATS header names the JetStream publish span');
      assert.equal(tag(publish, 'span.kind'), 'producer');
      assert.equal(tag(publish, 'messaging.system'), 'nats');
      assert.equal(tag(publish, 'messaging.destination.name'), `${suite.env.PARLEY_SUBJECT_ROOT}.message.created.${room}`);
      assert.equal(instance(publish), instance(receive));

      const processed = one(`process ${subject}`, 'parley-chat');
      assert.equal(parentOf(processed), publish, 'chat continues the trace from the NATS headers');
      assert.equal(tag(processed, 'span.kind'), 'consumer');
      assert.equal(tag(processed, 'messaging.operation.type'), 'process');

      const insert = one('insert messages', 'parley-chat');
      assert.equal(parentOf(insert), processed);
      assert.equal(tag(insert, 'span.kind'), 'client');
      assert.equal(tag(insert, 'db.system.name'), 'mongodb');

      const redisSend = one('send room.{room}', 'parley-chat');
      assert.equal(parentOf(redisSend), processed);
      assert.equal(tag(redisSend, 'span.kind'), 'producer');
      assert.equal(TRACEPARENT.exec(bus.traceparent!)![2], redisSend.spanID, 'the bus payload names the Redis publish span');

      const broadcasts = trace.spans.filter((s) => s.operationName === 'process room.{room}');
      assert.equal(broadcasts.length, 2, 'one broadcast span per gateway with members');
      for (const b of broadcasts) {
        assert.equal(service(b), 'parley-gateway');
        assert.equal(parentOf(b), redisSend, 'each gateway continues the trace from the bus payload');
        assert.equal(tag(b, 'span.kind'), 'consumer');
      }
      assert.equal(new Set(broadcasts.map(instance)).size, 2, 'the broadcasts come from two gateway processes');
      assert.ok(broadcasts.some((b) => instance(b) === instance(receive)) && broadcasts.some((b) => instance(b) !== instance(receive)));
      // The second consumer of the stream continues the same trace: its process span from the NATS headers, and
      // the step that runs the batch's sends under it.
      const notified = one(`process ${subject}`, 'parley-notify');
      assert.equal(parentOf(notified), publish, 'notify continues the trace from the NATS headers');
      assert.equal(tag(notified, 'span.kind'), 'consumer');
      assert.equal(parentOf(one('notify', 'parley-notify')), notified);
      for (const s of trace.spans) assert.equal(s.traceID, traceId);
    } finally {
      await redis.quit();
    }
  });
});
