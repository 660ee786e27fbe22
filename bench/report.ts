// Budgets, tables, the Markdown report and the latency plot (SVG, percentile distribution on a log axis).
import { distribution } from './hist.js';
import type { AckResult, AckStep } from './scenarios/ack.js';
import type { ConnectionsResult } from './scenarios/connections.js';
import type { FanoutResult } from './scenarios/fanout.js';
import type { HttpRun } from './scenarios/history.js';
import type { K6Result } from './scenarios/k6.js';
import type { StoreResult, StoreRun } from './scenarios/store.js';

export interface Budgets {
  e2eP99Ms: number;
  floorRatioMax: number;
  floorRatioCases: string[];
  /** Cases whose Parley/floor p50 ratio must also be within floorRatioMax. */
  floorRatioP50Cases: string[];
  beatSocketIoCases: string[];
  ackP99Ms: number;
  /** When JetStream's own publish p99 (same run) is above ackP99Ms, the ack p99 may be up to this multiple of it. */
  ackP99JetStreamRatioMax: number;
  ackRate: number;
  ackPersistRateMin: number;
  idleConnections: number;
  rssPerConnBytesMax: number;
  historyReqPerSecMin: number;
  historyP99Ms: number;
  k6E2eP99Ms: number;
}

export interface Results {
  fanout: FanoutResult[];
  ack?: AckResult;
  connections?: ConnectionsResult;
  http?: HttpRun[];
  k6?: K6Result;
  store?: StoreResult;
  errors: Array<{ scenario: string; error: string }>;
}

export interface BudgetCheck {
  budget: string;
  limit: string;
  measured: string;
  /** undefined: not measured in this run (a scenario or case that was not asked for). */
  pass: boolean | undefined;
  note?: string;
}

