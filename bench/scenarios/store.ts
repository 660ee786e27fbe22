// Store: what FerretDB itself can do, per backend, without Parley around it. Raw insertMany throughput (batches as
// chat writes them, several in flight), batch latency, CPU per process, and a crash check: kill -9 FerretDB and its
// backend mid-load, start them again, and count the acknowledged documents that are still there.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../lib/observability/index.js';
import { childrenOf, launchFerretdb } from '../../lib/stack/index.js';
import type { FerretdbService, MongoBackend } from '../../lib/stack/index.js';
import { openMessageStore } from '../../lib/store/index.js';
import type { MessageDoc, MessageStore } from '../../lib/store/index.js';
import { newHistogram, summarize } from '../hist.js';
import type { LatencySummary } from '../hist.js';
import { sampleProc } from '../proc.js';
import type { ProcSample } from '../proc.js';
import { sampleAll, usageBetween } from '../systems.js';
import type { ProcUsage } from '../systems.js';

export interface StoreOptions {
  backends: MongoBackend[];
  batch: number;
  inflight: number[];
  durationMs: number;
}

export interface StoreRun {
  backend: MongoBackend;
  batch: number;
  inflight: number;
  docsPerSec: number;
  /** Latency of one insertMany of `batch` documents. */
  batchLatency: LatencySummary;
  processes: ProcUsage[];
}

export interface CrashCheck {
  backend: MongoBackend;
  /** Documents whose insertMany resolved before the kill. */
  acked: number;
  /** Of those, how many were there after the restart. */
  found: number;
  /** Seconds from the restart command to FerretDB answering again. */
  restartSec: number;
}

export interface StoreResult {
  runs: StoreRun[];
  crash: CrashCheck[];
}

const BODY = 'x'.repeat(64);

/** Documents shaped like chat's (namespaced _id, room, seq, from, body, ts), unique across the whole run. */
function docs(next: () => number, n: number): MessageDoc[] {
  const out: MessageDoc[] = [];
  for (let i = 0; i < n; i++) {
    const seq = next();
    out.push({ _id: `u${seq % 40}:m${seq}`, room: `r${seq % 40}`, seq, from: `u${seq % 40}`, body: BODY, ts: Date.now() });
  }
  return out;
}

export async function runStore(log: Logger, o: StoreOptions): Promise<StoreResult> {
  const result: StoreResult = { runs: [], crash: [] };
  for (const backend of o.backends) {
    const dir = await mkdtemp(join(tmpdir(), `parley-bench-store-${backend}-`));
    let svc: FerretdbService | undefined;
    let store: MessageStore | undefined;
    try {
      svc = await launchFerretdb({ dataDir: dir, log, backend });
      store = await openMessageStore(svc.url, 'bench_store', log);
      let seq = 0;
      const next = (): number => ++seq;
      await store.insert(docs(next, o.batch)); // tables and indexes exist before anything is timed
      const names = ['ferretdb', ...(svc.backend ? ['postgres'] : [])];
      for (const inflight of o.inflight) {
        const hist = newHistogram();
        let inserted = 0;
        const pids = [svc.pid, svc.backend?.pid];
        // PostgreSQL serves each connection in a child process of its postmaster: count those too.
        const sample = (): Array<ProcSample | undefined> => sampleAll(pids).map((x, i) => (i === 1 && x ? withChildren(pids[1]!, x) : x));
        const before = sample();
        const started = performance.now();
        const end = started + o.durationMs;
        await Promise.all(Array.from({ length: inflight }, async () => {
          while (performance.now() < end) {
            const batch = docs(next, o.batch);
            const t = performance.now();
            await store!.insert(batch);
            hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
            inserted += batch.length;
          }
        }));
        const elapsed = (performance.now() - started) / 1000;
        const run: StoreRun = {
          backend, batch: o.batch, inflight, docsPerSec: Math.round(inserted / elapsed), batchLatency: summarize(hist),
          processes: usageBetween(names, before, sample()),
        };
        log.info({ backend, inflight, docsPerSec: run.docsPerSec, p99: run.batchLatency.p99 }, 'store: run');
        result.runs.push(run);
      }
      await store.close();
      store = undefined;
      result.crash.push(await crashCheck(svc, backend, o.batch, next, log));
    } finally {
      await store?.close().catch(() => undefined);
      await svc?.stop().catch((err: unknown) => log.warn({ err }, 'store: stopping FerretDB failed'));
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
  return result;
}

/** A process's CPU time plus that of its live children (so before and after see the same set while they live). */
function withChildren(pid: number, own: ProcSample): ProcSample {
  const kids = childrenOf(pid);
  return { ...own, cpuSec: own.cpuSec + kids.reduce((sum, k) => sum + (sampleProc(k)?.cpuSec ?? 0), 0) };
}

/** Inserts under load, kills FerretDB and its backend with SIGKILL, restarts them, and counts what survived. */
async function crashCheck(svc: FerretdbService, backend: MongoBackend, batch: number, next: () => number, log: Logger): Promise<CrashCheck> {
  // A database of its own: the throughput runs left ~100k documents in bench_store, which a seq-range scan through
  // FerretDB would have to wade through after the restart.
  const store = await openMessageStore(svc.url, 'bench_crash', log, { client: { socketTimeoutMS: 5_000, connectTimeoutMS: 2_000 } });
  const acked: string[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const b = docs(next, batch);
      try {
        await store.insert(b);
        for (const d of b) acked.push(d._id);
      } catch {
        return; // the server is gone: what this batch wrote is not acknowledged
      }
    }
  });
  await new Promise((r) => setTimeout(r, 1500));
  await svc.kill('SIGKILL');
  stop = true;
  await Promise.all(writers);
  // The old client talks to a dead server: do not wait long for its goodbye.
  await Promise.race([store.close().catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
  const t = performance.now();
  await svc.start();
  const restartSec = (performance.now() - t) / 1000;
  const again = await openMessageStore(svc.url, 'bench_crash', log);
  try {
    const seqs = acked.map((id) => Number(id.slice(id.indexOf(':m') + 2)));
    const lo = seqs.reduce((a, b) => Math.min(a, b), Infinity);
    const hi = seqs.reduce((a, b) => Math.max(a, b), 0);
    const present = seqs.length ? await again.seqsIn(lo, hi) : new Set<number>();
    const found = seqs.filter((s) => present.has(s)).length;
    const c: CrashCheck = { backend, acked: acked.length, found, restartSec };
    log.info(c, 'store: crash check');
    return c;
  } finally {
    await again.close();
  }
}
