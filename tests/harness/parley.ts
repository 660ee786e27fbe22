// Parley services as real child processes (`node dist/cmd/parley.js <command>`), so tests can kill and restart them.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../../lib/auth/index.js';
import { until, uniqueName } from './wait.js';

const PARLEY = fileURLToPath(new URL('../../cmd/parley.js', import.meta.url));
export const TEST_JWT_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

export interface SuiteUrls {
  natsUrl: string;
  redisUrl: string;
  mongoUrl: string;
}

/** Environment that gives one suite its own stream, subjects, Redis prefix and database on shared servers. */
export function suiteEnv(urls: SuiteUrls, name = uniqueName('suite')): Record<string, string> {
  return {
    NATS_URL: urls.natsUrl,
    REDIS_URL: urls.redisUrl,
    MONGO_URL: urls.mongoUrl,
    PARLEY_STREAM: name.toUpperCase(),
    PARLEY_SUBJECT_ROOT: name,
    PARLEY_REDIS_PREFIX: `${name}:`,
    PARLEY_MONGO_DB: name,
    JWT_SECRET: TEST_JWT_SECRET,
    PARLEY_HOST: '127.0.0.1',
    PARLEY_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    // Redelivery after a killed chat service comes after ack_wait; keep fault tests quick.
    PARLEY_CHAT_ACK_WAIT_MS: '3000',
    // Suites hammer one gateway from one address with few users: rate and connection limits are off unless a suite
    // (presence, limits) turns them on.
    PARLEY_RATE_SEND_USER: '0',
    PARLEY_RATE_SEND_BYTES_USER: '0',
    PARLEY_RATE_SEND_IP: '0',
    PARLEY_RATE_SEND_BYTES_IP: '0',
    PARLEY_RATE_CONNECT_USER: '0',
    PARLEY_RATE_CONNECT_IP: '0',
    PARLEY_RATE_HISTORY_USER: '0',
    PARLEY_RATE_HISTORY_IP: '0',
    PARLEY_MAX_CONNECTIONS_PER_USER: '0',
    PARLEY_MAX_CONNECTIONS_PER_IP: '0',
  };
}

export function token(user: string, ttlMs = 3_600_000, secret = TEST_JWT_SECRET): string {
  return mintToken({ secret, user, ttlMs });
}

type Command = 'gateway' | 'chat' | 'presence' | 'all' | 'notify';

/** A port free on 127.0.0.1 now, for a process to listen on (the harness must know it to poll /readyz). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** 200 from `url`, or false when it answers otherwise or not at all. */
async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

export class ParleyProcess {
  private child: ChildProcess | undefined;
  private output: string[] = [];
  private exited: Promise<number | null> = Promise.resolve(null);
  /** The port the gateway listens on (chosen at the first start and kept, so clients can reconnect to it). */
  port = 0;
  /** /metrics, /healthz, /readyz of the process (PARLEY_METRICS_PORT), also kept across restarts. */
  opsPort = 0;

  private constructor(
    readonly command: Command,
    private readonly env: Record<string, string>,
    /** Sees every line of output, of every start (the in-memory tail keeps only the last 200). */
    private readonly onLine?: (line: string) => void,
  ) {}

  static async start(command: Command, env: Record<string, string>): Promise<ParleyProcess> {
    const p = new ParleyProcess(command, env);
    await p.start();
    return p;
  }

  /** A process not started yet (set `port` first to choose it; then `spawn()` and `ready()`, or `start()`). */
  static create(command: Command, env: Record<string, string>, onLine?: (line: string) => void): ParleyProcess {
    return new ParleyProcess(command, env, onLine);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The pid of the running process (undefined while it is not running); its log file is `<command>-<pid>.log`. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts the process and resolves once it is ready: its ops /readyz answers 200, and a gateway's public /readyz
   * too. Rejects when it exits first or is not ready within `readyTimeoutMs`.
   */
  async start(readyTimeoutMs = 60_000): Promise<void> {
    await this.spawn();
    await this.ready(readyTimeoutMs);
  }

  /** Starts the process without waiting for it to be ready. */
  async spawn(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    if (this.opsPort === 0) this.opsPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env, ...this.env, PORT: String(this.port), PARLEY_METRICS_PORT: String(this.opsPort),
    };
    const child = spawn(process.execPath, [PARLEY, this.command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = [];
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let buf = '';
    // PARLEY_TEST_PROC_LOG_DIR keeps every process's full output for debugging (otherwise only the tail, in memory).
    const logDir = process.env.PARLEY_TEST_PROC_LOG_DIR;
    const logFile = logDir ? join(logDir, `${this.command}-${child.pid ?? 'x'}.log`) : undefined;
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (logFile) appendFileSync(logFile, `${line}\n`);
        this.output.push(line);
        if (this.output.length > 200) this.output.shift();
        this.onLine?.(line);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  }

  /** Resolves once the spawned process is ready; rejects (and kills it) when it exits first or after the timeout. */
  async ready(readyTimeoutMs = 60_000): Promise<void> {
    const child = this.child!;
    const probes = [`http://127.0.0.1:${this.opsPort}/readyz`];
    if (this.command === 'gateway' || this.command === 'all') probes.push(`${this.http}/readyz`);
    let exitCode: number | null | undefined;
    void this.exited.then((code) => { exitCode = code; });
    try {
      await until(async () => exitCode !== undefined || (await Promise.all(probes.map(isReady))).every(Boolean),
        { timeout: readyTimeoutMs, interval: 50, message: `parley ${this.command} ready (${probes.join(', ')})` });
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${this.tail()}`, { cause: err });
    }
    if (exitCode !== undefined) throw new Error(`parley ${this.command} exited (${exitCode}) before ready:\n${this.tail()}`);
  }

  /**
   * The sum of the samples of metric `name` whose labels include every one of `labels`, from the process's /metrics
   * (a rendering may be up to PARLEY_METRICS_CACHE_MS old: wait for a change with `until`).
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricSum(await this.metricsText(), name, labels);
  }

  /** The process's /metrics in Prometheus text (read several values of one scrape with `metricSum`). */
  async metricsText(): Promise<string> {
    if (!(this.opsPort > 0)) throw new Error(`parley ${this.command} serves no metrics port`);
    const res = await fetch(`http://127.0.0.1:${this.opsPort}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) throw new Error(`parley ${this.command} /metrics: ${res.status}`);
    return res.text();
  }

  /** The process output so far (its last 200 lines). */
  lines(): readonly string[] {
    return this.output;
  }

  /** Last lines of the process output, for failure messages. */
  tail(n = 30): string {
    return this.output.slice(-n).join('\n');
  }

  /** Kills the process at once, as a crash would, and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  /** Graceful stop (SIGTERM); returns the exit code. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.child?.exitCode ?? null;
    this.child!.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

/** The sum of metric `name`'s samples whose labels include every one of `labels`, in Prometheus text. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
