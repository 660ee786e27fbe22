// Deployments the scenarios drive: Parley (chat + N gateways), the floor baseline (relay + 2 gateways) and the
// Socket.IO baseline (2 servers), each as separate processes against the bench's own stack, with their own names.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { StackEnv } from '../lib/stack/index.js';
import { freePort } from '../lib/stack/index.js';
import type { Logger } from '../lib/observability/index.js';
import type { DriverKind } from './generator/driver.js';
import { sampleProc, spawnNode, waitHttp } from './proc.js';
import type { Proc, ProcSample } from './proc.js';

export type SystemName = 'parley' | 'floor' | 'socketio';

export interface BenchContext {
  stack: StackEnv;
  secret: string;
  runId: string;
  logDir: string;
  profDir: string;
  cpuProf: boolean;
  log: Logger;
  /** The stack's own servers, sampled alongside the system under test. */
  stackProcs: Array<{ name: string; pid: number }>;
}

export interface Deployment {
  system: SystemName;
  kind: DriverKind;
  orderBy: 'room' | 'sender';
  /** Client URLs, one per gateway/server. */
  urls: string[];
  /** HTTP base URLs, one per gateway/server. */
  http: string[];
  /** Parley: each gateway's metrics base URL (PARLEY_METRICS_PORT; /metrics is not on the public port). */
  ops?: string[];
  procs: Proc[];
  /** Parley's JetStream names, for persistence progress. */
  stream?: string;
  consumer?: string;
  mongoDb?: string;
  stop(): Promise<void>;
}

const DIST = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const PARLEY = join(DIST, 'cmd', 'parley.js');
const FLOOR = join(DIST, 'bench', 'baselines', 'floor.js');
const SOCKETIO = join(DIST, 'bench', 'baselines', 'socketio.js');

function baseEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'NODE_OPTIONS'];
  // OTEL_* too: the bench of tracing on (at a sampling ratio) against off.
  return Object.fromEntries(Object.keys(process.env).filter((k) => keep.includes(k) || k.startsWith('OTEL_')).map((k) => [k, process.env[k]]));
}

