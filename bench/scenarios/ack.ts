// Ack: send -> ack latency at a fixed rate, then a rate ramp that finds the highest rate keeping ack p99 within
// budget and the highest rate Parley sustains both acking and persisting (chat consumer's ack floor in JetStream).
import { jetstream as jetstreamClient, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { MongoClient } from 'mongodb';
import { mintToken } from '../../lib/auth/index.js';
import type { LatencySummary } from '../hist.js';
import { newHistogram, summarize } from '../hist.js';
import { LoadGenerator } from '../generator/load.js';
import type { ConnSpec } from '../generator/worker.js';
import { sampleAll, startParley, usageBetween } from '../systems.js';
import type { BenchContext, ProcUsage } from '../systems.js';

export interface AckOptions {
  fixedRates: number[];
  rampRates: number[];
  stepMs: number;
  /** Unmeasured sending before each step. */
  warmupMs: number;
  /**
   * Before the first step instead: the processes are fresh (JIT, connection pools, FerretDB's first inserts). With 1 s
   * the first 1,000/s step measured 2-3x the ack latency of the same rate a minute later (p50 10.6 vs 4.1 ms, p99 42.6
   * vs 14.6 ms, three steps in one run on 2026-12-06), so the budget judged the start-up, not the steady state.
   */
  firstWarmupMs: number;
  ackBudgetMs: number;
  senders: number;
  workers: number;
  maxRampMs: number;
}

export interface AckStep {
  rate: number;
  ack: LatencySummary;
  ackedPerSec: number;
  persistedPerSec: number;
  sustained: boolean;
  rejected: number;
  processes: ProcUsage[];
  generatorCpuSec: number;
}

export interface JetStreamRun {
  rate: number;
  /** publish -> PubAck of a raw js.publish (no Parley), same subject shape and size as chat's events. */
  latency: LatencySummary;
}

export interface AckResult {
  /** JetStream's own publish latency at the fixed ack rate, measured first in the same run. */
  jetstream?: JetStreamRun;
  fixed: AckStep[];
  ramp: AckStep[];
  /** Highest ramp rate with ack p99 within budget (and sustained). */
  maxRateUnderBudget: number;
  /** Best min(acked/s, persisted/s) over the steps. */
  maxAckPersistRate: number;
  stopReason: string;
  mongoDocuments: number;
  totalAcked: number;
}

export async function runAck(ctx: BenchContext, o: AckOptions, tag: string): Promise<AckResult> {
  const dep = await startParley(ctx, tag, 2);
  const nc = await connect({ servers: ctx.stack.NATS_URL });
  let gen: LoadGenerator | undefined;
  try {
    const jsm = await jetstreamManager(nc);
    const conns: ConnSpec[] = Array.from({ length: o.senders }, (_, i) => ({
      url: dep.urls[i % dep.urls.length]!,
      token: mintToken({ secret: ctx.secret, user: `s${i}`, ttlMs: 3_600_000 }),
      rooms: [`${tag}a${i}`],
      sendTo: `${tag}a${i}`,
    }));
    gen = await LoadGenerator.start({ kind: 'ws', orderBy: 'room', conns, workers: o.workers });
    const names = [...dep.procs.map((p) => p.name), ...ctx.stackProcs.map((p) => p.name)];
    const pids = [...dep.procs.map((p) => p.pid), ...ctx.stackProcs.map((p) => p.pid)];
    let totalAcked = 0;

    let warmupMs = o.firstWarmupMs;
    const step = async (rate: number): Promise<AckStep> => {
      // Persistence progress: the chat consumer acks JetStream only after the Mongo write and the Redis publish.
      const samples: Array<[number, number]> = [];
      const sample = async (): Promise<void> => {
        const info = await jsm.consumers.info(dep.stream!, dep.consumer!);
        samples.push([Date.now(), info.ack_floor.stream_seq]);
      };
      await sample();
      let sampling = true;
      const loop = (async () => {
        while (sampling) {
          await new Promise((r) => setTimeout(r, 200));
          await sample().catch(() => undefined);
        }
      })();
      const before = sampleAll(pids);
      const windowStart = Date.now() + 300 + warmupMs;
      const r = await gen!.run({ rate, warmupMs, durationMs: o.stepMs });
      warmupMs = o.warmupMs;
      const after = sampleAll(pids);
      sampling = false;
      await loop;
      totalAcked += r.acked;
      const at = (t: number): number => {
        let best = samples[0]!;
        for (const s of samples) if (Math.abs(s[0] - t) < Math.abs(best[0] - t)) best = s;
        return best[1];
      };
      const persistedPerSec = (at(windowStart + o.stepMs) - at(windowStart)) / (o.stepMs / 1000);
      const ack = summarize(r.ack);
      const sustained = r.ackedPerSec >= 0.95 * rate && persistedPerSec >= 0.95 * rate && r.rejected === 0;
      const s: AckStep = {
        rate, ack, ackedPerSec: Math.round(r.ackedPerSec), persistedPerSec: Math.round(persistedPerSec), sustained, rejected: r.rejected,
        processes: usageBetween(names, before, after), generatorCpuSec: r.generatorCpuSec,
      };
      ctx.log.info({ rate, p99: ack.p99, acked: s.ackedPerSec, persisted: s.persistedPerSec, sustained }, 'ack: step');
      return s;
    };

    const jetstream = o.fixedRates.length ? await rawPublish(nc, o.fixedRates[0]!, o.stepMs, tag) : undefined;
    if (jetstream) ctx.log.info({ rate: jetstream.rate, p50: jetstream.latency.p50, p99: jetstream.latency.p99 }, 'ack: raw JetStream publish');
    const fixed: AckStep[] = [];
    for (const rate of o.fixedRates) fixed.push(await step(rate));
    const ramp: AckStep[] = [];
    const rampStart = Date.now();
    let stopReason = `all ${o.rampRates.length} steps ran`;
    for (const rate of o.rampRates) {
      if (Date.now() - rampStart > o.maxRampMs) {
        stopReason = `time bound (${o.maxRampMs / 1000} s) reached`;
        break;
      }
      const s = await step(rate);
      ramp.push(s);
      if (!s.sustained) {
        stopReason = `not sustained at ${rate}/s (acked ${s.ackedPerSec}/s, persisted ${s.persistedPerSec}/s, rejected ${s.rejected})`;
        break;
      }
      if (s.ack.p99 > o.ackBudgetMs * 20) {
        stopReason = `ack p99 ${s.ack.p99} ms at ${rate}/s is far beyond the budget`;
        break;
      }
    }
    const all = [...fixed, ...ramp];
    const under = ramp.filter((s) => s.sustained && s.ack.p99 <= o.ackBudgetMs);
    const mongo = new MongoClient(ctx.stack.MONGO_URL);
    let mongoDocuments = -1;
    try {
      await mongo.connect();
      mongoDocuments = await mongo.db(dep.mongoDb!).collection('messages').countDocuments();
    } catch (err) {
      ctx.log.warn({ err }, 'ack: could not count documents');
    } finally {
      await mongo.close();
    }
    return {
      jetstream, fixed, ramp,
      maxRateUnderBudget: under.length ? Math.max(...under.map((s) => s.rate)) : 0,
      maxAckPersistRate: Math.max(0, ...all.map((s) => Math.min(s.ackedPerSec, s.persistedPerSec))),
      stopReason, mongoDocuments, totalAcked,
    };
  } finally {
    await gen?.close();
    await nc.close();
    await dep.stop();
  }
}

/**
 * JetStream alone: js.publish at `rate`/s for `durationMs` into a file stream of its own (deduplicated by msg id, as
 * Parley's), each publish timed to its PubAck. What Parley's ack can at best be, in the same run.
 */
async function rawPublish(nc: NatsConnection, rate: number, durationMs: number, tag: string): Promise<JetStreamRun> {
  const jsm = await jetstreamManager(nc);
  const name = `BENCH_RAW_${tag}`;
  await jsm.streams.add({ name, subjects: [`benchraw_${tag}.>`], max_bytes: 256 * 1024 ** 2 });
  const js = jetstreamClient(nc);
  const hist = newHistogram();
  const body = JSON.stringify({ room: `${tag}a0`, id: 'x'.repeat(16), from: 's0', body: 'b'.repeat(64), ts: Date.now() });
  const pending = new Set<Promise<void>>();
  try {
    const start = performance.now();
    let sent = 0;
    while (performance.now() - start < durationMs) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      for (; sent < due; sent++) {
        const t = performance.now();
        const p = js.publish(`benchraw_${tag}.r${sent % 40}`, body, { msgID: `m${sent}` }).then(() => {
          hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        }, () => undefined).finally(() => pending.delete(p));
        pending.add(p);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(pending);
  } finally {
    await jsm.streams.delete(name).catch(() => undefined);
  }
  return { rate, latency: summarize(hist) };
}
