// GET /rooms/:room/messages?before=&limit= — a page of a room's history from MongoDB, newest first (JWT required).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Authenticator, Identity } from '../auth/index.js';
import { AuthError, roomAccess } from '../auth/index.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { ROOM_ID } from '../protocol/index.js';
import type { MessageStore } from '../store/index.js';

export interface HistoryDeps {
  cfg: Config;
  log: Logger;
  auth: Authenticator;
  store: MessageStore;
  json(res: HttpResponse, status: string, body: unknown): void;
}

const fail = (code: string, message: string) => ({ error: { code, message } });

export function handleHistoryRequest(res: HttpResponse, req: HttpRequest, d: HistoryDeps): void {
  // req is only valid synchronously: copy what is needed before anything async.
  const room = req.getParameter(0) ?? '';
  const query = new URLSearchParams(req.getQuery() ?? '');
  const authz = /^Bearer\s+(\S+)\s*$/i.exec(req.getHeader('authorization'));
  let aborted = false;
  res.onAborted(() => { aborted = true; });

  let id: Identity;
  try {
    if (!authz) throw new AuthError('missing', 'no token (use Authorization: Bearer)');
    id = d.auth.verify(authz[1]!);
  } catch (err) {
    return d.json(res, '401 Unauthorized', fail('UNAUTHORIZED', err instanceof AuthError ? err.message : 'token rejected'));
  }
  if (!ROOM_ID.test(room)) return d.json(res, '400 Bad Request', fail('UNKNOWN_ROOM', 'room id must match [A-Za-z0-9_-]{1,64}'));
  if (!roomAccess(id.claims)(room)) return d.json(res, '403 Forbidden', fail('FORBIDDEN', 'this token may not read this room'));
  const before = intParam(query.get('before'), 1);
  const limitParam = intParam(query.get('limit'), 1);
  const limit = limitParam === undefined ? d.cfg.recovery.historyDefaultLimit : limitParam;
  if (before === null || limit === null || limit > d.cfg.recovery.historyMaxLimit) {
    return d.json(res, '400 Bad Request', fail('BAD_FRAME', `before must be a positive integer seq; limit 1..${d.cfg.recovery.historyMaxLimit}`));
  }
  d.store.page(room, before, limit + 1).then((page) => {
    if (aborted) return;
    const more = page.length > limit;
    const messages = more ? page.slice(0, limit) : page;
    d.json(res, '200 OK', { room, messages, more, next: more ? messages[messages.length - 1]!.seq : null });
  }, (err: unknown) => {
    d.log.warn({ err, room }, 'history request failed');
    if (!aborted) d.json(res, '503 Service Unavailable', fail('UNAVAILABLE', 'history is unavailable now; retry'));
  });
}

/** undefined when absent, null when present but not an integer >= min. */
function intParam(v: string | null, min: number): number | undefined | null {
  if (v === null || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v)) return null;
  const n = Number(v);
  return n >= min ? n : null;
}
