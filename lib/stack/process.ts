// One server process the stack started: spawn, wait until it answers, stop, kill, start again on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Logger } from '../observability/logger.js';
import { StackError } from './errors.js';
import { OutputTail, sleep } from './util.js';

export type ServiceName = 'nats' | 'redis' | 'ferretdb';
/** Servers the stack runs for another one (PostgreSQL behind FerretDB's postgresql backend). */
export type BackendName = 'postgres';

/** Every server the stack can run: the three of the stack, their backends, and Mailpit for the email sink's tests. */
export type ServerName = ServiceName | BackendName | 'mailpit';

/** A server started by the stack. `start()` again after `stop()`/`kill()` reuses the same port and data. */
export interface ManagedService {
  readonly name: ServerName;
  readonly url: string;
  readonly port: number;
  /** The pid of the running process, undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** (Re)starts the server on the same port and data dir and waits until it answers; no-op while running. */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after a deadline; resolves once the process has exited. */
  stop(): Promise<void>;
  /**
   * Sends `signal` at once (default SIGKILL), for fault tests. Waits for the exit when the signal
   * terminates (KILL, TERM, INT, QUIT); returns right away for others such as SIGSTOP or SIGCONT.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ServiceSpec {
  name: ServerName;
  binary: string;
  /** Arguments for a start on `port`; called before every start. */
  args(port: number): Promise<string[]>;
  url(port: number): string;
  /** Resolves when the server at `url` answers. */
  probe(url: string, timeoutMs: number): Promise<void>;
  env?: NodeJS.ProcessEnv;
  /** Run as this user and group (PostgreSQL refuses to run as root). */
  uid?: number;
  gid?: number;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  /** Survive the parent: own session, output to `logFile`, not killed when the parent exits. */
  detached: boolean;
  logFile?: string;
  log: Logger;
}

const TERMINATING = new Set<NodeJS.Signals>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT']);
const PORT_TAKEN = /already in use|EADDRINUSE|bind: /i;

/** A free TCP port on 127.0.0.1, chosen by the kernel (never one of the standard ports the machine's own services use). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** Starts `spec` on `port`, or on a free port, retrying when another process grabbed the port meanwhile. */
export async function launch(spec: ServiceSpec, port?: number): Promise<ManagedService> {
  for (let attempt = 1; ; attempt++) {
    const service = new NativeService(spec, port ?? (await freePort()));
    try {
      await service.start();
      return service;
    } catch (err) {
      const retry = port === undefined && attempt < 3 && err instanceof StackError
        && err.code === 'START_FAILED' && PORT_TAKEN.test(err.message);
      if (!retry) throw err;
    }
  }
}

class NativeService implements ManagedService {
  #child: ChildProcess | undefined;
  #closed: Promise<void> = Promise.resolve();
  #spawnError: Error | undefined;
  #tail = new OutputTail();

  constructor(private readonly spec: ServiceSpec, readonly port: number) {}

  get name(): ServerName { return this.spec.name; }
  get url(): string { return this.spec.url(this.port); }
  get running(): boolean {
    const c = this.#child;
    return c !== undefined && c.pid !== undefined && c.exitCode === null && c.signalCode === null;
  }
  get pid(): number | undefined { return this.running ? this.#child?.pid : undefined; }

  async start(): Promise<void> {
    if (this.running) return;
    await this.#closed;
    const { spec } = this;
    // Another server on the port would answer the probe in place of ours: refuse instead of being fooled.
    if (!(await portFree(this.port))) {
      throw new StackError('START_FAILED', `${spec.name} cannot start: port ${this.port} on 127.0.0.1 is already in use`);
    }
    const args = await spec.args(this.port);
    const out = spec.detached && spec.logFile ? openSync(spec.logFile, 'a') : 'pipe';
    this.#tail = new OutputTail();
    this.#spawnError = undefined;
    const child = spawn(spec.binary, args, {
      detached: spec.detached,
      stdio: ['ignore', out, out],
      env: spec.env ?? process.env,
      uid: spec.uid,
      gid: spec.gid,
    });
    if (typeof out === 'number') closeSync(out);
    this.#child = child;
    this.#closed = new Promise((resolve) => {
      child.once('close', () => resolve());
      child.once('error', (err) => {
        this.#spawnError = err;
        if (child.pid === undefined) resolve(); // never started: no 'close' to wait for
      });
    });
    const onOutput = (chunk: Buffer): void => {
      this.#tail.push(chunk);
      if (spec.log.isLevelEnabled('debug')) spec.log.debug({ service: spec.name, output: chunk.toString().trimEnd() }, 'server output');
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    if (!spec.detached) trackForCleanup(child);
    await this.#waitReady(child);
    if (spec.detached) child.unref();
    spec.log.debug({ service: spec.name, pid: child.pid, url: this.url }, 'server answers');
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return this.#closed;
    child.kill('SIGTERM');
    if (await this.#exitWithin(this.spec.stopTimeoutMs)) return;
    this.spec.log.warn({ service: this.name, pid: child.pid }, 'server ignored SIGTERM; killing it');
    child.kill('SIGKILL');
    if (!(await this.#exitWithin(5000))) {
      throw new StackError('STOP_TIMEOUT', `${this.name} (pid ${child.pid}) did not exit after SIGKILL`);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    child.kill(signal);
    if (!TERMINATING.has(signal)) return;
    if (!(await this.#exitWithin(this.spec.stopTimeoutMs + 5000))) {
      throw new StackError('STOP_TIMEOUT', `${this.name} (pid ${child.pid}) did not exit after ${signal}`);
    }
  }

  async #waitReady(child: ChildProcess): Promise<void> {
    const { spec } = this;
    const deadline = Date.now() + spec.readyTimeoutMs;
    let lastError: unknown;
    for (;;) {
      if (this.#spawnError && child.pid === undefined) {
        throw new StackError('START_FAILED', `could not run ${spec.binary}: ${this.#spawnError.message}`, { cause: this.#spawnError });
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        await this.#closed; // all output collected
        const how = child.signalCode ?? `exit code ${child.exitCode}`;
        throw new StackError('START_FAILED',
          `${spec.name} exited (${how}) before answering on port ${this.port}${await this.#tailText()}`);
      }
      try {
        await spec.probe(this.url, 500);
        return;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() > deadline) {
        await this.kill('SIGKILL');
        throw new StackError('START_TIMEOUT',
          `${spec.name} did not answer on ${this.url} within ${spec.readyTimeoutMs} ms `
          + `(${(lastError as Error).message})${await this.#tailText()}`, { cause: lastError });
      }
      await sleep(50);
    }
  }

  async #exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
    const exited = await Promise.race([this.#closed.then(() => true as const), timeout]);
    clearTimeout(timer);
    return exited;
  }

  async #tailText(): Promise<string> {
    let text = this.#tail.toString();
    if (this.spec.detached && this.spec.logFile) text = await readTail(this.spec.logFile);
    return text ? `; last output:\n${text}` : '; it printed nothing';
  }
}

async function readTail(path: string, max = 4096): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - max);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString().trimEnd();
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

// Servers started for this process must not outlive it: kill them when it exits, and on a fatal
// signal that nobody else handles (then Node would die without running 'exit' listeners).
const live = new Set<ChildProcess>();
let cleanupInstalled = false;

function trackForCleanup(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      if (process.listenerCount(sig) > 0) return; // the application handles it and stops its services
      killAll();
      process.kill(process.pid, sig);
    });
  }
}

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}
