// The WebSocket and HTTP edge, assembled: the uWS app with its WebSocket behaviour (upgrade and auth, open, frames,
// close), the room feed that fans Redis broadcasts out to local sockets through uWS topics, the HTTP routes, listen
// and close. The per-connection replies live in connection.ts, the frame handlers in handlers.ts, the `since`
// replay in replay.ts, the room feed in rooms.ts, the routes in routes.ts.
import { randomUUID } from 'node:crypto';
import { backoff } from '@nats-io/transport-node';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Identity } from '../auth/index.js';
import type { Logger, Readiness } from '../observability/index.js';
import { endSpan, startBroadcast } from '../observability/index.js';
import { AuthError, roomAccess } from '../auth/index.js';
import { decodeMessage } from '../fanout/index.js';
import type { BusMessage } from '../fanout/index.js';
import { CLOSE_CODES, PROTOCOL_VERSION, ProtocolError, messageFrame, parseClientFrame, welcomeFrame } from '../protocol/index.js';
import type { ClientFrame, StoredMessage } from '../protocol/index.js';
import { createReadGate } from '../store/index.js';
import type { ReadGate } from '../store/index.js';
import { credentialsFrom } from './auth.js';
import { createReplies } from './connection.js';
import type { Conn, Ws } from './connection.js';
import type { Gateway, GatewayDeps } from './deps.js';
import { createFrameHandlers } from './handlers.js';
import type { GatewayState } from './handlers.js';
import { RoomFeed } from './rooms.js';
import { registerRoutes } from './routes.js';
import { createHistoryPages } from './history-cache.js';
import { loadNativeUws } from './uws.js';

export type { Gateway, GatewayDeps } from './deps.js';

