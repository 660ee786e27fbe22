// Redis connections (node-redis) in the profiles Parley needs. Each reconnects by itself with capped exponential
// back-off and logs one line per distinct error, not one per attempt.
//   commands:   fail fast while disconnected (no offline queue) and time out after `commandTimeoutMs`, so callers
//               fall back at once (limits) or mark themselves for a resync (sessions) instead of waiting.
//   publisher:  fails fast while disconnected, no timeout (the chat service retries a failed fan-out itself).
//   subscriber: Pub/Sub only; subscriptions requested while disconnected wait, and node-redis re-issues every
//               subscription on reconnect before `onReconnect` runs.
import { createClient } from 'redis';
import type { RedisClientType } from 'redis';
import type { Logger } from '../observability/index.js';

export type RedisClient = RedisClientType;
export type RedisProfile = 'commands' | 'publisher' | 'subscriber';

export interface RedisConnectOptions {
  /** CLIENT SETNAME, and the `name` of its log lines. */
  name: string;
  profile: RedisProfile;
  /** commands profile: a command not answered within this is failed (the caller falls back); default 1 s. */
  commandTimeoutMs?: number;
}

export interface RedisConnection {
  readonly client: RedisClient;
  ready(): boolean;
  /** Runs `fn` after every reconnect (each `ready` but the first), never for the first connect. */
  onReconnect(fn: () => void): void;
  close(): Promise<void>;
}

/** Delay before reconnect attempt `retries` (0-based): 50 ms doubling, at most 2 s. */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** (retries + 1), 2_000);
}

/** Connects and resolves once ready. */
export async function connectRedis(url: string, log: Logger, opts: RedisConnectOptions): Promise<RedisConnection> {
  const { name, profile } = opts;
  const client = createClient({
    url,
    name,
    disableOfflineQueue: profile !== 'subscriber',
    ...(profile === 'commands' ? { commandOptions: { timeout: opts.commandTimeoutMs ?? 1_000, rejectInFlight: true } } : {}),
    socket: { reconnectStrategy: reconnectDelay },
  }) as unknown as RedisClient;
  const hooks: Array<() => void> = [];
  let wasReady = false;
  let lastError = '';
  client.on('ready', () => {
    lastError = '';
    if (!wasReady) {
      wasReady = true;
      return;
    }
    log.info({ name }, 'redis reconnected');
    for (const fn of hooks) fn();
  });
  client.on('error', (err: Error) => {
    if (err.message !== lastError) log.warn({ name, err: err.message }, 'redis error');
    lastError = err.message;
  });
  await client.connect();
  return {
    client,
    ready: () => client.isReady,
    onReconnect: (fn) => { hooks.push(fn); },
    async close() {
      if (!client.isOpen) return;
      try {
        await client.close();
      } catch {
        client.destroy();
      }
    },
  };
}

/** A Pub/Sub connection: one listener per channel. */
export interface RedisSubscriber {
  subscribe(channel: string, onMessage: (payload: string, channel: string) => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  ready(): boolean;
  onReconnect(fn: () => void): void;
  close(): Promise<void>;
}

export async function connectSubscriber(url: string, log: Logger, name: string): Promise<RedisSubscriber> {
  const conn = await connectRedis(url, log, { name, profile: 'subscriber' });
  return {
    subscribe: async (channel, onMessage) => { await conn.client.subscribe(channel, onMessage); },
    unsubscribe: async (channel) => { await conn.client.unsubscribe(channel); },
    ready: conn.ready,
    onReconnect: conn.onReconnect,
    close: conn.close,
  };
}
