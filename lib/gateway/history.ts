// GET /rooms/:room/messages?before=&limit= — a page of a room's history from MongoDB, newest first (JWT required).
// Limited like WebSocket `history`: the user's and the address's budgets (429), then the gateway's read gate (503).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Authenticator } from '../auth/index.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { StoredMessage } from '../protocol/index.js';
import type { SendLimiter } from '../limits/index.js';
import { ClientGoneError, StorageBusyError } from '../store/index.js';
import type { HistoryPages } from './history-cache.js';
import { authorizeRoomRequest } from './auth.js';

export interface HistoryDeps {
  cfg: Config;
  log: Logger;
  auth: Authenticator;
  /** Recent pages from the gateway's room tails, older ones from MongoDB through the read gate (history-cache.ts). */
  pages: HistoryPages;
  limiter: SendLimiter;
  json(res: HttpResponse, status: string, body: unknown, headers?: Record<string, string>): void;
}

const fail = (code: string, message: string) => ({ error: { code, message } });

/**
 * One page of a room's history, newest first, for WebSocket `history` and this endpoint alike: reads one more than
 * `limit` to learn whether there is more (MongoDB reads go through the read gate).
 */
export async function readPage(
  pages: HistoryPages, room: string, before: number | undefined, limit: number, alive: () => boolean,
): Promise<{ messages: StoredMessage[]; more: boolean }> {
  const page = await pages.page(room, before, limit + 1, alive);
  const more = page.length > limit;
  return { messages: more ? page.slice(0, limit) : page, more };
}

export function handleHistoryRequest(res: HttpResponse, req: HttpRequest, d: HistoryDeps): void {
  // req is only valid synchronously: copy what is needed before anything async.
  const room = req.getParameter(0) ?? '';
  const query = new URLSearchParams(req.getQuery() ?? '');
  const authorization = req.getHeader('authorization');
  const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
  let aborted = false;
  res.onAborted(() => { aborted = true; });

  const id = authorizeRoomRequest(d.auth, authorization, room, 'this token may not read this room');
  if ('status' in id) return d.json(res, id.status, id.body);
  const before = intParam(query.get('before'), 1);
  const limitParam = intParam(query.get('limit'), 1);
  const limit = limitParam === undefined ? d.cfg.recovery.historyDefaultLimit : limitParam;
  if (before === null || limit === null || limit > d.cfg.recovery.historyMaxLimit) {
    return d.json(res, '400 Bad Request', fail('BAD_FRAME', `before must be a positive integer seq; limit 1..${d.cfg.recovery.historyMaxLimit}`));
  }
  const retryAfter = (ms: number) => ({ 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) });
  d.limiter.admitHistory(id.user, ip).then(async (wait) => {
    if (aborted) return;
    if (wait > 0) return d.json(res, '429 Too Many Requests', fail('RATE_LIMITED', 'history rate limit exceeded'), retryAfter(wait));
    const { messages, more } = await readPage(d.pages, room, before, limit, () => !aborted);
    if (aborted) return;
    d.json(res, '200 OK', { room, messages, more, next: more ? messages[messages.length - 1]!.seq : null });
  }).catch((err: unknown) => {
    if (aborted || err instanceof ClientGoneError) return;
    if (err instanceof StorageBusyError) {
      return d.json(res, '503 Service Unavailable', fail('UNAVAILABLE', 'history is busy; retry later'), retryAfter(err.retryAfterMs));
    }
    d.log.warn({ err, room }, 'history request failed');
    d.json(res, '503 Service Unavailable', fail('UNAVAILABLE', 'history is unavailable now; retry'), retryAfter(1000));
  });
}

/** undefined when absent, null when present but not an integer >= min. */
function intParam(v: string | null, min: number): number | undefined | null {
  if (v === null || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v)) return null;
  const n = Number(v);
  return n >= min ? n : null;
}
