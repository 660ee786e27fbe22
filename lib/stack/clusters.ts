// The clustered forms of the stack's engines on 127.0.0.1: a NATS JetStream cluster (N nats-server nodes with routes
// between them, one store dir each) and a Redis Cluster (Debian's redis-server in cluster mode, masters with one
// replica each, made into a cluster by `redis-cli --cluster create`). Every node is a ManagedService: it can be
// killed and started again on its own port with its own data, which is what the failover tests do.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createClient } from 'redis';
import { pino } from 'pino';
import type { Logger } from '../observability/logger.js';
import { StackError } from './errors.js';
import { ensureNatsServer, ensureRedis } from './install.js';
import { probeNats, probeRedis } from './probe.js';
import { freePort, launch, type ManagedService, type ServiceSpec } from './process.js';
import { findExecutable, run, sleep } from './util.js';

export interface ClusterNode extends ManagedService {
  /** NATS: the server name JetStream reports (stream info cluster.leader); Redis: `127.0.0.1:<port>`. */
  readonly nodeName: string;
}

export interface EngineCluster {
  readonly nodes: readonly ClusterNode[];
  /** NATS: every node's URL, comma-separated (NATS_URL); Redis: `redis+cluster://` with every node (REDIS_URL). */
  readonly url: string;
  /** Stops every node (data stays under the dir). */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** NATS: nodes (default 3); Redis: masters (default 3), each with `replicas` replicas. */
  size?: number;
  /** Node i keeps its data in <dir>/<n|r><i>. */
  dir: string;
  log?: Logger;
  /** Keep running after this process exits (`parley stack up`); node i logs to <logDir>/<nats|redis>-<i>.log. */
  detached?: boolean;
  logDir?: string;
  /** Fixed client ports of the nodes (a `stack up` that restarts nodes keeps their URLs); default: free ports. */
  ports?: number[];
}

const STOP_TIMEOUT_MS = 10_000;
const PORT_TAKEN = /already in use|EADDRINUSE|bind: /i;

/**
 * Launches one node that needs a second port of its own (NATS routes, the Redis cluster bus), both chosen free now:
 * another process may take either before the node binds it, so a start that fails on a taken port is retried on new
 * ports. The second port stays the node's for later restarts (`args` closes over it).
 */
async function launchNode(spec: (second: number) => ServiceSpec, port: number | undefined): Promise<ManagedService> {
  for (let attempt = 1; ; attempt++) {
    const second = await freePort();
    try {
      return await launch(spec(second), port ?? await freePort());
    } catch (err) {
      if (attempt >= 4 || !(err instanceof StackError) || err.code !== 'START_FAILED' || !PORT_TAKEN.test(err.message)) throw err;
    }
  }
}
const silent = (): Logger => pino({ enabled: false });

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

function cluster(nodes: ClusterNode[], url: string): EngineCluster {
  return {
    nodes,
    url,
    async stop() {
      const stops = await Promise.allSettled(nodes.map((n) => n.stop()));
      const err = stops.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (err) throw err.reason;
    },
  };
}

function named(s: ManagedService, nodeName: string): ClusterNode {
  return {
    nodeName,
    get name() { return s.name; },
    get url() { return s.url; },
    get port() { return s.port; },
    get pid() { return s.pid; },
    get running() { return s.running; },
    start: () => s.start(),
    stop: () => s.stop(),
    kill: (signal) => s.kill(signal),
  };
}

/**
 * N nats-server nodes with JetStream, cluster `parley`, routes to each other; resolves once JetStream has a meta
 * leader (streams with N replicas can be created). Server names are n0..n(N-1).
 */
