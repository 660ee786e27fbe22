// The chat service: consume CHAT and, for each batch, broadcast it to the rooms' Redis channels at once, in stream
// order, while MongoDB stores it (keyed by the namespaced id); JetStream is acked only after both succeeded
// (docs/decisions/0014). Live delivery never waits for MongoDB: a slow or absent store holds the batch's ack, not
// the broadcasts of the batches behind it. A crash anywhere before the ack means a redelivery, broadcast again
// (gateways drop the repeated seq) and stored again (the key makes it one document). Before broadcasting, every
// event claims its id in Redis (lib/idempotency): a resend that reached the stream after JetStream's duplicate window
// is neither broadcast nor stored, and is deleted from the stream so no reader ever shows it.
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Config } from '../config/index.js';
import type { MessageIds } from '../idempotency/index.js';
import { encodeMessage } from '../fanout/index.js';
import type { FanoutPublisher } from '../fanout/index.js';
import {
  createdTemplate, createdWildcard, decodeEvent, deleteEvents, ensureDurable, startBatchConsumer, startServiceMonitor,
} from '../eventlog/index.js';
import { startReconciler } from './reconcile.js';
import { PrevChain, withPrev } from './prev.js';
import type { BatchConsumer, BatchSteps, ConsumerHealth, ConsumerLag, NatsHandle, RoomReader } from '../eventlog/index.js';
import { REDIS_PUBLISH_STEP, instrumentBatch, mongoInsertStep } from '../observability/index.js';
import type { BatchTrace, Logger, Metrics, Tracing } from '../observability/index.js';
import { namespacedId, storedAt } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
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
  /** Which seq each message id was first stored with (Redis). */
  ids: MessageIds;
}

/** What chat's /readyz reports: not ready while MongoDB does not answer or batches keep failing. */
export interface ChatStatus {
  ready: boolean;
  mongo: 'ok' | 'unreachable';
  /** The fan-out's Redis connection: without it no batch can be published (nor acked). */
  redis: 'ok' | 'unreachable';
  consumer: ConsumerHealth & ConsumerLag;
}

export interface ChatService {
  status(): ChatStatus;
  close(): Promise<void>;
}

export async function startChat(d: ChatDeps): Promise<ChatService> {
  const { cfg, log, metrics } = d;
  await ensureDurable(d.jsm, cfg.stream.name, {
    name: cfg.chat.consumer,
    filterSubject: createdWildcard(cfg.stream.subjectRoot),
    ackWaitMs: cfg.chat.ackWaitMs,
    // What one instance may hold: a batch being broadcast, a batch queued, and what waits for MongoDB.
    maxAckPending: cfg.chat.batchSize * 2 + cfg.chat.maxUnstored,
  }, log);

  const insertStep = mongoInsertStep(cfg.mongoDb);
  // Each room's last broadcast seq while this instance alone takes the consumer's deliveries: no stream lookup for
  // `prev` then (one NATS round trip less per batch and room).
  const chain = new PrevChain();
  const handle = async (batch: JsMsg[], trace: BatchTrace): Promise<BatchSteps> => {
    const valid: JsMsg[] = [];
    const events: { m: JsMsg; ev: ChatMessage }[] = [];
    // A batch can hold two deliveries of one seq (a redelivery that arrived while the first was still queued, e.g.
    // after a NATS restart): one document and one broadcast per seq; every delivery is acked.
    const seen = new Set<number>();
    for (const m of batch) {
      const ev = decodeEvent(m.data);
      if (!ev) {
        // A malformed event can never succeed: terminate it instead of redelivering forever.
        trace.message(m.seq, () => log.error({ seq: m.seq, subject: m.subject }, 'malformed event terminated'));
        m.term('malformed event');
        continue;
      }
      valid.push(m);
      if (seen.has(m.seq)) continue;
      seen.add(m.seq);
      events.push({ m, ev });
    }
    // The id's first seq wins; a redelivery finds its own seq. Another seq is a resend that JetStream no longer
    // recognised: dropped here and deleted from the stream before any `prev` is computed from the stream, so no
    // gateway chain, replay or history read can show it.
    const owners = await d.ids.claim(events.map(({ m, ev }) => ({ nsid: namespacedId(ev.from, ev.id), seq: m.seq })));
    const docs: MessageDoc[] = [];
    const resent: number[] = [];
    events.forEach(({ m, ev }, i) => {
      if (owners[i] === m.seq) docs.push(toDoc(storedAt(ev, m.seq)));
      else resent.push(m.seq);
    });
    if (resent.length > 0) {
      await deleteEvents(d.jsm, cfg.stream.name, resent);
      metrics.persisted.inc({ result: 'duplicate' }, resent.length);
      log.info({ dropped: resent.length }, 'resends beyond the duplicate window dropped');
    }
    const plan = chain.plan(valid);
    return {
      ack: valid,
      ordered: async () => {
        const broadcasts = await withPrev(docs, valid, d.reader, log, plan.known);
        await trace.step(REDIS_PUBLISH_STEP, (tp) => d.fanout.publish(broadcasts.map((b) => ({ room: b.room, payload: encodeMessage(b, tp(b.seq)) }))));
        plan.commit(docs);
      },
      unordered: async () => {
        const { inserted, existing } = await trace.step(insertStep, () => metrics.timeMongoWrite(() => d.store.insert(docs)));
        metrics.persisted.inc({ result: 'stored' }, inserted.length);
        // Already stored: this very event (a redelivery, or an earlier attempt whose answer was lost), as the
        // claim above vouches for its seq.
        if (existing.length > 0) metrics.persisted.inc({ result: 'redelivered' }, existing.length);
      },
    };
  };

  const consumer: BatchConsumer = await startBatchConsumer(d.nats, {
    stream: cfg.stream.name,
    durable: cfg.chat.consumer,
    maxBatch: cfg.chat.batchSize,
    ackWaitMs: cfg.chat.ackWaitMs,
    maxHoldMs: cfg.chat.maxHoldMs,
    maxUnordered: cfg.chat.maxUnstored,
    unorderedConcurrency: cfg.chat.storeConcurrency,
    log,
    handle: instrumentBatch({ tracing: d.tracing, metrics, consumer: cfg.chat.consumer, destinationTemplate: createdTemplate(cfg.stream.subjectRoot) }, handle),
    // Only the store step is worth recycling a client for: Redis connections reconnect by themselves.
    onStuck: async (step) => { if (step === 'unordered') await d.store.reconnect(); },
  });
  log.info({ consumer: cfg.chat.consumer }, 'chat consuming');

  const reconciler = startReconciler({
    reader: d.reader, store: d.store, jsm: d.jsm, stream: cfg.stream.name, consumer: cfg.chat.consumer,
    log: log.child({ component: 'reconcile' }), metrics,
  }, cfg.chat.reconcileIntervalMs, cfg.chat.reconcileWindow);

  const monitor = startServiceMonitor({
    ping: (ms) => d.store.ping(ms), jsm: d.jsm, stream: cfg.stream.name, consumer: cfg.chat.consumer, metrics, log,
  });

  return {
    status() {
      const health = consumer.health();
      const redisOk = d.fanout.ready();
      const mongoOk = monitor.storeOk();
      return {
        ready: mongoOk && redisOk && health.healthy, mongo: mongoOk ? 'ok' : 'unreachable', redis: redisOk ? 'ok' : 'unreachable',
        consumer: { ...health, ...monitor.lag() },
      };
    },
    async close() {
      monitor.close();
      await reconciler.close();
      await consumer.close();
      log.info('chat closed');
    },
  };
}
