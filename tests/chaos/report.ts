// One Markdown table row per run, the details of every failure, and the JSON report.
import type { Audit, FaultMetrics, Sample, Timing } from './audit.js';
import type { ChaosOptions } from './options.js';

export interface RunReport {
  run: number;
  seed: number;
  verdict: 'PASS' | 'FAIL' | 'ERROR';
  error?: string;
  startedAt: string;
  wallS: number;
  timing?: Timing;
  audit?: Audit;
  samples: Sample[];
  events: Array<{ t: number; what: string }>;
  logDir?: string;
  pids?: Record<string, string>;
  storageStall?: string;
  chatProgress?: string[];
  /** 1-minute load average of the machine at the start and the end of the run (other work shares the cores). */
  loadAvg: number[];
}

const s1 = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(1)}s`);

function faultCell(f: FaultMetrics | undefined): string {
  if (!f) return '';
  return `${s1(f.gapMs)} / ${f.resumeMs === null ? `never(${f.receiversNotResumed.length})` : s1(f.resumeMs)}`;
}

export function tableHeader(o: ChaosOptions): string {
  const faults = o.faults.map((f) => `${f} gap / resume`);
  const cols = ['run', 'seed', 'acked', 'stored', 'lost-in-stream', 'lost-in-storage', 'undelivered', 'holes (+hidden)', 'duplicates',
    'recovered=false', ...faults, 'storage catch-up', 'delivery catch-up', 'verdict'];
  return `| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`;
}

export function tableRow(r: RunReport, o: ChaosOptions): string {
  const a = r.audit;
  const t = r.timing;
  if (!a || !t) {
    return `| ${r.run} | ${r.seed} | ${['', '', '', '', '', '', '', '', ...o.faults.map(() => ''), '', ''].join(' | ')} | ERROR |`;
  }
  const cells = [
    String(r.run), String(r.seed), String(a.acked), String(a.stored), String(a.lostInStream), String(a.lostInStorage),
    a.undelivered === 0 ? '0' : `${a.undelivered} (${a.undeliveredReceivers} rcv)`,
    a.hiddenHoles > 0 ? `${a.holes} (+${a.hiddenHoles})` : String(a.holes),
    String(a.duplicates), String(a.recoveredFalse),
    ...o.faults.map((name) => faultCell(a.faults.find((f) => f.name === name))),
    t.storageCatchUpMs === null ? (t.storageLost > 0 ? 'never (lost)' : 'not within settle') : s1(t.storageCatchUpMs),
    t.deliveryCatchUpMs === null ? 'not within settle' : s1(t.deliveryCatchUpMs),
    r.verdict,
  ];
  return `| ${cells.join(' | ')} |`;
}

export function details(r: RunReport): string {
  const out: string[] = [];
  out.push(`### run ${r.run} (seed ${r.seed}): ${r.verdict}, ${r.wallS.toFixed(0)} s, load average ${r.loadAvg.map((x) => x.toFixed(1)).join(' -> ')}`);
  if (r.error) out.push(`- ERROR: ${r.error}`);
  const a = r.audit;
  if (a) {
    out.push(`- sent ${a.sent}, acked ${a.acked}, stream ${a.streamCreated}, stored ${a.stored}; resends ${a.resends}, `
      + `skipped send slots (in-flight bound) ${a.skippedSlots}; sender errors ${JSON.stringify(a.senderErrors)}`);
    out.push(`- wiretap on the room channels: ${a.broadcastsTapped} broadcasts, ${a.wrongPrevHints} with a prev hint that contradicts the stream`);
    out.push(`- close codes seen by receivers ${JSON.stringify(a.receiverCloseCodes)}, by senders ${JSON.stringify(a.senderCloseCodes)}`);
    out.push(`- faults: ${a.faults.map((f) => `${f.name} (${f.target}) at ${f.beganAtS.toFixed(1)}s, repaired in ${s1(f.downMs)}, `
      + `ack gap ${s1(f.gapMs)} (worst sender ${s1(f.worstSenderGapMs)}), delivery resumed ${f.resumeMs === null ? `never for ${f.receiversNotResumed.join(',')}` : `after ${s1(f.resumeMs)}`}`).join('; ')}`);
    if (r.timing) {
      out.push(`- after the load stopped: all acked ${s1(r.timing.allAckedMs)}, storage ${s1(r.timing.storageCatchUpMs)}, delivery ${s1(r.timing.deliveryCatchUpMs)}`);
    }
    if (r.storageStall) out.push(`- ${r.storageStall}`);
    if (r.chatProgress) out.push(`- chat progress: ${r.chatProgress.join('; ')}`);
    for (const f of a.failures) {
      out.push(`- **${f.category}**: ${f.count}`);
      for (const d of f.details) out.push(`  - ${d}`);
    }
    if (a.warnings.length > 0) {
      out.push(`- warnings (${a.warnings.length}):`);
      for (const w of a.warnings.slice(0, 15)) out.push(`  - ${w}`);
    }
  }
  if (r.logDir) out.push(`- process logs: ${r.logDir} (pid -> role ${JSON.stringify(r.pids ?? {})})`);
  return out.join('\n');
}

export function verdictOf(a: Audit): 'PASS' | 'FAIL' {
  return a.failures.length === 0 ? 'PASS' : 'FAIL';
}
