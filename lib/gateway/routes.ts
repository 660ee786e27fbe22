// The gateway's HTTP routes on its public port: /healthz, /readyz, GET /rooms/:room/messages, and 404 for the rest.
// /metrics is served on PARLEY_METRICS_PORT only (lib/observability/http.ts), never here.
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { GatewayDeps } from './deps.js';
import { handleHistoryRequest } from './history.js';
import type { ReadGate } from '../store/index.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

export interface Readiness {
  ready: boolean;
  [k: string]: unknown;
}

export function registerRoutes(app: TemplatedApp, d: GatewayDeps, reads: ReadGate, readiness: () => Readiness): void {
  const json = (res: HttpResponse, status: string, body: unknown, headers?: Record<string, string>): void => {
    res.cork(() => {
      res.writeStatus(status);
      for (const [k, v] of Object.entries(JSON_HEADERS)) res.writeHeader(k, v);
      for (const [k, v] of Object.entries(headers ?? {})) res.writeHeader(k, v);
      res.end(JSON.stringify(body));
    });
  };
  /** GET and HEAD of a small JSON endpoint; HEAD gets the same status and headers and no body. */
  const probe = (path: string, answer: () => [string, unknown]): void => {
    app.get(path, (res) => {
      const [status, body] = answer();
      json(res, status, body);
    });
    // res.end() without a body: this uWS build aborts the process on endWithoutBody() (seen with 20.30).
    app.head(path, (res) => {
      const [status] = answer();
      res.cork(() => {
        res.writeStatus(status);
        for (const [k, v] of Object.entries(JSON_HEADERS)) res.writeHeader(k, v);
        res.end();
      });
    });
  };
  probe('/healthz', () => ['200 OK', { status: 'ok' }]);
  probe('/readyz', () => {
    const { ready, ...parts } = readiness();
    return [ready ? '200 OK' : '503 Service Unavailable', { status: ready ? 'ready' : 'not ready', ...parts }];
  });
  app.get('/rooms/:room/messages', (res, req) => handleHistoryRequest(res, req, {
    cfg: d.cfg, log: d.log, auth: d.auth, store: d.store, reads, limiter: d.limiter, json,
  }));
  app.any('/*', (res, req) => {
    if (req.getMethod() === 'head') {
      res.cork(() => res.writeStatus('404 Not Found').end());
      return;
    }
    json(res, '404 Not Found', { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });
}
