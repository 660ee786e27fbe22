// A Redis client for tests that inspect keys: it connects on first use, so a suite may create it before the server
// it points at is up (or while it is stopped), and it is closed with the suite.
import { createClient, createCluster } from 'redis';
import type { RedisClientType } from 'redis';
import { parseRedisTarget } from '../../lib/redis/index.js';

export class RedisInspector {
  private client: RedisClientType | undefined;
  private connecting: Promise<RedisClientType> | undefined;

  constructor(private readonly url: string) {}

  /** Connects now (otherwise the first command does). */
  async connect(): Promise<void> {
    await this.c();
  }

  async scard(key: string): Promise<number> { return (await this.c()).sCard(key); }
  async hget(key: string, field: string): Promise<string | null> { return (await this.c()).hGet(key, field); }
  async zscore(key: string, member: string): Promise<number | null> { return (await this.c()).zScore(key, member); }
  async exists(key: string): Promise<number> { return (await this.c()).exists(key); }
  async sismember(key: string, member: string): Promise<number> { return Number(await (await this.c()).sIsMember(key, member)); }

  close(): void {
    this.client?.destroy();
    this.client = undefined;
    this.connecting = undefined;
  }

  private c(): Promise<RedisClientType> {
    this.connecting ??= (async () => {
      const target = parseRedisTarget(this.url);
      // On a Redis Cluster every key command is routed to its slot's master (these are all single-key).
      const client = (target.cluster
        ? createCluster({ rootNodes: target.nodes.map((url) => ({ url })), defaults: { socket: { reconnectStrategy: 100 } } })
        : createClient({ url: this.url, socket: { reconnectStrategy: 100 } })) as unknown as RedisClientType;
      client.on('error', () => undefined); // reconnects by itself; the assertions report what matters
      this.client = client;
      await client.connect();
      return client;
    })();
    return this.connecting;
  }
}
