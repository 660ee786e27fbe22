// Redis connections (node-redis) in the profiles Parley needs. Each reconnects by itself with capped exponential
// back-off and logs one line per distinct error, not one per attempt.
//   commands:   fail fast while disconnected (no offline queue) and time out after `commandTimeoutMs`, so callers
//               fall back at once (limits) or mark themselves for a resync (sessions) instead of waiting.
//   publisher:  fails fast while disconnected, no timeout (the chat service retries a failed fan-out itself).
//   subscriber: Pub/Sub only; subscriptions requested while disconnected wait, and node-redis re-issues every
//               subscription on reconnect before `onReconnect` runs.
// A Redis Cluster (`redis+cluster://`, or REDIS_CLUSTER=1) gets node-redis's cluster client in the same profiles: it
// routes each command by its key's slot (every script's keys share one slot: keys.ts), follows failovers by itself,
// and room channels use sharded Pub/Sub (SPUBLISH/SSUBSCRIBE) there, plain Pub/Sub on one server.
import { createClient, createCluster } from 'redis';
import type { RedisClientType, RedisClusterType } from 'redis';
import type { Logger } from '../observability/index.js';
import { parseRedisTarget } from './target.js';

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
  /** On a Redis Cluster the cluster client, typed as one client: use only commands with keys (they are routed). */
  readonly client: RedisClient;
  readonly cluster: boolean;
  ready(): boolean;
  /**
   * Publishes each payload to its channel, in order per channel: PUBLISH in one pipeline on one Redis, SPUBLISH to
   * each channel's shard on a Redis Cluster. Rejects when any publish failed.
   */
  publishEach(items: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void>;
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
  const target = parseRedisTarget(url);
  if (target.cluster) return connectCluster(target.nodes, log, opts);
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
    cluster: false,
    ready: () => client.isReady,
    async publishEach(items) {
      if (items.length === 0) return;
      const pipe = client.multi();
      for (const [channel, payload] of items) pipe.publish(channel, payload);
      await pipe.execAsPipeline();
    },
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

/** On a Redis Cluster: what a run of reconnects looks like to `onReconnect` (one call per burst of node reconnects). */
const CLUSTER_RECONNECT_DEBOUNCE_MS = 200;

async function connectCluster(nodes: string[], log: Logger, opts: RedisConnectOptions): Promise<RedisConnection> {
  const { name, profile } = opts;
  const first = new URL(nodes[0]!);
  const cluster = createCluster({
    rootNodes: nodes.map((url) => ({ url })),
    defaults: {
      name,
      disableOfflineQueue: profile !== 'subscriber',
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      socket: { reconnectStrategy: reconnectDelay, ...(first.protocol === 'rediss:' ? { tls: true as const } : {}) },
    },
    ...(profile === 'commands' ? { commandOptions: { timeout: opts.commandTimeoutMs ?? 1_000 } } : {}),
    // A node that stopped answering is probably failed over: ask the others for the new layout soon, not after 5 s.
    topologyRefreshOnReconnectionAttemptStrategy: 500,
  }) as unknown as RedisClusterType;
  const hooks: Array<() => void> = [];
  let connected = false;
  let pending: NodeJS.Timeout | undefined;
  let lastError = '';
  const onError = (err: Error): void => {
    if (err.message !== lastError) log.warn({ name, err: err.message }, 'redis cluster error');
    lastError = err.message;
  };
  cluster.on('error', onError);
  cluster.on('node-error', onError);
  // Every node client that becomes ready after the first connect (a restarted node, a promoted replica, a new pub/sub
  // connection after a failover) may have missed publishes: run the hooks once per burst.
  cluster.on('node-ready', () => {
    lastError = '';
    if (!connected || hooks.length === 0 || pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      log.info({ name }, 'redis cluster node (re)connected');
      for (const fn of hooks) fn();
    }, CLUSTER_RECONNECT_DEBOUNCE_MS);
  });
  await cluster.connect();
  connected = true;
  return {
    client: cluster as unknown as RedisClient,
    cluster: true,
    ready: () => cluster.isReady,
    async publishEach(items) {
      // One SPUBLISH per message; those of one channel go to one shard over one connection, so they stay in order.
      await Promise.all(items.map(([channel, payload]) => cluster.sPublish(channel, payload)));
    },
    onReconnect: (fn) => { hooks.push(fn); },
    async close() {
      if (pending) clearTimeout(pending);
      if (!cluster.isOpen) return;
      try {
        await cluster.close();
      } catch {
        cluster.destroy();
      }
    },
  };
}

/** A Pub/Sub connection: one listener per channel. */
export interface RedisSubscriber {
  subscribe(channel: string, onMessage: (payload: string, channel: string) => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Sharded Pub/Sub (SSUBSCRIBE) on a Redis Cluster, plain SUBSCRIBE on one server: for channels published with publishEach. */
  subscribeSharded(channel: string, onMessage: (payload: string, channel: string) => void): Promise<void>;
  unsubscribeSharded(channel: string): Promise<void>;
  ready(): boolean;
  onReconnect(fn: () => void): void;
  close(): Promise<void>;
}

export async function connectSubscriber(url: string, log: Logger, name: string): Promise<RedisSubscriber> {
  const conn = await connectRedis(url, log, { name, profile: 'subscriber' });
  const c = conn.client;
  return {
    subscribe: async (channel, onMessage) => { await c.subscribe(channel, onMessage); },
    unsubscribe: async (channel) => { await c.unsubscribe(channel); },
    subscribeSharded: conn.cluster
      ? async (channel, onMessage) => { await c.sSubscribe(channel, onMessage); }
      : async (channel, onMessage) => { await c.subscribe(channel, onMessage); },
    unsubscribeSharded: conn.cluster
      ? async (channel) => { await c.sUnsubscribe(channel); }
      : async (channel) => { await c.unsubscribe(channel); },
    ready: conn.ready,
    onReconnect: conn.onReconnect,
    close: conn.close,
  };
}
