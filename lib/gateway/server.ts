// The WebSocket and HTTP edge: authenticate the upgrade, validate frames, publish sends to the event log and ack
// them once stored, and fan room broadcasts from Redis out to local sockets through uWS topics.
import { randomUUID } from 'node:crypto';
import type { HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import type { Authenticator, Identity, RoomAccess } from '../auth/index.js';
import { AuthError, roomAccess } from '../auth/index.js';
import type { Config } from '../config/index.js';
import { decodeMessage } from '../fanout/index.js';
import type { FanoutSubscriber } from '../fanout/index.js';
import type { EventPublisher, NatsHandle, RoomReader } from '../eventlog/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import {
  CLOSE_CODES, PROTOCOL_VERSION, ProtocolError, ackFrame, errorFrame, historyFrame, joinedFrame, leftFrame, messageFrame,
  parseClientFrame, welcomeFrame,
} from '../protocol/index.js';
import type { ChatMessage, ClientFrame, ErrorCode, HistoryFrame, JoinFrame, RoomId, SendFrame, StoredMessage } from '../protocol/index.js';
import type { MessageStore, ReadGate } from '../store/index.js';
import { ClientGoneError, StorageBusyError, createReadGate } from '../store/index.js';
import type { SendLimiter } from '../limits/index.js';
import { gcraStep } from '../limits/index.js';
import type { GatewayPresence } from '../presence/index.js';
import type { RedisSubscriber } from '../redis/index.js';
import { handleHistoryRequest } from './history.js';
import { credentialsFrom } from './auth.js';
import { RoomFeed } from './rooms.js';
import { loadNativeUws } from './uws.js';

export interface GatewayDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  auth: Authenticator;
  nats: NatsHandle;
  publisher: EventPublisher;
  /** The stream, read by room: recovery and gap repair. */
  reader: RoomReader;
  /** MongoDB (its own bounded read pool): history, and recovery of what the stream no longer holds. */
  store: MessageStore;
  /** Room broadcasts from the chat service (Redis Pub/Sub), on a subscriber connection of its own. */
  fanout: FanoutSubscriber;
  /** Sessions, presence, typing and connection limits in Redis (lib/presence). */
  presence: GatewayPresence;
  /** The Pub/Sub connection presence and typing events arrive on. */
  presenceEvents: RedisSubscriber;
  /** Cluster-wide send and history budgets (lib/limits). */
  limiter: SendLimiter;
}

export interface Gateway {
  port: number;
  close(): Promise<void>;
}

interface Conn {
  user: string;
  session: string;
  ip: string;
  expiresAt: number | undefined;
  /** Joined rooms: an array (at most maxRoomsPerConnection), far smaller than a Set at 100k idle connections. */
  rooms: RoomId[];
  /** Which rooms the token lets this user join (from its `rooms` claim). */
  access: RoomAccess;
  /** Resolvers waiting for the send buffer to drain (replay backpressure); allocated only while a replay waits. */
  drainWaiters: Array<() => void> | undefined;
  inflight: number;
  closed: boolean;
  /** User-Agent, bounded; stored with the session. */
  ua: string;
  /** GCRA state of the connection's budget of rejected frames (cfg.rateLimits.maxViolations, violationsPerSec). */
  rejectTat: number;
  /** History requests of this connection not answered yet. */
  historyInflight: number;
}

type Ws = WebSocket<Conn>;

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Codes that are the server's doing, not the client's: they do not spend the connection's rejection budget. */
const SERVER_SIDE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAVAILABLE', 'INTERNAL']);

function removeFrom(list: RoomId[], room: RoomId): boolean {
  const i = list.indexOf(room);
  if (i >= 0) list.splice(i, 1);
  return i >= 0;
}

