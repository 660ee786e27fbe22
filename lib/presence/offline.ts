// Who is offline right now, cluster-wide: a user without a session in `user:<u>:sessions` (sessions leave that set
// when they close or their gateway is reaped; the grace period only delays the announcement).
import type { RedisConnection, RedisKeys } from '../redis/index.js';

/** Of `users`, those without a session now. Throws when Redis does not answer (the caller retries). */
export async function offlineAmong(redis: RedisConnection, keys: RedisKeys, users: string[]): Promise<Set<string>> {
  if (users.length === 0) return new Set();
  // Issued in one tick: node-redis pipelines them into one round trip.
  const counts = await Promise.all(users.map((u) => redis.client.sCard(keys.userSessions(u))));
  return new Set(users.filter((_, i) => counts[i] === 0));
}
