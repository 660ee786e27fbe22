// The WebSocket and HTTP edge: authenticate the upgrade, validate frames, publish sends to the event log and ack
// them once stored, and fan room broadcasts from Redis out to local sockets through uWS topics.
import { randomUUID } from 'node:crypto';
import type { HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import type { Authenticator, Identity } from '../auth/index.js';
import { AuthError } from '../auth/index.js';
import type { Config } from '../config/index.js';
import type { FanoutSubscriber } from '../fanout/index.js';
import { createFanoutSubscriber } from '../fanout/index.js';
import type { EventPublisher, MessageEvent, NatsHandle } from '../log/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import {
  CLOSE_CODES, PROTOCOL_VERSION, ProtocolError, ackFrame, errorFrame, joinedFrame, leftFrame, parseClientFrame, welcomeFrame,
} from '../protocol/index.js';
import type { ClientFrame, ErrorCode, RoomId, SendFrame } from '../protocol/index.js';
import { credentialsFrom } from './auth.js';
import { RoomRegistry } from './rooms.js';
import { loadNativeUws } from './uws.js';

export interface GatewayDeps {
  cfg: Config;
  log: Logger;
  metrics: Metrics;
  auth: Authenticator;
  nats: NatsHandle;
  publisher: EventPublisher;
  /** Last stored seq of a room (0 when empty), for `joined`. */
  lastSeq(room: RoomId): Promise<number>;
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
  rooms: Set<RoomId>;
  inflight: number;
  closed: boolean;
  expiryTimer: NodeJS.Timeout | undefined;
}

type Ws = WebSocket<Conn>;

const JSON_HEADERS = { 'content-type': 'application/json' };

