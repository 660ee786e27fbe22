// Creates or updates the CHAT stream and its durable consumers idempotently from config at start-up.
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamManager, StreamConfig as JsStreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { StreamConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { isNotFound, isStreamNameInUse } from './errors.js';
import { streamSubjects } from './subjects.js';

export async function ensureStream(nc: NatsConnection, cfg: StreamConfig, log: Logger): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  const want: Partial<JsStreamConfig> = {
    subjects: streamSubjects(cfg.subjectRoot),
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: cfg.replicas,
    duplicate_window: nanos(cfg.duplicateWindowMs),
    max_age: nanos(cfg.maxAgeMs),
    max_bytes: cfg.maxBytes,
    max_msgs: cfg.maxMsgs,
    allow_direct: true,
  };
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, want);
    log.info({ stream: cfg.name }, 'stream updated');
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add({ name: cfg.name, ...want });
      log.info({ stream: cfg.name }, 'stream created');
    } catch (addErr) {
      // Another instance created it between our info and add: that is fine.
      if (!isStreamNameInUse(addErr)) throw addErr;
    }
  }
  return jsm;
}

export interface DurableOptions {
  name: string;
  filterSubject?: string;
  ackWaitMs: number;
  maxAckPending: number;
}

export async function ensureDurable(jsm: JetStreamManager, stream: string, o: DurableOptions, log: Logger): Promise<void> {
  const cfg = {
    durable_name: o.name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    max_ack_pending: o.maxAckPending,
    max_deliver: -1,
    ...(o.filterSubject ? { filter_subject: o.filterSubject } : {}),
  };
  try {
    await jsm.consumers.info(stream, o.name);
    await jsm.consumers.update(stream, o.name, cfg);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(stream, cfg);
    log.info({ stream, consumer: o.name }, 'consumer created');
  }
}
