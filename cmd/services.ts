// Wires lib pieces into runnable services. Each returns a handle whose close() stops it; callers close in reverse.
import { createAuthenticator } from '../lib/auth/index.js';
import { reconcile, startChat } from '../lib/chat/index.js';
import type { ChatService, ReconcileReport } from '../lib/chat/index.js';
import type { Config } from '../lib/config/index.js';
import { createFanoutPublisher } from '../lib/fanout/index.js';
import { startGateway } from '../lib/gateway/index.js';
import { connectNats, createPublisher, createRoomReader, ensureStream } from '../lib/log/index.js';
import type { NatsHandle } from '../lib/log/index.js';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger, Metrics } from '../lib/observability/index.js';
import { openMessageStore } from '../lib/store/index.js';
import { createSendLimiter } from '../lib/limits/index.js';
import { startGatewayPresence, startPresenceService } from '../lib/presence/index.js';

export interface Closeable {
  name: string;
  close(): Promise<void>;
}

export interface Shared {
  nats: NatsHandle;
  jsm: JetStreamManager;
}

export async function connectShared(cfg: Config, log: Logger, name: string): Promise<{ shared: Shared; closers: Closeable[] }> {
  const nats = await connectNats(cfg.natsUrl, name, log.child({ component: 'nats' }));
  const jsm = await ensureStream(nats.nc, cfg.stream, log.child({ component: 'stream' }));
  return { shared: { nats, jsm }, closers: [{ name: 'nats', close: () => nats.close() }] };
}

export async function runGateway(cfg: Config, log: Logger, metrics: Metrics, s: Shared): Promise<Closeable[]> {
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
  const plog = log.child({ component: 'presence' });
  const presence = await startGatewayPresence(cfg, plog);
  const gateway = await startGateway({
    cfg, log: glog, metrics, nats: s.nats, store, presence,
    limiter: createSendLimiter(presence.redis, cfg.redisPrefix, cfg.rateLimits, log.child({ component: 'limits' })),
    auth: createAuthenticator(cfg.jwt),
    publisher: createPublisher(s.nats, cfg.stream),
    reader: createRoomReader(s.nats.nc, s.jsm, cfg.stream),
  });
  // Closed in reverse: the gateway closes its connections (removing their sessions) before presence unregisters it.
  return [
    { name: 'store', close: () => store.close() },
    { name: 'presence', close: () => presence.shutdown() },
    { name: 'gateway', close: () => gateway.close() },
  ];
}

export async function runPresence(cfg: Config, log: Logger): Promise<Closeable[]> {
  const presence = await startPresenceService(cfg, log.child({ component: 'presence' }));
  return [{ name: 'presence', close: () => presence.close() }];
}

export async function runChat(cfg: Config, log: Logger, metrics: Metrics, s: Shared): Promise<{ closers: Closeable[]; chat: ChatService }> {
  const clog = log.child({ component: 'chat' });
  const store = await openMessageStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'store' }));
  const fanout = await createFanoutPublisher(cfg.redisUrl, cfg.redisPrefix, log.child({ component: 'fanout' }));
  const reader = createRoomReader(s.nats.nc, s.jsm, cfg.stream);
  const chat = await startChat({ cfg, log: clog, metrics, nats: s.nats, jsm: s.jsm, store, fanout, reader });
  // Closed in reverse: the consumer stops (finishing its batch) before its store and fan-out go away.
  const closers = [
    { name: 'store', close: () => store.close() },
    { name: 'fanout', close: () => fanout.close() },
    { name: 'chat', close: () => chat.close() },
  ];
  return { closers, chat };
}

/** `parley reconcile`: one pass against the configured stream and database, then everything is closed again. */
export async function reconcileOnce(cfg: Config, log: Logger, opts: { room?: string; since?: number }): Promise<ReconcileReport> {
  const { shared, closers } = await connectShared(cfg, log, 'parley-reconcile');
  const store = await openMessageStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'store' }));
  try {
    return await reconcile({
      reader: createRoomReader(shared.nats.nc, shared.jsm, cfg.stream), store, jsm: shared.jsm,
      stream: cfg.stream.name, consumer: cfg.chat.consumer, log,
    }, opts);
  } finally {
    await store.close();
    for (const c of closers.reverse()) await c.close();
  }
}
