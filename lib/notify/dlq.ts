// The dead-letter stream of notifications (NOTIFY_DLQ): what failed every attempt, or failed for good, with its reason.
// An entry is published with Nats-Msg-Id `<id>#<round>`, so publishing the same death twice (a crash between
// recording it and publishing it, then a redelivery) leaves one entry. Entries carry no message body.
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NotifyConfig } from '../config/index.js';
import { isNoMessage, isNotFound, isStreamNameInUse } from '../eventlog/index.js';
import type { NotificationDoc } from '../store/index.js';

export interface DeadLetter {
  id: string;
  messageId: string;
  recipient: string;
  reason: string;
  room: string;
  seq: number;
  from: string;
  round: number;
  attempts: number;
  /** Why it died: the last attempt's errors, by sink. */
  error: string;
  deadAt: number;
}

export interface DeadLetterEntry {
  /** The entry's sequence in the dead-letter stream. */
  dlqSeq: number;
  letter: DeadLetter;
}

export interface DeadLetters {
  publish(doc: NotificationDoc, error: string): Promise<void>;
  list(): Promise<DeadLetterEntry[]>;
  remove(dlqSeq: number): Promise<void>;
}

/** The dead-letter window: the same death published again within it is one entry. */
const DUPLICATE_WINDOW_MS = 24 * 3_600_000;

export async function ensureDeadLetters(nc: NatsConnection, jsm: JetStreamManager, cfg: NotifyConfig, replicas: number): Promise<DeadLetters> {
  const want = {
    subjects: [cfg.dlqSubject],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    allow_direct: true,
  };
  try {
    await jsm.streams.info(cfg.dlqStream);
    await jsm.streams.update(cfg.dlqStream, want);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add({ name: cfg.dlqStream, ...want });
    } catch (addErr) {
      if (!isStreamNameInUse(addErr)) throw addErr;
    }
  }
  const js = jetstream(nc);
  return {
    async publish(doc, error) {
      const letter: DeadLetter = {
        id: doc._id, messageId: doc.messageId, recipient: doc.recipient, reason: doc.reason, room: doc.room, seq: doc.seq,
        from: doc.from, round: doc.round, attempts: doc.attempts, error, deadAt: Date.now(),
      };
      await js.publish(cfg.dlqSubject, JSON.stringify(letter), { msgID: `${doc._id}#${doc.round}`, expect: { streamName: cfg.dlqStream } });
    },
    async list() {
      const info = await jsm.streams.info(cfg.dlqStream);
      const out: DeadLetterEntry[] = [];
      if (info.state.messages === 0) return out;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        let sm;
        try {
          sm = await jsm.streams.getMessage(cfg.dlqStream, { seq });
        } catch (err) {
          if (isNoMessage(err) || isNotFound(err)) continue; // removed after a replay
          throw err;
        }
        if (!sm) continue;
        out.push({ dlqSeq: seq, letter: sm.json<DeadLetter>() });
      }
      return out;
    },
    async remove(dlqSeq) {
      try {
        await jsm.streams.deleteMessage(cfg.dlqStream, dlqSeq);
      } catch (err) {
        // A concurrent replay removed it first (nats-server answers that with a generic delete failure, 10057):
        // fine if the entry is gone.
        if (isNoMessage(err) || isNotFound(err)) return;
        if ((await jsm.streams.getMessage(cfg.dlqStream, { seq: dlqSeq })) !== null) throw err;
      }
    },
  };
}
