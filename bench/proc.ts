// Child processes of the bench (services, baselines, connection holders): spawn with a raised fd limit, wait until
// ready, sample CPU and memory from /proc, stop with SIGTERM (then SIGKILL).
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  cpuSec: number;
  rssBytes: number;
  /** Peak RSS since the process started (VmHWM). */
  hwmBytes: number;
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSec = (Number(f[11]) + Number(f[12])) / CLK_TCK;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { cpuSec, rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

export function fdLimit(pid: number): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const live = new Set<Proc>();

/** Kills every child the bench started that is still running (used on SIGINT/SIGTERM of the bench itself). */
export function killAllChildren(): void {
  for (const p of live) p.child.kill('SIGKILL');
}

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<number | null>;
  /**
   * Resolves once the output contains `text`; rejects at once if it contains `failText` first. For the baselines, which
   * have no /readyz; Parley's processes are waited for with waitHttp on /readyz.
   */
  waitForLine(text: string, timeoutMs: number, failText?: string): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  /** Script and its arguments, run with `node`. */
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  nodeFlags?: string[];
  ipc?: boolean;
}

/**
 * Runs `node <args>` through bash so the child gets the highest fd limit allowed (RLIMIT_NOFILE up to the hard
 * limit: root without CAP_SYS_RESOURCE cannot go beyond it). `exec` keeps the pid the node process's own.
 */
export function spawnNode(o: SpawnOptions): Proc {
  const node = [process.execPath, ...(o.nodeFlags ?? []), ...o.args].map(shellQuote).join(' ');
  const script = `ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${node}`;
  const child = spawn('bash', ['-c', script], {
    env: o.env,
    stdio: o.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${o.name}`);
  const out = createWriteStream(o.logFile);
  const waiters: Array<{ text: string; failText: string | undefined; resolve: () => void; reject: (e: Error) => void }> = [];
  let buffered = '';
  const onData = (chunk: Buffer): void => {
    out.write(chunk);
    if (waiters.length === 0) return;
    buffered = (buffered + chunk.toString('utf8')).slice(-65_536);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (buffered.includes(w.text)) {
        waiters.splice(i, 1);
        w.resolve();
      } else if (w.failText && buffered.includes(w.failText)) {
        waiters.splice(i, 1);
        w.reject(new Error(`${o.name} failed to start: ${buffered.slice(buffered.indexOf(w.failText), buffered.indexOf(w.failText) + 300)}`));
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    out.end();
    resolve(code);
  }));
  const pid = child.pid;
  const proc: Proc = {
    name: o.name,
    pid,
    child,
    exited,
    waitForLine(text, timeoutMs, failText) {
      if (buffered.includes(text)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${o.name}: no "${text}" within ${timeoutMs} ms (see ${o.logFile})`)), timeoutMs);
        waiters.push({ text, failText, resolve: () => { clearTimeout(t); resolve(); }, reject: (e) => { clearTimeout(t); reject(e); } });
        void exited.then((code) => { clearTimeout(t); reject(new Error(`${o.name} exited with ${code} (see ${o.logFile})`)); });
      });
    },
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Polls an HTTP URL until it answers 200. */
export async function waitHttp(url: string, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null) throw new Error(`${proc.name} exited with ${proc.child.exitCode}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (${last})`);
}
