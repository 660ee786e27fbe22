// /metrics, /healthz and /readyz of every service on PARLEY_METRICS_PORT (never the public gateway port), on
// node:http: they are scraped every few seconds, not a hot path. What each answers is probes.ts.
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { metricsResponse, probeResponse } from './probes.js';
import type { OpsResponse, Readiness } from './probes.js';

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** A full GC, then the memory figures after it (bench only: PARLEY_BENCH_GC and node --expose-gc). */
function collectGarbage(res: ServerResponse): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    res.writeHead(501, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'run node with --expose-gc' }));
    return;
  }
  gc();
  const m = process.memoryUsage();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, external: m.external }));
}

/** node:http leaves the body of a HEAD response out by itself. */
function write(res: ServerResponse, r: OpsResponse): void {
  res.writeHead(r.status, r.headers).end(r.body);
}

export async function startOpsServer(
  host: string, port: number, metrics: Metrics, ready: () => Readiness, log: Logger, opts: { benchGc?: boolean } = {},
): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (opts.benchGc && path === '/debug/gc' && req.method === 'POST') {
      collectGarbage(res);
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      void metricsResponse(metrics, log).then((r) => write(res, r));
    } else {
      const r = probeResponse(path, ready);
      if (r) write(res, r);
      else res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  log.info({ port: bound }, 'ops endpoint listening');
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
