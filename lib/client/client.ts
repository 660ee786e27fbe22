// The Parley client: one connection that reconnects by itself and makes the server's guarantees the app's. Rooms
// are rejoined with `since` = the last seq delivered, so `message` events come once each, in seq order, with no gap
// (checked with `prev`); sends not yet acknowledged are resent with the same id (the server deduplicates them).
import { CLOSE_CODES } from '../protocol/codes.js';
import type { ClientFrame, RoomId } from '../protocol/frames.js';
import type {
  ErrorFrame, HistoryPageFrame, JoinedFrame, LeftFrame, MessageFrame, PresenceFrame, RefreshedFrame, ServerFrame,
  TypingEventFrame, WelcomeFrame,
} from '../protocol/server-types.js';
import { Emitter } from './emitter.js';
import { ParleyError } from './errors.js';
import { closePolicy, reconnectDelay } from './reconnect.js';
import type { BackoffOptions, ClosePolicy } from './reconnect.js';
import { decodeServerFrame, encodeFrame, openSocket } from './transport.js';
import type { SocketLike, WebSocketConstructor } from './transport.js';

/**
 * `connecting`: the first connection is being made. `open`: connected, every room joined. `recovering`: the
 * connection was lost (or is rejoining its rooms); the client is reconnecting. `closed`: for good (`close()`, or a
 * close code that says not to reconnect).
 */
export type ConnectionState = 'connecting' | 'open' | 'recovering' | 'closed';

export interface TokenRequest {
  /** `connect`: a (re)connection; `expired`: the server closed with 4001; `refresh`: refresh() or the timer before expiry. */
  reason: 'connect' | 'expired' | 'refresh';
}

export interface ClientOptions {
  /** `ws://host/ws`; several (tried in turn when one fails) or a function that picks one per attempt. */
  url: string | string[] | (() => string);
  /** A JWT. Without `getToken`, a 4001 (expired) closes the client for good. */
  token?: string;
  /** Called for a token before every connection attempt and on refresh: return a cached one while it is valid. */
  getToken?: (req: TokenRequest) => string | Promise<string>;
  /** The WebSocket implementation: the global one by default; in Node 20 pass `ws` (or use `parley/client` in Node). */
  WebSocket?: WebSocketConstructor;
  /** Unacknowledged sends held (also while offline); one more is refused with QUEUE_FULL. Default 1,000. */
  maxQueuedSends?: number;
  /** Sends on the wire without an ack yet (the server's PARLEY_MAX_INFLIGHT is 256). Default 128. */
  maxInflight?: number;
  /** A connection without `welcome` after this long is dropped and retried (ms). Default 10,000. */
  connectTimeoutMs?: number;
  reconnect?: BackoffOptions;
  /**
   * With `getToken`, refresh the connection's token this long before it expires (ms), without reconnecting.
   * Default 30,000; 0 turns it off.
   */
  refreshBeforeExpiryMs?: number;
  /**
   * Follow the browser's `offline` / `online` events: drop the connection when the network goes away (a browser may
   * keep a dead socket open for minutes) and reconnect at once when it is back. Default: on where they exist.
   */
  followNetwork?: boolean;
}

export interface JoinOptions {
  /** The last seq the app has of this room: the server first replays everything after it. */
  since?: number;
}

export interface SendOptions {
  mentions?: string[];
  /** Your own message id ([A-Za-z0-9_-]{1,64}); a random UUID by default. */
  id?: string;
}

export interface SendResult {
  id: string;
  seq: number;
  /** The server had stored this id already (a resend after a reconnect). */
  duplicate: boolean;
}

export interface HistoryOptions {
  /** Messages before this seq (a page's `next`); the newest without it. */
  before?: number;
  limit?: number;
}

/** Recovery could not replay everything (more than the server's PARLEY_RECOVERY_MAX_MESSAGES): page history for (from, to]. */
export interface ResetEvent { room: RoomId; from: number; to: number }

