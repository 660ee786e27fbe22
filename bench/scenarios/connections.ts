// Connections: N idle authenticated connections to one gateway, held by child processes that each have their own
// fd limit and source address (127.0.0.x) so neither the generator's fds nor ephemeral ports run out first.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fdLimit, sampleProc, spawnNode } from '../proc.js';
import type { Proc } from '../proc.js';
import { startParley } from '../systems.js';
import type { BenchContext } from '../systems.js';
import type { HoldProgress } from '../generator/hold.js';

export interface ConnectionsOptions {
  target: number;
  perHolder: number;
  timeoutMs: number;
}

export interface ConnectionsResult {
  target: number;
  attempted: number;
  reached: number;
  failed: number;
  seconds: number;
  acceptPerSec: number;
  gatewayRssBeforeBytes: number;
  gatewayRssAfterBytes: number;
  rssPerConnBytes: number;
  gatewayCpuSec: number;
  gatewayFdLimit: number | undefined;
  holders: number;
  stopReason: string;
  /** V8 heap used per connection (from the gateway's /metrics): the JavaScript share of the RSS per connection. */
  heapPerConnBytes: number;
}

/** A full GC in the gateway (POST /debug/gc, PARLEY_BENCH_GC), twice, then its RSS and heap: independent of GC timing. */
async function afterGc(base: string): Promise<{ rss: number; heapUsed: number }> {
  let m = { rss: NaN, heapUsed: NaN };
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${base}/debug/gc`, { method: 'POST' });
    if (!r.ok) throw new Error(`the gateway's /debug/gc answered ${r.status}: ${await r.text()}`);
    m = (await r.json()) as { rss: number; heapUsed: number };
  }
  return m;
}

const HOLD = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'generator', 'hold.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runConnections(ctx: BenchContext, o: ConnectionsOptions, tag: string): Promise<ConnectionsResult> {
  const dep = await startParley(ctx, tag, 1);
  const gw = dep.procs[dep.procs.length - 1]!;
  const holders: Proc[] = [];
  try {
    const limit = fdLimit(gw.pid);
    // Every connection is one fd in the gateway: past its RLIMIT_NOFILE, accepts fail and clients hang in the backlog.
    const reachable = limit === undefined ? o.target : Math.max(0, limit - 128);
    const attempted = Math.min(o.target, reachable);
    let stopReason = attempted < o.target
      ? `gateway RLIMIT_NOFILE is ${limit} (hard limit; raising it needs CAP_SYS_RESOURCE): at most ~${reachable} connections can be accepted`
      : 'target reached';
    await sleep(1_000);
    const gcBefore = await afterGc(dep.ops![0]!);
    const before = sampleProc(gw.pid)!;
    const n = Math.ceil(attempted / o.perHolder);
    const progress: HoldProgress[] = [];
    const done: Array<Promise<void>> = [];
    const started = Date.now();
    for (let i = 0; i < n; i++) {
      const count = Math.min(o.perHolder, attempted - i * o.perHolder);
      const p = spawnNode({
        name: `holder${i}`, args: [HOLD], ipc: true, logFile: join(ctx.logDir, `holder${i}-${tag}.log`),
        env: {
          PATH: process.env.PATH, HOLD_URL: dep.urls[0], HOLD_SECRET: ctx.secret, HOLD_COUNT: String(count),
          HOLD_ADDRESS: `127.0.0.${11 + i}`, HOLD_INDEX: String(i), HOLD_CONCURRENCY: '100', HOLD_DEADLINE_MS: String(o.timeoutMs),
        },
      });
      holders.push(p);
      progress.push({ type: 'progress', opened: 0, failed: 0 });
      done.push(new Promise<void>((resolve) => {
        p.child.on('message', (m: HoldProgress) => {
          progress[i] = m;
          if (m.type === 'done') resolve();
        });
        void p.exited.then(() => resolve());
      }));
    }
    let boundTimer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((r) => { boundTimer = setTimeout(() => r('timeout'), o.timeoutMs + 15_000); });
    const finished = await Promise.race([Promise.all(done).then(() => 'done' as const), bound]);
    clearTimeout(boundTimer);
    const seconds = (Date.now() - started) / 1000;
    await sleep(2_000); // let the gateway settle (allocations after welcome, session registration)
    const gcAfter = await afterGc(dep.ops![0]!);
    const after = sampleProc(gw.pid)!;
    const reached = progress.reduce((a, p) => a + p.opened, 0);
    const failed = progress.reduce((a, p) => a + p.failed, 0);
    const stopped = progress.find((p) => p.stoppedBy);
    if (finished === 'timeout') stopReason = `time bound ${o.timeoutMs / 1000} s reached`;
    else if (stopped?.stoppedBy) stopReason = `${stopped.stoppedBy}; ${stopReason}`;
    else if (failed > 0) stopReason = `${failed} failed (${progress.find((p) => p.firstError)?.firstError ?? ''}); ${stopReason}`;
    const res: ConnectionsResult = {
      target: o.target, attempted, reached, failed, seconds,
      acceptPerSec: Math.round(reached / seconds),
      gatewayRssBeforeBytes: gcBefore.rss, gatewayRssAfterBytes: gcAfter.rss,
      rssPerConnBytes: reached > 0 ? Math.round((gcAfter.rss - gcBefore.rss) / reached) : NaN,
      gatewayCpuSec: after.cpuSec - before.cpuSec,
      gatewayFdLimit: limit, holders: n, stopReason,
      heapPerConnBytes: reached > 0 ? Math.round((gcAfter.heapUsed - gcBefore.heapUsed) / reached) : NaN,
    };
    ctx.log.info({ reached: res.reached, rssPerConn: res.rssPerConnBytes, seconds: res.seconds }, 'connections: done');
    return res;
  } finally {
    for (const h of holders) if (h.child.connected) h.child.send({ cmd: 'close' });
    await Promise.all(holders.map((h) => h.stop(5_000)));
    await dep.stop();
  }
}
