// The client frames of one connection: send (rate-limited, published to the event log, acked once stored), join
// (with the `since` replay), leave, history, refresh and typing. Each handler checks the token's current access.
import type { Identity } from '../auth/index.js';
import { AuthError, roomAccess } from '../auth/index.js';
import { ackFrame, historyFrame, joinedFrame, leftFrame, messageFrame } from '../protocol/index.js';
import type { ChatMessage, ClientFrame, HistoryFrame, JoinFrame, RoomId, SendFrame } from '../protocol/index.js';
import { endSpan, startReceive, withSpan } from '../observability/index.js';
import type { ReadGate } from '../store/index.js';
import type { Conn, Replies, Ws } from './connection.js';
import { removeFrom } from './connection.js';
import type { GatewayDeps } from './deps.js';
import { readPage } from './history.js';
import type { HistoryPages } from './history-cache.js';
import { createMuteHandlers } from './mutes.js';
import { replay } from './replay.js';
import { lookupSend, sendOnce } from './send.js';
import type { RoomFeed } from './rooms.js';

/** What the whole gateway shares with its handlers: shutting down, and sends waiting for their ack. */
export interface GatewayState {
  closing: boolean;
  inflight: number;
  /** Called when `inflight` drops to 0 while closing. */
  onIdle: (() => void) | undefined;
}

export interface HandlerContext {
  d: GatewayDeps;
  rooms: RoomFeed;
  reads: ReadGate;
  /** History pages (history-cache.ts). */
  pages: HistoryPages;
  replies: Replies;
  state: GatewayState;
}

