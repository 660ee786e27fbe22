// Wires lib pieces into runnable services. Each returns a handle whose close() stops it; callers close in reverse.
import { createAuthenticator } from '../lib/auth/index.js';
import { reconcile, startChat } from '../lib/chat/index.js';
import type { ChatService, ReconcileReport } from '../lib/chat/index.js';
import type { Config } from '../lib/config/index.js';
import { createFanoutPublisher, createFanoutSubscriber } from '../lib/fanout/index.js';
import { startGateway } from '../lib/gateway/index.js';
import type { Gateway } from '../lib/gateway/index.js';
import { connectNats, createPublisher, createRoomReader, ensureStream } from '../lib/eventlog/index.js';
import type { NatsHandle } from '../lib/eventlog/index.js';
import type { JetStreamManager } from '@nats-io/jetstream';
import { TRACING_OFF } from '../lib/observability/index.js';
import type { Logger, Metrics, Tracing } from '../lib/observability/index.js';
import { openMessageStore } from '../lib/store/index.js';
import { createMessageIds } from '../lib/idempotency/index.js';
import { createConnectionAdmission, createSendLimiter } from '../lib/limits/index.js';
import { startGatewayPresence, startPresenceService } from '../lib/presence/index.js';
import type { PresenceService } from '../lib/presence/index.js';
import { connectRedis, connectSubscriber, redisKeys } from '../lib/redis/index.js';
import { startNotify } from '../lib/notify/index.js';
import type { NotifyService } from '../lib/notify/index.js';
import { openNotificationStore } from '../lib/store/index.js';

export interface Closeable {
  name: string;
  close(): Promise<void>;
}

/**
 * Every run* below pushes each thing it opened onto `opened` as soon as it is open, so that when a later step of
 * start-up fails the caller closes exactly what was opened (in reverse), and nothing leaks.
 */
export type Opened = Closeable[];

export interface Shared {
  nats: NatsHandle;
  jsm: JetStreamManager;
}

export async function connectShared(cfg: Config, log: Logger, name: string, opened: Opened): Promise<Shared> {
  const nats = await connectNats(cfg.natsUrl, name, log.child({ component: 'nats' }));
  opened.push({ name: 'nats', close: () => nats.close() });
  const jsm = await ensureStream(nats.nc, cfg.stream, log.child({ component: 'stream' }));
  return { nats, jsm };
}

export async function runGateway(cfg: Config, log: Logger, metrics: Metrics, s: Shared, opened: Opened,
  tracing: Tracing = TRACING_OFF): Promise<Gateway> {
  const glog = log.child({ component: 'gateway' });
  // The gateway only reads, on a client and pool of its own, bounded like its read gate: its reads can never hold
  // more than maxInflight connections, and each one gives up after the query timeout (server- and client-side).
  const st = cfg.storage;
  const store = await openMessageStore(st.readUrl, cfg.mongoDb, log.child({ component: 'store' }), {
    client: {
      maxPoolSize: st.maxInflight,
      waitQueueTimeoutMS: st.queueTimeoutMs,
      // A hung server (or network) must not hold a slot longer than a query may run: neither on a new connection's
      // handshake nor on a reply.
      connectTimeoutMS: st.queryTimeoutMs + 1_000,
      socketTimeoutMS: st.queryTimeoutMs + 1_000,
    },
    readTimeoutMs: st.queryTimeoutMs,
  });
  opened.push({ name: 'store', close: () => store.close() });
  const plog = log.child({ component: 'presence' });
  const keys = redisKeys(cfg.redisPrefix);
  // One commands connection for sessions, presence and limits; a subscriber each for room broadcasts and for
  // presence and typing events, so that a burst of either never queues behind the other.
  const redis = await connectRedis(cfg.redisUrl, plog, { name: `parley-presence-${cfg.gatewayId}`, profile: 'commands' });
  opened.push({ name: 'redis', close: () => redis.close() });
  const fanoutSub = await connectSubscriber(cfg.redisUrl, glog, 'parley-fanout-sub');
  opened.push({ name: 'redis-fanout', close: () => fanoutSub.close() });
  const presenceEvents = await connectSubscriber(cfg.redisUrl, plog, `parley-presence-sub-${cfg.gatewayId}`);
  opened.push({ name: 'redis-presence', close: () => presenceEvents.close() });
  // Connection admission (caps and connect rates, cluster-wide) is checked by the script that registers the session.
  const admission = createConnectionAdmission(keys, {
    maxPerUser: cfg.presence.maxConnectionsPerUser, maxPerIp: cfg.presence.maxConnectionsPerIp,
    connectPerUser: cfg.rateLimits.connectPerUser, connectPerIp: cfg.rateLimits.connectPerIp,
  });
  const presence = await startGatewayPresence(redis, keys, admission, cfg, plog);
  // Closed in reverse: the gateway closes its connections (removing their sessions) before presence unregisters it.
  opened.push({ name: 'presence', close: () => presence.shutdown() });
  const limiter = await createSendLimiter(redis, keys, cfg.rateLimits, log.child({ component: 'limits' }));
  // Mutes (frames and HTTP) on a small pool of their own: writes are rare and must not queue behind history reads.
  const mutes = await openNotificationStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'mutes' }), { maxPoolSize: 2, indexes: false });
  opened.push({ name: 'mutes', close: () => mutes.close() });
  const gateway = await startGateway({
    cfg, log: glog, metrics, tracing, nats: s.nats, store, presence, presenceEvents, limiter, mutes,
    ids: createMessageIds(redis, keys, cfg.stream.idempotencyWindowMs),
    fanout: createFanoutSubscriber(fanoutSub, keys),
    auth: createAuthenticator(cfg.jwt),
    publisher: createPublisher(s.nats, cfg.stream, tracing),
    reader: createRoomReader(s.nats.nc, s.jsm, cfg.stream),
  });
  opened.push({ name: 'gateway', close: () => gateway.close() });
  return gateway;
}