export async function launchNatsCluster(opts: ClusterOptions): Promise<EngineCluster> {
  const size = opts.size ?? 3;
  const log = opts.log ?? silent();
  const binary = await ensureNatsServer(log);
  const routePorts = await freePorts(size);
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const started = await Promise.allSettled(routePorts.map(async (routePort, i) => {
    const storeDir = resolve(opts.dir, `n${i}`);
    await mkdir(storeDir, { recursive: true });
    let first = true;
    const service = await launchNode((fresh) => {
      // Its planned route port, or (when that was taken meanwhile) a fresh one: it still dials the others' routes,
      // and a route, once up, works both ways.
      const own = first ? routePort : fresh;
      first = false;
      return {
        name: 'nats',
        binary,
        args: async (p) => ['-a', '127.0.0.1', '-p', String(p), '-n', `n${i}`, '-js', '-sd', storeDir,
          '--cluster_name', 'parley', '--cluster', `nats://127.0.0.1:${own}`, '--routes', routes],
        url: (p) => `nats://127.0.0.1:${p}`,
        probe: (url, ms) => probeNats(url, ms, { jetstream: true }),
        readyTimeoutMs: 30_000,
        stopTimeoutMs: STOP_TIMEOUT_MS,
        detached: opts.detached ?? false,
        logFile: opts.logDir ? join(opts.logDir, `nats-${i}.log`) : undefined,
        log,
      };
    }, opts.ports?.[i]);
    return named(service, `n${i}`);
  }));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const c = cluster(nodes, nodes.map((n) => n.url).join(','));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  try {
    if (failed) throw failed.reason;
    await natsClusterReady(c.url, 120_000);
  } catch (err) {
    await c.stop().catch(() => undefined);
    throw err;
  }
  log.info({ url: c.url }, 'nats cluster ready');
  return c;
}

/** Resolves once the cluster at `url` (comma-separated) has a JetStream meta leader that answers account info. */
export async function natsClusterReady(url: string, timeoutMs: number): Promise<void> {
  const nc = await connect({ servers: url.split(','), name: 'parley-stack-probe', maxReconnectAttempts: -1, reconnectTimeWait: 100, waitOnFirstConnect: true, timeout: timeoutMs });
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  try {
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.getAccountInfo();
        return;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) {
        throw new StackError('START_TIMEOUT', `the NATS cluster at ${url} elected no JetStream meta leader within ${timeoutMs} ms (${(last as Error)?.message})`);
      }
      await sleep(200);
    }
  } finally {
    await nc.close();
  }
}

/**
 * A Redis Cluster: `size` masters with `replicas` replicas each (default 3 + 3), node timeout `nodeTimeoutMs`
 * (default 2 s: a killed master is failed over within a few seconds). Resolves once every node reports
 * cluster_state:ok and knows every other node.
 */
