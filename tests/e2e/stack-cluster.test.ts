// `parley stack up --cluster` as an operator runs it: the built CLI, in a directory of its own (its .parley state and
// data live there, so this suite never meets another's servers). The env file it writes points at a real 3-node
// JetStream cluster (a stream with 3 replicas gets a leader and 2 current followers) and a real Redis Cluster (keys on
// every master can be written and read through a cluster client); `status` reports every node; a second `up` keeps
// them; `down` stops every recorded process and leaves no listener; and an `up` after `down` in the same directory
// forms a working Redis Cluster again.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient, createCluster } from 'redis';
import { parseRedisTarget } from '../../lib/redis/target.js';
import { redisClusterNodes } from '../../lib/stack/clusters.js';
import { answers } from '../../lib/stack/index.js';
import { uniqueName, until } from '../harness/wait.js';

const PARLEY = fileURLToPath(new URL('../../cmd/parley.js', import.meta.url));
const CLI_TIMEOUT_MS = 180_000;

interface Rec { pid: number; port: number; url: string; binary: string }
interface Pids {
  services: Partial<Record<'nats' | 'redis' | 'ferretdb', Rec>>;
  backend?: Rec;
  clusters?: Partial<Record<'nats' | 'redis', Rec[]>>;
}

interface CliResult { code: number; stdout: string; stderr: string }

/** Gone, or a zombie nobody reaps (a detached server's parent is PID 1, which may not reap here). */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return 'ZX'.includes(stat.charAt(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

/** Live processes whose command line or working directory lies under `dir` (nats -sd, redis --dir and chdir, ferretdb). */
function processesUnder(dir: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return []; // no /proc (macOS): the recorded pids are checked on their own
  }
  const out: number[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // not ours to read
      }
      if ((cmd.includes(dir) || cwd.startsWith(dir)) && !processGone(pid)) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('timeout', () => { s.destroy(); res(false); });
    s.once('error', () => res(false));
  });
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').flatMap((l) => {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(l.trim());
    return m ? [[m[1]!, m[2]!]] : [];
  }));
}

/** A stream with 3 replicas gets a leader and 2 current replicas, and those are the stack's three nodes. */
async function r3StreamOnEveryNode(jsm: JetStreamManager, when: string): Promise<void> {
  const stream = uniqueName('STACKCLU');
  await until(async () => {
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3 });
    return true;
  }, { timeout: 30_000, interval: 250, message: `a stream with 3 replicas created ${when}` });
  await until(async () => {
    const c = (await jsm.streams.info(stream)).cluster;
    return c?.name === 'parley' && c.leader !== undefined && c.replicas?.length === 2 && c.replicas.every((r) => r.current);
  }, { timeout: 30_000, interval: 250, message: `the R3 stream has a leader and 2 current replicas ${when}` });
  const info = await jsm.streams.info(stream);
  const peers = [info.cluster!.leader!, ...info.cluster!.replicas!.map((r) => r.name)].sort();
  assert.deepEqual(peers, ['n0', 'n1', 'n2'], 'leader and replicas are the three stack nodes');
  assert.equal(info.config.num_replicas, 3);
  await jsm.streams.delete(stream);
}

/** Every node knows all `urls.length` nodes, sees each link connected and none failing, and 3 of them as masters. */
async function redisClusterHealthy(urls: string[]): Promise<boolean> {
  for (const url of urls) {
    const nodes = await redisClusterNodes(url);
    if (nodes.length !== urls.length) return false;
    if (nodes.some((n) => !n.connected || n.failed || n.flags.includes('handshake'))) return false;
    if (nodes.filter((n) => n.master).length !== 3) return false;
  }
  return true;
}