export async function startGateway(d: GatewayDeps): Promise<Gateway> {
  const uws = loadNativeUws();
  const { cfg, log, metrics } = d;
  const limits = cfg.limits;
  const sockets = new Set<Ws>();
  let inflightTotal = 0;
  let onIdle: (() => void) | undefined;
  let draining = false;

  const app: TemplatedApp = uws.App();
  const sub: FanoutSubscriber = await createFanoutSubscriber(cfg.redisUrl, cfg.redisPrefix, log, (room, payload) => {
    // Parse once per gateway, not per recipient; the payload itself is forwarded byte for byte.
    let m: { seq?: unknown; ts?: unknown };
    try {
      m = JSON.parse(payload) as { seq?: unknown; ts?: unknown };
    } catch {
      log.error({ room }, 'unparseable broadcast dropped');
      return;
    }
    if (typeof m.seq !== 'number' || !rooms.accept(room, m.seq)) return;
    app.publish(room, payload, false);
    if (typeof m.ts === 'number') metrics.observeLatency(Math.max(0, Date.now() - m.ts) / 1000);
  });
  const rooms = new RoomRegistry(sub);

  const send = (ws: Ws, text: string): void => {
    if (!ws.getUserData().closed) ws.cork(() => ws.send(text, false, false));
  };
  const reject = (ws: Ws, code: ErrorCode, message: string, ref?: string): void => {
    metrics.framesRejected.inc({ code });
    send(ws, errorFrame(code, message, ref));
  };

  const armExpiry = (ws: Ws, c: Conn): void => {
    if (c.expiryTimer) clearTimeout(c.expiryTimer);
    c.expiryTimer = undefined;
    if (c.expiresAt === undefined) return;
    const ms = Math.min(Math.max(c.expiresAt - Date.now(), 0), 2 ** 31 - 1);
    c.expiryTimer = setTimeout(() => {
      if (!c.closed) ws.end(CLOSE_CODES.TOKEN_EXPIRED.code, 'token expired');
    }, ms);
    c.expiryTimer.unref();
  };

  const onSend = (ws: Ws, c: Conn, f: SendFrame): void => {
    if (!c.rooms.has(f.room)) return reject(ws, 'UNKNOWN_ROOM', 'join the room before sending to it', f.id);
    if (c.inflight >= limits.maxInflightPerConnection) {
      return reject(ws, 'RATE_LIMITED', 'too many unacknowledged sends', f.id);
    }
    if (draining) return reject(ws, 'UNAVAILABLE', 'gateway is shutting down; retry on another', f.id);
    const ev: MessageEvent = { room: f.room, id: f.id, from: c.user, body: f.body, ts: Date.now() };
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

  const onJoin = async (ws: Ws, c: Conn, room: RoomId): Promise<void> => {
    if (c.rooms.has(room)) return send(ws, joinedFrame(room, await d.lastSeq(room)));
    if (c.rooms.size >= limits.maxRoomsPerConnection) {
      return reject(ws, 'RATE_LIMITED', `at most ${limits.maxRoomsPerConnection} rooms per connection`, room);
    }
    c.rooms.add(room);
    try {
      await rooms.join(room);
      if (c.closed) return;
      ws.subscribe(room);
      send(ws, joinedFrame(room, await d.lastSeq(room)));
    } catch (err) {
      log.warn({ err, room }, 'join failed');
      if (c.rooms.delete(room) && !c.closed) {
        ws.unsubscribe(room);
        rooms.leave(room);
      }
      reject(ws, 'UNAVAILABLE', 'could not join the room now; retry', room);
    }
  };

  const onLeave = (ws: Ws, c: Conn, room: RoomId): void => {
    if (!c.rooms.delete(room)) return reject(ws, 'UNKNOWN_ROOM', 'not a member of this room', room);
    ws.unsubscribe(room);
    rooms.leave(room);
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
    armExpiry(ws, c);
    send(ws, JSON.stringify({ type: 'refreshed', expiresAt: id.expiresAt ?? null }));
  };

  const dispatch = (ws: Ws, c: Conn, f: ClientFrame): void => {
    switch (f.type) {
      case 'send':
        return onSend(ws, c, f);
      case 'join':
        void onJoin(ws, c, f.room);
        return;
      case 'leave':
        return onLeave(ws, c, f.room);
      case 'refresh':
        return onRefresh(ws, c, f.token);
      case 'typing':
      case 'history':
        return reject(ws, 'BAD_FRAME', `${f.type} is not available in this version yet`);
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
        const message = err instanceof AuthError ? err.message : 'token rejected';
        metrics.framesRejected.inc({ code: 'UNAUTHORIZED' });
        res.cork(() => {
          res.writeStatus('401 Unauthorized').writeHeader('www-authenticate', 'Bearer realm="parley"');
          res.writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message } }));
        });
        return;
      }
      const conn: Conn = {
        user: id.user, session: randomUUID(), ip, expiresAt: id.expiresAt, rooms: new Set(), inflight: 0, closed: false,
        expiryTimer: undefined,
      };
      res.upgrade(conn, key, creds.protocol, extensions, context);
    },

    open: (ws) => {
      const c = ws.getUserData();
      sockets.add(ws);
      metrics.activeConnections.inc();
      armExpiry(ws, c);
      send(ws, welcomeFrame(c.user, c.session, PROTOCOL_VERSION));
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

    close: (ws, code) => {
      const c = ws.getUserData();
      c.closed = true;
      if (c.expiryTimer) clearTimeout(c.expiryTimer);
      sockets.delete(ws);
      metrics.activeConnections.dec();
      for (const room of c.rooms) rooms.leave(room);
      c.rooms.clear();
      if (log.isLevelEnabled('debug')) log.debug({ user: c.user, session: c.session, code }, 'connection closed');
    },
  });

  const json = (res: HttpResponse, status: string, body: unknown): void => {
    res.cork(() => {
      res.writeStatus(status);
      for (const [k, v] of Object.entries(JSON_HEADERS)) res.writeHeader(k, v);
      res.end(JSON.stringify(body));
    });
  };
  app.get('/healthz', (res) => json(res, '200 OK', { status: 'ok' }));
  app.get('/readyz', (res) => {
    const natsUp = d.nats.connected();
    const redisUp = sub.ready();
    const ok = natsUp && redisUp && !draining;
    json(res, ok ? '200 OK' : '503 Service Unavailable', { status: ok ? 'ready' : 'not ready', nats: natsUp, redis: redisUp, draining });
  });
  app.get('/metrics', (res) => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    metrics.registry.metrics().then((text) => {
      if (aborted) return;
      res.cork(() => res.writeHeader('content-type', metrics.registry.contentType).end(text));
    }, (err: unknown) => {
      log.error({ err }, 'metrics failed');
      if (!aborted) json(res, '500 Internal Server Error', { error: { code: 'INTERNAL', message: 'metrics failed' } });
    });
  });
  app.any('/*', (res) => json(res, '404 Not Found', { error: { code: 'NOT_FOUND', message: 'no such endpoint' } }));

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
      uws.us_listen_socket_close(listenSocket);
      if (inflightTotal > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, cfg.shutdownTimeoutMs / 2);
          onIdle = () => { clearTimeout(t); resolve(); };
        });
      }
      for (const ws of [...sockets]) ws.end(CLOSE_CODES.SERVICE_RESTART.code, 'server restart');
      await sub.close();
      log.info({ rooms: rooms.rooms() }, 'gateway closed');
    },
  };
}
