// The main-thread side of the load generator: spreads connections over worker threads, runs fixed-rate phases,
// waits for the system to drain, and merges the workers' histograms and counters.
import { Worker } from 'node:worker_threads';
import type { Histogram } from '../hist.js';
import { mergeEncoded, newHistogram } from '../hist.js';
import type { DriverKind } from './driver.js';
import type { ConnSpec, WorkerCommand, WorkerInit, WorkerReply, WorkerResult, WorkerStats } from './worker.js';

export interface LoadPlan {
  kind: DriverKind;
  orderBy: 'room' | 'sender';
  conns: ConnSpec[];
  workers: number;
  connectConcurrency?: number;
  timeoutMs?: number;
}

export interface PhaseOptions {
  rate: number;
  warmupMs: number;
  durationMs: number;
  /** Longest wait for acks and deliveries after the last send. */
  drainMs?: number;
}

/** What a load phase counted: shared by the generator's result and every scenario report built from it. */
export interface PhaseCounts {
  sent: number;
  acked: number;
  rejected: number;
  expected: number;
  delivered: number;
  loss: number;
  duplicates: number;
  outOfOrder: number;
  errors: Record<string, number>;
  unexpectedCloses: number;
  deliveriesPerSec: number;
}

export interface PhaseResult extends PhaseCounts {
  e2e: Histogram;
  ack: Histogram;
  ackedPerSec: number;
  drainMs: number;
  generatorCpuSec: number;
  generatorPeakRssBytes: number;
}

interface W {
  worker: Worker;
  senders: number;
  waiters: Array<(r: WorkerReply) => boolean>;
}

export class LoadGenerator {
  private phase = 0;
  private lastAcked: Record<string, number> = {};
  private lastDistinct = 0;
  private lastDup = 0;
  private lastOoo = 0;
  private lastCloses = 0;
  private lastErrors: Record<string, number> = {};
  readonly members = new Map<string, number>();

  private constructor(private readonly ws: W[], readonly connected: { ok: number; failed: number; firstError: string | undefined }) {}

  static async start(plan: LoadPlan): Promise<LoadGenerator> {
    const n = Math.max(1, Math.min(plan.workers, plan.conns.length));
    const shares: ConnSpec[][] = Array.from({ length: n }, () => []);
    plan.conns.forEach((c, i) => shares[i % n]!.push(c));
    const ws: W[] = shares.map((conns, index) => {
      const init: WorkerInit = {
        index, kind: plan.kind, orderBy: plan.orderBy, conns,
        connectConcurrency: plan.connectConcurrency ?? 32, timeoutMs: plan.timeoutMs ?? 10_000,
      };
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
      const w: W = { worker, senders: conns.filter((c) => c.sendTo !== null).length, waiters: [] };
      worker.on('message', (r: WorkerReply) => {
        const i = w.waiters.findIndex((f) => f(r));
        if (i >= 0) w.waiters.splice(i, 1);
      });
      worker.on('error', (err) => { throw err; });
      return w;
    });
    const replies = await Promise.all(ws.map((w) => ask(w, { cmd: 'connect' }, 'connected')));
    const connected = { ok: 0, failed: 0, firstError: undefined as string | undefined };
    for (const r of replies) {
      connected.ok += r.ok;
      connected.failed += r.failed;
      connected.firstError ??= r.firstError;
    }
    const g = new LoadGenerator(ws, connected);
    for (const c of plan.conns) for (const room of c.rooms) g.members.set(room, (g.members.get(room) ?? 0) + 1);
    return g;
  }

