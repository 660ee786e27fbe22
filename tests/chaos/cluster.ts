// The system under test for one chaos run: dedicated nats-server, redis-server and MongoDB-wire server (FerretDB
// natively), each with a fresh stream/prefix/database, and the Parley processes: 2 gateways, 2 chat, 1 presence.
// Also the runner's own observer connections (NATS for stream/consumer state, MongoDB for counts) and the faults.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { createClient, createCluster } from 'redis';
import type { RedisClientType } from 'redis';
import { parseRedisTarget, redisKeys } from '../../lib/redis/index.js';
import { natsNode, redisMasterOf } from '../harness/clusters.js';
import { decodeMessage } from '../../lib/fanout/index.js';
import { MongoClient } from 'mongodb';
import { decodeEvent } from '../../lib/eventlog/publisher.js';
import { createdWildcard } from '../../lib/eventlog/subjects.js';
import type { ParleyProcess } from '../harness/parley.js';
import { Suite } from '../harness/suite.js';
import type { FaultName } from './options.js';

export interface StreamEntry {
  seq: number;
  room: string;
  /** `<user>:<id>` as the chat service stores it. */
  nsId: string;
  ts: number;
}

export interface StoredDoc {
  _id: string;
  seq: number;
  room: string;
}

/** One broadcast the chat service published to Redis, as a wiretap on the room channels saw it. */
export interface Tapped {
  seq: number;
  /** The chat's `prev` hint; null when it left it out (it could not ask the stream). */
  prev: number | null;
  at: number;
}

/**
 * Listens to every room channel (PSUBSCRIBE; on a Redis Cluster SSUBSCRIBE to each room's sharded channel) and records
 * each broadcast: tells whether a hole came from the chat service's `prev` hint or from a gateway. Misses what is
 * published while Redis is down (so do the gateways).
 */
export class Wiretap {
  /** room -> seq -> broadcasts of it. */
  readonly byRoom = new Map<string, Map<number, Tapped[]>>();
  count = 0;
  private readonly redis: RedisClientType;
  private readonly pattern: string;
  private readonly channels: string;
  private readonly cluster: boolean;

  constructor(url: string, prefix: string, private readonly rooms: readonly string[]) {
    const channels = `${prefix}room.`;
    this.channels = channels;
    this.pattern = `${channels}*`;
    const target = parseRedisTarget(url);
    this.cluster = target.cluster;
    this.redis = (target.cluster
      ? createCluster({ rootNodes: target.nodes.map((u) => ({ url: u })), defaults: { name: 'chaos-wiretap', socket: { reconnectStrategy: 200 } } })
      : createClient({ url, name: 'chaos-wiretap', socket: { reconnectStrategy: 200 } })) as unknown as RedisClientType;
    this.redis.on('error', () => undefined); // it reconnects (and re-subscribes) by itself
    this.onMessage = (payload: string, channel: string) => {
      const b = decodeMessage(payload);
      if (!b) return;
      const room = channel.slice(channels.length);
      let m = this.byRoom.get(room);
      if (!m) this.byRoom.set(room, (m = new Map()));
      const t: Tapped = { seq: b.seq, prev: typeof b.prev === 'number' ? b.prev : null, at: Date.now() };
      const l = m.get(b.seq);
      if (l) l.push(t);
      else m.set(b.seq, [t]);
      this.count++;
    };
  }

  private readonly onMessage: (payload: string, channel: string) => void;

  async open(): Promise<void> {
    await this.redis.connect();
    if (this.cluster) {
      for (const room of this.rooms) await this.redis.sSubscribe(`${this.channels}${room}`, this.onMessage);
    } else {
      await this.redis.pSubscribe(this.pattern, this.onMessage);
    }
  }

  get(room: string, seq: number): Tapped[] {
    return this.byRoom.get(room)?.get(seq) ?? [];
  }

  close(): void {
    this.redis.destroy();
  }
}

