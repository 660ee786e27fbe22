// Small process and file helpers shared by the stack modules.
import { spawn } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable named `name` on PATH, then in `extraDirs`. */
export async function findExecutable(name: string, extraDirs: string[] = [], env = process.env): Promise<string | undefined> {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Keeps the last `max` characters of a stream of output, for error messages. */
export class OutputTail {
  #text = '';
  constructor(private readonly max = 4096) {}
  push(chunk: Buffer | string): void {
    this.#text += chunk.toString();
    if (this.#text.length > this.max * 2) this.#text = this.#text.slice(-this.max);
  }
  toString(): string {
    return this.#text.slice(-this.max).trimEnd();
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with the tail of its output when it fails. */
export function run(
  cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], uid: opts.uid, gid: opts.gid,
    });
    let stdout = '';
    const stderr = new OutputTail(8192);
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) {
        resolve({ stdout, stderr: stderr.toString() });
        return;
      }
      const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
      const out = `${stderr.toString()}\n${stdout.slice(-2048)}`.trim();
      reject(new Error(`${cmd} ${args.join(' ')} failed (${how})${out ? `:\n${out}` : ''}`));
    });
  });
}

/** True when `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  // A detached server whose parent exited may linger as a zombie where PID 1 does not reap.
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X';
}

/** The pids of a process's live children (Linux /proc; none elsewhere). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
