// One WebSocket connection's state and the ways the gateway answers it: send (closing a socket whose buffer is
// full rather than dropping a frame silently), reject (an error frame that spends the connection's budget of
// rejected frames), and waiting for room in the send buffer (replay backpressure).
import type { WebSocket } from 'uWebSockets.js';
import type { RoomAccess } from '../auth/index.js';
import { gcraStep } from '../limits/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { CLOSE_CODES, errorFrame } from '../protocol/index.js';
import type { ErrorCode, RoomId } from '../protocol/index.js';
import { ClientGoneError, StorageBusyError } from '../store/index.js';

export interface Conn {
  user: string;
  session: string;
  ip: string;
  expiresAt: number | undefined;
  /** Joined rooms: an array (at most maxRoomsPerConnection), far smaller than a Set at 100k idle connections. */
  rooms: RoomId[];
  /** Which rooms the token lets this user join (from its `rooms` claim). */
  access: RoomAccess;
  /** Resolvers waiting for room in the send buffer (replay backpressure); allocated only while a replay waits. */
  bufferWaiters: Array<() => void> | undefined;
  inflight: number;
  closed: boolean;
  /** User-Agent, bounded; stored with the session. */
  ua: string;
  /** GCRA state of the connection's budget of rejected frames (cfg.rateLimits.maxViolations, violationsPerSec). */
  rejectTat: number;
  /** History requests of this connection not answered yet. */
  historyInflight: number;
}

export type Ws = WebSocket<Conn>;

/** Codes that are the server's doing, not the client's: they do not spend the connection's rejection budget. */
const SERVER_SIDE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAVAILABLE', 'INTERNAL']);

export function removeFrom(list: RoomId[], room: RoomId): boolean {
  const i = list.indexOf(room);
  if (i >= 0) list.splice(i, 1);
  return i >= 0;
}

export interface Replies {
  send(ws: Ws, text: string): void;
  /**
   * Answers a failed request with an error frame. Every frame the client got wrong (any code but UNAVAILABLE and
   * INTERNAL) spends one unit of the connection's rejection budget; the one beyond it closes the connection with
   * 4008, so a burst of bad frames costs the gateway a bounded amount of work.
   */
  reject(ws: Ws, code: ErrorCode, message: string, ref?: string, retryAfterMs?: number): void;
  /** Storage read failures: the gate's own refusals say when to retry; a client that left gets nothing. */
  readFailed(ws: Ws, err: unknown, what: string, ref: string): void;
  /** Resolves once the socket's send buffer is below a quarter of its limit (or it closed). */
  waitForSendBuffer(ws: Ws, c: Conn): Promise<void>;
  /** The uWS `drain` event: wakes whoever waits for room in this socket's send buffer. */
  onBufferDrained(ws: Ws, c: Conn): void;
}

export function createReplies(o: {
  log: Logger;
  metrics: Metrics;
  maxBackpressureBytes: number;
  rejectRate: { perSec: number; burst: number };
}): Replies {
  const { log, metrics, rejectRate } = o;
  const lowWater = o.maxBackpressureBytes / 4;

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

  const reject = (ws: Ws, code: ErrorCode, message: string, ref?: string, retryAfterMs?: number): void => {
    metrics.framesRejected.inc({ code });
    const c = ws.getUserData();
    send(ws, errorFrame(code, message, ref, retryAfterMs));
    if (SERVER_SIDE.has(code) || c.closed) return;
    const step = gcraStep(c.rejectTat || undefined, Date.now(), rejectRate, 1);
    if (step.waitMs > 0) ws.end(CLOSE_CODES.POLICY.code, 'too many rejected frames');
    else c.rejectTat = step.tat;
  };

  const readFailed = (ws: Ws, err: unknown, what: string, ref: string): void => {
    if (err instanceof ClientGoneError) return;
    if (err instanceof StorageBusyError) return reject(ws, 'UNAVAILABLE', `${what} is busy; retry later`, ref, err.retryAfterMs);
    log.warn({ err, room: ref }, `${what} failed`);
    reject(ws, 'UNAVAILABLE', `${what} is unavailable now; retry`, ref);
  };

  // The `drain` event is the fast path; a slow re-check backs it up, because a replay waiting for an event that
  // never comes would hang the join forever (seen under load with a reader that paused and resumed).
  const waitForSendBuffer = (ws: Ws, c: Conn): Promise<void> => {
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
      (c.bufferWaiters ??= []).push(done);
    });
  };

  const onBufferDrained = (ws: Ws, c: Conn): void => {
    if (c.bufferWaiters && ws.getBufferedAmount() < lowWater) {
      const waiters = c.bufferWaiters;
      c.bufferWaiters = undefined;
      for (const w of waiters) w();
    }
  };

  return { send, reject, readFailed, waitForSendBuffer, onBufferDrained };
}