export async function runPresence(cfg: Config, log: Logger, opened: Opened): Promise<PresenceService> {
  const plog = log.child({ component: 'presence' });
  const redis = await connectRedis(cfg.redisUrl, plog, { name: 'parley-presence', profile: 'commands' });
  opened.push({ name: 'redis-presence-service', close: () => redis.close() });
  const presence = await startPresenceService(redis, redisKeys(cfg.redisPrefix), cfg, plog);
  opened.push({ name: 'presence', close: () => presence.close() });
  return presence;
}

export async function runChat(cfg: Config, log: Logger, metrics: Metrics, s: Shared, opened: Opened,
  tracing: Tracing = TRACING_OFF): Promise<ChatService> {
  const clog = log.child({ component: 'chat' });
  const store = await openMessageStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'store' }));
  opened.push({ name: 'store', close: () => store.close() });
  const redis = await connectRedis(cfg.redisUrl, log.child({ component: 'fanout' }), { name: 'parley-fanout-pub', profile: 'publisher' });
  opened.push({ name: 'fanout', close: () => redis.close() });
  const keys = redisKeys(cfg.redisPrefix);
  const fanout = createFanoutPublisher(redis, keys);
  const reader = createRoomReader(s.nats.nc, s.jsm, cfg.stream);
  const ids = createMessageIds(redis, keys, cfg.stream.idempotencyWindowMs);
  // Closed in reverse: the consumer stops (finishing its batch) before its store and fan-out go away.
  const chat = await startChat({ cfg, log: clog, metrics, tracing, nats: s.nats, jsm: s.jsm, store, fanout, reader, ids });
  opened.push({ name: 'chat', close: () => chat.close() });
  return chat;
}

/** `parley reconcile`: one pass against the configured stream and database, then everything is closed again. */
export async function reconcileOnce(cfg: Config, log: Logger, opts: { room?: string; since?: number }): Promise<ReconcileReport> {
  const closers: Opened = [];
  try {
    const shared = await connectShared(cfg, log, 'parley-reconcile', closers);
    const store = await openMessageStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'store' }));
    closers.push({ name: 'store', close: () => store.close() });
    return await reconcile({
      reader: createRoomReader(shared.nats.nc, shared.jsm, cfg.stream), store, jsm: shared.jsm,
      stream: cfg.stream.name, consumer: cfg.chat.consumer, log,
    }, opts);
  } finally {
    for (const c of closers.reverse()) await c.close();
  }
}

export async function runNotify(cfg: Config, log: Logger, metrics: Metrics, s: Shared, opened: Opened,
  tracing: Tracing = TRACING_OFF): Promise<NotifyService> {
  const nlog = log.child({ component: 'notify' });
  const store = await openNotificationStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'notify-store' }));
  opened.push({ name: 'notify-store', close: () => store.close() });
  const redis = await connectRedis(cfg.redisUrl, nlog, { name: 'parley-notify', profile: 'commands' });
  opened.push({ name: 'notify-redis', close: () => redis.close() });
  const notify = await startNotify({ cfg, log: nlog, metrics, tracing, nats: s.nats, jsm: s.jsm, store, redis, keys: redisKeys(cfg.redisPrefix) });
  opened.push({ name: 'notify', close: () => notify.close() });
  return notify;
}