export async function startGateway(d: GatewayDeps): Promise<Gateway> {
  const uws = loadNativeUws();
  const { cfg, log, metrics } = d;
  const perConn = cfg.connection;
  const sockets = new Set<Ws>();
  const state: GatewayState = { closing: false, inflight: 0, onIdle: undefined };

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
  const replies = createReplies({
    log, metrics, maxBackpressureBytes: perConn.maxBackpressureBytes,
    rejectRate: { perSec: cfg.rateLimits.violationsPerSec, burst: cfg.rateLimits.maxViolations },
  });
  const { send, reject } = replies;
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
    // A broadcast from the bus carries its traceparent; one read from the stream (gap repair) does not.
    const span = startBroadcast(d.tracing, (m as BusMessage).traceparent, m.room, m.seq, cfg.gatewayId);
    app.publish(m.room, messageFrame(m, prev), false);
    metrics.observeLatency(Math.max(0, Date.now() - m.ts) / 1000);
    endSpan(span);
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

  const pages = createHistoryPages({ reader: d.reader, store: d.store, reads, streamUp: () => d.nats.connected() },
    { rooms: cfg.recovery.historyCacheRooms, messagesPerRoom: cfg.recovery.historyCacheMessages });
  const dispatch = createFrameHandlers({ d, rooms, reads, pages, replies, state });

  app.ws<Conn>('/ws', {
    compression: uws.DISABLED,
    // uWS cuts a frame over maxPayloadLength without a close frame (1006). Twice the documented limit lets frames
    // just over it get a proper 1009 from us; only grossly oversize ones are cut by uWS.
    maxPayloadLength: perConn.maxFrameBytes * 2,
    idleTimeout: perConn.idleTimeoutSec,
    maxBackpressure: perConn.maxBackpressureBytes,
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
      if (state.closing) {
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
        access: roomAccess(id.claims), bufferWaiters: undefined,
        ua: req.getHeader('user-agent').slice(0, 256), rejectTat: 0, historyInflight: 0,
      };
      res.upgrade(conn, key, creds.protocol, extensions, context);
    },

    open: (ws) => {
      const c = ws.getUserData();
      sockets.add(ws);
      metrics.activeConnections.inc();
      send(ws, welcomeFrame(c.user, c.session, PROTOCOL_VERSION));
      // Accept, then ask whether the connection may be admitted (cluster-wide caps and connect rates, checked in the
      // Redis script that registers the session: two gateways cannot both admit the N+1th); a refused one gets a
      // readable 4008 (ADR 0010).
      void d.presence.admit({ session: c.session, user: c.user, ip: c.ip, ua: c.ua }).then((refused) => {
        if (refused === undefined || c.closed) return;
        metrics.framesRejected.inc({ code: 'RATE_LIMITED' });
        ws.end(CLOSE_CODES.POLICY.code, refused);
      });
    },

    message: (ws, data, isBinary) => {
      const c = ws.getUserData();
      if (data.byteLength > perConn.maxFrameBytes) {
        metrics.framesRejected.inc({ code: 'TOO_LARGE' });
        return ws.end(CLOSE_CODES.MESSAGE_TOO_BIG.code, 'frame too large');
      }
      if (isBinary) return reject(ws, 'BAD_FRAME', 'binary frames are not supported by protocol v1');
      let frame: ClientFrame;
      try {
        frame = parseClientFrame(Buffer.from(data).toString('utf8'), perConn);
      } catch (err) {
        if (err instanceof ProtocolError) return reject(ws, err.code, err.message, err.ref);
        log.error({ err }, 'frame parse failed');
        return reject(ws, 'INTERNAL', 'unexpected error');
      }
      dispatch(ws, c, frame);
    },

    drain: (ws) => replies.onBufferDrained(ws, ws.getUserData()),

    close: (ws, code) => {
      const c = ws.getUserData();
      c.closed = true;
      const waiters = c.bufferWaiters;
      c.bufferWaiters = undefined;
      for (const w of waiters ?? []) w();
      sockets.delete(ws);
      metrics.activeConnections.dec();
      metrics.observeClose(code);
      for (const room of c.rooms) rooms.leave(room);
      c.rooms.length = 0;
      d.presence.close(c.session);
      if (log.isLevelEnabled('debug')) log.debug({ user: c.user, session: c.session, code }, 'connection closed');
    },
  });

  const readiness = (): Readiness => {
    const natsUp = d.nats.connected();
    const redisUp = sub.ready();
    // `draining` in the body: its documented name (README), meaning this gateway is shutting down.
    return { ready: natsUp && redisUp && !state.closing, details: { nats: natsUp, redis: redisUp, draining: state.closing } };
  };
  registerRoutes(app, d, pages, readiness);

  const listenSocket = await listenWithRetry(app, cfg.host, cfg.port, cfg.listenRetryMs, log);
  const port = uws.us_socket_local_port(listenSocket);
  log.info({ port, gateway: cfg.gatewayId }, 'gateway listening');

  return {
    port,
    readiness,
    async close() {
      // Stop accepting, let in-flight publishes get their acks, then tell clients to reconnect elsewhere.
      state.closing = true;
      clearInterval(expirySweep);
      uws.us_listen_socket_close(listenSocket);
      if (state.inflight > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, cfg.shutdownTimeoutMs / 2);
          state.onIdle = () => { clearTimeout(t); resolve(); };
        });
      }
      for (const ws of [...sockets]) ws.end(CLOSE_CODES.SERVICE_RESTART.code, 'server restart');
      log.info({ rooms: rooms.size() }, 'gateway closed');
    },
  };
}

const LISTEN_RETRY = backoff([100, 250, 500, 1_000, 2_000]);

/**
 * Binds the port, retrying for up to `retryMs`: this uWS build does not set SO_REUSEADDR, so a gateway restarted
 * after a crash cannot bind its port while the old process's connections sit in TIME_WAIT (60 s on Linux). Waiting
 * beats exiting into a restart loop; clients meanwhile reconnect to another gateway.
 */
async function listenWithRetry(app: TemplatedApp, host: string, port: number, retryMs: number, log: Logger): Promise<us_listen_socket> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const s = await new Promise<us_listen_socket | false>((resolve) => { app.listen(host, port, resolve); });
    if (s) return s;
    if (port === 0 || Date.now() - started >= retryMs) throw new Error(`cannot listen on ${host}:${port}`);
    if (attempt === 0) log.warn({ host, port, retryMs }, 'port busy (old connections in TIME_WAIT?); retrying');
    await new Promise((r) => setTimeout(r, LISTEN_RETRY.backoff(attempt)));
  }
}
