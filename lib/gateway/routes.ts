// The gateway's HTTP routes on its public port: /healthz, /readyz, GET /rooms/:room/messages, PUT and DELETE
// /rooms/:room/mute, and 404 for the rest.
// /metrics is served on PARLEY_METRICS_PORT only (lib/observability/http.ts), never here; what the probes answer is
// lib/observability/probes.ts, shared with that server.
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { registerDemo } from '../demo/index.js';
import type { GatewayDeps } from './deps.js';
import { handleHistoryRequest } from './history.js';
import { handleMuteRequest } from './mutes.js';
import { probeResponse } from '../observability/index.js';
import type { OpsResponse, Readiness } from '../observability/index.js';
import type { HistoryPages } from './history-cache.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
const STATUS_LINE: Record<OpsResponse['status'], string> = {
  200: '200 OK', 404: '404 Not Found', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};

export function registerRoutes(app: TemplatedApp, d: GatewayDeps, pages: HistoryPages, readiness: () => Readiness): void {
  const json = (res: HttpResponse, status: string, body: unknown, headers?: Record<string, string>): void => {
    res.cork(() => {
      res.writeStatus(status);
      for (const [k, v] of Object.entries(JSON_HEADERS)) res.writeHeader(k, v);
      for (const [k, v] of Object.entries(headers ?? {})) res.writeHeader(k, v);
      res.end(JSON.stringify(body));
    });
  };
  /** GET and HEAD of a probe (probeResponse); HEAD gets the same status and headers and no body. */
  const probe = (path: string): void => {
    const answer = (res: HttpResponse, head: boolean): void => {
      const r = probeResponse(path, readiness)!;
      res.cork(() => {
        res.writeStatus(STATUS_LINE[r.status]);
        for (const [k, v] of Object.entries(r.headers)) res.writeHeader(k, v);
        // res.end() without a body, never endWithoutBody(): this uWS build aborts the process on it (seen with 20.30).
        if (head) res.end();
        else res.end(r.body);
      });
    };
    app.get(path, (res) => answer(res, false));
    app.head(path, (res) => answer(res, true));
  };
  probe('/healthz');
  probe('/readyz');
  app.get('/rooms/:room/messages', (res, req) => handleHistoryRequest(res, req, {
    cfg: d.cfg, log: d.log, auth: d.auth, pages, limiter: d.limiter, json,
  }));
  const muteDeps = { auth: d.auth, mutes: d.mutes, log: d.log, json };
  app.put('/rooms/:room/mute', (res, req) => handleMuteRequest(res, req, muteDeps, 'put'));
  app.del('/rooms/:room/mute', (res, req) => handleMuteRequest(res, req, muteDeps, 'delete'));
  if (d.cfg.demo) registerDemo(app, d.cfg, d.log);
  app.any('/*', (res, req) => {
    if (req.getMethod() === 'head') {
      res.cork(() => res.writeStatus('404 Not Found').end());
      return;
    }
    json(res, '404 Not Found', { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });
}