  async run(o: PhaseOptions): Promise<PhaseResult> {
    const phase = ++this.phase;
    const totalSenders = this.ws.reduce((a, w) => a + w.senders, 0);
    const cpu0 = process.cpuUsage();
    const t0 = performance.timeOrigin + performance.now() + 300;
    const done = this.ws.map((w) => (w.senders > 0
      ? ask(w, { cmd: 'run', phase, t0, warmupMs: o.warmupMs, durationMs: o.durationMs, rate: (o.rate * w.senders) / totalSenders }, 'sent-done')
      : Promise.resolve(undefined)));
    await Promise.all(done);

    // Drain: every send answered (ack or error) and every acked message delivered to every member, or no progress.
    const drainStart = Date.now();
    const drainMs = o.drainMs ?? 15_000;
    let lastProgress = Date.now();
    let lastSeen = -1;
    for (;;) {
      const s = await this.stats();
      const progress = s.acked + s.rejected + s.distinct;
      if (progress !== lastSeen) { lastSeen = progress; lastProgress = Date.now(); }
      if (s.acked + s.rejected >= s.sent && s.distinct - this.lastDistinct >= this.expectedFrom()) break;
      if (Date.now() - lastProgress > 3_000 || Date.now() - drainStart > drainMs) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const drained = Date.now() - drainStart;
    const results = await Promise.all(this.ws.map((w) => ask(w, { cmd: 'collect' }, 'collected')));
    const cpu = process.cpuUsage(cpu0);
    return this.merge(results.map((r) => r.result), o, drained, (cpu.user + cpu.system) / 1e6);
  }

  /** Expected deliveries so far in this phase, from per-room ack counts (refreshed by stats()). */
  private expectedFrom(): number {
    let e = 0;
    for (const [room, n] of Object.entries(this.ackedNow)) e += (n - (this.lastAcked[room] ?? 0)) * (this.members.get(room) ?? 0);
    return e;
  }

  private ackedNow: Record<string, number> = {};

  private async stats(): Promise<WorkerStats> {
    const all = await Promise.all(this.ws.map((w) => ask(w, { cmd: 'stats' }, 'stats')));
    const s: WorkerStats = { sent: 0, acked: 0, rejected: 0, received: 0, distinct: 0 };
    const acked: Record<string, number> = {};
    for (const r of all) for (const [room, n] of Object.entries(r.ackedByRoom)) acked[room] = (acked[room] ?? 0) + n;
    this.ackedNow = acked;
    for (const { stats: x } of all) {
      s.sent += x.sent; s.acked += x.acked; s.rejected += x.rejected; s.received += x.received; s.distinct += x.distinct;
    }
    return s;
  }

  private sentBefore = 0;
  private ackedBefore = 0;
  private rejectedBefore = 0;

  private merge(results: WorkerResult[], o: PhaseOptions, drainMs: number, cpuSec: number): PhaseResult {
    const e2e = newHistogram();
    const ack = newHistogram();
    const acked: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let sent = 0, ackedN = 0, rejected = 0, distinct = 0, dup = 0, ooo = 0, closes = 0;
    for (const r of results) {
      mergeEncoded(e2e, r.e2e);
      mergeEncoded(ack, r.ack);
      for (const [room, n] of Object.entries(r.ackedByRoom)) acked[room] = (acked[room] ?? 0) + n;
      for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
      sent += r.sent; ackedN += r.acked; rejected += r.rejected; distinct += r.distinct;
      dup += r.duplicates; ooo += r.outOfOrder; closes += r.unexpectedCloses;
    }
    let expected = 0;
    for (const [room, n] of Object.entries(acked)) expected += (n - (this.lastAcked[room] ?? 0)) * (this.members.get(room) ?? 0);
    const delivered = distinct - this.lastDistinct;
    const phaseErrors: Record<string, number> = {};
    for (const [code, n] of Object.entries(errors)) if (n - (this.lastErrors[code] ?? 0) > 0) phaseErrors[code] = n - (this.lastErrors[code] ?? 0);
    const res: PhaseResult = {
      e2e, ack,
      sent: sent - this.sentBefore,
      acked: ackedN - this.ackedBefore,
      rejected: rejected - this.rejectedBefore,
      expected,
      delivered,
      loss: Math.max(0, expected - delivered),
      duplicates: dup - this.lastDup,
      outOfOrder: ooo - this.lastOoo,
      errors: phaseErrors,
      unexpectedCloses: closes - this.lastCloses,
      deliveriesPerSec: e2e.totalCount / (o.durationMs / 1000),
      ackedPerSec: ack.totalCount / (o.durationMs / 1000),
      drainMs,
      generatorCpuSec: cpuSec,
      generatorPeakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    this.lastAcked = acked;
    this.lastDistinct = distinct;
    this.lastDup = dup;
    this.lastOoo = ooo;
    this.lastCloses = closes;
    this.lastErrors = errors;
    this.sentBefore = sent;
    this.ackedBefore = ackedN;
    this.rejectedBefore = rejected;
    return res;
  }

  async close(): Promise<void> {
    await Promise.all(this.ws.map(async (w) => {
      await ask(w, { cmd: 'close' }, 'closed').catch(() => undefined);
      await w.worker.terminate();
    }));
  }
}

function ask<T extends WorkerReply['type']>(w: W, cmd: WorkerCommand, type: T): Promise<Extract<WorkerReply, { type: T }>> {
  return new Promise((resolve) => {
    w.waiters.push((r) => {
      if (r.type !== type) return false;
      resolve(r as Extract<WorkerReply, { type: T }>);
      return true;
    });
    w.worker.postMessage(cmd);
  });
}