export function createFrameHandlers(x: HandlerContext): (ws: Ws, c: Conn, f: ClientFrame) => void {
  const { d, rooms, reads, state } = x;
  const { cfg, log } = d;
  const perConn = cfg.connection;
  const { send, reject, readFailed, waitForSendBuffer } = x.replies;

  const onSend = (ws: Ws, c: Conn, f: SendFrame, lookup?: Promise<number | undefined>): void => {
    // The token's current access, not the one the room was joined with (a refresh may have narrowed it).
    if (!c.access(f.room)) return reject(ws, 'FORBIDDEN', 'this token may not send to this room', f.id);
    if (!c.rooms.includes(f.room)) return reject(ws, 'UNKNOWN_ROOM', 'join the room before sending to it', f.id);
    if (c.inflight >= perConn.maxInflightPerConnection) {
      return reject(ws, 'RATE_LIMITED', 'too many unacknowledged sends', f.id);
    }
    if (state.closing) return reject(ws, 'UNAVAILABLE', 'gateway is shutting down; retry on another', f.id);
    const ev: ChatMessage = { room: f.room, id: f.id, from: c.user, body: f.body, ts: Date.now() };
    if (f.mentions) ev.mentions = f.mentions;
    c.inflight++;
    state.inflight++;
    // One span per message from here (ADR 0020); nothing is allocated with tracing off.
    const span = startReceive(d.tracing, f.room, f.id);
    void sendOnce(d, ev, span, {
      ack: (seq, duplicate) => {
        send(ws, ackFrame(f.id, seq, duplicate));
        endSpan(span);
      },
      fail: (err) => {
        withSpan(span, () => log.warn({ err, user: c.user, room: f.room }, 'publish failed'));
        reject(ws, 'UNAVAILABLE', 'message not stored; retry with the same id', f.id);
        endSpan(span, err);
      },
    }, lookup).finally(() => {
      c.inflight--;
      if (--state.inflight === 0 && state.onIdle) state.onIdle();
    });
  };

  /**
   * Joins a room and, with `since`, first replays every message after it (replay.ts). Nothing is awaited between
   * the replay's last cursor check and subscribing the socket: messages up to the cursor come from the replay,
   * later ones live.
   */
  const onJoin = async (ws: Ws, c: Conn, f: JoinFrame): Promise<void> => {
    const { room, since } = f;
    if (!c.access(room)) return reject(ws, 'FORBIDDEN', 'this token may not join this room', room);
    if (c.rooms.includes(room)) return reject(ws, 'BAD_FRAME', 'already joined; leave first to recover again', room);
    if (c.rooms.length >= perConn.maxRoomsPerConnection) {
      return reject(ws, 'RATE_LIMITED', `at most ${perConn.maxRoomsPerConnection} rooms per connection`, room);
    }
    c.rooms.push(room);
    const abandon = (): void => {
      if (removeFrom(c.rooms, room)) rooms.leave(room);
    };
    let st;
    try {
      st = await rooms.join(room);
    } catch (err) {
      log.warn({ err, room }, 'join failed');
      removeFrom(c.rooms, room);
      return reject(ws, 'UNAVAILABLE', 'could not join the room now; retry', room);
    }
    if (c.closed || !c.rooms.includes(room)) return abandon();
    // Read before the replay: nothing may be awaited between subscribing and `joined` (live messages would overtake it).
    const online = await d.presence.onlineInRoom(room);
    if (!online.includes(c.user)) online.push(c.user);
    let recovered = true;
    let replayed = 0;
    // The replay's last cursor check and the subscribe below are a few promise hops apart, in which a gap read of the
    // room feed may deliver more to the topic (this socket is not on it yet): those are replayed too, from where the
    // last check stood.
    for (let from = since, checked = -1; from !== undefined && !c.closed && st.cursor > checked; from = checked) {
      const room1 = st;
      try {
        const r = await replay({ reader: d.reader, store: d.store, reads, maxMessages: cfg.recovery.maxMessages }, room, from,
          () => (checked = room1.cursor), {
            alive: () => !c.closed,
            // Every replayed message waits until the reader is within a quarter of its send buffer: a replay never
            // overflows it (which would drop the frame and close the socket) and holds one batch in memory at most.
            send: async (m, prev) => {
              await waitForSendBuffer(ws, c);
              if (c.closed) return false;
              send(ws, messageFrame(m, prev));
              return true;
            },
          });
        if (r.ahead) {
          abandon();
          return reject(ws, 'BAD_FRAME', `since ${since} is ahead of the stream (last seq ${r.last})`, room);
        }
        recovered &&= r.recovered;
        replayed += r.replayed;
      } catch (err) {
        abandon();
        return readFailed(ws, err, 'recovery', room);
      }
    }
    if (c.closed || !c.rooms.includes(room)) return abandon();
    // A refresh while this join awaited may have taken the room away.
    if (!c.access(room)) {
      abandon();
      return reject(ws, 'FORBIDDEN', 'this token may not join this room', room);
    }
    // No await between the last cursor check and here: the topic delivers exactly what follows the cursor.
    ws.subscribe(room);
    d.presence.joined(c.session, room);
    send(ws, joinedFrame(room, st.cursor, recovered, replayed, online));
  };

  /**
   * A page of history. Bounded three ways before MongoDB sees it: in flight per connection, the user's and the
   * address's cluster-wide budgets (shared with HTTP history), and the gateway's read gate, which also drops the
   * read if the connection closes while it waits.
   */
  const onHistory = async (ws: Ws, c: Conn, f: HistoryFrame): Promise<void> => {
    if (!c.access(f.room)) return reject(ws, 'FORBIDDEN', 'this token may not read this room', f.room);
    const limit = f.limit ?? cfg.recovery.historyDefaultLimit;
    if (limit > cfg.recovery.historyMaxLimit) {
      return reject(ws, 'BAD_FRAME', `history.limit must be at most ${cfg.recovery.historyMaxLimit}`, f.room);
    }
    if (c.historyInflight >= cfg.storage.maxHistoryInflightPerConnection) {
      return reject(ws, 'RATE_LIMITED', `at most ${cfg.storage.maxHistoryInflightPerConnection} history requests in flight`, f.room);
    }
    c.historyInflight++;
    try {
      const wait = await d.limiter.admitHistory(c.user, c.ip);
      if (c.closed) return;
      if (wait > 0) return reject(ws, 'RATE_LIMITED', 'history rate limit exceeded', f.room, wait);
      const page = await readPage(x.pages, f.room, f.before, limit, () => !c.closed);
      send(ws, historyFrame(f.room, page.messages, page.more));
    } catch (err) {
      readFailed(ws, err, 'history', f.room);
    } finally {
      c.historyInflight--;
    }
  };

  const onLeave = (ws: Ws, c: Conn, room: RoomId): void => {
    if (!removeFrom(c.rooms, room)) return reject(ws, 'UNKNOWN_ROOM', 'not a member of this room', room);
    ws.unsubscribe(room);
    rooms.leave(room);
    d.presence.left(c.session, room);
    send(ws, leftFrame(room));
  };

  const onRefresh = (ws: Ws, c: Conn, token: string): void => {
    let id: Identity;
    try {
      id = d.auth.verify(token);
    } catch (err) {
      return reject(ws, 'UNAUTHORIZED', err instanceof AuthError ? err.message : 'token rejected');
    }
    if (id.user !== c.user) return reject(ws, 'FORBIDDEN', 'a refresh must be for the same user');
    c.expiresAt = id.expiresAt;
    c.access = roomAccess(id.claims);
    // Rooms the new token no longer allows are left at once, each with a frame that says why.
    for (const room of c.rooms.filter((r) => !c.access(r))) {
      removeFrom(c.rooms, room);
      ws.unsubscribe(room);
      rooms.leave(room);
      d.presence.left(c.session, room);
      send(ws, leftFrame(room, 'forbidden'));
    }
    send(ws, JSON.stringify({ type: 'refreshed', expiresAt: id.expiresAt ?? null }));
  };

  // Cluster-wide send budgets (lib/limits): one EVALSHA per send, before onSend, so nothing over budget is published.
  // The id's lookup (ADR 0015) runs alongside it: one round trip of latency for both. Sends to a room not joined go
  // straight to onSend, which refuses them without spending budget.
  const limitSend = (ws: Ws, c: Conn, f: SendFrame): void => {
    if (!c.rooms.includes(f.room) || !c.access(f.room)) return onSend(ws, c, f);
    const lookup = lookupSend(d, c.user, f.id);
    void d.limiter.admitSend(c.user, c.ip, Buffer.byteLength(f.body, 'utf8')).then((retryAfterMs) => {
      if (c.closed) return;
      if (retryAfterMs === 0) return onSend(ws, c, f, lookup);
      reject(ws, 'RATE_LIMITED', 'send rate limit exceeded', f.id, retryAfterMs);
    });
  };

  // Ephemeral: never stored nor in JetStream. Throttled per user and room; extra signals are dropped silently.
  const onTyping = (ws: Ws, c: Conn, room: RoomId): void => {
    if (!c.access(room)) return reject(ws, 'FORBIDDEN', 'this token may not type in this room', room);
    if (!c.rooms.includes(room)) return reject(ws, 'UNKNOWN_ROOM', 'join the room before typing in it', room);
    void d.presence.typing(c.user, room).then((frame) => {
      // ws.publish: this gateway's other members of the room, not the sender itself.
      if (frame !== undefined && !c.closed) ws.publish(room, frame, false);
    });
  };

  const mutes = createMuteHandlers(d.mutes, x.replies, log);

  return (ws, c, f) => {
    switch (f.type) {
      case 'mute':
        return mutes.onMute(ws, c, f);
      case 'unmute':
        return mutes.onUnmute(ws, c, f);
      case 'send':
        return limitSend(ws, c, f);
      case 'join':
        void onJoin(ws, c, f);
        return;
      case 'history':
        void onHistory(ws, c, f);
        return;
      case 'leave':
        return onLeave(ws, c, f.room);
      case 'refresh':
        return onRefresh(ws, c, f.token);
      case 'typing':
        return onTyping(ws, c, f.room);
    }
  };
}