export async function launchRedisCluster(opts: ClusterOptions & { replicas?: number; nodeTimeoutMs?: number }): Promise<EngineCluster> {
  const masters = opts.size ?? 3;
  const replicas = opts.replicas ?? 1;
  const total = masters * (1 + replicas);
  const log = opts.log ?? silent();
  const binary = await ensureRedis(log);
  const cli = await findExecutable('redis-cli', ['/usr/bin', '/usr/local/bin', '/opt/homebrew/bin']);
  if (!cli) throw new StackError('REDIS_MISSING', 'redis-cli (which creates the Redis Cluster) was not found next to redis-server');
  const started = await Promise.allSettled(Array.from({ length: total }, async (_, i) => {
    const dir = resolve(opts.dir, `r${i}`);
    await mkdir(dir, { recursive: true });
    // On new ports (no `ports` given) a nodes.conf left by an earlier cluster in this dir (`stack down`, then `up`)
    // names peers at ports nobody listens on any more: the nodes would come up "formed" (all slots assigned, so no
    // `--cluster create`) and fail once they notice their peers are unreachable. Nothing else is kept (no
    // persistence), so such a cluster is formed afresh.
    if (opts.ports === undefined) await rm(join(dir, 'nodes.conf'), { force: true });
    const service = await launchNode((bus) => ({
      name: 'redis',
      binary,
      // No persistence (ephemeral state, as the single Redis): a restarted node gets its data from its master.
      // The cluster bus port defaults to port + 10000, which may be taken or beyond 65535: it is chosen too.
      args: async (p) => ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        '--daemonize', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2_000), '--cluster-port', String(bus)],
      url: (p) => `redis://127.0.0.1:${p}`,
      probe: probeRedis,
      readyTimeoutMs: 10_000,
      stopTimeoutMs: STOP_TIMEOUT_MS,
      detached: opts.detached ?? false,
      logFile: opts.logDir ? join(opts.logDir, `redis-${i}.log`) : undefined,
      log,
    }), opts.ports?.[i]);
    return named(service, `127.0.0.1:${service.port}`);
  }));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const c = cluster(nodes, `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  try {
    if (failed) throw failed.reason;
    if (!(await redisClusterFormed(nodes[0]!.url))) {
      await run(cli, ['--cluster', 'create', ...nodes.map((n) => n.nodeName), '--cluster-replicas', String(replicas), '--cluster-yes']);
    }
    await redisClusterReady(nodes.map((n) => n.url), 120_000);
  } catch (err) {
    await c.stop().catch(() => undefined);
    throw err;
  }
  log.info({ url: c.url }, 'redis cluster ready');
  return c;
}

async function clusterInfo(url: string): Promise<Record<string, string>> {
  const client = createClient({ url, socket: { connectTimeout: 5_000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const text = String(await client.sendCommand(['CLUSTER', 'INFO']));
    return Object.fromEntries(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.trim().split(':', 2) as [string, string]));
  } finally {
    client.destroy();
  }
}

/** A node that already belongs to a formed cluster (a `stack up` that restarts nodes with their nodes.conf). */
async function redisClusterFormed(url: string): Promise<boolean> {
  const info = await clusterInfo(url).catch(() => undefined);
  return info !== undefined && Number(info.cluster_slots_assigned) === 16384;
}

/** Every node at `urls` says cluster_state:ok, has all slots assigned and knows every node. */
export async function redisClusterReady(urls: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const infos = await Promise.all(urls.map((u) => clusterInfo(u).catch((err: Error) => ({ error: err.message }) as Record<string, string>)));
    const bad = infos.findIndex((i) => i.cluster_state !== 'ok' || Number(i.cluster_slots_assigned) !== 16384 || Number(i.cluster_known_nodes) !== urls.length);
    if (bad < 0) return;
    last = `${urls[bad]}: ${JSON.stringify(infos[bad])}`;
    if (Date.now() > deadline) throw new StackError('START_TIMEOUT', `the Redis Cluster did not become ready within ${timeoutMs} ms (${last})`);
    await sleep(200);
  }
}

/** One line of CLUSTER NODES: who a node is, whether it serves as master now, and its slot ranges. */
export interface RedisClusterNodeState {
  id: string;
  address: string;
  master: boolean;
  failed: boolean;
  /** The master's id, for a replica. */
  masterId: string | undefined;
  slots: Array<[number, number]>;
  /** The node's cluster bus port. */
  busPort: number;
  /** Every flag as CLUSTER NODES lists it (myself, master, slave, fail?, fail, handshake, ...). */
  flags: string[];
  /** Whether the link to the node is up (`connected`) as the asking node sees it. */
  connected: boolean;
}

/** The cluster as the node at `url` sees it (CLUSTER NODES). */
export async function redisClusterNodes(url: string): Promise<RedisClusterNodeState[]> {
  const client = createClient({ url, socket: { connectTimeout: 5_000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const text = String(await client.sendCommand(['CLUSTER', 'NODES']));
    return text.split('\n').filter(Boolean).map((line) => {
      const [id, addr, flags, master, , , , link, ...slots] = line.trim().split(' ');
      const f = (flags ?? '').split(',');
      const [address, bus] = (addr ?? '').split('@');
      return {
        id: id!,
        address: address!,
        busPort: Number((bus ?? '').split(',')[0]),
        flags: f,
        connected: link === 'connected',
        master: f.includes('master'),
        failed: f.includes('fail') || f.includes('fail?'),
        masterId: master === '-' ? undefined : master,
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
          const [a, b] = s.split('-');
          return [Number(a), Number(b ?? a)] as [number, number];
        }),
      };
    });
  } finally {
    client.destroy();
  }
}

/** The slot of a key or shard channel, as the node at `url` computes it (CLUSTER KEYSLOT). */
export async function redisKeySlot(url: string, key: string): Promise<number> {
  const client = createClient({ url, socket: { connectTimeout: 5_000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return Number(await client.sendCommand(['CLUSTER', 'KEYSLOT', key]));
  } finally {
    client.destroy();
  }
}
