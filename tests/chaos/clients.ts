// The chaos suite's clients, speaking protocol v1 over `ws` the way a careful client would:
// - a Sender posts unique ids and resends the SAME id until it gets an `ack` (after UNAVAILABLE/INTERNAL, after no
//   answer in time, after any disconnect: reconnect alternating gateways, re-join, resend everything unacked);
// - a Receiver tracks the last seq of its room, checks every `message` against it (duplicate: seq <= last; hole:
//   prev !== last), and after any disconnect reconnects and recovers with `join {room, since: last}`.
// Both record everything with timestamps; the audit compares it with the stream and MongoDB afterwards.
import WebSocket from 'ws';
import { token } from '../harness/parley.js';

interface Frame {
  type: string;
  [k: string]: unknown;
}

const WELCOME_TIMEOUT_MS = 5_000;
const HANDSHAKE_TIMEOUT_MS = 3_000;
/** A sticky receiver whose gateway stays unreachable this long tries the other one. */
const STICKY_GIVE_UP_MS = 10_000;
/** A `join` without `joined` or `error` this long: the connection is dropped and the client reconnects. */
const JOIN_TIMEOUT_MS = 15_000;

function backoffMs(failures: number): number {
  return Math.min(1_000, 50 * 2 ** failures);
}

function parse(data: WebSocket.RawData): Frame | undefined {
  try {
    const f = JSON.parse(String(data)) as Frame;
    return typeof f === 'object' && f !== null && typeof f.type === 'string' ? f : undefined;
  } catch {
    return undefined;
  }
}

export interface CloseRecord {
  at: number;
  code: number;
  reason: string;
  gateway: number;
  /** The connection never got its `welcome` (refused, or the gateway was down). */
  failedConnect: boolean;
}

/** A WebSocket with `welcome` handling and a close callback; used by both client kinds. */
class Conn {
  readonly ws: WebSocket;
  welcomed = false;
  private welcomeTimer: NodeJS.Timeout;

  constructor(url: string, user: string, onFrame: (f: Frame) => void, onClose: (code: number, reason: string, welcomed: boolean) => void) {
    this.ws = new WebSocket(url, { headers: { authorization: `Bearer ${token(user)}` }, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.welcomeTimer = setTimeout(() => this.ws.terminate(), HANDSHAKE_TIMEOUT_MS + WELCOME_TIMEOUT_MS);
    this.ws.on('error', () => undefined); // reported through 'close'
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const f = parse(data);
      if (!f) return;
      if (f.type === 'welcome') {
        this.welcomed = true;
        clearTimeout(this.welcomeTimer);
      }
      onFrame(f);
    });
    this.ws.on('close', (code, reason) => {
      clearTimeout(this.welcomeTimer);
      onClose(code, reason.toString(), this.welcomed);
    });
  }

  send(frame: Record<string, unknown>): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Closes (1000) and resolves when closed; terminates if the close handshake does not finish. */
  async close(): Promise<void> {
    clearTimeout(this.welcomeTimer);
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000);
    const t = setTimeout(() => this.ws.terminate(), 1_000);
    await closed;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------------------------------

export interface SentRecord {
  id: string;
  room: string;
  body: string;
  created: number;
  attempts: number;
  /** When it may be sent (again): 0 = as soon as the room is joined on an open connection. */
  retryAt: number;
  ackSeq?: number;
  ackAt?: number;
  /** Acks for this id with a seq other than ackSeq: a duplicate. */
  conflictingSeqs: number[];
  /** Terminal refusal (BAD_FRAME, TOO_LARGE): never acked, never resent. */
  rejected?: string;
}

export interface SenderOptions {
  user: string;
  rooms: string[];
  /** The gateways' current URLs (a gateway restarted on another port gets a new one). */
  urls: () => string[];
  firstGateway: number;
  /** Messages per second of this sender. */
  rate: number;
  maxInflight: number;
  answerTimeoutMs: number;
  idPrefix: string;
  random: () => number;
  /** Every ack (also repeated ones) at time `at`. */
  onAck: (at: number) => void;
}

export class Sender {
  readonly records = new Map<string, SentRecord>();
  private readonly unacked = new Map<string, SentRecord>();
  readonly closes: CloseRecord[] = [];
  readonly errors: Record<string, number> = {};
  readonly unexpected: string[] = [];
  /** Send slots skipped because maxInflight messages were unacknowledged. */
  skipped = 0;
  connects = 0;
  private conn: Conn | undefined;
  private gateway: number;
  private joined = new Set<string>();
  private failures = 0;
  private generated = 0;
  private loadStart = 0;
  private loadTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private joinTimers = new Set<NodeJS.Timeout>();
  private shut = false;
  private seqNo = 0;