export interface ClientEvents {
  message: MessageFrame;
  presence: PresenceFrame;
  typing: TypingEventFrame;
  state: ConnectionState;
  error: ParleyError;
  welcome: WelcomeFrame;
  joined: JoinedFrame;
  /** The server left a room for you (`reason: "forbidden"` after a refresh to a token without it). */
  left: LeftFrame;
  reset: ResetEvent;
  /** A connection (or an attempt) ended; `retryInMs`: when the next attempt starts (undefined: none scheduled). */
  disconnect: DisconnectEvent;
}

export interface DisconnectEvent { code: number; reason: string; retryInMs: number | undefined }

interface Waiter<T> { resolve(v: T): void; reject(e: ParleyError): void }

interface RoomState {
  /** The last seq delivered to the app (or given as `since`); the `since` of the next (re)join. */
  last: number | undefined;
  /** Joined on the current connection (`joined` received). */
  joined: boolean;
  /** A join frame is on the current connection, unanswered. */
  joining: boolean;
  waiters: Waiter<JoinedFrame>[];
  retryTimer: ReturnType<typeof setTimeout> | undefined;
}

interface PendingSend extends Waiter<SendResult> {
  frame: Extract<ClientFrame, { type: 'send' }>;
  /** On the current connection's wire, waiting for its ack. */
  wired: boolean;
  /** Held back until this time after UNAVAILABLE / RATE_LIMITED. */
  notBefore: number;
}

interface HistoryRequest extends Waiter<HistoryPageFrame> {
  frame: Extract<ClientFrame, { type: 'history' }>;
  wired: boolean;
}

/** Errors after which the same request may succeed later: it is retried, not failed. */
const RETRYABLE = new Set(['UNAVAILABLE', 'RATE_LIMITED']);
const LOCAL_CLOSE = 4000;

export class ParleyClient extends Emitter<ClientEvents> {
  private readonly WS: WebSocketConstructor;
  private readonly urlOf: (attempt: number) => string;
  private readonly rooms = new Map<RoomId, RoomState>();
  private readonly sends = new Map<string, PendingSend>();
  private readonly histories = new Map<RoomId, HistoryRequest[]>();
  private readonly typingAt = new Map<RoomId, number>();
  private sock: SocketLike | undefined;
  private welcomed = false;
  private st: ConnectionState = 'connecting';
  /** Whether the first `connecting` was emitted: on the microtask after the constructor, so listeners added then see it. */
  private announced = false;
  private everOpen = false;
  private attempt = 0;
  private urlIndex = 0;
  private wired = 0;
  private token: string | undefined;
  private nextTokenReason: TokenRequest['reason'] = 'connect';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Waiter<RefreshedFrame> | undefined;
  private sendTimer: ReturnType<typeof setTimeout> | undefined;
  private offline = false;
  private stopNetwork: (() => void) | undefined;
  private closedWith: ParleyError | undefined;
  /** The user and session of the current connection (after `welcome`). */
  user: string | undefined;
  session: string | undefined;

  constructor(private readonly o: ClientOptions) {
    super();
    const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket implementation: pass options.WebSocket (e.g. `ws` in Node 20)');
    if (o.token === undefined && o.getToken === undefined) throw new TypeError('give options.token or options.getToken');
    this.WS = WS;
    this.token = o.token;
    const { url } = o;
    const urls = typeof url === 'string' ? [url] : Array.isArray(url) ? url : undefined;
    if (urls && urls.length === 0) throw new TypeError('options.url is empty');
    this.urlOf = urls ? () => urls[this.urlIndex++ % urls.length]! : url as () => string;
    if (o.followNetwork ?? hasNetworkEvents()) this.followNetwork();
    this.connectNow();
    queueMicrotask(() => this.announce());
  }

  get state(): ConnectionState {
    return this.st;
  }

