// Redis Pub/Sub between the chat service (publisher) and every gateway (subscribers), one channel per room: plain
// Pub/Sub on one Redis, sharded Pub/Sub (SPUBLISH/SSUBSCRIBE, each room on its channel's shard) on a Redis Cluster.
// The connections come from lib/redis, built by the caller.
import type { RoomId } from '../protocol/index.js';
import type { RedisConnection, RedisKeys, RedisSubscriber } from '../redis/index.js';

export interface FanoutPublisher {
  /** Publishes each payload to its room's channel in one round trip, in order. */
  publish(items: ReadonlyArray<{ room: RoomId; payload: string }>): Promise<void>;
  ready(): boolean;
}

export interface FanoutSubscriber {
  /**
   * Where each room's payloads go, and what runs after every reconnect (what was published meanwhile is gone from
   * Pub/Sub: the caller catches up from the stream). Set once, before the first subscribe.
   */
  listen(onMessage: (room: RoomId, payload: string) => void, onResubscribed: () => void): void;
  subscribe(room: RoomId): Promise<void>;
  unsubscribe(room: RoomId): Promise<void>;
  ready(): boolean;
}

/** On a publisher-profile connection: fails at once while Redis is away (the chat service retries the batch). */
export function createFanoutPublisher(redis: RedisConnection, keys: RedisKeys): FanoutPublisher {
  return {
    async publish(items) {
      if (items.length === 0) return;
      try {
        await redis.publishEach(items.map((it) => [keys.roomChannel(it.room), it.payload] as const));
      } catch (err) {
        throw new Error('redis publish failed', { cause: err });
      }
    },
    ready: redis.ready,
  };
}

/**
 * Room channels on a subscriber-profile connection. node-redis resubscribes after a reconnect; messages published
 * while disconnected are not replayed by Redis (recovery uses the stream, not Pub/Sub).
 */
export function createFanoutSubscriber(sub: RedisSubscriber, keys: RedisKeys): FanoutSubscriber {
  let onMessage: (room: RoomId, payload: string) => void = () => undefined;
  const listener = (payload: string, channel: string): void => {
    const room = keys.roomOfChannel(channel);
    if (room !== undefined) onMessage(room, payload);
  };
  return {
    listen(handler, onResubscribed) {
      onMessage = handler;
      sub.onReconnect(onResubscribed);
    },
    subscribe: (room) => sub.subscribeSharded(keys.roomChannel(room), listener),
    unsubscribe: (room) => sub.unsubscribeSharded(keys.roomChannel(room)),
    ready: sub.ready,
  };
}
