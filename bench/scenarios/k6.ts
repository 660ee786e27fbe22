// k6: bench/k6/chat.js drives the protocol against two Parley gateways; its thresholds (e2e p99) make k6 exit
// non-zero on a breach. Tokens and URLs go in through the environment (__ENV).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWriteStream } from 'node:fs';
import { mintToken } from '../../lib/auth/index.js';
import { ensureK6 } from '../../lib/stack/index.js';
import { startParley } from '../systems.js';
import type { BenchContext } from '../systems.js';

export interface K6Options { vus: number; durationMs: number; intervalMs: number; rooms: number; p99Ms: number }

export interface K6Result {
  exitCode: number | null;
  thresholdsPassed: boolean;
  e2eP50Ms?: number;
  e2eP99Ms?: number;
  ackP99Ms?: number;
  delivered?: number;
  acks?: number;
  checksRate?: number;
}

const SCRIPT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'bench', 'k6', 'chat.js');

interface Summary { metrics: Record<string, { values: Record<string, number> }> }

export async function runK6(ctx: BenchContext, o: K6Options, tag: string): Promise<K6Result> {
  const k6 = await ensureK6(ctx.log);
  const dep = await startParley(ctx, tag, 2);
  try {
    const tokens = Array.from({ length: o.vus }, (_, i) => mintToken({ secret: ctx.secret, user: `k6_${i}`, ttlMs: 3_600_000 }));
    const summary = join(ctx.logDir, `k6-summary-${tag}.json`);
    const log = createWriteStream(join(ctx.logDir, `k6-${tag}.log`));
    const child = spawn(k6, ['run', '--no-color', SCRIPT], {
      env: {
        PATH: process.env.PATH, HOME: process.env.HOME, K6_NO_USAGE_REPORT: 'true',
        URLS: dep.urls.join(','), TOKENS: tokens.join(','), ROOMS: String(o.rooms), ROOM_PREFIX: `${tag}k`,
        DURATION_MS: String(o.durationMs), INTERVAL_MS: String(o.intervalMs), P99_MS: String(o.p99Ms), SUMMARY: summary,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    const exitCode = await new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    const s = JSON.parse(await readFile(summary, 'utf8').catch(() => '{"metrics":{}}')) as Summary;
    const v = (metric: string, key: string): number | undefined => s.metrics[metric]?.values[key];
    return {
      exitCode, thresholdsPassed: exitCode === 0,
      e2eP50Ms: v('e2e_latency', 'med'), e2eP99Ms: v('e2e_latency', 'p(99)'), ackP99Ms: v('ack_latency', 'p(99)'),
      delivered: v('delivered', 'count'), acks: v('acks', 'count'), checksRate: v('checks', 'rate'),
    };
  } finally {
    await dep.stop();
  }
}