export type Role = 'gateway-a' | 'gateway-b' | 'chat-1' | 'chat-2' | 'presence';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Cluster {
  readonly gateways: ParleyProcess[] = [];
  readonly chats: ParleyProcess[] = [];
  presence: ParleyProcess | undefined;
  /** pid -> role, for the process logs (`<command>-<pid>.log`). */
  readonly pids: Record<string, Role> = {};
  private frozen = false;
  private nc: NatsConnection | undefined;
  private jsmP: Promise<JetStreamManager> | undefined;
  private observerMongo: MongoClient | undefined;
  wiretap: Wiretap | undefined;
  private closed = false;

  private constructor(readonly suite: Suite) {}

  static async open(name: string, rooms: readonly string[], opts: { cluster?: boolean; env?: Record<string, string> } = {}): Promise<Cluster> {
    const extraEnv = opts.env ?? {};
    const suite = await Suite.open(name, {
      dedicatedNats: true, dedicatedRedis: true, dedicatedMongo: true,
      ...(opts.cluster ? { natsCluster: 3, redisCluster: true } : {}),
      env: {
        // Recovery is never refused for size: every `join {since}` must replay.
        PARLEY_RECOVERY_MAX_MESSAGES: '1000000',
        // A gateway restarted on its port would wait out its predecessor's TIME_WAIT (about 60 s); the suite moves it
        // to a new port at once instead (restartGateway), so the fault schedule keeps its pace.
        PARLEY_LISTEN_RETRY_MS: '0',
        PARLEY_CHAT_ACK_WAIT_MS: '3000',
        LOG_LEVEL: 'info',
        ...extraEnv,
      },
    });
    const c = new Cluster(suite);
    try {
      // One chat first: it creates the stream and the durable consumer; the rest start together.
      c.chats.push(await suite.start('chat'));
      const [chat2, presence, gwA, gwB] = await Promise.all([
        suite.start('chat'), suite.start('presence'), suite.start('gateway'), suite.start('gateway'),
      ]);
      c.chats.push(chat2);
      c.presence = presence;
      c.gateways.push(gwA, gwB);
      c.notePids();
      c.nc = await connect({ servers: suite.nats.url.split(','), name: 'chaos-observer', maxReconnectAttempts: -1, reconnectTimeWait: 200, waitOnFirstConnect: true });
      c.wiretap = new Wiretap(suite.redis.url, suite.env.PARLEY_REDIS_PREFIX ?? '', rooms);
      await c.wiretap.open();
      c.observerMongo = await new MongoClient(suite.mongoServer.url, {
        appName: 'chaos-observer', serverSelectionTimeoutMS: 2_000, connectTimeoutMS: 2_000, socketTimeoutMS: 5_000, retryReads: false,
      }).connect();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get env(): Record<string, string> {
    return this.suite.env;
  }

  get urls(): string[] {
    return this.gateways.map((g) => g.url);
  }

  get streamName(): string {
    return this.suite.env.PARLEY_STREAM!;
  }

  get consumerName(): string {
    return this.suite.env.PARLEY_CHAT_CONSUMER ?? 'chat-persist';
  }

  notePids(): void {
    const note = (p: ParleyProcess | undefined, role: Role): void => {
      if (p?.pid !== undefined) this.pids[String(p.pid)] = role;
    };
    note(this.gateways[0], 'gateway-a');
    note(this.gateways[1], 'gateway-b');
    note(this.chats[0], 'chat-1');
    note(this.chats[1], 'chat-2');
    note(this.presence, 'presence');
  }

  /** Which Parley processes are not running (crashed, or failed to restart). */
  down(): Role[] {
    const out: Role[] = [];
    if (!this.gateways[0]?.running) out.push('gateway-a');
    if (!this.gateways[1]?.running) out.push('gateway-b');
    if (!this.chats[0]?.running) out.push('chat-1');
    if (!this.chats[1]?.running) out.push('chat-2');
    if (!this.presence?.running) out.push('presence');
    return out;
  }

  private jsm(): Promise<JetStreamManager> {
    this.jsmP ??= jetstreamManager(this.nc!, { timeout: 1_500 }).catch((err: unknown) => {
      this.jsmP = undefined;
      throw err;
    });
    return this.jsmP;
  }

  async streamState(): Promise<{ messages: number; lastSeq: number }> {
    const info = await (await this.jsm()).streams.info(this.streamName);
    return { messages: info.state.messages, lastSeq: info.state.last_seq };
  }

  async consumerInfo(): Promise<ConsumerInfo> {
    return (await this.jsm()).consumers.info(this.streamName, this.consumerName);
  }

  /** `messages_persisted_total{result="stored"}` of each chat instance (null: not running or not answering). */
  async chatStored(): Promise<Array<number | null>> {
    return Promise.all(this.chats.map(async (p) => {
      if (!p.running || !p.opsPort) return null;
      try {
        const res = await fetch(`http://127.0.0.1:${p.opsPort}/metrics`, { signal: AbortSignal.timeout(1_000) });
        const text = await res.text();
        const m = /^messages_persisted_total\{[^}]*result="stored"[^}]*\} (\d+)/m.exec(text);
        return m ? Number(m[1]) : 0;
      } catch {
        return null;
      }
    }));
  }

  /**
   * MongoDB's document count, or throws within seconds (e.g. while it is frozen). `collStats` first: FerretDB 1.24
   * answers it in ~10 ms, while its `count` scans the whole collection (~0.75 s at 10k documents, CPU the chat
   * service's inserts then lack). Observing must not load the store it observes.
   */
  async storedCount(): Promise<number> {
    const db = this.observerMongo!.db(this.env.PARLEY_MONGO_DB);
    try {
      const r = await db.command({ collStats: 'messages' });
      if (typeof r.count === 'number') return r.count;
    } catch (err) {
      if (/not ?found|does not exist/i.test(String(err))) return 0;
    }
    return db.collection('messages').estimatedDocumentCount();
  }

  /** Every created event in the stream, in seq order (an ordered consumer). */
  async readStream(): Promise<StreamEntry[]> {
    const { messages } = await this.streamState();
    const out: StreamEntry[] = [];
    if (messages === 0) return out;
    const js = jetstream(this.nc!, { timeout: 5_000 });
    const consumer = await js.consumers.get(this.streamName, { filter_subjects: [createdWildcard(this.env.PARLEY_SUBJECT_ROOT!)] });
    const iter = await consumer.consume({ max_messages: 2_000 });
    const guard = setTimeout(() => iter.stop(), 30_000);
    try {
      for await (const m of iter) {
        const ev = decodeEvent(m.data);
        out.push(ev
          ? { seq: m.seq, room: ev.room, nsId: `${ev.from}:${ev.id}`, ts: ev.ts }
          : { seq: m.seq, room: m.subject.slice(m.subject.lastIndexOf('.') + 1), nsId: `?malformed:${m.seq}`, ts: 0 });
        if (m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(guard);
      iter.stop();
      await consumer.delete().catch(() => undefined);
    }
    return out;
  }

  /** Every stored message (id, seq, room), read with a client of our own (not the observer's short timeouts). */
  async readStored(): Promise<StoredDoc[]> {
    const docs = await this.suite.messages().find({}, { projection: { _id: 1, seq: 1, room: 1 } }).toArray();
    return docs.map((d) => ({ _id: String(d._id), seq: Number(d.seq), room: String(d.room) }));
  }

  /** Which of these ids are stored, with their seqs. Expensive on FerretDB (every `$in` is a full scan): use sparingly. */
  async storedIds(ids: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < ids.length; i += 1_000) {
      const slice = ids.slice(i, i + 1_000);
      const docs = await this.observerMongo!.db(this.env.PARLEY_MONGO_DB).collection('messages')
        .find({ _id: { $in: slice as never[] } }, { projection: { _id: 1, seq: 1 } }).toArray();
      for (const d of docs) out.set(String(d._id), Number(d.seq));
    }
    return out;
  }

  // --- faults -----------------------------------------------------------------------------------------------------

  /**
   * Runs one fault: `inject` at once, `restore` after the down time. Resolves with when the fault was repaired;
   * a restore that fails is retried (a process that cannot come back is itself a finding, reported by the caller).
   */
  async fault(name: FaultName, o: { downMs: number; freezeMs: number; chat: number; room: string; log: (s: string) => void }): Promise<{ restoredAt: number; errors: string[]; target: string }> {
    const errors: string[] = [];
    const retry = async (what: string, op: () => Promise<void>): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await op();
          return;
        } catch (err) {
          const msg = `${what} failed (attempt ${attempt}): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
          errors.push(msg);
          o.log(msg);
          if (attempt >= 3 || this.closed) return;
          await sleep(2_000);
        }
      }
    };
    let target: string;
    switch (name) {
      case 'gw-a-kill':
        target = 'gateway-a';
        await this.gateways[0]!.kill('SIGKILL');
        await sleep(o.downMs);
        await this.restartGateway(0, errors, retry);
        break;
      case 'gw-b-term': {
        target = 'gateway-b';
        const code = await this.gateways[1]!.stop();
        if (code !== 0) errors.push(`gateway B exited ${String(code)} after SIGTERM (expected 0)`);
        await sleep(o.downMs);
        await this.restartGateway(1, errors, retry);
        break;
      }
      case 'chat-kill': {
        const chat = this.chats[o.chat]!;
        target = `chat-${o.chat + 1}`;
        await chat.kill('SIGKILL');
        await sleep(o.downMs);
        await retry(`${target} restart`, () => chat.start());
        break;
      }
      case 'redis-kill':
        target = 'redis';
        await this.suite.redis.kill();
        await sleep(o.downMs);
        await retry('redis restart', () => this.suite.redis.start());
        break;
      case 'mongo-freeze':
        target = 'mongo';
        await this.suite.mongoServer.freeze();
        this.frozen = true;
        await sleep(o.freezeMs);
        await this.suite.mongoServer.thaw();
        this.frozen = false;
        break;
      case 'mongo-kill':
        target = 'mongo';
        await this.suite.mongoServer.kill();
        await sleep(o.downMs);
        await retry('mongo restart', () => this.suite.mongoServer.start());
        break;
      case 'nats-kill':
        target = 'nats';
        await this.suite.nats.kill();
        await sleep(o.downMs);
        await retry('nats restart', () => this.suite.nats.start());
        break;
      case 'nats-leader-kill':
      case 'nats-follower-kill': {
        const nats = this.suite.natsCluster!;
        const info = await (await this.jsm()).streams.info(this.streamName);
        const leader = info.cluster?.leader;
        if (!leader) throw new Error('the stream has no leader to start with');
        // A follower that is caught up (a lagging one would not test much), chosen by the run's seed.
        const followers = (info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name);
        if (name === 'nats-follower-kill' && followers.length === 0) throw new Error('the stream has no current follower');
        const nodeName = name === 'nats-leader-kill' ? leader : followers[o.chat % followers.length]!;
        const node = natsNode(nats, nodeName);
        target = `nats ${nodeName} (${nodeName === leader ? 'stream leader' : 'follower'})`;
        await node.kill('SIGKILL');
        await sleep(o.downMs);
        await retry(`nats ${nodeName} restart`, () => node.start());
        break;
      }
      case 'redis-master-kill': {
        const redis = this.suite.redisCluster!;
        // The master of the first room's sharded channel: fan-out of that room must survive the failover.
        const key = redisKeys(this.env.PARLEY_REDIS_PREFIX ?? '').roomChannel(o.room);
        const victim = await redisMasterOf(redis, key);
        target = `redis master ${victim.nodeName}`;
        await victim.kill('SIGKILL');
        // Restarted only once its replica took over: a master back before the failover would serve its slots empty.
        const deadline = Date.now() + 60_000;
        for (;;) {
          const now = await redisMasterOf(redis, key).catch(() => victim);
          if (now.nodeName !== victim.nodeName) break;
          if (Date.now() > deadline) {
            errors.push('no replica took over within 60 s');
            break;
          }
          await sleep(200);
        }
        await sleep(o.downMs);
        await retry(`redis ${victim.nodeName} restart`, () => victim.start());
        break;
      }
    }
    this.notePids();
    return { restoredAt: Date.now(), errors, target };
  }

  /**
   * Starts gateway `i` again on its port. A gateway that had connections cannot listen there again while the old
   * connections sit in TIME_WAIT (about 60 s: the gateway's listen socket does not reuse the address), so then it is
   * started on a new port (clients read the URLs afresh on every reconnect) and the finding is recorded.
   */
  private async restartGateway(i: number, errors: string[], retry: (what: string, op: () => Promise<void>) => Promise<void>): Promise<void> {
    const gw = this.gateways[i]!;
    const name = `gateway ${'AB'[i]}`;
    const port = gw.port;
    try {
      await gw.start();
      return;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (!/cannot listen/.test(msg)) {
        errors.push(`${name} restart failed: ${msg.split('\n')[0]}`);
      } else {
        errors.push(`${name} could not listen on its port ${port} again (old connections in TIME_WAIT); restarted on a new port`);
        gw.port = 0;
      }
    }
    await retry(`${name} restart`, () => gw.start());
  }

  /** Stops everything this run started: processes, observer connections, servers (thawing a frozen one first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.frozen) {
      await this.suite.mongoServer.thaw().catch(() => undefined);
      this.frozen = false;
    }
    this.wiretap?.close();
    await this.nc?.close().catch(() => undefined);
    await this.observerMongo?.close(true).catch(() => undefined);
    try {
      await this.suite.close();
    } finally {
      // Idempotent: makes sure the servers go even if stopping a process failed.
      await Promise.all([this.suite.nats, this.suite.redis, this.suite.mongoServer].map((s) => s.close().catch(() => undefined)));
    }
  }

  /** Last resort (second Ctrl-C): SIGKILL every Parley process now; the servers die with this process. */
  killNow(): void {
    for (const p of [...this.gateways, ...this.chats, this.presence]) void p?.kill('SIGKILL');
  }
}
