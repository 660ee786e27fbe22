// The chat service: consume CHAT, store each message once (keyed by its namespaced id), publish the stored message
// to its room's Redis channel, and only then ack JetStream. A crash anywhere before the ack means a redelivery,
// which the store turns into "already stored, broadcast again"; gateways drop the repeated seq.
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Config } from '../config/index.js';
import type { FanoutPublisher } from '../fanout/index.js';
import { createdWildcard, decodeEvent, ensureDurable, namespacedId, startBatchConsumer } from '../log/index.js';
import type { BatchConsumer, NatsHandle, RoomReader } from '../log/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { Broadcast } from '../protocol/index.js';
import type { MessageDoc, MessageStore } from '../store/index.js';
import { toStored } from '../store/index.js';

export interface ChatDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  nats: NatsHandle;
  jsm: JetStreamManager;
  store: MessageStore;
  fanout: FanoutPublisher;
  reader: RoomReader;
}

export interface ChatService {
  close(): Promise<void>;
}

export async function startChat(d: ChatDeps): Promise<ChatService> {
  const { cfg, log, metrics } = d;
  await ensureDurable(d.jsm, cfg.stream.name, {
    name: cfg.chat.consumer,
    filterSubject: createdWildcard(cfg.stream.subjectRoot),
    ackWaitMs: cfg.chat.ackWaitMs,
    maxAckPending: cfg.chat.batchSize * 8,
  }, log);

  const handle = async (batch: JsMsg[]): Promise<void> => {
    const docs: MessageDoc[] = [];
    const valid: JsMsg[] = [];
    for (const m of batch) {
      const ev = decodeEvent(m.data);
      if (!ev) {
        // A malformed event can never succeed: terminate it instead of redelivering forever.
        log.error({ seq: m.seq, subject: m.subject }, 'malformed event terminated');
        m.term('malformed event');
        continue;
      }
      const doc: MessageDoc = { _id: namespacedId(ev.from, ev.id), room: ev.room, seq: m.seq, from: ev.from, body: ev.body, ts: ev.ts };
      if (ev.mentions) doc.mentions = ev.mentions;
      docs.push(doc);
      valid.push(m);
    }
    const toPublish = await d.store.insert(docs);
    const broadcasts = await withPrev(toPublish.sort((x, y) => x.seq - y.seq), valid, d.reader, log);
    await d.fanout.publish(broadcasts.map((b) => ({ room: b.room, payload: JSON.stringify(b) })));
    for (const m of valid) m.ack();
    const dropped = docs.length - toPublish.length;
    metrics.persisted.inc({ result: 'stored' }, toPublish.length);
    if (dropped > 0) {
      metrics.persisted.inc({ result: 'duplicate' }, dropped);
      log.info({ dropped }, 'duplicate events beyond the duplicate window dropped');
    }
  };

  const consumer: BatchConsumer = await startBatchConsumer(d.nats, {
    stream: cfg.stream.name,
    durable: cfg.chat.consumer,
    maxBatch: cfg.chat.batchSize,
    log,
    handle,
  });
  log.info({ consumer: cfg.chat.consumer }, 'chat consuming');
  return {
    async close() {
      await consumer.close();
      log.info('chat closed');
    },
  };
}

/**
 * Attaches to each message the seq of the message before it in its room, as the stream has them, so gateways can
 * deliver in order without asking the stream themselves. Inside one batch whose seqs run without a hole, the
 * previous message of the room in the batch is that message; otherwise (the first of a room in the batch, or a hole
 * where another instance took messages) the stream is asked. When it cannot be asked, `prev` is left out and
 * gateways check the stream themselves.
 */
async function withPrev(docs: MessageDoc[], batch: JsMsg[], reader: RoomReader, log: Logger): Promise<Broadcast[]> {
  const seqs = batch.map((m) => m.seq).sort((a, b) => a - b);
  const index = new Map(seqs.map((s, i) => [s, i]));
  const lastInBatch = new Map<string, number>();
  const out: Broadcast[] = [];
  const lookups: Promise<void>[] = [];
  for (const doc of docs) {
    const b: Broadcast = toStored(doc);
    const before = lastInBatch.get(doc.room);
    if (before !== undefined && index.get(doc.seq)! - index.get(before)! === doc.seq - before) {
      b.prev = before;
    } else {
      lookups.push(reader.prevOf(doc.room, doc.seq).then(
        (p) => { b.prev = p; },
        (err: unknown) => log.warn({ err, room: doc.room, seq: doc.seq }, 'prev lookup failed; gateways will check'),
      ));
    }
    lastInBatch.set(doc.room, doc.seq);
    out.push(b);
  }
  await Promise.all(lookups);
  return out;
}
