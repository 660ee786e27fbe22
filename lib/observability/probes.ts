// What /healthz, /readyz and /metrics answer, in one place for both servers that serve them: the gateway's public
// port (uWS, lib/gateway/routes.ts: /healthz and /readyz) and every service's ops port (node:http, http.ts).
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** /readyz: 200 when `ready`, else 503; the body is `status` followed by `details` as they are. */
export interface Readiness {
  ready: boolean;
  details: Record<string, unknown>;
}

export interface OpsResponse {
  status: 200 | 404 | 500 | 503;
  headers: Record<string, string>;
  /** Empty for HEAD (each server leaves the body out itself). */
  body: string;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** /healthz and /readyz; undefined for any other path. */
export function probeResponse(path: string, readiness: () => Readiness): OpsResponse | undefined {
  if (path === '/healthz') return { status: 200, headers: JSON_HEADERS, body: '{"status":"ok"}' };
  if (path !== '/readyz') return undefined;
  const { ready, details } = readiness();
  return { status: ready ? 200 : 503, headers: JSON_HEADERS, body: JSON.stringify({ status: ready ? 'ready' : 'not ready', ...details }) };
}

/** /metrics: the registry's text, or 500 (logged) when rendering fails. */
export async function metricsResponse(metrics: Metrics, log: Logger): Promise<OpsResponse> {
  try {
    return { status: 200, headers: { 'content-type': metrics.registry.contentType }, body: await metrics.render() };
  } catch (err) {
    log.error({ err }, 'metrics failed');
    return { status: 500, headers: {}, body: '' };
  }
}
