// The demo chat page (web/demo, bundled by esbuild into dist/web/demo) on the gateway's public port at `/` when
// PARLEY_DEMO=1, and, only while the built-in development JWT secret is in use, the token endpoint it logs in with.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { mintToken } from '../auth/index.js';
import { DEV_JWT_SECRET } from '../config/index.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { isUserId } from '../protocol/index.js';

const FILES: Array<[route: string, file: string, type: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/demo/main.js', 'main.js', 'text/javascript; charset=utf-8'],
  ['/demo/style.css', 'style.css', 'text/css; charset=utf-8'],
];
const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'self'";
/** Lifetime of a demo token; the page asks for a new one whenever the SDK reconnects or refreshes. */
const TOKEN_TTL_MS = 3_600_000;

export function registerDemo(app: TemplatedApp, cfg: Config, log: Logger): void {
  // dist/lib/demo/index.js -> dist/web/demo/
  const dir = fileURLToPath(new URL('../../web/demo/', import.meta.url));
  const reply = (res: HttpResponse, status: string, type: string, body: string, headers: Record<string, string> = {}): void => {
    res.cork(() => {
      res.writeStatus(status).writeHeader('content-type', type).writeHeader('x-content-type-options', 'nosniff');
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      res.end(body);
    });
  };
  for (const [route, file, type] of FILES) {
    let body: string | undefined;
    try {
      body = readFileSync(dir + file, 'utf8');
    } catch (err) {
      log.warn({ err, file: dir + file }, 'demo page not built (npm run build)');
    }
    app.get(route, (res) => {
      if (body === undefined) return reply(res, '503 Service Unavailable', 'text/plain', 'demo page not built: run npm run build');
      reply(res, '200 OK', type, body, { 'content-security-policy': CSP, 'cache-control': 'no-cache' });
    });
  }
  app.get('/demo/token', (res, req) => {
    const json = (status: string, v: unknown): void => reply(res, status, 'application/json', JSON.stringify(v), { 'cache-control': 'no-store' });
    // Anyone may mint tokens with the public development secret anyway; with a real secret this endpoint does not exist.
    if (cfg.jwt.secret !== DEV_JWT_SECRET) {
      return json('404 Not Found', { error: { code: 'NOT_FOUND', message: 'no development tokens: a real JWT secret or key is configured' } });
    }
    const user = new URLSearchParams(req.getQuery() ?? '').get('user');
    if (!isUserId(user)) return json('400 Bad Request', { error: { code: 'BAD_REQUEST', message: 'user must be a valid user id' } });
    json('200 OK', { user, token: mintToken({ secret: DEV_JWT_SECRET, user, ttlMs: TOKEN_TTL_MS }) });
  });
  log.info('demo page at / (PARLEY_DEMO=1)');
}