describe('parley stack up --cluster (the CLI)', { timeout: 600_000 }, () => {
  let dir: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  /** Every pid any `up` recorded, for the cleanup in `after`. */
  const seen = new Map<number, string>();

  function cli(...args: string[]): Promise<CliResult> {
    return new Promise((res, rej) => {
      execFile(process.execPath, [PARLEY, 'stack', ...args], { cwd: dir, env, timeout: CLI_TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : undefined) : 0;
        if (code === undefined) rej(new Error(`parley stack ${args.join(' ')} failed: ${err?.message}\n${stderr}`));
        else res({ code, stdout, stderr });
      });
    });
  }

  async function readPids(): Promise<Pids> {
    const pids = JSON.parse(await readFile(join(stateDir, 'stack.pids'), 'utf8')) as Pids;
    for (const r of allRecords(pids)) seen.set(r.pid, r.binary);
    return pids;
  }

  function allRecords(p: Pids): Rec[] {
    return [
      ...Object.values(p.services), ...(p.backend ? [p.backend] : []),
      ...(p.clusters?.nats ?? []), ...(p.clusters?.redis ?? []),
    ];
  }

  async function up(): Promise<{ pids: Pids; envFile: Record<string, string>; out: string }> {
    const r = await cli('up', '--cluster');
    assert.equal(r.code, 0, `stack up --cluster exits 0\n${r.stdout}\n${r.stderr}`);
    return { pids: await readPids(), envFile: parseEnv(await readFile(join(stateDir, 'stack.env'), 'utf8')), out: r.stdout };
  }

  /** `down`, then: every recorded pid gone, nothing left running under the dir, no listener on any port it used. */
  async function downAndCheck(pids: Pids, extraPorts: number[]): Promise<void> {
    const records = allRecords(pids);
    const r = await cli('down');
    assert.equal(r.code, 0, `stack down exits 0\n${r.stdout}\n${r.stderr}`);
    for (const name of ['ferretdb', 'nats-0', 'nats-1', 'nats-2', 'redis-0', 'redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5']) {
      assert.match(r.stdout, new RegExp(`^${name} +stopped \\(pid \\d+\\)$`, 'm'), `down reports ${name} stopped:\n${r.stdout}`);
    }
    const alive = records.filter((rec) => !processGone(rec.pid));
    assert.deepEqual(alive, [], 'every recorded process is gone after down');
    assert.deepEqual(processesUnder(dir), [], 'no process runs from the stack dir after down');
    const ports = [...records.map((rec) => rec.port), ...extraPorts];
    const open: number[] = [];
    for (const p of ports) if (await listening(p)) open.push(p);
    assert.deepEqual(open, [], `no listener left on the stack's ports (${ports.join(', ')})`);
    await assert.rejects(readFile(join(stateDir, 'stack.pids')), 'down removes stack.pids');
    await assert.rejects(readFile(join(stateDir, 'stack.env')), 'down removes stack.env');
  }

  before(async () => {
    // Real path: /proc/<pid>/cwd of the servers is compared with it.
    dir = await realpath(await mkdtemp(join(tmpdir(), 'parley-stack-cluster-')));
    stateDir = join(dir, '.parley');
    env = { ...process.env, PARLEY_LOG_LEVEL: 'warn', LOG_LEVEL: 'warn' };
    // The state and data of this stack are under `dir` (the CLI's cwd); the binaries stay in the shared cache.
    delete env.PARLEY_STACK_DIR;
    if (env.PARLEY_CACHE_DIR) env.PARLEY_CACHE_DIR = resolve(env.PARLEY_CACHE_DIR);
    if (env.XDG_CACHE_HOME) env.XDG_CACHE_HOME = resolve(env.XDG_CACHE_HOME);
  });

  after(async () => {
    // A failed test may leave the stack up: `down` first, then SIGKILL whatever still runs from the dir or was recorded.
    try {
      await readFile(join(stateDir, 'stack.pids'));
      await cli('down').catch(() => undefined);
    } catch {
      // already down
    }
    const left = new Set(processesUnder(dir));
    for (const [pid, binary] of seen) {
      if (processGone(pid)) continue;
      try {
        if (readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '') === binary) left.add(pid);
      } catch {
        // not ours, or gone
      }
    }
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('up --cluster starts a 3-node JetStream cluster and a Redis Cluster; status, a second up and down handle them', async () => {
    const { pids, envFile, out } = await up();
    assert.match(out, /^stack up \(started: nats, redis, ferretdb\)$/m);
    assert.match(out, new RegExp(`env file: ${join(stateDir, 'stack.env').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

    // The env file: three NATS nodes, R3, a Redis Cluster URL with six nodes, and MongoDB.
    const natsUrls = envFile.NATS_URL!.split(',');
    assert.equal(natsUrls.length, 3, `NATS_URL lists 3 nodes: ${envFile.NATS_URL}`);
    for (const u of natsUrls) assert.match(u, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(new Set(natsUrls).size, 3);
    assert.equal(envFile.PARLEY_STREAM_REPLICAS, '3');
    assert.match(envFile.REDIS_URL!, /^redis\+cluster:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
    assert.match(envFile.MONGO_URL!, /^mongodb:\/\/127\.0\.0\.1:\d+\/?$/);
    assert.deepEqual(pids.clusters?.nats?.map((r) => r.url), natsUrls, 'the pid file records each NATS node');
    assert.equal(pids.clusters?.redis?.length, 6, 'the pid file records six Redis nodes');
    assert.equal(pids.services.nats, undefined, 'no single NATS server besides the cluster');
    assert.equal(pids.services.redis, undefined, 'no single Redis server besides the cluster');
    assert.ok(await answers('mongo', envFile.MONGO_URL!), 'FerretDB answers');

    // `parley stack env` prints the same file.
    const printed = await cli('env');
    assert.equal(printed.code, 0);
    assert.deepEqual(parseEnv(printed.stdout), envFile);

    // NATS: one JetStream cluster of 3 peers; a stream with 3 replicas gets a leader and 2 current followers.
    const routePorts: number[] = [];
    const nc = await connect({ servers: natsUrls, name: 'stack-cluster-test', timeout: 10_000 });
    try {
      const jsm = await jetstreamManager(nc, { timeout: 10_000 });
      await r3StreamOnEveryNode(jsm, 'on the cluster');
      // The route ports, for the listener check after `down`.
      for (let i = 0; i < 3; i++) {
        const log = await readFile(join(stateDir, 'logs', `nats-${i}.log`), 'utf8');
        const m = /Listening for route connections on 127\.0\.0\.1:(\d+)/.exec(log);
        assert.ok(m, `nats-${i}.log names its route port`);
        routePorts.push(Number(m[1]));
      }
    } finally {
      await nc.close();
    }

    // Redis: a cluster of 3 masters + 3 replicas; a cluster client writes and reads keys on every master.
    const target = parseRedisTarget(envFile.REDIS_URL!);
    assert.equal(target.cluster, true);
    assert.equal(target.nodes.length, 6);
    await until(() => redisClusterHealthy(target.nodes), { timeout: 30_000, interval: 250, message: 'a healthy Redis Cluster' });
    const busPorts = (await redisClusterNodes(target.nodes[0]!)).map((n) => n.busPort);
    assert.equal(busPorts.length, 6, 'six cluster bus ports');
    await setGetOnEveryMaster(target.nodes);

    // status: every node healthy, exit 0.
    const st = await cli('status');
    assert.equal(st.code, 0, `status exits 0:\n${st.stdout}\n${st.stderr}`);
    for (const [i, u] of natsUrls.entries()) assert.match(st.stdout, new RegExp(`^nats-${i} +healthy +pid \\d+ +${u}$`, 'm'));
    for (const [i, rec] of pids.clusters!.redis!.entries()) {
      assert.match(st.stdout, new RegExp(`^redis-${i} +healthy +pid ${rec.pid} +redis://127\\.0\\.0\\.1:${rec.port}$`, 'm'));
    }
    assert.match(st.stdout, /^ferretdb +healthy /m);
    assert.doesNotMatch(st.stdout, /^(nats|redis) +/m, 'no single NATS or Redis line');

    // A second `up --cluster` keeps the running nodes.
    const again = await up();
    assert.match(again.out, /^stack already up$/m);
    assert.deepEqual(allRecords(again.pids).map((r) => r.pid).sort(), allRecords(pids).map((r) => r.pid).sort());
    assert.deepEqual(again.envFile, envFile);

    await downAndCheck(pids, [...routePorts, ...busPorts]);
  });

  it('up --cluster after down in the same directory forms a working Redis Cluster and JetStream cluster again', async () => {
    const { pids, envFile } = await up();
    const target = parseRedisTarget(envFile.REDIS_URL!);
    // Stale nodes.conf files from the first cluster would make the nodes fail as soon as they miss their old peers.
    await until(() => redisClusterHealthy(target.nodes), { timeout: 30_000, interval: 250, message: 'a healthy Redis Cluster after down and up' });
    await setGetOnEveryMaster(target.nodes);
    const nc = await connect({ servers: envFile.NATS_URL!.split(','), timeout: 10_000 });
    try {
      const jsm = await jetstreamManager(nc, { timeout: 10_000 });
      await r3StreamOnEveryNode(jsm, 'after down and up');
    } finally {
      await nc.close();
    }
    const st = await cli('status');
    assert.equal(st.code, 0, `status exits 0:\n${st.stdout}`);
    await downAndCheck(pids, []);
  });
});

/** With a node-redis cluster client: SET and GET one key on each master's slots (keys found by CLUSTER KEYSLOT). */
async function setGetOnEveryMaster(nodes: string[]): Promise<void> {
  const probe = createClient({ url: nodes[0]!, socket: { reconnectStrategy: false } });
  probe.on('error', () => undefined);
  const keysByMaster = new Map<string, string>();
  try {
    await probe.connect();
    const text = String(await probe.sendCommand(['CLUSTER', 'NODES']));
    const masters = text.split('\n').filter(Boolean).map((l) => l.trim().split(' ')).filter((f) => f[2]?.includes('master'))
      .map((f) => ({ id: f[0]!, ranges: f.slice(8).filter((s) => !s.startsWith('[')).map((s) => s.split('-').map(Number) as [number, number?]) }));
    assert.equal(masters.length, 3, 'three masters');
    for (let i = 0; keysByMaster.size < masters.length && i < 1000; i++) {
      const key = `stack-cluster-test:${i}`;
      const slot = Number(await probe.sendCommand(['CLUSTER', 'KEYSLOT', key]));
      const owner = masters.find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= (b ?? a)));
      if (owner && !keysByMaster.has(owner.id)) keysByMaster.set(owner.id, key);
    }
  } finally {
    probe.destroy();
  }
  assert.equal(keysByMaster.size, 3, 'a key on each master');
  const cluster = createCluster({ rootNodes: nodes.map((url) => ({ url })), defaults: { socket: { reconnectStrategy: false, connectTimeout: 5000 } } });
  cluster.on('error', () => undefined);
  await cluster.connect();
  try {
    for (const key of keysByMaster.values()) {
      await cluster.set(key, `v-${key}`, { PX: 60_000 });
      assert.equal(await cluster.get(key), `v-${key}`);
      await cluster.del(key);
    }
  } finally {
    await cluster.close();
  }
}
