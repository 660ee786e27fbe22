// What a gateway is built from: every adapter is made in cmd/ and handed in here.
import type { Authenticator } from '../auth/index.js';
import type { Config } from '../config/index.js';
import type { EventPublisher, NatsHandle, RoomReader } from '../eventlog/index.js';
import type { FanoutSubscriber } from '../fanout/index.js';
import type { MessageIds } from '../idempotency/index.js';
import type { SendLimiter } from '../limits/index.js';
import type { Logger, Metrics, Readiness, Tracing } from '../observability/index.js';
import type { GatewayPresence } from '../presence/index.js';
import type { RedisSubscriber } from '../redis/index.js';
import type { MessageStore, MuteStore } from '../store/index.js';

export interface GatewayDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  /** Spans of the message path (lib/observability/tracing.ts); TRACING_OFF when tracing is off. */
  tracing: Tracing;
  auth: Authenticator;
  nats: NatsHandle;
  publisher: EventPublisher;
  /** The stream, read by room: recovery and gap repair. */
  reader: RoomReader;
  /** MongoDB (its own bounded read pool): history, and recovery of what the stream no longer holds. */
  store: MessageStore;
  /** Room broadcasts from the chat service (Redis Pub/Sub), on a subscriber connection of its own. */
  fanout: FanoutSubscriber;
  /** Sessions, presence, typing and connection limits in Redis (lib/presence). */
  presence: GatewayPresence;
  /** The Pub/Sub connection presence and typing events arrive on. */
  presenceEvents: RedisSubscriber;
  /** Cluster-wide send and history budgets (lib/limits). */
  limiter: SendLimiter;
  /** The seq each message id was first stored with, for resends beyond JetStream's window (lib/idempotency). */
  ids: MessageIds;
  /** Room mutes of the notification service (MongoDB `mutes`). */
  mutes: MuteStore;
}

export interface Gateway {
  port: number;
  /** What the gateway's /readyz answers (NATS, Redis, draining); the ops port's /readyz includes it. */
  readiness(): Readiness;
  close(): Promise<void>;
}
