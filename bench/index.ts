// Entry of `parley bench`: starts a private stack, runs the scenarios (fan-out against Parley and its baselines,
// ack latency and throughput, idle connections, HTTP, k6), checks the budgets, and writes the reports.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from '../lib/observability/index.js';
import { parseMongoBackend, startStack } from '../lib/stack/index.js';
import type { Stack } from '../lib/stack/index.js';
import { killAllChildren } from './proc.js';
import {
  ACK_HEAD, BUDGET_HEAD, FANOUT_HEAD, RATIO_HEAD, STORE_HEAD, ackRows, storeRows, budgetRows, checkBudgets, fanoutRows, latencySvg, markdown, ratioRows, textTable,
} from './report.js';
import type { Budgets, Results } from './report.js';
import { runAck } from './scenarios/ack.js';
import { runConnections } from './scenarios/connections.js';
import { DEFAULT_CASES, caseLabel, runFanout } from './scenarios/fanout.js';
import type { FanoutCase } from './scenarios/fanout.js';
import { runHistory } from './scenarios/history.js';
import { runK6 } from './scenarios/k6.js';
import { runStore } from './scenarios/store.js';
import type { BenchContext, SystemName } from './systems.js';

const SCENARIOS = ['fanout', 'ack', 'connections', 'history', 'k6', 'store'] as const;
type Scenario = (typeof SCENARIOS)[number];

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

const USAGE = `usage: parley bench [fanout|ack|connections|history|k6|store|all ...] [--check] [flags]   (see bench/README.md)
  --check                 run every scenario (unless named) and exit 1 on any budget breach
  --duration <s>          measured seconds per fan-out run (10)      --warmup <s>   warm-up seconds (2)
  --cases <list>          fan-out cases RxM@rate[:senders], e.g. 20x50@200,1x100@1000:10 (the three defaults)
  --systems <list>        parley,floor,socketio (all three)          --workers <n>  generator worker threads (2)
  --ack-rates <list>      fixed ack rates (1000)                     --ramp <list>  ramp rates (2000,4000,6000,8000,10000,12000,15000,20000)
  --step <s>              seconds per ack step (4)                   --senders <n>  ack senders (40)
  --connections <n>       idle connection target (100000)            --conn-timeout <s>  bound for opening them (90)
  --store-backends <list> sqlite,postgresql (both)                   --store-batch <n>  docs per insertMany (256)
  --store-inflight <list> insertMany calls in flight (1,4,8,16)       --store-duration <s>  per run (5)
  --k6-vus <n> (20)  --k6-duration <s> (10)  --cpu-prof (write .cpuprofile of every server process)  --out <dir>`;

