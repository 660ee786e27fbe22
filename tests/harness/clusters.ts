// Clustered engines for e2e suites: a NATS JetStream cluster and a Redis Cluster from lib/stack, on free ports of
// 127.0.0.1 with data in a temporary directory, always native (their nodes are killed one by one, so they are the
// suite's own). `asService` makes one a ServiceHandle for the Suite; the nodes stay reachable for the faults.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createClient } from 'redis';
import { decodeEvent } from '../../lib/eventlog/publisher.js';
import { createdWildcard } from '../../lib/eventlog/subjects.js';
import { launchNatsCluster, launchRedisCluster, redisClusterNodes, redisKeySlot } from '../../lib/stack/clusters.js';
import type { ClusterNode, EngineCluster } from '../../lib/stack/clusters.js';
import type { ServiceHandle } from './services.js';

export interface ClusterHandle extends EngineCluster {
  /** Stops every node and removes the data; idempotent. */
  close(): Promise<void>;
}

const log = pino({ name: 'test-harness', level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'warn' }, pino.destination(2));

async function provide(kind: 'nats' | 'redis', launch: (dir: string) => Promise<EngineCluster>): Promise<ClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), `parley-${kind}-cluster-`));
  let c: EngineCluster;
  try {
    c = await launch(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  return {
    nodes: c.nodes,
    url: c.url,
    stop: () => c.stop(),
    async close() {
      if (closed) return;
      closed = true;
      await c.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `size` nats-server nodes with JetStream, routed into one cluster; NATS_URL is `url` (every node). */
export function provideNatsCluster(size = 3): Promise<ClusterHandle> {
  return provide('nats', (dir) => launchNatsCluster({ size, dir, log }));
}

/** 3 masters + 3 replicas (redis-server in cluster mode); REDIS_URL is `url` (redis+cluster://, every node). */
export function provideRedisCluster(): Promise<ClusterHandle> {
  return provide('redis', (dir) => launchRedisCluster({ size: 3, replicas: 1, dir, log }));
}

/** A cluster as one ServiceHandle (stop/start/kill act on every node), for the Suite. */
export function asService(c: ClusterHandle): ServiceHandle {
  const all = (op: (n: ClusterNode) => Promise<void>) => async (): Promise<void> => { await Promise.all(c.nodes.map(op)); };
  return {
    url: c.url,
    source: 'native',
    stop: all((n) => n.stop()),
    start: all((n) => n.start()),
    kill: all((n) => n.kill('SIGKILL')),
    freeze: all((n) => n.kill('SIGSTOP')),
    thaw: all((n) => n.kill('SIGCONT')),
    close: () => c.close(),
  };
}

/** The server name of the stream's leader (stream info cluster.leader), or undefined while there is none. */
export async function streamLeader(nc: NatsConnection, stream: string): Promise<string | undefined> {
  const jsm = await jetstreamManager(nc, { timeout: 2_000 });
  const info = await jsm.streams.info(stream);
  return info.cluster?.leader || undefined;
}

/** The node of a NATS cluster named `name` (n0, n1, ...). */
export function natsNode(c: EngineCluster, name: string): ClusterNode {
  const n = c.nodes.find((x) => x.nodeName === name);
  if (!n) throw new Error(`no NATS node named ${name} (have ${c.nodes.map((x) => x.nodeName).join(', ')})`);
  return n;
}

/** The node serving `key`'s slot as master now, as a running node sees the cluster. */
export async function redisMasterOf(c: EngineCluster, key: string): Promise<ClusterNode> {
  const live = c.nodes.find((n) => n.running);
  if (!live) throw new Error('no Redis node is running');
  const slot = await redisKeySlot(live.url, key);
  const state = await redisClusterNodes(live.url);
  const m = state.find((s) => s.master && !s.failed && s.slots.some(([a, b]) => slot >= a && slot <= b));
  const node = m && c.nodes.find((n) => n.nodeName === m.address);
  if (!node) throw new Error(`no live master serves slot ${slot} of ${key}`);
  return node;
}

/** Every created event in `stream`, in seq order: its seq and namespaced id (`<user>:<id>`). */
export async function readStream(nc: NatsConnection, stream: string, subjectRoot: string): Promise<Array<{ seq: number; nsId: string }>> {
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  const { state } = await jsm.streams.info(stream);
  const out: Array<{ seq: number; nsId: string }> = [];
  if (state.messages === 0) return out;
  const consumer = await jsm.jetstream().consumers.get(stream, { filter_subjects: [createdWildcard(subjectRoot)] });
  const iter = await consumer.consume({ max_messages: 1_000 });
  const guard = setTimeout(() => iter.stop(), 30_000);
  try {
    for await (const m of iter) {
      const ev = decodeEvent(m.data);
      out.push({ seq: m.seq, nsId: ev ? `${ev.from}:${ev.id}` : `?malformed:${m.seq}` });
      if (m.info.pending === 0) break;
    }
  } finally {
    clearTimeout(guard);
    iter.stop();
    await consumer.delete().catch(() => undefined);
  }
  return out;
}

/** The node runs as a replica whose link to its master is up (it can take over when its master dies). */
export async function redisReplicaInSync(node: ClusterNode): Promise<boolean> {
  const c = createClient({ url: node.url, socket: { connectTimeout: 2_000, reconnectStrategy: false } });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const info = String(await c.sendCommand(['INFO', 'replication']));
    return /role:slave/.test(info) && /master_link_status:up/.test(info) && !/master_sync_in_progress:1/.test(info);
  } finally {
    c.destroy();
  }
}
