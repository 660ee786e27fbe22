// Parley services as real child processes (`node dist/cmd/parley.js <command>`), so tests can kill and restart them.
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../../lib/auth/index.js';
import { uniqueName } from './wait.js';

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

type Command = 'gateway' | 'chat' | 'presence' | 'all';

const READY_MSG: Record<Command, string> = { gateway: 'gateway listening', chat: 'chat consuming', presence: 'presence running', all: 'parley started' };

export class ParleyProcess {
  private child: ChildProcess | undefined;
  private output: string[] = [];
  private exited: Promise<number | null> = Promise.resolve(null);
  /** The port the gateway listens on (fixed after the first start, so clients can reconnect to it). */
  port = 0;
  /** /metrics, /healthz, /readyz of the process (PARLEY_METRICS_PORT). */
  opsPort = 0;

  private constructor(readonly command: Command, private readonly env: Record<string, string>) {}

  static async start(command: Command, env: Record<string, string>): Promise<ParleyProcess> {
    const p = new ParleyProcess(command, env);
    await p.start();
    return p;
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

  async start(): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.env, PORT: String(this.port) };
    const child = spawn(process.execPath, [PARLEY, this.command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = [];
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let buf = '';
    // PARLEY_TEST_PROC_LOG_DIR keeps every process's full output for debugging (otherwise only the tail, in memory).
    const logDir = process.env.PARLEY_TEST_PROC_LOG_DIR;
    const logFile = logDir ? join(logDir, `${this.command}-${child.pid ?? 'x'}.log`) : undefined;
    let sawReady = false;
    this.opsPort = 0;
    const ready = new Promise<void>((resolve, reject) => {
      const onLine = (line: string): void => {
        if (logFile) appendFileSync(logFile, `${line}\n`);
        this.output.push(line);
        if (this.output.length > 200) this.output.shift();
        if (line.includes('gateway listening') || line.includes('ops endpoint listening')) {
          const rec = JSON.parse(line) as { port?: number };
          if (typeof rec.port === 'number' && rec.port > 0) {
            if (line.includes('gateway listening')) this.port = rec.port;
            else this.opsPort = rec.port;
          }
        }
        if (line.includes(READY_MSG[this.command])) sawReady = true;
        // Every command also serves /metrics on its ops port, which it logs after its ready message.
        if (sawReady && this.opsPort > 0) resolve();
      };
      const onData = (chunk: Buffer): void => {
        buf += chunk.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void this.exited.then((code) => reject(new Error(`parley ${this.command} exited (${code}) before ready:\n${this.tail()}`)));
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`parley ${this.command} not ready after 30 s:\n${this.tail()}`)), 30_000);
    });
    try {
      await Promise.race([ready, timeout]);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    } finally {
      clearTimeout(timer);
    }
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
