// Runs tests/harness/flood.ts in a child process and hands back its summary.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FloodSummary } from './flood.js';

const FLOOD = fileURLToPath(new URL('./flood.js', import.meta.url));

export interface FloodSpec {
  wsUrl: string;
  httpUrl: string;
  token: string;
  room: string;
  connections: number;
  framesPerConnection: number;
  httpRequests: number;
}

export interface Flooder {
  /** Resolves once the flooder is connected and starts sending. */
  started: Promise<void>;
  done(): boolean;
  summary: Promise<FloodSummary>;
}

export function startFlooder(spec: FloodSpec): Flooder {
  const child = spawn(process.execPath, [FLOOD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let finished = false;
  let onStart: () => void = () => undefined;
  const started = new Promise<void>((resolve) => { onStart = resolve; });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (out.includes('flooding\n')) onStart();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const summary = new Promise<FloodSummary>((resolve, reject) => {
    child.once('exit', (code) => {
      finished = true;
      onStart();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code === 0 && line) resolve(JSON.parse(line) as FloodSummary);
      else reject(new Error(`flooder exited ${String(code)}: ${err}`));
    });
  });
  return { started, done: () => finished, summary };
}