  /** The last seq delivered to the app in `room` (the `since` the client will recover from). */
  lastSeq(room: RoomId): number | undefined {
    return this.rooms.get(room)?.last;
  }

  /** Joins a room (and keeps it joined across reconnects). Resolves with the first `joined` frame. */
  join(room: RoomId, opts: JoinOptions = {}): Promise<JoinedFrame> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    let r = this.rooms.get(room);
    if (r && !r.joining && r.joined) return Promise.reject(new ParleyError('BAD_FRAME', 'already joined', room));
    if (!r) {
      r = { last: opts.since, joined: false, joining: false, waiters: [], retryTimer: undefined };
      this.rooms.set(room, r);
    }
    const room1 = r;
    const p = new Promise<JoinedFrame>((resolve, reject) => room1.waiters.push({ resolve, reject }));
    if (this.welcomed && !r.joining) this.sendJoin(room, r);
    return p;
  }

  /** Leaves a room: its unacknowledged sends fail with UNKNOWN_ROOM, and it is not rejoined. */
  leave(room: RoomId): void {
    const r = this.rooms.get(room);
    if (!r) return;
    this.dropRoom(room, r, new ParleyError('UNKNOWN_ROOM', 'left the room', room));
    if (this.welcomed && (r.joined || r.joining)) this.write({ type: 'leave', room });
  }

  /**
   * Sends a message; resolves once the server stored it (its `seq`), however many reconnects that takes: until
   * then it is kept (at most `maxQueuedSends`) and resent with the same id, so it is stored and delivered once.
   */
  send(room: RoomId, body: string, opts: SendOptions = {}): Promise<SendResult> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (!this.rooms.has(room)) return Promise.reject(new ParleyError('UNKNOWN_ROOM', 'join the room before sending to it', room));
    if (this.sends.size >= (this.o.maxQueuedSends ?? 1_000)) {
      return Promise.reject(new ParleyError('QUEUE_FULL', 'too many unacknowledged sends', room));
    }
    const id = opts.id ?? newId();
    if (this.sends.has(id)) return Promise.reject(new ParleyError('BAD_FRAME', 'a send with this id is pending', id));
    const frame: PendingSend['frame'] = { type: 'send', room, id, body };
    if (opts.mentions) frame.mentions = opts.mentions;
    return new Promise<SendResult>((resolve, reject) => {
      this.sends.set(id, { frame, resolve, reject, wired: false, notBefore: 0 });
      this.pump();
    });
  }

  /** Tells the room you are typing; at most one signal a second per room, dropped while disconnected. */
  typing(room: RoomId): void {
    const now = Date.now();
    if (!this.rooms.get(room)?.joined || now - (this.typingAt.get(room) ?? 0) < 1_000) return;
    this.typingAt.set(room, now);
    this.write({ type: 'typing', room });
  }

  /** A page of stored messages, newest first (pass `next` as `before` for the one before it). Waits for a connection. */
  history(room: RoomId, opts: HistoryOptions = {}): Promise<HistoryPageFrame> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const frame: HistoryRequest['frame'] = { type: 'history', room };
    if (opts.before !== undefined) frame.before = opts.before;
    if (opts.limit !== undefined) frame.limit = opts.limit;
    return new Promise<HistoryPageFrame>((resolve, reject) => {
      const q = this.histories.get(room) ?? [];
      this.histories.set(room, q);
      q.push({ frame, resolve, reject, wired: false });
      if (q.length === 1) this.pumpHistory(room);
    });
  }

  /** Swaps in a new token (given, or from getToken) without reconnecting; resolves with the `refreshed` frame. */
  async refresh(token?: string): Promise<RefreshedFrame> {
    if (this.closedWith) throw this.closedWith;
    const t = token ?? (this.o.getToken ? await this.o.getToken({ reason: 'refresh' }) : undefined);
    if (t === undefined) throw new ParleyError('UNAUTHORIZED', 'no token to refresh with (give one, or options.getToken)');
    this.token = t;
    if (!this.welcomed) throw new ParleyError('UNAVAILABLE', 'not connected: the next connection uses the new token');
    if (this.refreshing) throw new ParleyError('RATE_LIMITED', 'a refresh is in flight');
    return new Promise<RefreshedFrame>((resolve, reject) => {
      this.refreshing = { resolve, reject };
      this.write({ type: 'refresh', token: t });
    });
  }

  /** Closes the connection for good; everything pending fails with CLOSED. */
  async close(): Promise<void> {
    if (this.closedWith) return;
    this.finish(new ParleyError('CLOSED', 'client closed', undefined, 1000));
    const s = this.sock;
    this.sock = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2_000);
      s.onclose = () => {
        clearTimeout(t);
        resolve();
      };
      s.onerror = () => undefined;
      s.onmessage = null;
      try {
        s.close(1000, 'client closed');
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  // ---- connection -------------------------------------------------------------------------------------------

  /**
   * One state event per change: `connecting` first (before any other, also when the state moved on before the
   * constructor's microtask), `open`, one `recovering` per lost connection however many attempts it takes, `closed`.
   */
  private setState(s: ConnectionState): void {
    if (this.st === s) return;
    this.announce();
    this.st = s;
    this.emit('state', s);
  }

  private announce(): void {
    if (this.announced) return;
    this.announced = true;
    this.emit('state', 'connecting');
  }

  private connectNow(): void {
    void this.connect().catch((err: unknown) => {
      // getToken threw or the constructor of the socket did: count it as a failed attempt.
      this.emit('error', err instanceof ParleyError ? err : new ParleyError('UNAVAILABLE', 'connection attempt failed', undefined, undefined, { cause: err }));
      this.scheduleReconnect('now');
    });
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.closedWith || this.sock || this.offline) return;
    this.setState(this.everOpen ? 'recovering' : 'connecting');
    if (this.o.getToken) {
      this.token = await this.o.getToken({ reason: this.nextTokenReason });
      this.nextTokenReason = 'connect';
      if (this.closedWith || this.sock || this.offline) return;
    }
    const s = openSocket(this.WS, this.urlOf(this.attempt), this.token!);
    this.sock = s;
    this.welcomed = false;
    this.connectTimer = setTimeout(() => this.drop(s, LOCAL_CLOSE, 'no welcome in time'), this.o.connectTimeoutMs ?? 10_000);
    s.onmessage = (ev) => {
      const f = decodeServerFrame(ev.data);
      if (f) this.onFrame(f);
    };
    s.onclose = (ev) => this.onClose(s, ev.code, ev.reason);
    s.onerror = () => undefined; // a close follows, with the code that matters
  }

  /** Stops using a socket at once (its close handshake may never finish on a dead network) and handles the loss. */
  private drop(s: SocketLike, code: number, reason: string): void {
    if (this.sock !== s) return;
    s.onclose = null;
    s.onmessage = null;
    try {
      s.close(LOCAL_CLOSE, reason);
    } catch {
      // already closing
    }
    this.onClose(s, code, reason);
  }

  private onClose(s: SocketLike, code: number, reason: string): void {
    if (this.sock !== s) return;
    this.sock = undefined;
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.sendTimer);
    const wasWelcomed = this.welcomed;
    this.welcomed = false;
    this.wired = 0;
    for (const p of this.sends.values()) p.wired = false;
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.joining = false;
      clearTimeout(r.retryTimer);
    }
    for (const q of this.histories.values()) if (q[0]) q[0].wired = false;
    if (this.refreshing) {
      this.refreshing.reject(new ParleyError('UNAVAILABLE', 'connection lost during refresh; the next connection uses the new token'));
      this.refreshing = undefined;
    }
    if (this.closedWith) return;
    if (wasWelcomed) this.attempt = 0;
    let policy: ClosePolicy = closePolicy(code);
    if (code === LOCAL_CLOSE) policy = 'now';
    if (policy === 'token' && !this.o.getToken) policy = 'stop';
    if (policy === 'stop') {
      this.emit('disconnect', { code, reason, retryInMs: undefined });
      this.finish(new ParleyError(code === CLOSE_CODES.TOKEN_EXPIRED.code ? 'UNAUTHORIZED' : code === CLOSE_CODES.FORBIDDEN.code ? 'FORBIDDEN' : 'CLOSED',
        `closed by the server: ${code}${reason ? ` ${reason}` : ''}`, undefined, code));
      return;
    }
    if (policy === 'token') this.nextTokenReason = 'expired';
    this.setState(this.everOpen ? 'recovering' : 'connecting');
    this.emit('disconnect', { code, reason, retryInMs: this.scheduleReconnect(policy) });
  }

  /** Schedules the next attempt; returns its delay, or undefined when none is scheduled (closed, offline). */
  private scheduleReconnect(policy: ClosePolicy): number | undefined {
    if (this.closedWith || this.timer || this.offline) return undefined;
    const delay = reconnectDelay(this.attempt++, policy, this.o.reconnect);
    this.timer = setTimeout(() => this.connectNow(), delay);
    return delay;
  }

  /** Fails everything pending and stops for good. */
  private finish(err: ParleyError): void {
    this.closedWith = err;
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.sendTimer);
    this.stopNetwork?.();
    for (const [room, r] of this.rooms) this.dropRoom(room, r, err);
    for (const q of this.histories.values()) for (const h of q) h.reject(err);
    this.histories.clear();
    this.refreshing?.reject(err);
    this.refreshing = undefined;
    if (err.closeCode !== 1000) this.emit('error', err);
    this.setState('closed');
  }

  private followNetwork(): void {
    const g = globalThis as unknown as { addEventListener(t: string, f: () => void): void; removeEventListener(t: string, f: () => void): void };
    const down = (): void => {
      this.offline = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      if (this.sock) this.drop(this.sock, LOCAL_CLOSE, 'offline');
      else if (!this.closedWith) this.setState(this.everOpen ? 'recovering' : 'connecting');
    };
    const up = (): void => {
      this.offline = false;
      this.attempt = 0;
      clearTimeout(this.timer);
      this.timer = undefined;
      if (!this.sock) this.connectNow();
    };
    g.addEventListener('offline', down);
    g.addEventListener('online', up);
    this.stopNetwork = () => {
      g.removeEventListener('offline', down);
      g.removeEventListener('online', up);
    };
  }

  private write(f: ClientFrame): boolean {
    if (!this.sock || !this.welcomed) return false;
    this.sock.send(encodeFrame(f));
    return true;
  }

  // ---- frames -----------------------------------------------------------------------------------------------

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'message': return this.onMessage(f);
      case 'ack': {
        const p = this.sends.get(f.id);
        if (!p) return;
        this.sends.delete(f.id);
        if (p.wired) this.wired--;
        p.resolve({ id: f.id, seq: f.seq, duplicate: f.duplicate });
        return this.pump();
      }
      case 'joined': return this.onJoined(f);
      case 'welcome': return this.onWelcome(f);
      case 'presence': return this.emit('presence', f);
      case 'typing': return this.emit('typing', f);
      case 'history': {
        const q = this.histories.get(f.room);
        const h = q?.shift();
        if (!h) return;
        h.resolve(f);
        return this.pumpHistory(f.room);
      }
      case 'left': {
        const r = this.rooms.get(f.room);
        if (!r || f.reason === undefined) return; // the answer to our own leave
        this.dropRoom(f.room, r, new ParleyError('FORBIDDEN', `left by the server: ${f.reason}`, f.room));
        return this.emit('left', f);
      }
      case 'refreshed': {
        const w = this.refreshing;
        this.refreshing = undefined;
        this.scheduleRefresh();
        w?.resolve(f);
        return;
      }
      case 'error': return this.onError(f);
    }
  }

  private onWelcome(f: WelcomeFrame): void {
    clearTimeout(this.connectTimer);
    this.welcomed = true;
    this.user = f.user;
    this.session = f.session;
    this.emit('welcome', f);
    for (const [room, r] of this.rooms) this.sendJoin(room, r);
    for (const room of this.histories.keys()) this.pumpHistory(room);
    this.scheduleRefresh();
    this.checkOpen();
  }

  private sendJoin(room: RoomId, r: RoomState): void {
    r.joining = true;
    this.write(r.last === undefined ? { type: 'join', room } : { type: 'join', room, since: r.last });
  }

  private onJoined(f: JoinedFrame): void {
    const r = this.rooms.get(f.room);
    if (!r) return;
    r.joining = false;
    r.joined = true;
    if (r.last === undefined) {
      r.last = f.seq; // a fresh join starts at the room's head
    } else if (!f.recovered && f.seq > r.last) {
      const ev: ResetEvent = { room: f.room, from: r.last, to: f.seq };
      r.last = f.seq;
      this.emit('reset', ev);
    }
    const waiters = r.waiters.splice(0);
    for (const w of waiters) w.resolve(f);
    this.emit('joined', f);
    this.pump();
    this.pumpHistory(f.room);
    this.checkOpen();
  }

  private onMessage(f: MessageFrame): void {
    const r = this.rooms.get(f.room);
    if (!r || (!r.joined && !r.joining)) return;
    if (r.last !== undefined && f.seq <= r.last) return; // already delivered (a replay overlapping live ones)
    if (r.last !== undefined && f.prev !== r.last) {
      // A hole: a message between the last delivered one and this one never came. Reconnecting recovers it with
      // `since`, before anything after it is delivered.
      this.emit('error', new ParleyError('INTERNAL', `gap in ${f.room}: got ${f.seq} after ${r.last} (prev ${f.prev}); recovering`, f.room));
      if (this.sock) this.drop(this.sock, LOCAL_CLOSE, 'gap');
      return;
    }
    r.last = f.seq;
    this.emit('message', f);
  }

  private onError(f: ErrorFrame): void {
    const ref = f.ref;
    const p = ref === undefined ? undefined : this.sends.get(ref);
    if (p && p.wired) {
      p.wired = false;
      this.wired--;
      if (RETRYABLE.has(f.code) || (f.code === 'UNKNOWN_ROOM' && this.rooms.has(p.frame.room))) {
        // Not stored: the same id again later is safe. UNKNOWN_ROOM: the send overtook a rejoin that failed.
        p.notBefore = Date.now() + (f.retryAfterMs ?? reconnectDelay(0, 'now', this.o.reconnect));
        this.armSendTimer(p.notBefore);
      } else {
        this.sends.delete(ref!);
        p.reject(new ParleyError(f.code, f.message, ref));
      }
      return this.pump();
    }
    const r = ref === undefined ? undefined : this.rooms.get(ref);
    if (r && r.joining) {
      r.joining = false;
      if (RETRYABLE.has(f.code) && f.code !== 'RATE_LIMITED') {
        r.retryTimer = setTimeout(() => {
          if (this.welcomed && this.rooms.get(ref!) === r) this.sendJoin(ref!, r);
        }, f.retryAfterMs ?? reconnectDelay(0, 'now', this.o.reconnect));
        return;
      }
      return this.dropRoom(ref!, r, new ParleyError(f.code, f.message, ref));
    }
    const q = ref === undefined ? undefined : this.histories.get(ref);
    if (q?.[0]?.wired) {
      const h = q[0];
      h.wired = false;
      if (RETRYABLE.has(f.code)) {
        setTimeout(() => this.pumpHistory(ref!), f.retryAfterMs ?? reconnectDelay(0, 'now', this.o.reconnect));
        return;
      }
      q.shift();
      h.reject(new ParleyError(f.code, f.message, ref));
      return this.pumpHistory(ref!);
    }
    if (this.refreshing && (f.code === 'UNAUTHORIZED' || f.code === 'FORBIDDEN') && ref === undefined) {
      const w = this.refreshing;
      this.refreshing = undefined;
      return w.reject(new ParleyError(f.code, f.message));
    }
    this.emit('error', new ParleyError(f.code, f.message, ref));
  }

  private dropRoom(room: RoomId, r: RoomState, err: ParleyError): void {
    this.rooms.delete(room);
    clearTimeout(r.retryTimer);
    for (const w of r.waiters.splice(0)) w.reject(err);
    for (const [id, p] of this.sends) {
      if (p.frame.room !== room) continue;
      this.sends.delete(id);
      if (p.wired) this.wired--;
      p.reject(err);
    }
    this.checkOpen();
  }

  private checkOpen(): void {
    if (!this.welcomed || this.closedWith) return;
    for (const r of this.rooms.values()) if (r.joining) return;
    this.everOpen = true;
    this.setState('open');
  }

  /**
   * Puts sends on the wire in order, for joined rooms, up to maxInflight unacknowledged. One held back (after
   * UNAVAILABLE / RATE_LIMITED) re-arms the timer: it may have fired a little early, or been cleared by a reconnect.
   */
  private pump(): void {
    if (!this.welcomed) return;
    const max = this.o.maxInflight ?? 128;
    const now = Date.now();
    let wake = Infinity;
    for (const p of this.sends.values()) {
      if (this.wired >= max) return;
      if (p.wired || !this.rooms.get(p.frame.room)?.joined) continue;
      if (p.notBefore > now) {
        wake = Math.min(wake, p.notBefore);
        continue;
      }
      p.wired = true;
      this.wired++;
      this.write(p.frame);
    }
    if (wake !== Infinity) this.armSendTimer(wake);
  }

  private armSendTimer(at: number): void {
    clearTimeout(this.sendTimer);
    this.sendTimer = setTimeout(() => this.pump(), Math.max(0, at - Date.now()));
  }

  private pumpHistory(room: RoomId): void {
    const h = this.histories.get(room)?.[0];
    if (!h) {
      this.histories.delete(room);
      return;
    }
    // Not while the room's join is unanswered: an error frame names only the room, so it must be clear whose it is.
    if (h.wired || !this.welcomed || this.rooms.get(room)?.joining) return;
    h.wired = this.write(h.frame);
  }

  /** With getToken: refresh before the current token expires, so a long session is never cut with 4001. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const lead = this.o.refreshBeforeExpiryMs ?? 30_000;
    const exp = this.token ? tokenExpiry(this.token) : undefined;
    if (!this.o.getToken || lead <= 0 || exp === undefined) return;
    const delay = Math.max(1_000, exp - lead - Date.now());
    if (delay > 2 ** 31 - 1) return;
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        this.emit('error', err instanceof ParleyError ? err : new ParleyError('UNAUTHORIZED', 'token refresh failed', undefined, undefined, { cause: err }));
      });
    }, delay);
  }
}

/** `exp` of a JWT in ms, or undefined (the client never verifies a token: it only schedules its refresh). */
function tokenExpiry(jwt: string): number | undefined {
  try {
    const part = jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(part)) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function hasNetworkEvents(): boolean {
  const g = globalThis as { addEventListener?: unknown; navigator?: { onLine?: unknown } };
  return typeof g.addEventListener === 'function' && typeof g.navigator?.onLine === 'boolean';
}

/** A message id: a UUID (crypto.randomUUID needs a secure context in browsers; getRandomValues does not). */
export function newId(): string {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === 'function') return c.randomUUID();
  return Array.from(c.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
