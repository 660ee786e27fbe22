// Muting a room's notifications: the `mute {room, until?}` / `unmute {room}` frames and the same over HTTP
// (PUT / DELETE /rooms/:room/mute, JWT as Bearer). A mute is the user's, not the connection's, and is stored in
// MongoDB (`mutes`), where the notification service reads it (lib/notify).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Authenticator } from '../auth/index.js';
import type { Logger } from '../observability/index.js';
import { ProtocolError, mutedFrame, unmutedFrame, untilOf } from '../protocol/index.js';
import type { MuteFrame, UnmuteFrame } from '../protocol/index.js';
import type { MuteStore } from '../store/index.js';
import { authorizeRoomRequest } from './auth.js';
import type { Conn, Replies, Ws } from './connection.js';

export function createMuteHandlers(mutes: MuteStore, replies: Replies, log: Logger): {
  onMute(ws: Ws, c: Conn, f: MuteFrame): void;
  onUnmute(ws: Ws, c: Conn, f: UnmuteFrame): void;
} {
  const { send, reject } = replies;
  const failed = (ws: Ws, c: Conn, err: unknown, room: string): void => {
    log.warn({ err, room }, 'mute store failed');
    if (!c.closed) reject(ws, 'UNAVAILABLE', 'could not store the mute now; retry', room);
  };
  return {
    onMute(ws, c, f) {
      if (!c.access(f.room)) return reject(ws, 'FORBIDDEN', 'this token may not use this room', f.room);
      const until = f.until ?? null;
      mutes.mute(c.user, f.room, until).then(() => { if (!c.closed) send(ws, mutedFrame(f.room, until)); }, (err: unknown) => failed(ws, c, err, f.room));
    },
    onUnmute(ws, c, f) {
      if (!c.access(f.room)) return reject(ws, 'FORBIDDEN', 'this token may not use this room', f.room);
      mutes.unmute(c.user, f.room).then((was) => { if (!c.closed) send(ws, unmutedFrame(f.room, was)); }, (err: unknown) => failed(ws, c, err, f.room));
    },
  };
}

const MAX_BODY = 1024;
const fail = (code: string, message: string) => ({ error: { code, message } });

export interface MuteRouteDeps {
  auth: Authenticator;
  mutes: MuteStore;
  log: Logger;
  json(res: HttpResponse, status: string, body: unknown): void;
}

/** PUT (body `{"until": <epoch ms>}` or empty) and DELETE /rooms/:room/mute. */
export function handleMuteRequest(res: HttpResponse, req: HttpRequest, d: MuteRouteDeps, method: 'put' | 'delete'): void {
  const room = req.getParameter(0) ?? '';
  const authorization = req.getHeader('authorization');
  let aborted = false;
  res.onAborted(() => { aborted = true; });
  const id = authorizeRoomRequest(d.auth, authorization, room, 'this token may not use this room');
  if ('status' in id) return d.json(res, id.status, id.body);
  const store = (work: Promise<unknown>, body: () => unknown): void => {
    work.then(() => { if (!aborted) d.json(res, '200 OK', body()); }, (err: unknown) => {
      d.log.warn({ err, room }, 'mute store failed');
      if (!aborted) d.json(res, '503 Service Unavailable', fail('UNAVAILABLE', 'could not store the mute now; retry'));
    });
  };
  if (method === 'delete') {
    let was = false;
    return store(d.mutes.unmute(id.user, room).then((w) => { was = w; }), () => ({ room, muted: false, was }));
  }
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    if (aborted || size > MAX_BODY) return;
    size += chunk.byteLength;
    if (size > MAX_BODY) return d.json(res, '413 Payload Too Large', fail('TOO_LARGE', `body over ${MAX_BODY} bytes`));
    chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this callback
    if (!isLast) return;
    let until: number | null = null;
    try {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text !== '') {
        let o: unknown;
        try {
          o = JSON.parse(text);
        } catch {
          throw new ProtocolError('BAD_FRAME', 'body is not valid JSON');
        }
        if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ProtocolError('BAD_FRAME', 'body must be a JSON object');
        const u = (o as { until?: unknown }).until;
        if (u !== undefined && u !== null) until = untilOf(u);
      }
    } catch (err) {
      return d.json(res, '400 Bad Request', fail('BAD_FRAME', (err as Error).message));
    }
    store(d.mutes.mute(id.user, room, until), () => ({ room, muted: true, until }));
  });
}
