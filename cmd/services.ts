// Wires lib pieces into runnable services. Each returns a handle whose close() stops it; callers close in reverse.
import { createAuthenticator } from '../lib/auth/index.js';
import { startChat } from '../lib/chat/index.js';
import type { Config } from '../lib/config/index.js';
import { createFanoutPublisher } from '../lib/fanout/index.js';
import { startGateway } from '../lib/gateway/index.js';
import { connectNats, createPublisher, createdSubject, ensureStream, lastSeqOn } from '../lib/log/index.js';
import type { NatsHandle } from '../lib/log/index.js';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger, Metrics } from '../lib/observability/index.js';
import { openMessageStore } from '../lib/store/index.js';

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
  const gateway = await startGateway({
    cfg, log: glog, metrics, nats: s.nats,
    auth: createAuthenticator(cfg.jwt),
    publisher: createPublisher(s.nats, cfg.stream),
    lastSeq: (room) => lastSeqOn(s.jsm, cfg.stream.name, createdSubject(cfg.stream.subjectRoot, room)),
  });
  return [{ name: 'gateway', close: () => gateway.close() }];
}

export async function runChat(cfg: Config, log: Logger, metrics: Metrics, s: Shared): Promise<Closeable[]> {
  const clog = log.child({ component: 'chat' });
  const store = await openMessageStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'store' }));
  const fanout = await createFanoutPublisher(cfg.redisUrl, cfg.redisPrefix, log.child({ component: 'fanout' }));
  const chat = await startChat({ cfg, log: clog, metrics, nats: s.nats, jsm: s.jsm, store, fanout });
  // Closed in reverse: the consumer stops (finishing its batch) before its store and fan-out go away.
  return [
    { name: 'store', close: () => store.close() },
    { name: 'fanout', close: () => fanout.close() },
    { name: 'chat', close: () => chat.close() },
  ];
}