export async function startGateway(d: GatewayDeps): Promise<Gateway> {
  const uws = loadNativeUws();
  const { cfg, log, metrics } = d;
  const limits = cfg.limits;
  const sockets = new Set<Ws>();
  let inflightTotal = 0;
  let onIdle: (() => void) | undefined;
  let draining = false;

  // No `uWebSockets: 20` header on every response (uWS's "silent" mode): nothing advertises the server's software.
  (uws as unknown as { _cfg(flag: string): void })._cfg('silent');
  const app: TemplatedApp = uws.App();
  // Storage reads of this gateway (history, recovery from MongoDB) share one bound (lib/store/gate.ts).
  const reads: ReadGate = createReadGate(cfg.storage, {
    depth: (inflight, queued) => {
      metrics.storageInflight.set(inflight);
      metrics.storageQueued.set(queued);
    },
    result: (result) => metrics.storageQueries.inc({ result }),
  });
  const rejectRate = { perSec: cfg.rateLimits.violationsPerSec, burst: cfg.rateLimits.maxViolations };
  const sub = d.fanout;
  sub.listen((room, payload) => {
    // Decoded once per gateway, serialised once per gateway (in deliver), never per recipient.
    const b = decodeMessage(payload);
    if (b === undefined) {
      log.error({ room }, 'malformed broadcast dropped');
      return;
    }
    rooms.onBroadcast(room, b);
  }, () => {
    // Catch up now, and once more a second later: node-redis re-issues its SUBSCRIBEs before `ready`, but a broadcast
    // published between this catch-up and a resubscription still in flight would otherwise wait for a later
    // message to reveal the gap.
    rooms.resyncAll();
    setTimeout(() => rooms.resyncAll(), 1_000).unref();
  });
  const rooms = new RoomFeed(sub, d.reader, (m: StoredMessage, prev: number) => {
    app.publish(m.room, messageFrame(m, prev), false);
    metrics.observeLatency(Math.max(0, Date.now() - m.ts) / 1000);
  }, log, cfg.recovery.gapRepairTimeoutMs, (room) => {
    // The room has a hole this gateway cannot fill: its members (also those still joining) must reconnect and
    // recover with `since`, which reads MongoDB where the stream fails. Closing them also ends the room's state.
    metrics.gapsUnrepaired.inc();
    for (const ws of sockets) {
      const c = ws.getUserData();
      if (!c.closed && c.rooms.includes(room)) ws.end(CLOSE_CODES.RECOVER.code, 'room must be recovered');
    }
  });
  // Presence and typing frames of rooms with members here, from every gateway and presence instance.
  await d.presence.listen(d.presenceEvents, (room, frame) => {
    if (app.numSubscribers(room) > 0) app.publish(room, frame, false);
  });

  const send = (ws: Ws, text: string): void => {
    const c = ws.getUserData();
    if (c.closed) return;
    // uWS drops (status 2) a frame that would push the send buffer past maxBackpressure. A dropped ack, error or
    // replayed message must not vanish silently: close, so the client reconnects and recovers with `since`.
    let status = 0;
    ws.cork(() => { status = ws.send(text, false, false); });
    if (status === 2 && !c.closed) {
      ws.end(CLOSE_CODES.SLOW_CONSUMER.code, 'send buffer full');
    }
  };
  /**
   * Answers a failed request with an error frame. Every frame the client got wrong (any code but UNAVAILABLE and
   * INTERNAL) spends one unit of the connection's rejection budget; the one beyond it closes the connection with
   * 4008, so a burst of bad frames costs the gateway a bounded amount of work.
   */
  const reject = (ws: Ws, code: ErrorCode, message: string, ref?: string, retryAfterMs?: number): void => {
    metrics.framesRejected.inc({ code });
    const c = ws.getUserData();
    send(ws, errorFrame(code, message, ref, retryAfterMs));
    if (SERVER_SIDE.has(code) || c.closed) return;
    const step = gcraStep(c.rejectTat || undefined, Date.now(), rejectRate, 1);
    if (step.waitMs > 0) ws.end(CLOSE_CODES.POLICY.code, 'too many rejected frames');
    else c.rejectTat = step.tat;
  };
  /** Storage read failures: the gate's own refusals say when to retry; a client that left gets nothing. */
  const readFailed = (ws: Ws, err: unknown, what: string, ref: string): void => {
    if (err instanceof ClientGoneError) return;
    if (err instanceof StorageBusyError) return reject(ws, 'UNAVAILABLE', `${what} is busy; retry later`, ref, err.retryAfterMs);
    log.warn({ err, room: ref }, `${what} failed`);
    reject(ws, 'UNAVAILABLE', `${what} is unavailable now; retry`, ref);
  };

  // Token expiry: one sweep a second over all sockets instead of a timer per connection (memory at 100k idle
  // connections). A connection outlives its token by at most a second.
  const expirySweep = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) {
      const c = ws.getUserData();
      if (c.expiresAt !== undefined && c.expiresAt <= now && !c.closed) ws.end(CLOSE_CODES.TOKEN_EXPIRED.code, 'token expired');
    }
  }, 1_000);
  expirySweep.unref();

  const onSend = (ws: Ws, c: Conn, f: SendFrame): void => {
    // The token's current access, not the one the room was joined with (a refresh may have narrowed it).
    if (!c.access(f.room)) return reject(ws, 'FORBIDDEN', 'this token may not send to this room', f.id);
    if (!c.rooms.includes(f.room)) return reject(ws, 'UNKNOWN_ROOM', 'join the room before sending to it', f.id);
    if (c.inflight >= limits.maxInflightPerConnection) {
      return reject(ws, 'RATE_LIMITED', 'too many unacknowledged sends', f.id);
    }
    if (draining) return reject(ws, 'UNAVAILABLE', 'gateway is shutting down; retry on another', f.id);
    const ev: ChatMessage = { room: f.room, id: f.id, from: c.user, body: f.body, ts: Date.now() };
    if (f.mentions) ev.mentions = f.mentions;
    c.inflight++;
    inflightTotal++;
    const started = performance.now();
    d.publisher.publish(ev).then(
      (pa) => {
        metrics.jetstreamPublish.observe({ result: 'ok' }, (performance.now() - started) / 1000);
        if (!pa.duplicate) metrics.messagesSent.inc();
        send(ws, ackFrame(f.id, pa.seq, pa.duplicate));
      },
      (err: unknown) => {
        metrics.jetstreamPublish.observe({ result: 'error' }, (performance.now() - started) / 1000);
        log.warn({ err, user: c.user, room: f.room }, 'publish failed');
        reject(ws, 'UNAVAILABLE', 'message not stored; retry with the same id', f.id);
      },
    ).finally(() => {
      c.inflight--;
      if (--inflightTotal === 0 && onIdle) onIdle();
    });
  };

  // Resolves once the socket's send buffer is below a quarter of its limit (or it closed). The `drain` event is the
  // fast path; a slow re-check backs it up, because a replay waiting for an event that never comes would hang the
  // join forever (seen under load with a reader that paused and resumed).
  const lowWater = limits.maxBackpressureBytes / 4;
  const waitForDrain = (ws: Ws, c: Conn): Promise<void> => {
    if (c.closed || ws.getBufferedAmount() < lowWater) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let last = -1;
      let still = 0;
      const poll = setInterval(() => {
        if (c.closed) return done();
        const buffered = ws.getBufferedAmount();
        if (buffered < lowWater) return done();
        // uWS can leave backpressure queued without waiting for the socket to become writable again (seen with sends
        // made outside its callbacks, after an await): the reader drained everything, yet the buffer never moved. Any
        // write makes uWS flush its queue first; a ping is one the application never sees.
        still = buffered === last ? still + 1 : 0;
        last = buffered;
        if (still >= 8) {
          still = 0;
          if (log.isLevelEnabled('debug')) log.debug({ buffered, user: c.user }, 'nudging a stalled send buffer');
          ws.cork(() => ws.ping());
        }
      }, 25);
      const done = (): void => {
        clearInterval(poll);
        resolve();
      };
      (c.drainWaiters ??= []).push(done);
    });
  };

  /**
   * Joins a room and, with `since`, first replays every message after it. The replay reads the stream (MongoDB for
   * what the stream no longer holds) up to the room cursor, re-reading while the cursor moves, and subscribes the
   * socket in the same tick as the last check: messages up to the cursor come from the replay, later ones live,
   * so there is neither a gap nor a duplicate at the seam. Reads are batched and wait for the socket to drain.
   */
  const onJoin = async (ws: Ws, c: Conn, f: JoinFrame): Promise<void> => {
    const { room, since } = f;
    if (!c.access(room)) return reject(ws, 'FORBIDDEN', 'this token may not join this room', room);
    if (c.rooms.includes(room)) return reject(ws, 'BAD_FRAME', 'already joined; leave first to recover again', room);
    if (c.rooms.length >= limits.maxRoomsPerConnection) {
      return reject(ws, 'RATE_LIMITED', `at most ${limits.maxRoomsPerConnection} rooms per connection`, room);
    }
    c.rooms.push(room);
    const alive = (): boolean => !c.closed;
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
    if (since !== undefined) {
      try {
        const { last } = await d.reader.bounds();
        if (since > last) {
          abandon();
          return reject(ws, 'BAD_FRAME', `since ${since} is ahead of the stream (last seq ${last})`, room);
        }
        let pos = since;
        let prev = since;
        // Every replayed message waits until the reader is within a quarter of its send buffer: a replay never
        // overflows it (which would drop the frame and close the socket) and holds one batch in memory at most.
        const replay1 = async (m: StoredMessage): Promise<boolean> => {
          await waitForDrain(ws, c);
          if (c.closed) return false;
          send(ws, messageFrame(m, prev));
          prev = m.seq;
          pos = m.seq;
          replayed++;
          return true;
        };
        // Seqs are dense across the stream, so a seq gap within the limit bounds the backlog without a count query.
        const backlog = st.cursor - since > cfg.recovery.maxMessages
          ? await reads.run(() => d.store.countAfter(room, since, cfg.recovery.maxMessages + 1), alive)
          : 0;
        if (backlog > cfg.recovery.maxMessages) {
          recovered = false; // too far behind: no replay; the client pages `history` back from `joined.seq`
          pos = st.cursor;
        }
        const batch = 256;
        while (pos < st.cursor && !c.closed) {
          const target = st.cursor;
          const got = await d.reader.range(room, pos + 1, target, batch);
          // What lies between pos and the first message the stream returned may have been dropped by the stream's
          // limits (also while this replay waited for the socket): MongoDB holds it.
          const upper = got.length > 0 ? got[0]!.seq : target + 1;
          if (upper > pos + 1) {
            const { first } = await d.reader.bounds();
            if (first > pos + 1) {
              const older = await reads.run(() => d.store.range(room, pos, Math.min(upper, first), cfg.recovery.maxMessages), alive);
              for (const m of older) {
                if (!(await replay1(m))) break;
              }
            }
          }
          for (const m of got) {
            if (m.seq > pos && !(await replay1(m))) break;
          }
          // An empty read means nothing is left up to target; a short one may just be the server's batch limit.
          if (got.length === 0) pos = Math.max(pos, target);
        }
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
      const page = await reads.run(() => d.store.page(f.room, f.before, limit + 1), () => !c.closed);
      const more = page.length > limit;
      send(ws, historyFrame(f.room, more ? page.slice(0, limit) : page, more));
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
  // Sends to a room not joined go straight to onSend, which refuses them without spending budget.
  const limitSend = (ws: Ws, c: Conn, f: SendFrame): void => {
    if (!c.rooms.includes(f.room) || !c.access(f.room)) return onSend(ws, c, f);
    void d.limiter.admitSend(c.user, c.ip, Buffer.byteLength(f.body, 'utf8')).then((retryAfterMs) => {
      if (c.closed) return;
      if (retryAfterMs === 0) return onSend(ws, c, f);
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

  const dispatch = (ws: Ws, c: Conn, f: ClientFrame): void => {
    switch (f.type) {
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

  app.ws<Conn>('/ws', {
    compression: uws.DISABLED,
    // uWS cuts a frame over maxPayloadLength without a close frame (1006). Twice the documented limit lets frames
    // just over it get a proper 1009 from us; only grossly oversize ones are cut by uWS.
    maxPayloadLength: limits.maxFrameBytes * 2,
    idleTimeout: limits.idleTimeoutSec,
    maxBackpressure: limits.maxBackpressureBytes,
    // A reader that falls this far behind is disconnected, not silently skipped: it reconnects and recovers.
    closeOnBackpressureLimit: true as unknown as number,
    sendPingsAutomatically: true,

    upgrade: (res, req, context) => {
      // Everything needed from req is copied now: it is only valid synchronously.
      const key = req.getHeader('sec-websocket-key');
      const protocols = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const creds = credentialsFrom(req.getHeader('authorization'), req.getQuery() ?? '', protocols);
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      if (draining) {
        res.writeStatus('503 Service Unavailable').writeHeader('retry-after', '1').end();
        return;
      }
      let id: Identity;
      try {
        if (!creds.token) throw new AuthError('missing', 'no token (use Authorization: Bearer, ?token= or a token.<jwt> subprotocol)');
        id = d.auth.verify(creds.token);
      } catch (err) {
        // AuthError messages are fixed strings; nothing of the token is reflected.
        const message = err instanceof AuthError ? err.message : 'token rejected';
        metrics.framesRejected.inc({ code: 'UNAUTHORIZED' });
        res.cork(() => {
          res.writeStatus('401 Unauthorized').writeHeader('www-authenticate', 'Bearer realm="parley"');
          res.writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message } }));
        });
        return;
      }
      const conn: Conn = {
        user: id.user, session: randomUUID(), ip, expiresAt: id.expiresAt, rooms: [], inflight: 0, closed: false,
        access: roomAccess(id.claims), drainWaiters: undefined,
        ua: req.getHeader('user-agent').slice(0, 256), rejectTat: 0, historyInflight: 0,
      };
      res.upgrade(conn, key, creds.protocol, extensions, context);
    },

    open: (ws) => {
      const c = ws.getUserData();
      sockets.add(ws);
      metrics.activeConnections.inc();
      send(ws, welcomeFrame(c.user, c.session, PROTOCOL_VERSION));
      // Accept, then check the cluster-wide connection limits in the same Redis script that registers the session
      // (atomic, so two gateways cannot both admit the N+1th); a refused one gets a readable 4008 (ADR 0010).
      void d.presence.open({ session: c.session, user: c.user, ip: c.ip, ua: c.ua }).then((refused) => {
        if (refused === undefined || c.closed) return;
        metrics.framesRejected.inc({ code: 'RATE_LIMITED' });
        ws.end(CLOSE_CODES.POLICY.code, refused);
      });
    },

    message: (ws, data, isBinary) => {
      const c = ws.getUserData();
      if (data.byteLength > limits.maxFrameBytes) {
        metrics.framesRejected.inc({ code: 'TOO_LARGE' });
        return ws.end(CLOSE_CODES.MESSAGE_TOO_BIG.code, 'frame too large');
      }
      if (isBinary) return reject(ws, 'BAD_FRAME', 'binary frames are not supported by protocol v1');
      let frame: ClientFrame;
      try {
        frame = parseClientFrame(Buffer.from(data).toString('utf8'), limits);
      } catch (err) {
        if (err instanceof ProtocolError) return reject(ws, err.code, err.message, err.ref);
        log.error({ err }, 'frame parse failed');
        return reject(ws, 'INTERNAL', 'unexpected error');
      }
      dispatch(ws, c, frame);
    },

    drain: (ws) => {
      const c = ws.getUserData();
      if (c.drainWaiters && ws.getBufferedAmount() < lowWater) {
        const waiters = c.drainWaiters;
        c.drainWaiters = undefined;
        for (const w of waiters) w();
      }
    },

    close: (ws, code) => {
      const c = ws.getUserData();
      c.closed = true;
      const waiters = c.drainWaiters;
      c.drainWaiters = undefined;
      for (const w of waiters ?? []) w();
      sockets.delete(ws);
      metrics.activeConnections.dec();
      for (const room of c.rooms) rooms.leave(room);
      c.rooms.length = 0;
      d.presence.close(c.session);
      if (log.isLevelEnabled('debug')) log.debug({ user: c.user, session: c.session, code }, 'connection closed');
    },
  });

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
    const natsUp = d.nats.connected();
    const redisUp = sub.ready();
    const ok = natsUp && redisUp && !draining;
    return [ok ? '200 OK' : '503 Service Unavailable', { status: ok ? 'ready' : 'not ready', nats: natsUp, redis: redisUp, draining }];
  });
  // /metrics is served on PARLEY_METRICS_PORT only (lib/observability/http.ts), never on this public port.
  app.get('/rooms/:room/messages', (res, req) => handleHistoryRequest(res, req, {
    cfg, log, auth: d.auth, store: d.store, reads, limiter: d.limiter, json,
  }));
  app.any('/*', (res, req) => {
    if (req.getMethod() === 'head') {
      res.cork(() => res.writeStatus('404 Not Found').end());
      return;
    }
    json(res, '404 Not Found', { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(cfg.host, cfg.port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${cfg.host}:${cfg.port}`))));
  });
  const port = uws.us_socket_local_port(listenSocket);
  log.info({ port, gateway: cfg.gatewayId }, 'gateway listening');

  return {
    port,
    async close() {
      // Stop accepting, let in-flight publishes get their acks, then tell clients to reconnect elsewhere.
      draining = true;
      clearInterval(expirySweep);
      uws.us_listen_socket_close(listenSocket);
      if (inflightTotal > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, cfg.shutdownTimeoutMs / 2);
          onIdle = () => { clearTimeout(t); resolve(); };
        });
      }
      for (const ws of [...sockets]) ws.end(CLOSE_CODES.SERVICE_RESTART.code, 'server restart');
      log.info({ rooms: rooms.size() }, 'gateway closed');
    },
  };
}