const f = (n: number | undefined, d = 2): string => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(d));
const kb = (b: number): string => `${(b / 1024).toFixed(2)} KB`;
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`;

export function checkBudgets(b: Budgets, r: Results, ran: Set<string>): BudgetCheck[] {
  const out: BudgetCheck[] = [];
  const fan = (c: string, s: string): FanoutResult | undefined => r.fanout.find((x) => x.case === c && x.system === s);
  if (ran.has('fanout')) {
    for (const x of r.fanout.filter((y) => y.system === 'parley')) {
      out.push({ budget: `e2e p99 ${x.case}`, limit: `< ${b.e2eP99Ms} ms`, measured: x.ok ? `${f(x.latency.p99)} ms` : `error: ${x.error}`, pass: x.ok && x.latency.p99 < b.e2eP99Ms });
      const clean = x.ok && x.loss === 0 && x.duplicates === 0 && x.outOfOrder === 0 && x.rejected === 0 && x.delivered > 0;
      out.push({
        budget: `no loss/dup/reorder ${x.case}`, limit: '0 / 0 / 0',
        measured: x.ok ? `${x.loss} / ${x.duplicates} / ${x.outOfOrder} (of ${x.expected} expected; ${x.rejected} rejected)` : 'error', pass: clean,
      });
    }
    for (const c of b.floorRatioCases) {
      const p = fan(c, 'parley');
      const fl = fan(c, 'floor');
      const ratio = p?.ok && fl?.ok ? p.latency.p99 / fl.latency.p99 : NaN;
      out.push({
        budget: `e2e p99 Parley/floor ${c}`, limit: `<= ${b.floorRatioMax}x`,
        measured: Number.isNaN(ratio) ? 'not measured' : `${f(ratio)}x (${f(p!.latency.p99)} / ${f(fl!.latency.p99)} ms)`,
        pass: p && fl ? ratio <= b.floorRatioMax : undefined,
      });
    }
    for (const c of b.floorRatioP50Cases) {
      const p = fan(c, 'parley');
      const fl = fan(c, 'floor');
      const ratio = p?.ok && fl?.ok ? p.latency.p50 / fl.latency.p50 : NaN;
      out.push({
        budget: `e2e p50 Parley/floor ${c}`, limit: `<= ${b.floorRatioMax}x`,
        measured: Number.isNaN(ratio) ? 'not measured' : `${f(ratio)}x (${f(p!.latency.p50)} / ${f(fl!.latency.p50)} ms)`,
        pass: p && fl ? ratio <= b.floorRatioMax : undefined,
      });
    }
    for (const c of b.beatSocketIoCases) {
      const p = fan(c, 'parley');
      const s = fan(c, 'socketio');
      const ok = !!(p?.ok && s?.ok);
      out.push({
        budget: `e2e p99 Parley < Socket.IO ${c}`, limit: '< Socket.IO p99',
        measured: ok ? `${f(p!.latency.p99)} ms vs ${f(s!.latency.p99)} ms` : 'not measured',
        pass: p && s ? ok && p.latency.p99 < s.latency.p99 : undefined,
      });
    }
  }
  if (ran.has('ack')) {
    const step = r.ack?.fixed.find((s) => s.rate === b.ackRate);
    // JetStream's own publish p99 at the same rate, in the same run: the ack cannot beat the log it waits for.
    const js = r.ack?.jetstream;
    const jsAbove = !!js && js.latency.p99 > b.ackP99Ms;
    const limit = jsAbove ? js.latency.p99 * b.ackP99JetStreamRatioMax : b.ackP99Ms;
    out.push({
      budget: `ack p99 at ${b.ackRate} msg/s`,
      limit: jsAbove ? `<= ${b.ackP99JetStreamRatioMax}x JetStream p99 = ${f(limit)} ms` : `<= ${b.ackP99Ms} ms`,
      measured: step ? `${f(step.ack.p99)} ms` : 'not measured',
      pass: !!step && step.ack.p99 <= limit,
      ...(js ? { note: `raw JetStream publish at ${js.rate}/s: p50 ${f(js.latency.p50)} ms, p99 ${f(js.latency.p99)} ms` } : {}),
    });
    out.push({
      budget: 'acked + persisted msg/s (sustained)', limit: `>= ${b.ackPersistRateMin}`,
      measured: r.ack ? `${r.ack.maxAckPersistRate}/s` : 'not measured', pass: !!r.ack && r.ack.maxAckPersistRate >= b.ackPersistRateMin,
      ...(r.ack ? { note: `ramp: ${r.ack.stopReason}` } : {}),
    });
  }
  if (ran.has('connections')) {
    const c = r.connections;
    out.push({
      budget: 'idle connections on one gateway', limit: `>= ${b.idleConnections}`,
      measured: c ? `${c.reached}` : 'not measured', pass: !!c && c.reached >= b.idleConnections, ...(c ? { note: c.stopReason } : {}),
    });
    out.push({
      budget: 'RSS per idle connection', limit: `<= ${kb(b.rssPerConnBytesMax)}`,
      measured: c ? `${kb(c.rssPerConnBytes)} (at ${c.reached})` : 'not measured', pass: !!c && c.rssPerConnBytes <= b.rssPerConnBytesMax,
    });
  }
  if (ran.has('history')) {
    const h = r.http?.find((x) => x.endpoint === 'GET /rooms/:room/messages');
    const ok = !!h?.available && (h.errors ?? 0) === 0 && (h.non2xx ?? 0) === 0;
    out.push({
      budget: 'history req/s', limit: `>= ${b.historyReqPerSecMin}`, measured: h?.available ? `${h.reqPerSec}/s` : 'not measured',
      pass: ok && (h!.reqPerSec ?? 0) >= b.historyReqPerSecMin, ...(h ? { note: `errors ${h.errors ?? 0}, non-2xx ${h.non2xx ?? 0}` } : {}),
    });
    out.push({
      budget: 'history p99', limit: `<= ${b.historyP99Ms} ms`, measured: h?.available ? `${f(h.p99Ms)} ms` : 'not measured',
      pass: ok && (h!.p99Ms ?? Infinity) <= b.historyP99Ms,
    });
  }
  if (ran.has('k6')) {
    out.push({
      budget: 'k6 e2e p99 (thresholds)', limit: `< ${b.k6E2eP99Ms} ms`,
      measured: r.k6 ? `${f(r.k6.e2eP99Ms)} ms, k6 exit ${r.k6.exitCode}` : 'not measured', pass: !!r.k6?.thresholdsPassed,
    });
  }
  for (const e of r.errors) out.push({ budget: `scenario ${e.scenario} ran`, limit: 'no error', measured: e.error, pass: false });
  return out;
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Plain-text table for the terminal. */
export function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

export const FANOUT_HEAD = ['case', 'system', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'deliv/s', 'sent', 'loss', 'dup', 'ooo', 'server CPU s', 'gen CPU s'];

export function fanoutRows(rs: FanoutResult[]): string[][] {
  return rs.map((x) => (x.ok
    ? [x.case, x.system, f(x.latency.p50), f(x.latency.p90), f(x.latency.p99), f(x.latency.p999), f(x.latency.max), f(x.deliveriesPerSec, 0),
      String(x.sent), String(x.loss), String(x.duplicates), String(x.outOfOrder),
      f(x.processes.filter((p) => !['nats', 'redis', 'ferretdb'].includes(p.name)).reduce((a, p) => a + p.cpuSec, 0)), f(x.generator.cpuSec)]
    : [x.case, x.system, `error: ${x.error ?? ''}`, '', '', '', '', '', '', '', '', '', '', '']));
}

export function ratioRows(rs: FanoutResult[]): string[][] {
  const cases = [...new Set(rs.map((x) => x.case))];
  return cases.map((c) => {
    const get = (s: string): FanoutResult | undefined => rs.find((x) => x.case === c && x.system === s && x.ok);
    const p = get('parley');
    const r = (o: FanoutResult | undefined, k: 'p50' | 'p99'): string => (p && o ? `${f(p.latency[k] / o.latency[k])}x` : 'n/a');
    return [c, r(get('floor'), 'p50'), r(get('floor'), 'p99'), r(get('socketio'), 'p50'), r(get('socketio'), 'p99')];
  });
}

export const RATIO_HEAD = ['case', 'Parley/floor p50', 'Parley/floor p99', 'Parley/Socket.IO p50', 'Parley/Socket.IO p99'];

export const ACK_HEAD = ['rate/s', 'ack p50 ms', 'ack p99 ms', 'ack p99.9 ms', 'max ms', 'acked/s', 'persisted/s', 'sustained', 'rejected', 'server CPU s', 'gen CPU s'];

export function ackRows(steps: AckStep[]): string[][] {
  return steps.map((s) => [String(s.rate), f(s.ack.p50), f(s.ack.p99), f(s.ack.p999), f(s.ack.max), String(s.ackedPerSec), String(s.persistedPerSec),
    s.sustained ? 'yes' : 'no', String(s.rejected), procSummary(s.processes), f(s.generatorCpuSec)]);
}

function procSummary(ps: Array<{ name: string; cpuSec: number }>): string {
  return ps.map((p) => `${p.name.replace(/-[A-Za-z0-9]+$/, '')} ${f(p.cpuSec, 1)}`).join(', ');
}

export const STORE_HEAD = ['backend', 'batch', 'in flight', 'docs/s', 'batch p50 ms', 'batch p99 ms', 'max ms', 'server CPU s'];

export function storeRows(runs: StoreRun[]): string[][] {
  return runs.map((r) => [r.backend, String(r.batch), String(r.inflight), String(r.docsPerSec), f(r.batchLatency.p50), f(r.batchLatency.p99),
    f(r.batchLatency.max), procSummary(r.processes)]);
}

export const BUDGET_HEAD = ['budget', 'limit', 'measured', 'result', 'note'];

export function budgetRows(cs: BudgetCheck[]): string[][] {
  return cs.map((c) => [c.budget, c.limit, c.measured, c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'FAIL', c.note ?? '']);
}

export interface RunInfo {
  runId: string;
  started: string;
  argv: string[];
  machine: string;
  node: string;
  commit: string;
  totalSeconds: number;
  warmupMs: number;
  durationMs: number;
}

export function markdown(info: RunInfo, r: Results, checks: BudgetCheck[], plots: string[]): string {
  const parts: string[] = [];
  parts.push(`# Parley bench ${info.runId}\n`);
  parts.push(`- started ${info.started}, took ${f(info.totalSeconds, 0)} s; \`parley bench ${info.argv.join(' ')}\``);
  parts.push(`- machine: ${info.machine}; node ${info.node}; commit ${info.commit}`);
  parts.push(`- fan-out: warm-up ${info.warmupMs / 1000} s, measured ${info.durationMs / 1000} s per system; latency from the intended send time (coordinated-omission aware)\n`);
  parts.push('## Budgets\n');
  parts.push(table(BUDGET_HEAD, budgetRows(checks)));
  const failed = checks.filter((c) => c.pass === false).length;
  const skipped = checks.filter((c) => c.pass === undefined).length;
  parts.push(`\n**${failed === 0 ? 'No budget fails' : `${failed} of ${checks.length} budgets FAIL`}${skipped ? ` (${skipped} not measured in this run)` : ''}.**\n`);
  if (r.fanout.length) {
    parts.push('## Fan-out (send -> every member\'s `message`)\n');
    parts.push(table(FANOUT_HEAD, fanoutRows(r.fanout)));
    parts.push('\n### Ratios\n');
    parts.push(table(RATIO_HEAD, ratioRows(r.fanout)));
    parts.push('\n### Processes (CPU seconds during warm-up + measurement + drain, peak RSS)\n');
    parts.push(table(['case', 'system', 'process', 'CPU s', 'peak RSS'], r.fanout.filter((x) => x.ok).flatMap((x) => [
      ...x.processes.map((p) => [x.case, x.system, p.name.replace(/-[A-Za-z0-9]+$/, ''), f(p.cpuSec), mb(p.peakRssBytes)]),
      [x.case, x.system, `load generator (${x.generator.workers} worker threads)`, f(x.generator.cpuSec), mb(x.generator.peakRssBytes)],
    ])));
    parts.push('\n### Ack latency seen by senders during fan-out\n');
    parts.push(table(['case', 'system', 'ack p50 ms', 'ack p99 ms', 'acked', 'errors'], r.fanout.filter((x) => x.ok).map((x) => [
      x.case, x.system, f(x.ack.p50), f(x.ack.p99), String(x.acked), JSON.stringify(x.errors)])));
    for (const p of plots) parts.push(`\n![latency distribution](${p})`);
  }
  if (r.ack) {
    parts.push('\n## Ack (send -> ack) and ack + persist throughput\n');
    parts.push(table(ACK_HEAD, ackRows([...r.ack.fixed, ...r.ack.ramp])));
    if (r.ack.jetstream) {
      const j = r.ack.jetstream;
      parts.push(`\nJetStream alone (js.publish -> PubAck, no Parley) at ${j.rate}/s: p50 ${f(j.latency.p50)} ms, p99 ${f(j.latency.p99)} ms, max ${f(j.latency.max)} ms.`);
    }
    parts.push(`\nHighest ramp rate with ack p99 within budget: ${r.ack.maxRateUnderBudget}/s. Best sustained min(acked/s, persisted/s): ${r.ack.maxAckPersistRate}/s. Ramp stopped: ${r.ack.stopReason}. Documents in Mongo: ${r.ack.mongoDocuments} (acked in total: ${r.ack.totalAcked}).`);
  }
  if (r.connections) {
    const c = r.connections;
    parts.push('\n## Idle connections (one gateway)\n');
    parts.push(table(['target', 'attempted', 'reached', 'failed', 'seconds', 'accepted/s', 'gateway RSS before', 'after', 'RSS/conn', 'gateway CPU s', 'fd limit', 'holders'], [[
      String(c.target), String(c.attempted), String(c.reached), String(c.failed), f(c.seconds, 1), String(c.acceptPerSec), mb(c.gatewayRssBeforeBytes),
      mb(c.gatewayRssAfterBytes), kb(c.rssPerConnBytes), f(c.gatewayCpuSec), String(c.gatewayFdLimit ?? 'n/a'), String(c.holders)]]));
    parts.push(`\nStopped: ${c.stopReason}. V8 heap used per connection (gateway /metrics): ${kb(c.heapPerConnBytes)}; the rest of the RSS per connection is native (uWS socket, kernel-facing buffers) and allocator overhead.`);
  }
  if (r.http) {
    parts.push('\n## HTTP (autocannon)\n');
    parts.push(table(['endpoint', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'note'], r.http.map((h) => (h.available
      ? [h.endpoint, String(h.reqPerSec), f(h.p50Ms), f(h.p99Ms), f(h.maxMs), String(h.errors), String(h.non2xx), h.note ?? '']
      : [h.endpoint, '', '', '', '', '', '', h.note ?? 'not available']))));
  }
  if (r.k6) {
    const k = r.k6;
    parts.push('\n## k6 (bench/k6/chat.js)\n');
    parts.push(table(['e2e p50 ms', 'e2e p99 ms', 'ack p99 ms', 'delivered', 'acks', 'checks', 'k6 exit', 'thresholds'], [[
      f(k.e2eP50Ms), f(k.e2eP99Ms), f(k.ackP99Ms), String(k.delivered ?? 'n/a'), String(k.acks ?? 'n/a'), f(k.checksRate, 4), String(k.exitCode), k.thresholdsPassed ? 'PASS' : 'FAIL']]));
  }
  if (r.store) {
    parts.push('\n## Store (FerretDB insertMany per backend, without Parley)\n');
    parts.push(table(STORE_HEAD, storeRows(r.store.runs)));
    parts.push(`\n${r.store.crash.map((c) => `- kill -9 of FerretDB and its backend (${c.backend}) under load: ${c.found} of ${c.acked} `
      + `acknowledged documents there after the restart; back in ${f(c.restartSec, 1)} s`).join('\n')}`);
  }
  if (r.errors.length) {
    parts.push('\n## Errors\n');
    for (const e of r.errors) parts.push(`- ${e.scenario}: ${e.error}`);
  }
  return `${parts.join('\n')}\n`;
}