  constructor(private readonly o: SenderOptions) {
    this.gateway = o.firstGateway;
  }

  get user(): string {
    return this.o.user;
  }

  get unackedCount(): number {
    return this.unacked.size;
  }

  get connected(): boolean {
    return this.conn?.welcomed === true && this.joined.size === this.o.rooms.length;
  }

  /** Connects and waits until every room is joined (throws after `timeoutMs`). */
  async open(timeoutMs = 20_000): Promise<void> {
    this.connect();
    this.sweepTimer = setInterval(() => this.sweep(), 50);
    const until = Date.now() + timeoutMs;
    while (!this.connected) {
      if (Date.now() > until) throw new Error(`sender ${this.o.user} could not join its rooms within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  startLoad(): void {
    this.loadStart = Date.now();
    this.loadTimer = setInterval(() => this.generate(), 20);
  }

  /** No new messages from now on; unacked ones are still resent until acked. */
  stopLoad(): void {
    clearInterval(this.loadTimer);
    this.loadTimer = undefined;
  }

  async close(): Promise<void> {
    this.shut = true;
    this.stopLoad();
    clearInterval(this.sweepTimer);
    clearTimeout(this.reconnectTimer);
    for (const t of this.joinTimers) clearTimeout(t);
    await this.conn?.close();
  }

  /** Sends one message now (outside the load schedule), e.g. a marker. */
  post(room: string, id: string, body: string): void {
    const rec: SentRecord = { id, room, body, created: Date.now(), attempts: 0, retryAt: 0, conflictingSeqs: [] };
    this.records.set(id, rec);
    this.unacked.set(id, rec);
    this.trySend(rec);
  }

  private generate(): void {
    const due = Math.floor(((Date.now() - this.loadStart) * this.o.rate) / 1000);
    while (this.generated < due) {
      this.generated++;
      if (this.unacked.size >= this.o.maxInflight) {
        this.skipped++;
        continue;
      }
      const room = this.o.rooms[Math.floor(this.o.random() * this.o.rooms.length)]!;
      const id = `${this.o.idPrefix}${(this.seqNo++).toString(36)}`;
      const body = `m ${id} `.padEnd(16 + Math.floor(this.o.random() * 200), 'x');
      this.post(room, id, body);
    }
  }

  private trySend(rec: SentRecord): void {
    if (!this.conn?.welcomed || !this.joined.has(rec.room)) return;
    if (!this.conn.send({ type: 'send', room: rec.room, id: rec.id, body: rec.body })) return;
    rec.attempts++;
    rec.retryAt = Date.now() + this.o.answerTimeoutMs;
  }

  private sweep(): void {
    const now = Date.now();
    for (const rec of this.unacked.values()) {
      if (rec.retryAt <= now) this.trySend(rec);
    }
  }

  private connect(): void {
    if (this.shut) return;
    this.connects++;
    const gateway = this.gateway;
    const conn: Conn = new Conn(this.o.urls()[gateway]!, this.o.user, (f) => this.onFrame(conn, f), (code, reason, welcomed) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.joined.clear();
      for (const rec of this.unacked.values()) rec.retryAt = 0; // resend everything unacked on the next connection
      this.closes.push({ at: Date.now(), code, reason, gateway, failedConnect: !welcomed });
      if (this.shut) return;
      this.failures = welcomed ? 0 : this.failures + 1;
      this.gateway = (this.gateway + 1) % this.o.urls().length; // senders alternate gateways
      this.reconnectTimer = setTimeout(() => this.connect(), backoffMs(this.failures));
    });
    this.conn = conn;
  }

  private join(conn: Conn, room: string): void {
    if (this.conn !== conn) return;
    conn.send({ type: 'join', room });
    const t = setTimeout(() => {
      this.joinTimers.delete(t);
      if (this.conn !== conn || this.joined.has(room)) return;
      this.unexpected.push(`join ${room}: no joined within ${JOIN_TIMEOUT_MS} ms; reconnecting`);
      conn.ws.terminate();
    }, JOIN_TIMEOUT_MS);
    this.joinTimers.add(t);
  }

  private onFrame(conn: Conn, f: Frame): void {
    if (this.conn !== conn) return;
    switch (f.type) {
      case 'welcome':
        for (const room of this.o.rooms) this.join(conn, room);
        return;
      case 'joined':
        this.joined.add(String(f.room));
        for (const rec of this.unacked.values()) if (rec.room === f.room && rec.retryAt === 0) this.trySend(rec);
        return;
      case 'ack': {
        const rec = this.records.get(String(f.id));
        const seq = Number(f.seq);
        this.o.onAck(Date.now());
        if (!rec) {
          this.unexpected.push(`ack for unknown id ${String(f.id)}`);
          return;
        }
        if (rec.ackSeq === undefined) {
          rec.ackSeq = seq;
          rec.ackAt = Date.now();
          this.unacked.delete(rec.id);
        } else if (rec.ackSeq !== seq && !rec.conflictingSeqs.includes(seq)) {
          rec.conflictingSeqs.push(seq);
        }
        return;
      }
      case 'error': {
        const code = String(f.code);
        this.errors[code] = (this.errors[code] ?? 0) + 1;
        const ref = typeof f.ref === 'string' ? f.ref : undefined;
        const rec = ref === undefined ? undefined : this.unacked.get(ref);
        if (rec) {
          if (code === 'UNAVAILABLE' || code === 'INTERNAL') rec.retryAt = Date.now() + 150 + Math.floor(this.o.random() * 150);
          else if (code === 'RATE_LIMITED') rec.retryAt = Date.now() + Math.max(50, Number(f.retryAfterMs) || 250);
          else if (code === 'UNKNOWN_ROOM') {
            // Not joined on this connection after all: join again, then resend.
            this.joined.delete(rec.room);
            rec.retryAt = 0;
            this.join(conn, rec.room);
          } else {
            rec.rejected = code;
            this.unacked.delete(rec.id);
            this.unexpected.push(`${code} for ${rec.id}: ${String(f.message)}`);
          }
          return;
        }
        if (ref !== undefined && this.o.rooms.includes(ref) && code === 'BAD_FRAME' && /already joined/.test(String(f.message))) {
          this.joined.add(ref);
          return;
        }
        if (ref !== undefined && this.o.rooms.includes(ref)) {
          // A join refused (UNAVAILABLE while a backing service is down): try again shortly.
          const t = setTimeout(() => {
            this.joinTimers.delete(t);
            this.join(conn, ref);
          }, 300);
          this.joinTimers.add(t);
          return;
        }
        if (ref === undefined || !this.records.has(ref)) this.unexpected.push(`error ${code} ref=${String(ref)}: ${String(f.message)}`);
        return;
      }
      default:
        return; // message, presence, typing: not the sender's business
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------

export interface Delivery {
  seq: number;
  prev: number;
  /** The message's own ts (the gateway's accept time). */
  ts: number;
  at: number;
  /** Received before `joined` on its connection (a replay), not live. */
  replay: boolean;
  conn: number;
  gateway: number;
}

export interface Anomaly {
  kind: 'duplicate' | 'hole' | 'join-gap';
  seq: number;
  /** The receiver's last seq before this message. */
  last: number;
  /** prev of the message (hole), or joined.seq (join-gap). */
  got: number;
  at: number;
  replay: boolean;
  conn: number;
  gateway: number;
}

export interface JoinRecord {
  at: number;
  gateway: number;
  conn: number;
  since: number | undefined;
  seq: number;
  recovered: boolean;
  replayed: number;
  /** The receiver's last seq after the replay. */
  lastAfter: number;
}

export interface ReceiverOptions {
  name: string;
  room: string;
  /** The gateways' current URLs (a gateway restarted on another port gets a new one). */
  urls: () => string[];
  home: number;
  /** Sticky receivers come back to their gateway (retrying while it is down); others switch to the other one. */
  sticky: boolean;
}

export class Receiver {
  start = -1;
  last = -1;
  readonly deliveries: Delivery[] = [];
  readonly anomalies: Anomaly[] = [];
  readonly joins: JoinRecord[] = [];
  readonly recoveredFalse: JoinRecord[] = [];
  readonly joinErrors: Array<{ at: number; code: string; message: string; since: number }> = [];
  readonly closes: CloseRecord[] = [];
  readonly unexpected: string[] = [];
  connects = 0;
  private conn: Conn | undefined;
  private connNo = 0;
  private gateway: number;
  private inJoin = false;
  private joinAttempt = 0;
  private isJoined = false;
  private joinSince: number | undefined;
  private failures = 0;
  /** Since when connecting has failed (0: connected). */
  private downSince = 0;
  private shut = false;
  private timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: ReceiverOptions) {
    this.gateway = o.home;
  }

  get name(): string {
    return this.o.name;
  }

  get room(): string {
    return this.o.room;
  }

  get home(): number {
    return this.o.home;
  }

  get sticky(): boolean {
    return this.o.sticky;
  }

  get joined(): boolean {
    return this.isJoined;
  }

  get currentGateway(): number {
    return this.gateway;
  }

  async open(timeoutMs = 20_000): Promise<void> {
    this.connect();
    const until = Date.now() + timeoutMs;
    while (!this.isJoined) {
      if (Date.now() > until) throw new Error(`receiver ${this.o.name} could not join within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.shut = true;
    for (const t of this.timers) clearTimeout(t);
    await this.conn?.close();
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private connect(): void {
    if (this.shut) return;
    this.connects++;
    const n = ++this.connNo;
    const gateway = this.gateway;
    const conn: Conn = new Conn(this.o.urls()[gateway]!, `rcv-${this.o.name}`, (f) => this.onFrame(conn, n, f), (code, reason, welcomed) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.isJoined = false;
      this.inJoin = false;
      this.closes.push({ at: Date.now(), code, reason, gateway, failedConnect: !welcomed });
      if (this.shut) return;
      if (welcomed) {
        this.failures = 0;
        this.downSince = 0;
      } else {
        this.failures++;
        this.downSince ||= Date.now();
      }
      // Sticky receivers wait for their gateway to come back, and give up on it only after STICKY_GIVE_UP_MS.
      const giveUp = this.downSince > 0 && Date.now() - this.downSince > STICKY_GIVE_UP_MS;
      if (!this.o.sticky || giveUp) this.gateway = (this.gateway + 1) % this.o.urls().length;
      this.later(backoffMs(this.failures), () => this.connect());
    });
    this.conn = conn;
  }

  private sendJoin(conn: Conn): void {
    if (this.conn !== conn || this.isJoined) return;
    this.inJoin = true;
    this.joinSince = this.last >= 0 ? this.last : undefined;
    const attempt = ++this.joinAttempt;
    this.later(JOIN_TIMEOUT_MS, () => {
      if (this.conn !== conn || this.joinAttempt !== attempt || !this.inJoin) return;
      this.joinErrors.push({ at: Date.now(), code: 'TIMEOUT', message: `no joined within ${JOIN_TIMEOUT_MS} ms`, since: this.joinSince ?? -1 });
      conn.ws.terminate();
    });
    conn.send(this.joinSince === undefined ? { type: 'join', room: this.o.room } : { type: 'join', room: this.o.room, since: this.joinSince });
  }

  private onFrame(conn: Conn, n: number, f: Frame): void {
    if (this.conn !== conn) return;
    const now = Date.now();
    switch (f.type) {
      case 'welcome':
        this.sendJoin(conn);
        return;
      case 'message': {
        if (f.room !== this.o.room) {
          this.unexpected.push(`message of room ${String(f.room)}`);
          return;
        }
        const seq = Number(f.seq);
        const prev = f.prev === undefined ? Number.NaN : Number(f.prev);
        const replay = this.inJoin;
        const d: Delivery = { seq, prev, ts: Number(f.ts), at: now, replay, conn: n, gateway: this.gateway };
        this.deliveries.push(d);
        if (this.last < 0) {
          this.unexpected.push(`message ${seq} before the first joined`);
          return;
        }
        const base = { seq, last: this.last, at: now, replay, conn: n, gateway: this.gateway };
        if (seq <= this.last) {
          this.anomalies.push({ kind: 'duplicate', got: prev, ...base });
          return;
        }
        if (prev !== this.last) this.anomalies.push({ kind: 'hole', got: prev, ...base });
        this.last = seq;
        return;
      }
      case 'joined': {
        if (f.room !== this.o.room) return;
        const seq = Number(f.seq);
        const rec: JoinRecord = {
          at: now, gateway: this.gateway, conn: n, since: this.joinSince, seq, recovered: f.recovered === true,
          replayed: Number(f.replayed), lastAfter: this.last,
        };
        this.joins.push(rec);
        if (f.recovered === false) this.recoveredFalse.push(rec);
        this.inJoin = false;
        this.isJoined = true;
        if (this.start < 0) {
          this.start = seq;
          this.last = seq;
        } else if (seq > this.last) {
          // joined.seq is the room's last seq after the replay: anything between our last and it was not replayed.
          this.anomalies.push({ kind: 'join-gap', seq, last: this.last, got: seq, at: now, replay: true, conn: n, gateway: this.gateway });
          this.last = seq;
        }
        return;
      }
      case 'error': {
        if (f.ref !== this.o.room) {
          this.unexpected.push(`error ${String(f.code)} ref=${String(f.ref)}: ${String(f.message)}`);
          return;
        }
        // A join (recovery) refused: e.g. UNAVAILABLE while NATS is down. Recover again from where we are.
        this.joinErrors.push({ at: now, code: String(f.code), message: String(f.message), since: this.joinSince ?? -1 });
        this.inJoin = false;
        this.later(f.code === 'UNAVAILABLE' ? 300 : 1_000, () => this.sendJoin(conn));
        return;
      }
      default:
        return;
    }
  }
}
