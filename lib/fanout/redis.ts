// Redis Pub/Sub between the chat service (publisher) and every gateway (subscribers), one channel per room.
import { Redis } from 'ioredis';
import type { RoomId } from '../protocol/index.js';
import type { Logger } from '../observability/logger.js';

export interface FanoutPublisher {
  /** Publishes each payload to its room's channel in one round trip, in order. */
  publish(items: ReadonlyArray<{ room: RoomId; payload: string }>): Promise<void>;
  ready(): boolean;
  close(): Promise<void>;
}

export interface FanoutSubscriber {
  subscribe(room: RoomId): Promise<void>;
  unsubscribe(room: RoomId): Promise<void>;
  ready(): boolean;
  close(): Promise<void>;
}

export function roomChannel(prefix: string, room: RoomId): string {
  return `${prefix}room.${room}`;
}

export function connectRedis(url: string, log: Logger, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    lazyConnect: true,
    // Commands fail fast while disconnected instead of queueing without bound; callers retry.
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
  });
  let wasReady = false;
  redis.on('ready', () => {
    if (wasReady) log.info({ name }, 'redis reconnected');
    wasReady = true;
  });
  redis.on('error', (err: Error) => log.warn({ name, err: err.message }, 'redis error'));
  return redis;
}

export async function createFanoutPublisher(url: string, prefix: string, log: Logger): Promise<FanoutPublisher> {
  const redis = connectRedis(url, log, 'parley-fanout-pub');
  await redis.connect();
  return {
    async publish(items) {
      if (items.length === 0) return;
      const pipe = redis.pipeline();
      for (const it of items) pipe.publish(roomChannel(prefix, it.room), it.payload);
      const results = await pipe.exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw new Error('redis publish failed', { cause: failed[0] });
    },
    ready: () => redis.status === 'ready',
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * Subscribes to room channels and calls onMessage for each payload. ioredis resubscribes after a reconnect;
 * messages published while disconnected are not replayed by Redis (recovery uses the stream, not Pub/Sub).
 */
export async function createFanoutSubscriber(
  url: string,
  prefix: string,
  log: Logger,
  onMessage: (room: RoomId, payload: string) => void,
  onResubscribed: () => void = () => undefined,
): Promise<FanoutSubscriber> {
  const redis = connectRedis(url, log, 'parley-fanout-sub');
  await redis.connect();
  // After a reconnect ioredis resubscribes; what was published meanwhile is gone from Pub/Sub, so let the caller
  // catch up from the stream. The first `ready` fired inside connect() above, so every later one is a reconnect.
  redis.on('ready', () => onResubscribed());
  const channelPrefix = `${prefix}room.`;
  redis.on('message', (channel: string, payload: string) => {
    if (channel.startsWith(channelPrefix)) onMessage(channel.slice(channelPrefix.length), payload);
  });
  return {
    async subscribe(room) {
      await redis.subscribe(roomChannel(prefix, room));
    },
    async unsubscribe(room) {
      await redis.unsubscribe(roomChannel(prefix, room));
    },
    ready: () => redis.status === 'ready',
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