export async function benchCommand(argv: string[], log: Logger): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        check: { type: 'boolean', default: false },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        cases: { type: 'string' },
        systems: { type: 'string', default: 'parley,floor,socketio' },
        workers: { type: 'string', default: '2' },
        'ack-rates': { type: 'string', default: '1000' },
        ramp: { type: 'string', default: '2000,4000,6000,8000,10000,12000,15000,20000' },
        step: { type: 'string', default: '4' },
        senders: { type: 'string', default: '40' },
        connections: { type: 'string', default: '100000' },
        'conn-timeout': { type: 'string', default: '90' },
        'store-backends': { type: 'string', default: 'sqlite,postgresql' },
        'store-batch': { type: 'string', default: '256' },
        'store-inflight': { type: 'string', default: '1,4,8,16' },
        'store-duration': { type: 'string', default: '5' },
        'k6-vus': { type: 'string', default: '20' },
        'k6-duration': { type: 'string', default: '10' },
        'cpu-prof': { type: 'boolean', default: false },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const named = positionals.filter((p) => p !== 'all');
  const bad = named.find((p) => !(SCENARIOS as readonly string[]).includes(p));
  if (bad) {
    console.error(`unknown scenario ${JSON.stringify(bad)}\n${USAGE}`);
    return 2;
  }
  if (positionals.length === 0 && !v.check) {
    console.log(USAGE);
    return 2;
  }
  // `store` measures FerretDB alone and has no budget: it runs only when named.
  const scenarios = new Set<Scenario>(named.length ? (named as Scenario[]) : SCENARIOS.filter((x) => x !== 'store'));
  const num = (s: string, name: string): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${s}`);
    return n;
  };
  const list = (s: string, name: string): number[] => s.split(',').filter(Boolean).map((x) => num(x, name));
  const systems = v.systems.split(',').filter(Boolean) as SystemName[];
  if (systems.some((s) => !['parley', 'floor', 'socketio'].includes(s))) {
    console.error(`--systems: parley, floor, socketio\n${USAGE}`);
    return 2;
  }
  let cases: FanoutCase[] = DEFAULT_CASES;
  if (v.cases) {
    cases = [];
    for (const c of v.cases.split(',')) {
      const m = /^(\d+)x(\d+)@(\d+)(?::(\d+))?$/.exec(c.trim());
      if (!m) {
        console.error(`--cases: expected RxM@rate[:senders], got ${c}`);
        return 2;
      }
      const rooms = Number(m[1]);
      cases.push({ rooms, members: Number(m[2]), rate: Number(m[3]), senders: m[4] ? Number(m[4]) : Math.max(rooms, 10) });
    }
  }
  const warmupMs = num(v.warmup, 'warmup') * 1000;
  const durationMs = num(v.duration, 'duration') * 1000;
  const workers = Math.max(1, num(v.workers, 'workers'));
  const budgets = JSON.parse(await readFile(join(REPO, 'bench', 'budgets.json'), 'utf8')) as Budgets;

  const runId = new Date().toISOString().replace(/[:.]/g, '-').replace('Z', '');
  const outDir = resolve(v.out ?? join(REPO, 'bench', 'results', runId));
  const logDir = join(outDir, 'logs');
  const profDir = join(outDir, 'prof');
  await mkdir(logDir, { recursive: true });
  if (v['cpu-prof']) await mkdir(profDir, { recursive: true });
  const started = Date.now();
  const stackDir = await mkdtemp(join(tmpdir(), 'parley-bench-'));
  let stack: Stack | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    log.warn('interrupted: stopping everything the bench started');
    killAllChildren();
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: Results = { fanout: [], errors: [] };
  const ran = new Set<string>();
  try {
    log.info({ dir: stackDir }, 'bench: starting the stack');
    stack = await startStack({ dir: stackDir, log });
    const ctx: BenchContext = {
      stack: stack.env, secret: randomBytes(32).toString('hex'), runId, logDir, profDir, cpuProf: v['cpu-prof'], log,
      stackProcs: (['nats', 'redis', 'ferretdb'] as const).flatMap((n) => {
        const pid = stack!.services[n].pid;
        return pid === undefined ? [] : [{ name: n, pid }];
      }),
    };
    let seq = 0;
    const tag = (): string => `${(seq++).toString(36)}${runId.slice(-6).replace(/-/g, '')}`;
    const attempt = async (scenario: string, fn: () => Promise<void>): Promise<void> => {
      ran.add(scenario);
      try {
        await fn();
      } catch (err) {
        log.error({ err, scenario }, 'scenario failed');
        results.errors.push({ scenario, error: err instanceof Error ? err.message : String(err) });
      }
    };
    if (scenarios.has('fanout')) {
      for (const c of cases) {
        for (const system of systems) {
          await attempt('fanout', async () => {
            try {
              results.fanout.push(await runFanout(ctx, c, system, { warmupMs, durationMs, workers }, tag()));
            } catch (err) {
              results.fanout.push(failedFanout(c, system, err));
              throw err;
            }
          });
        }
      }
    }
    if (scenarios.has('ack')) {
      await attempt('ack', async () => {
        results.ack = await runAck(ctx, {
          fixedRates: list(v['ack-rates'], 'ack-rates'), rampRates: list(v.ramp, 'ramp'), stepMs: num(v.step, 'step') * 1000, warmupMs: 1000, firstWarmupMs: 5000,
          ackBudgetMs: budgets.ackP99Ms, senders: num(v.senders, 'senders'), workers, maxRampMs: 120_000,
        }, tag());
      });
    }
    if (scenarios.has('connections')) {
      await attempt('connections', async () => {
        results.connections = await runConnections(ctx, { target: num(v.connections, 'connections'), perHolder: 15_000, timeoutMs: num(v['conn-timeout'], 'conn-timeout') * 1000 }, tag());
      });
    }
    if (scenarios.has('history')) {
      await attempt('history', async () => {
        results.http = await runHistory(ctx, { durationSec: 5, connections: 10 }, tag());
      });
    }
    if (scenarios.has('store')) {
      await attempt('store', async () => {
        results.store = await runStore(log, {
          backends: v['store-backends'].split(',').filter(Boolean).map((b) => parseMongoBackend(b, '--store-backends')),
          batch: num(v['store-batch'], 'store-batch'), inflight: list(v['store-inflight'], 'store-inflight'),
          durationMs: num(v['store-duration'], 'store-duration') * 1000,
        });
      });
    }
    if (scenarios.has('k6')) {
      await attempt('k6', async () => {
        results.k6 = await runK6(ctx, { vus: num(v['k6-vus'], 'k6-vus'), durationMs: num(v['k6-duration'], 'k6-duration') * 1000, intervalMs: 100, rooms: 4, p99Ms: budgets.k6E2eP99Ms }, tag());
      });
    }
  } catch (err) {
    log.error({ err }, 'bench failed');
    results.errors.push({ scenario: 'setup', error: err instanceof Error ? err.message : String(err) });
  } finally {
    await stack?.stop().catch((err: unknown) => log.warn({ err }, 'stack stop failed'));
    await rm(stackDir, { recursive: true, force: true }).catch(() => undefined);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const checks = checkBudgets(budgets, results, ran);
  const plots: string[] = [];
  for (const c of [...new Set(results.fanout.map((x) => x.case))]) {
    const svg = latencySvg(c, results.fanout.filter((x) => x.case === c));
    if (!svg) continue;
    const name = `latency-${c.replace('@', '-at-')}.svg`;
    await writeFile(join(outDir, name), svg);
    plots.push(name);
  }
  const info = {
    runId, started: new Date(started).toISOString(), argv,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    node: process.version, commit: gitCommit(), totalSeconds: (Date.now() - started) / 1000, warmupMs, durationMs,
  };
  await writeFile(join(outDir, 'report.md'), markdown(info, results, checks, plots));
  await writeFile(join(outDir, 'report.json'), JSON.stringify({
    info, budgets, checks,
    results: { ...results, fanout: results.fanout.map(({ hist: _h, ...rest }) => rest) },
  }, null, 2));

  if (results.fanout.length) {
    console.log(`\nFan-out (latency ms, send -> every member's message)\n${textTable(FANOUT_HEAD, fanoutRows(results.fanout))}`);
    console.log(`\n${textTable(RATIO_HEAD, ratioRows(results.fanout))}`);
  }
  if (results.ack) console.log(`\nAck\n${textTable(ACK_HEAD, ackRows([...results.ack.fixed, ...results.ack.ramp]))}\nramp: ${results.ack.stopReason}`);
  if (results.ack?.jetstream) console.log(`JetStream alone at ${results.ack.jetstream.rate}/s: p50 ${results.ack.jetstream.latency.p50} ms, p99 ${results.ack.jetstream.latency.p99} ms`);
  if (results.connections) {
    const c = results.connections;
    console.log(`\nConnections: ${c.reached}/${c.target} in ${c.seconds.toFixed(1)} s, ${(c.rssPerConnBytes / 1024).toFixed(2)} KB RSS each; ${c.stopReason}`);
  }
  if (results.http) for (const h of results.http) console.log(`HTTP ${h.endpoint}: ${h.available ? `${h.reqPerSec} req/s, p50 ${h.p50Ms} ms, p99 ${h.p99Ms} ms` : h.note}`);
  if (results.store) {
    console.log(`\nStore (FerretDB insertMany, no Parley)\n${textTable(STORE_HEAD, storeRows(results.store.runs))}`);
    for (const c of results.store.crash) console.log(`kill -9 ${c.backend}: ${c.found}/${c.acked} acknowledged documents after restart (${c.restartSec.toFixed(1)} s)`);
  }
  if (results.k6) console.log(`k6: e2e p99 ${results.k6.e2eP99Ms} ms, exit ${results.k6.exitCode}`);
  console.log(`\nBudgets\n${textTable(BUDGET_HEAD, budgetRows(checks))}`);
  console.log(`\nreport: ${join(outDir, 'report.md')}`);
  const failed = checks.filter((c) => c.pass === false);
  if (v.check && failed.length > 0) {
    console.log(`\n${failed.length} budget(s) FAIL`);
    return 1;
  }
  return results.errors.length > 0 ? 1 : 0;
}

function failedFanout(c: FanoutCase, system: SystemName, err: unknown): Results['fanout'][number] {
  const nan = { count: 0, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  return {
    case: caseLabel(c), system, ok: false, error: err instanceof Error ? err.message : String(err), connected: 0, connectFailed: 0,
    latency: nan, ack: nan, sent: 0, acked: 0, rejected: 0, expected: 0, delivered: 0, loss: 0, duplicates: 0, outOfOrder: 0, errors: {},
    unexpectedCloses: 0, deliveriesPerSec: 0, processes: [], generator: { cpuSec: 0, peakRssBytes: 0, workers: 0 },
  };
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: REPO }).toString().trim() ? ' (dirty)' : '';
    return head + dirty;
  } catch {
    return 'unknown';
  }
}