const COLORS: Record<string, string> = { parley: '#d62728', floor: '#2ca02c', socketio: '#1f77b4' };

/** Latency by percentile, x = log10(1/(1-p)) so 90, 99, 99.9 ... are evenly spaced; y on a log scale. */
export function latencySvg(title: string, series: FanoutResult[]): string {
  const W = 760, H = 420, L = 70, R = 130, T = 40, B = 50;
  const pw = W - L - R, ph = H - T - B;
  const data = series.filter((s) => s.ok && s.hist).map((s) => ({ name: s.system, pts: distribution(s.hist!) }));
  const all = data.flatMap((d) => d.pts.map((p) => p[1])).filter((v) => v > 0);
  if (all.length === 0) return '';
  const xMax = Math.max(1, ...data.map((d) => Math.log10(1 / Math.max(1e-6, 1 - d.pts[d.pts.length - 2]![0] / 100))));
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const xOf = (p: number): number => L + (Math.min(xMax, Math.log10(1 / Math.max(1e-6, 1 - p / 100))) / xMax) * pw;
  const yOf = (v: number): number => T + ph - ((Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/><text x="${L}" y="22" font-size="15">${escape(title)}: e2e latency by percentile</text>`);
  for (let n = 0; n <= Math.floor(xMax); n++) {
    const p = 100 * (1 - 10 ** -n);
    const x = xOf(p).toFixed(1);
    out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${T + ph}" stroke="#ddd"/><text x="${x}" y="${T + ph + 18}" text-anchor="middle">${n === 0 ? '0' : p.toFixed(Math.max(0, n - 2))}%</text>`);
  }
  for (let e = Math.log10(yMin); e <= Math.log10(yMax) + 1e-9; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v > yMax * 1.0001) continue;
      const y = yOf(v).toFixed(1);
      out.push(`<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="${m === 1 ? '#ccc' : '#eee'}"/><text x="${L - 6}" y="${y + 4}" text-anchor="end">${v >= 1 ? v : v.toPrecision(1)}</text>`);
    }
  }
  out.push(`<text x="${L + pw / 2}" y="${H - 10}" text-anchor="middle">percentile</text>`);
  out.push(`<text x="16" y="${T + ph / 2}" transform="rotate(-90 16 ${T + ph / 2})" text-anchor="middle">latency (ms, log)</text>`);
  data.forEach((d, i) => {
    const pts = d.pts.filter((p) => p[0] < 100).map((p) => `${xOf(p[0]).toFixed(1)},${yOf(p[1]).toFixed(1)}`).join(' ');
    const color = COLORS[d.name] ?? '#555';
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
    out.push(`<rect x="${L + pw + 14}" y="${T + i * 20}" width="14" height="3" fill="${color}"/><text x="${L + pw + 34}" y="${T + i * 20 + 5}">${d.name}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function escape(s: string): string {
  return s.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
}
