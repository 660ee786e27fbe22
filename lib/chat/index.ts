// The chat service: consume CHAT, store each message once (keyed by its namespaced id), publish the stored message
// to its room's Redis channel, and only then ack JetStream. A crash anywhere before the ack means a redelivery,
// which the store turns into "already stored, broadcast again"; gateways drop the repeated seq. A batch whose insert
// fails in any way is not stored: nothing of it is broadcast or acked, and the consumer retries it.
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Config } from '../config/index.js';
import { encodeMessage } from '../fanout/index.js';
import type { FanoutPublisher } from '../fanout/index.js';
import { createdTemplate, createdWildcard, decodeEvent, ensureDurable, startBatchConsumer } from '../eventlog/index.js';
import { startReconciler } from './reconcile.js';
import { withPrev } from './prev.js';
import type { BatchConsumer, ConsumerHealth, NatsHandle, RoomReader } from '../eventlog/index.js';
import { REDIS_PUBLISH_STEP, instrumentBatch, mongoInsertStep } from '../observability/index.js';
import type { BatchTrace, Logger, Metrics, Tracing } from '../observability/index.js';
import { storedAt } from '../protocol/index.js';
import type { MessageDoc, MessageStore } from '../store/index.js';
import { toDoc } from '../store/index.js';

export { reconcile, startReconciler } from './reconcile.js';
export type { ReconcileDeps, ReconcileOptions, ReconcileReport, Reconciler } from './reconcile.js';

export interface ChatDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  tracing: Tracing;
  nats: NatsHandle;
  jsm: JetStreamManager;
  store: MessageStore;
  fanout: FanoutPublisher;
  reader: RoomReader;
}

/** What chat's /readyz reports: not ready while MongoDB does not answer or batches keep failing. */
export interface ChatStatus {
  ready: boolean;
  mongo: 'ok' | 'unreachable';
  /** The fan-out's Redis connection: without it no batch can be published (nor acked). */
  redis: 'ok' | 'unreachable';
  consumer: ConsumerHealth & { pending: number | undefined; ackPending: number | undefined };
}

export interface ChatService {
  status(): ChatStatus;
  close(): Promise<void>;
}

/** How often chat checks MongoDB and its consumer's lag for /readyz and the metrics. */
const MONITOR_MS = 2_000;

export async function startChat(d: ChatDeps): Promise<ChatService> {
  const { cfg, log, metrics } = d;
  await ensureDurable(d.jsm, cfg.stream.name, {
    name: cfg.chat.consumer,
    filterSubject: createdWildcard(cfg.stream.subjectRoot),
    ackWaitMs: cfg.chat.ackWaitMs,
    maxAckPending: cfg.chat.batchSize * 8,
  }, log);

  const insertStep = mongoInsertStep(cfg.mongoDb);
  const handle = async (batch: JsMsg[], trace: BatchTrace): Promise<void> => {
    const docs: MessageDoc[] = [];
    const valid: JsMsg[] = [];
    // A batch can hold two deliveries of one seq (a redelivery that arrived while the first was still queued, e.g.
    // after a NATS restart): one document and one broadcast per seq; every delivery is acked.
    const seen = new Set<number>();
    for (const m of batch) {
      const ev = decodeEvent(m.data);
      if (!ev) {
        // A malformed event can never succeed: terminate it instead of redelivering forever.
        log.error({ seq: m.seq, subject: m.subject }, 'malformed event terminated');
        m.term('malformed event');
        continue;
      }
      valid.push(m);
      if (seen.has(m.seq)) continue;
      seen.add(m.seq);
      docs.push(toDoc(storedAt(ev, m.seq)));
    }
    const { inserted, existing } = await trace.step(insertStep, () => metrics.timeMongoWrite(() => d.store.insert(docs)));
    // An id already stored is told apart without a read (FerretDB answers any such query with a collection scan):
    // on a redelivery it is this very event, stored before a crash or a lost ack, and is broadcast again (gateways
    // drop a seq they delivered); on a first delivery it is a resend of the id after JetStream's duplicate window.
    const redelivered = existing.length === 0 ? undefined : new Set(valid.filter((m) => m.redelivered).map((m) => m.seq));
    const again = redelivered ? existing.filter((doc) => redelivered.has(doc.seq)) : [];
    const toPublish = inserted.concat(again).sort((x, y) => x.seq - y.seq);
    const broadcasts = await withPrev(toPublish, valid, d.reader, log);
    await trace.step(REDIS_PUBLISH_STEP, (tp) => d.fanout.publish(broadcasts.map((b) => ({ room: b.room, payload: encodeMessage(b, tp(b.seq)) }))));
    for (const m of valid) m.ack();
    metrics.persisted.inc({ result: 'stored' }, inserted.length);
    if (again.length > 0) metrics.persisted.inc({ result: 'redelivered' }, again.length);
    const dropped = existing.length - again.length;
    if (dropped > 0) {
      metrics.persisted.inc({ result: 'duplicate' }, dropped);
      log.info({ dropped }, 'duplicate events beyond the duplicate window dropped');
    }
  };

  const consumer: BatchConsumer = await startBatchConsumer(d.nats, {
    stream: cfg.stream.name,
    durable: cfg.chat.consumer,
    maxBatch: cfg.chat.batchSize,
    ackWaitMs: cfg.chat.ackWaitMs,
    maxHoldMs: cfg.chat.maxHoldMs,
    log,
    handle: instrumentBatch({ tracing: d.tracing, metrics, consumer: cfg.chat.consumer, destinationTemplate: createdTemplate(cfg.stream.subjectRoot) }, handle),
    onStuck: () => d.store.reconnect(),
  });
  log.info({ consumer: cfg.chat.consumer }, 'chat consuming');

  const reconciler = startReconciler({
    reader: d.reader, store: d.store, jsm: d.jsm, stream: cfg.stream.name, consumer: cfg.chat.consumer,
    log: log.child({ component: 'reconcile' }), metrics,
  }, cfg.chat.reconcileIntervalMs, cfg.chat.reconcileWindow);

  let mongoOk = true;
  let lag: { pending: number | undefined; ackPending: number | undefined } = { pending: undefined, ackPending: undefined };
  const monitor = setInterval(() => {
    d.store.ping(MONITOR_MS).then(() => { mongoOk = true; }, (err: unknown) => {
      if (mongoOk) log.warn({ err }, 'mongo does not answer');
      mongoOk = false;
    });
    d.jsm.consumers.info(cfg.stream.name, cfg.chat.consumer).then((info) => {
      lag = { pending: info.num_pending, ackPending: info.num_ack_pending };
      metrics.consumerPending.set({ consumer: cfg.chat.consumer }, info.num_pending);
      metrics.consumerAckPending.set({ consumer: cfg.chat.consumer }, info.num_ack_pending);
    }, () => {
      lag = { pending: undefined, ackPending: undefined };
    });
  }, MONITOR_MS);
  monitor.unref();

  return {
    status() {
      const health = consumer.health();
      const redisOk = d.fanout.ready();
      return {
        ready: mongoOk && redisOk && health.healthy, mongo: mongoOk ? 'ok' : 'unreachable', redis: redisOk ? 'ok' : 'unreachable',
        consumer: { ...health, ...lag },
      };
    },
    async close() {
      clearInterval(monitor);
      await reconciler.close();
      await consumer.close();
      log.info('chat closed');
    },
  };
}
