// Read-only presence queries, for any service holding a Redis connection.
import type { Redis } from 'ioredis';
import type { RoomId } from '../protocol/index.js';
import { presenceKeys } from './keys.js';

/** Users online in the room now: members with a live session in it, or whose offline is still within the grace. */
export function onlineInRoom(redis: Redis, prefix: string, room: RoomId): Promise<string[]> {
  return redis.hkeys(presenceKeys(prefix).roomOnline(room));
}
