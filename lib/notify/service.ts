// The notification service: the second durable consumer (`notify`) of the CHAT stream. For each message it decides
// the recipients (candidates: mentioned users and the other member of a direct room; a direct recipient only when
// offline in Redis now; nobody who muted the room), records one notification per (message, recipient) before sending
// anything (an insert keyed by id: a redelivery or a second instance finds it recorded), runs an attempt of each
// (delivery.ts), and acks the event once every notification of it is sent or dead-lettered. Anything to retry is
// nak'ed with a delay, so the stream holds the waiting, not this process: work in flight is bounded by the batch
// (PARLEY_NOTIFY_BATCH) and the consumer's max_ack_pending, whatever a slow or dead sink does; chat's consumer is
// separate and never waits for this one.
import { randomUUID } from 'node:crypto';
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import pLimit from 'p-limit';
import type { Config } from '../config/index.js';
import { createdTemplate, createdWildcard, decodeEvent, ensureDurable, startBatchConsumer, startServiceMonitor } from '../eventlog/index.js';
import { NOTIFY_SEND_STEP, instrumentBatch } from '../observability/index.js';
import type { BatchTrace, Tracing } from '../observability/index.js';
import type { ConsumerHealth, ConsumerLag, NatsHandle } from '../eventlog/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { offlineAmong } from '../presence/index.js';
import { namespacedId } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
import type { RedisConnection, RedisKeys } from '../redis/index.js';
import { notificationId } from '../store/index.js';
import type { NotificationDoc, NotificationStore } from '../store/index.js';
import { createDelivery } from './delivery.js';
import type { Outcome } from './delivery.js';
import { ensureDeadLetters } from './dlq.js';
import { createNotifyMetrics } from './metrics.js';
import { candidates } from './recipients.js';
import { createSinks } from './sinks.js';

export interface NotifyDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  /** Each event's trace goes on through notify (ADR 0020); TRACING_OFF costs nothing. */
  tracing: Tracing;
  nats: NatsHandle;
  jsm: JetStreamManager;
  store: NotificationStore;
  redis: RedisConnection;
  keys: RedisKeys;
}

export interface NotifyStatus {
  ready: boolean;
  mongo: 'ok' | 'unreachable';
  consumer: ConsumerHealth & ConsumerLag;
}

export interface NotifyService {
  status(): NotifyStatus;
  close(): Promise<void>;
}

