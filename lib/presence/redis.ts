// The command connection of sessions, presence and limits. Unlike the fan-out connections it never queues
// commands while disconnected: callers fail fast and fall back (limits) or mark themselves for a resync (sessions).
import { Redis } from 'ioredis';
import type { ChainableCommander } from 'ioredis';
import type { Logger } from '../observability/index.js';
import { defineRateLimitCommand } from '../limits/index.js';
import {
  GATEWAY_RESET_LUA, REAP_LUA, ROOM_LUA, SESSION_CLOSE_LUA, SESSION_OPEN_LUA, SWEEP_LUA, TYPING_LUA,
} from './lua.js';

type Arg = string | number;

/** The presence scripts, loaded once per connection and called with EVALSHA (ioredis falls back to EVAL on NOSCRIPT). */
export interface PresenceCommands {
  parleySessionOpen(numKeys: number, ...args: Arg[]): Promise<[number, number]>;
  parleySessionClose(...args: Arg[]): Promise<number>;
  parleyRoom(...args: Arg[]): Promise<number>;
  parleyGatewayReset(...args: Arg[]): Promise<number>;
  parleyReap(...args: Arg[]): Promise<string[]>;
  parleySweep(...args: Arg[]): Promise<number>;
  parleyTyping(...args: Arg[]): Promise<number>;
}

export type PresenceRedis = Redis & PresenceCommands;

/** A pipeline also queues the scripts (ioredis adds custom commands to pipelines; only the typing lacks them). */
export type PresencePipeline = ChainableCommander & { [K in keyof PresenceCommands]: (...args: Arg[]) => PresencePipeline };

export function withPresenceCommands(redis: Redis): PresenceRedis {
  defineRateLimitCommand(redis);
  if (!(redis as Partial<PresenceCommands>).parleySessionOpen) {
    // numberOfKeys left out: the caller passes it first (the GCRA keys of a session open).
    redis.defineCommand('parleySessionOpen', { lua: SESSION_OPEN_LUA });
    redis.defineCommand('parleySessionClose', { lua: SESSION_CLOSE_LUA, numberOfKeys: 0 });
    redis.defineCommand('parleyRoom', { lua: ROOM_LUA, numberOfKeys: 0 });
    redis.defineCommand('parleyGatewayReset', { lua: GATEWAY_RESET_LUA, numberOfKeys: 0 });
    redis.defineCommand('parleyReap', { lua: REAP_LUA, numberOfKeys: 0 });
    redis.defineCommand('parleySweep', { lua: SWEEP_LUA, numberOfKeys: 0 });
    redis.defineCommand('parleyTyping', { lua: TYPING_LUA, numberOfKeys: 1 });
  }
  return redis as PresenceRedis;
}

export interface CommandRedisOptions {
  /** A command not answered within this is failed (the caller falls back); default 1 s. */
  commandTimeoutMs?: number;
  /** For Pub/Sub connections, which must not time out while waiting for messages. */
  subscriber?: boolean;
}

/** Connects and resolves once ready; reconnects by itself with back-off. */
export async function connectCommandRedis(url: string, log: Logger, name: string, opts: CommandRedisOptions = {}): Promise<PresenceRedis> {
  const redis = new Redis(url, {
    connectionName: name,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    ...(opts.subscriber ? {} : { commandTimeout: opts.commandTimeoutMs ?? 1_000 }),
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
  });
  let wasReady = false;
  let lastError = '';
  redis.on('ready', () => {
    if (wasReady) log.info({ name }, 'redis reconnected');
    wasReady = true;
    lastError = '';
  });
  // One line per distinct error, not one per reconnect attempt.
  redis.on('error', (err: Error) => {
    if (err.message !== lastError) log.warn({ name, err: err.message }, 'redis error');
    lastError = err.message;
  });
  await redis.connect();
  return withPresenceCommands(redis);
}
