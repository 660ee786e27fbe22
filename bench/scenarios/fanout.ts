// Fan-out: R rooms x M members spread over two gateways, S senders at a fixed total rate; latency is each sender's
// intended send time to each member's `message`, through the whole path of the system under test.
import { mintToken } from '../../lib/auth/index.js';
import type { Histogram, LatencySummary } from '../hist.js';
import { summarize } from '../hist.js';
import { LoadGenerator } from '../generator/load.js';
import type { PhaseCounts } from '../generator/load.js';
import type { ConnSpec } from '../generator/worker.js';
import { sampleAll, startSystem, usageBetween } from '../systems.js';
import type { BenchContext, ProcUsage, SystemName } from '../systems.js';

export interface FanoutCase {
  rooms: number;
  members: number;
  rate: number;
  senders: number;
}

export const DEFAULT_CASES: FanoutCase[] = [
  { rooms: 20, members: 50, rate: 200, senders: 20 },
  { rooms: 1, members: 100, rate: 1000, senders: 10 },
  { rooms: 20, members: 50, rate: 1000, senders: 20 },
];

export function caseLabel(c: FanoutCase): string {
  return `${c.rooms}x${c.members}@${c.rate}`;
}

export interface FanoutOptions {
  warmupMs: number;
  durationMs: number;
  workers: number;
}

export interface FanoutResult extends PhaseCounts {
  case: string;
  system: SystemName;
  ok: boolean;
  error?: string;
  connected: number;
  connectFailed: number;
  latency: LatencySummary;
  ack: LatencySummary;
  hist?: Histogram;
  processes: ProcUsage[];
  generator: { cpuSec: number; peakRssBytes: number; workers: number };
}

export function fanoutConns(c: FanoutCase, urls: string[], secret: string, tag: string): ConnSpec[] {
  const conns: ConnSpec[] = [];
  const sendersPerRoom = (room: number): number => Math.floor(c.senders / c.rooms) + (room < c.senders % c.rooms ? 1 : 0);
  for (let r = 0; r < c.rooms; r++) {
    const room = `${tag}r${r}`;
    for (let j = 0; j < c.members; j++) {
      const user = `u${r}_${j}`;
      conns.push({
        // Alternate members between gateways, so every room spans both; offset by room so senders (the first
        // members) are spread over the gateways too.
        url: urls[(r + j) % urls.length]!,
        token: mintToken({ secret, user, ttlMs: 3_600_000 }),
        rooms: [room],
        sendTo: j < sendersPerRoom(r) ? room : null,
      });
    }
  }
  return conns;
}

export async function runFanout(ctx: BenchContext, c: FanoutCase, system: SystemName, o: FanoutOptions, tag: string): Promise<FanoutResult> {
  const label = caseLabel(c);
  ctx.log.info({ case: label, system }, 'fanout: starting');
  const dep = await startSystem(ctx, system, tag);
  let gen: LoadGenerator | undefined;
  try {
    gen = await LoadGenerator.start({ kind: dep.kind, orderBy: dep.orderBy, conns: fanoutConns(c, dep.urls, ctx.secret, tag), workers: o.workers });
    if (gen.connected.failed > 0) ctx.log.warn({ failed: gen.connected.failed, error: gen.connected.firstError }, 'fanout: some connections failed');
    const names = [...dep.procs.map((p) => p.name), ...ctx.stackProcs.map((p) => p.name)];
    const pids = [...dep.procs.map((p) => p.pid), ...ctx.stackProcs.map((p) => p.pid)];
    const before = sampleAll(pids);
    const r = await gen.run({ rate: c.rate, warmupMs: o.warmupMs, durationMs: o.durationMs });
    const after = sampleAll(pids);
    const res: FanoutResult = {
      case: label, system, ok: true,
      connected: gen.connected.ok, connectFailed: gen.connected.failed,
      latency: summarize(r.e2e), ack: summarize(r.ack), hist: r.e2e,
      sent: r.sent, acked: r.acked, rejected: r.rejected, expected: r.expected, delivered: r.delivered, loss: r.loss,
      duplicates: r.duplicates, outOfOrder: r.outOfOrder, errors: r.errors, unexpectedCloses: r.unexpectedCloses,
      deliveriesPerSec: r.deliveriesPerSec,
      processes: usageBetween(names, before, after),
      generator: { cpuSec: r.generatorCpuSec, peakRssBytes: r.generatorPeakRssBytes, workers: o.workers },
    };
    ctx.log.info({ case: label, system, p50: res.latency.p50, p99: res.latency.p99, loss: res.loss }, 'fanout: done');
    return res;
  } finally {
    await gen?.close();
    await dep.stop();
  }
}
