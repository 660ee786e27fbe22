// One e2e suite's world: its own servers (or shared ones with its own stream, prefix and database), the Parley
// processes it starts, the clients it connects, and one close() that releases all of it.
import { MongoClient } from 'mongodb';
import type { Collection, Document } from 'mongodb';
import { connect as connectSdk } from '../../lib/client/node.js';
import type { ClientOptions, ParleyClient } from '../../lib/client/node.js';
import { TestClient } from './client.js';
import { asService, provideNatsCluster, provideRedisCluster } from './clusters.js';
import type { ClusterHandle } from './clusters.js';
import { ParleyProcess, suiteEnv, token } from './parley.js';
import { RedisInspector } from './redis.js';
import { provideMongo, provideNats, provideRedis } from './services.js';
import type { ServiceHandle } from './services.js';
import { uniqueName } from './wait.js';

export interface SuiteOptions {
  /** A NATS server of the suite's own, which it may stop or kill. */
  dedicatedNats?: boolean;
  /** Likewise for Redis and MongoDB. */
  dedicatedRedis?: boolean;
  dedicatedMongo?: boolean;
  /** A NATS JetStream cluster of this many nodes (the suite's own) instead of one server; the stream gets R3. */
  natsCluster?: number;
  /** A Redis Cluster of the suite's own (3 masters + 3 replicas) instead of one server. */
  redisCluster?: boolean;
  /** Extra environment for every Parley process of the suite. */
  env?: Record<string, string>;
}

export class Suite {
  private readonly procs: ParleyProcess[] = [];
  private readonly clients: Array<{ close(): Promise<void> }> = [];
  private readonly redisClients: RedisInspector[] = [];
  /** The clusters' nodes, when the suite asked for clustered engines. */
  natsCluster: ClusterHandle | undefined;
  redisCluster: ClusterHandle | undefined;

  private constructor(
    readonly env: Record<string, string>,
    readonly nats: ServiceHandle,
    readonly redis: ServiceHandle,
    readonly mongoServer: ServiceHandle,
    readonly mongo: MongoClient,
  ) {}

  static async open(prefix: string, opts: SuiteOptions = {}): Promise<Suite> {
    const clusters = await Promise.allSettled([
      opts.natsCluster ? provideNatsCluster(opts.natsCluster) : undefined,
      opts.redisCluster ? provideRedisCluster() : undefined,
    ]);
    const failed = clusters.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const [natsC, redisC] = clusters.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    if (failed) {
      await Promise.all([natsC?.close(), redisC?.close()]);
      throw failed.reason;
    }
    const [nats, redis, mdb] = await Promise.all([
      natsC ? asService(natsC) : provideNats({ dedicated: opts.dedicatedNats ?? false }),
      redisC ? asService(redisC) : provideRedis({ dedicated: opts.dedicatedRedis ?? false }),
      provideMongo({ dedicated: opts.dedicatedMongo ?? false }),
    ]);
    const env = {
      ...suiteEnv({ natsUrl: nats.url, redisUrl: redis.url, mongoUrl: mdb.url }, uniqueName(prefix)),
      ...(natsC ? { PARLEY_STREAM_REPLICAS: String(Math.min(3, natsC.nodes.length)) } : {}),
      ...(opts.env ?? {}),
    };
    const mongo = await new MongoClient(mdb.url).connect();
    const suite = new Suite(env, nats, redis, mdb, mongo);
    suite.natsCluster = natsC;
    suite.redisCluster = redisC;
    return suite;
  }

  /**
   * Starts a Parley process with the suite's environment (plus `extra`); closed with the suite. `onLine` sees every
   * line it writes, from its first.
   */
  async start(command: 'gateway' | 'chat' | 'presence' | 'all' | 'notify', extra: Record<string, string> = {},
    onLine?: (line: string) => void): Promise<ParleyProcess> {
    // Tracked before it is ready: when a sibling start fails (Promise.all in a `before`), close() still stops this one
    // instead of leaving it running and the test file unable to exit.
    const p = ParleyProcess.create(command, { ...this.env, ...extra }, onLine);
    this.procs.push(p);
    await p.start();
    return p;
  }

  async connect(gw: ParleyProcess, user: string, tok = token(user)): Promise<TestClient> {
    const c = await TestClient.connect(gw.url, tok, user);
    this.clients.push(c);
    return c;
  }

  /**
   * An SDK client (lib/client) for `user` on the given gateways (tried in turn), reconnecting quickly; closed with
   * the suite.
   */
  sdk(gws: ParleyProcess[], user: string, opts: Partial<ClientOptions> = {}): ParleyClient {
    const c = connectSdk({
      url: gws.map((g) => g.url), getToken: () => token(user), reconnect: { minDelayMs: 50, maxDelayMs: 1_000 }, ...opts,
    });
    this.clients.push(c);
    return c;
  }

  /** A Redis client for inspecting keys (lazy: it connects on first use); closed with the suite. */
  redisClient(): RedisInspector {
    const r = new RedisInspector(this.redis.url);
    this.redisClients.push(r);
    return r;
  }

  /** Remembers a client connected by other means, so the suite closes it. */
  track(c: TestClient): TestClient {
    this.clients.push(c);
    return c;
  }

  messages(): Collection<Document> {
    return this.mongo.db(this.env.PARLEY_MONGO_DB).collection('messages');
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    await Promise.all(this.procs.map((p) => p.stop()));
    await this.mongo.close();
    for (const r of this.redisClients) r.close();
    await Promise.all([this.nats, this.redis, this.mongoServer].map((s) => s.close()));
  }
}

/** `n` distinct client message ids. */
export function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}
