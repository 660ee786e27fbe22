// Jaeger and Prometheus as real child processes for the observability e2e tests: each on free ports of 127.0.0.1
// with a config and data directory of its own, ready once its HTTP API answers, closed (and its directory removed)
// by close().
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/observability/index.js';
import { ensureJaeger, ensurePrometheus, freePort } from '../../lib/stack/index.js';
import { until } from './wait.js';

/** A server process with an HTTP API at `url`. */
export interface HttpServer {
  url: string;
  /** Its last lines of output, for failure messages. */
  tail(): string;
  close(): Promise<void>;
}

async function startServer(name: string, binary: string, args: string[], dir: string, readyUrl: string, url: string): Promise<HttpServer> {
  const child: ChildProcess = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 100) lines.splice(0, lines.length - 100);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode})`);
      const res = await fetch(readyUrl, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      return res.ok;
    }, { timeout: 60_000, interval: 100, message: `${name} ready at ${readyUrl}` });
  } catch (err) {
    await close();
    throw new Error(`${(err as Error).message}\n${lines.slice(-20).join('\n')}`, { cause: err });
  }
  return { url, tail: () => lines.slice(-30).join('\n'), close };
}

export interface Jaeger extends HttpServer {
  /** Base URL of the OTLP/HTTP receiver (what OTEL_EXPORTER_OTLP_ENDPOINT names). */
  otlpUrl: string;
}

/** Jaeger v2 (cmd/jaeger) with in-memory storage, only its OTLP/HTTP receiver and query API, on free ports. */
export async function startJaeger(): Promise<Jaeger> {
  const log = createLogger({ name: 'jaeger-harness', level: 'info' });
  const binary = await ensureJaeger(log);
  const dir = await mkdtemp(join(tmpdir(), 'parley-jaeger-'));
  const [otlp, query, queryGrpc] = [await freePort(), await freePort(), await freePort()];
  const config = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
  await writeFile(join(dir, 'jaeger.yaml'), config);
  const url = `http://127.0.0.1:${query}`;
  const server = await startServer('jaeger', binary, ['--config', join(dir, 'jaeger.yaml')], dir, `${url}/api/services`, url);
  return { ...server, otlpUrl: `http://127.0.0.1:${otlp}` };
}

/** Debian's Prometheus with `config` (YAML), its own tsdb directory, on a free port. */
export async function startPrometheus(config: string): Promise<HttpServer> {
  const log = createLogger({ name: 'prometheus-harness', level: 'info' });
  const binary = await ensurePrometheus(log);
  const dir = await mkdtemp(join(tmpdir(), 'parley-prometheus-'));
  const port = await freePort();
  await writeFile(join(dir, 'prometheus.yml'), config);
  const url = `http://127.0.0.1:${port}`;
  return startServer('prometheus', binary, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], dir, `${url}/-/ready`, url);
}