function flags(ctx: BenchContext, name: string): string[] {
  return ctx.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

async function stopAll(procs: Proc[]): Promise<void> {
  // Gateways first (they hold clients), then the consumer side.
  for (const p of [...procs].reverse()) await p.stop();
}

export async function startParley(ctx: BenchContext, tag: string, gateways = 2): Promise<Deployment> {
  const names = { PARLEY_STREAM: `BENCH_${tag}`, PARLEY_SUBJECT_ROOT: `bench_${tag}`, PARLEY_REDIS_PREFIX: `bench:${tag}:`, PARLEY_MONGO_DB: `bench_${tag}` };
  const env = {
    ...baseEnv(), ...ctx.stack, ...names, JWT_SECRET: ctx.secret, LOG_LEVEL: 'info', PARLEY_HOST: '127.0.0.1', PARLEY_METRICS_PORT: '0',
    // JetStream reserves a stream's max_bytes up front: the 10 GiB default would exhaust the store after a few runs.
    PARLEY_STREAM_MAX_BYTES: String(1024 ** 3),
    // The bench measures the message path at rates far above one user's fair share: rate and connection limits off.
    PARLEY_MAX_INFLIGHT: '100000',
    PARLEY_MAX_CONNECTIONS_PER_USER: '0', PARLEY_MAX_CONNECTIONS_PER_IP: '0',
    PARLEY_RATE_SEND_USER: '0', PARLEY_RATE_SEND_BYTES_USER: '0', PARLEY_RATE_SEND_IP: '0', PARLEY_RATE_SEND_BYTES_IP: '0',
    PARLEY_RATE_CONNECT_USER: '0', PARLEY_RATE_CONNECT_IP: '0', PARLEY_RATE_HISTORY_USER: '0', PARLEY_RATE_HISTORY_IP: '0',
  };
  const stop = async (): Promise<void> => {
    await stopAll(procs);
    await deleteStream(ctx, names.PARLEY_STREAM);
  };
  const procs: Proc[] = [];
  try {
    const chatName = `parley-chat-${tag}`;
    // Ready is what chat's /readyz says (consuming, MongoDB answering), as the test harness waits for it: not a log line.
    const chatOps = await freePort();
    const chat = spawnNode({
      name: chatName, args: [PARLEY, 'chat'], env: { ...env, PORT: '0', PARLEY_METRICS_PORT: String(chatOps) },
      logFile: join(ctx.logDir, `${chatName}.log`), nodeFlags: flags(ctx, chatName),
    });
    procs.push(chat);
    await waitHttp(`http://127.0.0.1:${chatOps}/readyz`, 30_000, chat);
    const urls: string[] = [];
    const http: string[] = [];
    const ops: string[] = [];
    for (let i = 0; i < gateways; i++) {
      const port = await freePort();
      const opsPort = await freePort();
      const name = `parley-gateway${i}-${tag}`;
      // POST /debug/gc on the ops port: memory per connection is measured after a full GC (bench/scenarios/connections.ts).
      const gwEnv = { ...env, PORT: String(port), PARLEY_METRICS_PORT: String(opsPort), PARLEY_GATEWAY_ID: `bench-${tag}-${i}`, PARLEY_BENCH_GC: '1' };
      const gw = spawnNode({
        name, args: [PARLEY, 'gateway'], env: gwEnv, logFile: join(ctx.logDir, `${name}.log`), nodeFlags: ['--expose-gc', ...flags(ctx, name)],
      });
      procs.push(gw);
      await waitHttp(`http://127.0.0.1:${port}/readyz`, 30_000, gw);
      urls.push(`ws://127.0.0.1:${port}/ws`);
      http.push(`http://127.0.0.1:${port}`);
      ops.push(`http://127.0.0.1:${opsPort}`);
    }
    return {
      system: 'parley', kind: 'ws', orderBy: 'room', urls, http, ops, procs,
      stream: names.PARLEY_STREAM, consumer: 'chat-persist', mongoDb: names.PARLEY_MONGO_DB, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Removes a bench stream once its scenario is done, so the next one starts with the store empty. */
async function deleteStream(ctx: BenchContext, name: string): Promise<void> {
  try {
    const nc = await connect({ servers: ctx.stack.NATS_URL });
    try {
      await (await jetstreamManager(nc)).streams.delete(name);
    } finally {
      await nc.close();
    }
  } catch (err) {
    ctx.log.debug({ err, stream: name }, 'stream not deleted');
  }
}

export async function startFloor(ctx: BenchContext, tag: string): Promise<Deployment> {
  const env = {
    ...baseEnv(), NATS_URL: ctx.stack.NATS_URL, REDIS_URL: ctx.stack.REDIS_URL,
    FLOOR_STREAM: `FLOOR_${tag}`, FLOOR_SUBJECT: `floor_${tag}`, FLOOR_PREFIX: `floor:${tag}:`,
  };
  const procs: Proc[] = [];
  try {
    const urls: string[] = [];
    const http: string[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const name = `floor-gateway${i}-${tag}`;
      const gw = spawnNode({ name, args: [FLOOR, 'gateway'], env: { ...env, PORT: String(port) }, logFile: join(ctx.logDir, `${name}.log`), nodeFlags: flags(ctx, name) });
      procs.push(gw);
      await gw.waitForLine('floor gateway ready', 30_000);
      urls.push(`ws://127.0.0.1:${port}/ws`);
      http.push(`http://127.0.0.1:${port}`);
    }
    const relayName = `floor-relay-${tag}`;
    const relay = spawnNode({ name: relayName, args: [FLOOR, 'relay'], env, logFile: join(ctx.logDir, `${relayName}.log`), nodeFlags: flags(ctx, relayName) });
    procs.unshift(relay);
    await relay.waitForLine('floor relay ready', 30_000);
    const stop = async (): Promise<void> => {
      await stopAll(procs);
      await deleteStream(ctx, env.FLOOR_STREAM);
    };
    return { system: 'floor', kind: 'ws', orderBy: 'room', urls, http, procs, stop };
  } catch (err) {
    await stopAll(procs);
    await deleteStream(ctx, env.FLOOR_STREAM);
    throw err;
  }
}

export async function startSocketIo(ctx: BenchContext, tag: string): Promise<Deployment> {
  const env = { ...baseEnv(), REDIS_URL: ctx.stack.REDIS_URL, SIO_PREFIX: `sio_${tag}` };
  const procs: Proc[] = [];
  try {
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const name = `socketio${i}-${tag}`;
      const p = spawnNode({ name, args: [SOCKETIO], env: { ...env, PORT: String(port) }, logFile: join(ctx.logDir, `${name}.log`), nodeFlags: flags(ctx, name) });
      procs.push(p);
      await p.waitForLine('socketio ready', 30_000);
      urls.push(`http://127.0.0.1:${port}`);
    }
    return { system: 'socketio', kind: 'sio', orderBy: 'sender', urls, http: urls, procs, stop: () => stopAll(procs) };
  } catch (err) {
    await stopAll(procs);
    throw err;
  }
}

export function startSystem(ctx: BenchContext, system: SystemName, tag: string): Promise<Deployment> {
  switch (system) {
    case 'parley': return startParley(ctx, tag);
    case 'floor': return startFloor(ctx, tag);
    case 'socketio': return startSocketIo(ctx, tag);
  }
}

export interface ProcUsage {
  name: string;
  cpuSec: number;
  peakRssBytes: number;
}

/** CPU used between two samples and the peak RSS, per process. */
export function usageBetween(names: string[], before: Array<ProcSample | undefined>, after: Array<ProcSample | undefined>): ProcUsage[] {
  return names.map((name, i) => ({
    name,
    cpuSec: (after[i]?.cpuSec ?? 0) - (before[i]?.cpuSec ?? 0),
    peakRssBytes: after[i]?.hwmBytes ?? before[i]?.hwmBytes ?? 0,
  }));
}

export function sampleAll(pids: Array<number | undefined>): Array<ProcSample | undefined> {
  return pids.map((p) => (p === undefined ? undefined : sampleProc(p)));
}
