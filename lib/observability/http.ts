// /metrics, /healthz and /readyz of every service on PARLEY_METRICS_PORT (never the public gateway port), on
// node:http: they are scraped every few seconds, not a hot path.
import { createServer } from 'node:http';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** What /readyz answers: 200 when `ready`, else 503; the rest is reported as is. */
export interface Readiness {
  ready: boolean;
  [detail: string]: unknown;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(host: string, port: number, metrics: Metrics, ready: () => Readiness, log: Logger): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: unknown) => {
          log.error({ err }, 'metrics failed');
          res.writeHead(500).end();
        },
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const r = ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: r.ready ? 'ready' : 'not ready', ...r }));
    } else {
      res.writeHead(404).end();
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