export async function startNotify(d: NotifyDeps): Promise<NotifyService> {
  const { cfg, log, metrics } = d;
  const n = cfg.notify;
  await ensureDurable(d.jsm, cfg.stream.name, {
    name: n.consumer,
    filterSubject: createdWildcard(cfg.stream.subjectRoot),
    ackWaitMs: n.ackWaitMs,
    maxAckPending: n.batchSize * 4,
  }, log);
  const dlq = await ensureDeadLetters(d.nats.nc, d.jsm, n, cfg.stream.replicas);
  const nm = createNotifyMetrics(metrics.registry);
  const limit = pLimit(n.concurrency);
  const sinks = createSinks(n, d.store, log);
  const delivery = createDelivery({
    store: d.store, sinks, dlq, metrics: nm, log, owner: `${cfg.gatewayId}-${randomUUID().slice(0, 8)}`,
    maxAttempts: n.maxAttempts, leaseMs: n.leaseMs, retryMs: n.retryMs, retryMaxMs: n.retryMaxMs,
  });

  /** The notifications of one event that are to be recorded, and those to look up (maybe recorded before). */
  const plan = async (events: { m: JsMsg; ev: ChatMessage }[]): Promise<Map<JsMsg, { record: NotificationDoc[]; probe: string[] }>> => {
    const now = Date.now();
    const all = events.map(({ m, ev }) => ({ m, ev, cands: candidates(ev, cfg.connection.maxMentions) }));
    const direct = [...new Set(all.flatMap((e) => e.cands.filter((c) => c.reason === 'direct').map((c) => c.recipient)))];
    const offline = await offlineAmong(d.redis, d.keys, direct);
    const byRoom = new Map<string, Set<string>>();
    for (const e of all) {
      const s = byRoom.get(e.ev.room) ?? new Set<string>();
      for (const c of e.cands) s.add(c.recipient);
      byRoom.set(e.ev.room, s);
    }
    const muted = new Map<string, Set<string>>();
    for (const [room, users] of byRoom) muted.set(room, users.size === 0 ? new Set() : await d.store.mutedAmong(room, [...users], now));
    const out = new Map<JsMsg, { record: NotificationDoc[]; probe: string[] }>();
    for (const { m, ev, cands } of all) {
      const messageId = namespacedId(ev.from, ev.id);
      const record: NotificationDoc[] = [];
      const probe: string[] = [];
      for (const c of cands) {
        const id = notificationId(messageId, c.recipient);
        const wanted = !muted.get(ev.room)!.has(c.recipient) && (c.reason === 'mention' || offline.has(c.recipient));
        if (wanted) {
          record.push({
            _id: id, messageId, recipient: c.recipient, reason: c.reason, room: ev.room, seq: m.seq, from: ev.from, body: ev.body,
            ts: ev.ts, state: 'pending', round: 0, attempts: 0, done: [], createdAt: now, updatedAt: now,
          });
        } else if (m.redelivered) {
          // Recipients are decided when first recorded: one recorded by an earlier delivery (offline then, online or
          // muted now) is still driven to the end.
          probe.push(id);
        }
      }
      out.set(m, { record, probe });
    }
    return out;
  };

  const handle = async (batch: JsMsg[], trace: BatchTrace): Promise<void> => {
    const events: { m: JsMsg; ev: ChatMessage }[] = [];
    const seen = new Set<number>();
    const duplicates: JsMsg[] = [];
    for (const m of batch) {
      const ev = decodeEvent(m.data);
      if (!ev) {
        trace.message(m.seq, () => log.error({ seq: m.seq, subject: m.subject }, 'malformed event terminated'));
        m.term('malformed event');
        continue;
      }
      // Two deliveries of one seq in a batch: handled once, both acked with it.
      if (seen.has(m.seq)) {
        duplicates.push(m);
        continue;
      }
      seen.add(m.seq);
      events.push({ m, ev });
    }
    if (log.isLevelEnabled('debug')) log.debug({ size: batch.length, events: events.length }, 'batch');
    const plans = await plan(events);
    const docs = [...plans.values()].flatMap((p) => p.record);
    const { existing } = await d.store.record(docs);
    nm.recorded.inc({ result: 'new' }, docs.length - existing.length);
    if (existing.length > 0) nm.recorded.inc({ result: 'existing' }, existing.length);
    const lookup = existing.concat([...plans.values()].flatMap((p) => p.probe));
    const stored = new Map((await d.store.get(lookup)).map((doc) => [doc._id, doc]));
    const fresh = new Set(docs.map((doc) => doc._id).filter((id) => !existing.includes(id)));

    const current = (doc: NotificationDoc): NotificationDoc | undefined => (fresh.has(doc._id) ? doc : stored.get(doc._id));
    const outcomes = new Map<JsMsg, Outcome[]>();
    await trace.step(NOTIFY_SEND_STEP, () => Promise.all([...plans].map(async ([m, p]) => {
      const list = p.record.map(current).concat(p.probe.map((id) => stored.get(id)))
        .filter((doc): doc is NotificationDoc => doc !== undefined);
      // At most PARLEY_NOTIFY_CONCURRENCY attempts run at once, however many recipients the batch has. Each runs with
      // its message's span active (set when it starts: p-limit may start it from another message's attempt), so the
      // sinks' and the delivery's log lines carry that message's trace.
      outcomes.set(m, await Promise.all(list.map((doc) => limit(() => trace.message(m.seq, () => delivery.deliver(doc))))));
    })));
    if (log.isLevelEnabled('debug')) log.debug({ events: events.length, recorded: docs.length, existing: existing.length }, 'batch handled');
    const now = Date.now();
    for (const { m } of events) {
      const later = (outcomes.get(m) ?? []).flatMap((o) => (o.final ? [] : [o.at]));
      if (later.length === 0) m.ack();
      else m.nak(Math.max(0, Math.min(...later) - now));
    }
    for (const m of duplicates) m.ack();
  };

  const consumer = await startBatchConsumer(d.nats, {
    stream: cfg.stream.name,
    durable: n.consumer,
    maxBatch: n.batchSize,
    ackWaitMs: n.ackWaitMs,
    maxHoldMs: n.maxHoldMs,
    log,
    handle: instrumentBatch({ tracing: d.tracing, metrics, consumer: n.consumer, destinationTemplate: createdTemplate(cfg.stream.subjectRoot) }, handle),
  });
  log.info({ consumer: n.consumer, sinks: sinks.map((s) => s.name), dlq: n.dlqStream }, 'notify consuming');

  const monitor = startServiceMonitor({
    ping: (ms) => d.store.ping(ms), jsm: d.jsm, stream: cfg.stream.name, consumer: n.consumer, metrics, log,
  });

  return {
    status() {
      const health = consumer.health();
      const mongoOk = monitor.storeOk();
      return { ready: mongoOk && health.healthy, mongo: mongoOk ? 'ok' : 'unreachable', consumer: { ...health, ...monitor.lag() } };
    },
    async close() {
      monitor.close();
      await consumer.close();
      for (const s of sinks) await s.close();
      log.info('notify closed');
    },
  };
}
