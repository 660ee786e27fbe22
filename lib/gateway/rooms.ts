// Per-room delivery at a gateway: which rooms have local members, their Redis subscriptions, and the room cursor
// (the last seq this gateway delivered). Broadcasts are delivered strictly in seq order without gaps or repeats:
// the chat service's `prev` hint makes the common case a comparison; anything else is checked against the stream,
// which is the source of truth, and missing messages are read from it before the one that revealed the gap.
// A room never advances past a seq it has not delivered: while the stream cannot be read the room is held (its
// broadcasts queue) and the read is retried with back-off; if the gap cannot be filled within `gapTimeoutMs`, the
// room is given up (`onLost`: the gateway closes its members with 4010 so they recover with `since`), never papered
// over with a `prev` that hides the hole.
import { backoff } from '@nats-io/transport-node';
import type { FanoutSubscriber } from '../fanout/index.js';
import type { RoomReader } from '../eventlog/index.js';
import type { Logger } from '../observability/index.js';
import type { Broadcast, RoomId, StoredMessage } from '../protocol/index.js';

export interface RoomState {
  readonly room: RoomId;
  members: number;
  /** Last seq delivered to local members; -1 until known. */
  cursor: number;
  ready: Promise<void>;
  /** Broadcasts waiting for the cursor (not known yet, or a gap being filled), delivered in seq order. */
  queue: Broadcast[];
  /** A deliverQueue loop runs for the room (one at a time). */
  delivering: boolean;
  /** Given up after an unrepairable gap: delivers nothing more; joins are refused until its members are gone. */
  lost: boolean;
}

export class RoomLostError extends Error {
  constructor(readonly room: RoomId) {
    super(`room ${room} is being reset after a gap; join again`);
    this.name = 'RoomLostError';
  }
}

/** Called for each message in order; `prev` is the seq delivered before it in the room. */
export type Deliver = (m: StoredMessage, prev: number) => void;

const GAP_READ = 1_000;
const GAP_RETRY = backoff([50, 100, 250, 500, 1_000, 2_000]);

export class RoomFeed {
  private readonly rooms = new Map<RoomId, RoomState>();
  private readonly pending = new Map<RoomId, Promise<void>>();

  constructor(
    private readonly sub: FanoutSubscriber,
    private readonly reader: RoomReader,
    private readonly deliver: Deliver,
    private readonly log: Logger,
    private readonly gapTimeoutMs: number,
    private readonly onLost: (room: RoomId) => void,
  ) {}

  /** Counts a local member in; resolves once the room is subscribed and its cursor is known. */
  async join(room: RoomId): Promise<RoomState> {
    let st = this.rooms.get(room);
    if (st?.lost) throw new RoomLostError(room);
    if (st) {
      st.members++;
    } else {
      st = { room, members: 1, cursor: -1, ready: Promise.resolve(), queue: [], delivering: false, lost: false };
      this.rooms.set(room, st);
      const s = st;
      // Subscribe first, then read the cursor: whatever is broadcast in between is queued and sorted out by seq.
      s.ready = this.chain(room, () => this.sub.subscribe(room))
        .then(() => this.reader.lastSeq(room))
        .then((seq) => {
          s.cursor = seq;
          this.deliverQueued(s);
        });
    }
    try {
      await st.ready;
    } catch (err) {
      this.leave(room);
      throw err;
    }
    return st;
  }

  leave(room: RoomId): void {
    const st = this.rooms.get(room);
    if (!st) return;
    if (--st.members > 0) return;
    this.rooms.delete(room);
    this.chain(room, () => (this.rooms.has(room) ? Promise.resolve() : this.sub.unsubscribe(room))).catch((err: unknown) => {
      // A failed unsubscribe leaves an extra subscription whose messages are ignored (no local members).
      this.log.debug({ err, room }, 'unsubscribe failed');
    });
  }

  get(room: RoomId): RoomState | undefined {
    return this.rooms.get(room);
  }

  size(): number {
    return this.rooms.size;
  }

  /** A broadcast from Redis. */
  onBroadcast(room: RoomId, b: Broadcast): void {
    const st = this.rooms.get(room);
    if (!st || st.lost) return;
    // Fast path: known cursor, nothing queued, and the hint says this directly follows what we delivered.
    if (st.cursor >= 0 && !st.delivering && st.queue.length === 0) {
      if (b.seq <= st.cursor) return;
      if (b.prev === st.cursor) {
        const prev = st.cursor;
        st.cursor = b.seq;
        this.deliver(b, prev);
        return;
      }
    }
    st.queue.push(b);
    if (st.cursor >= 0) this.deliverQueued(st);
  }

  /**
   * Catches every room up with the stream: after the Redis subscription was lost (broadcasts published meanwhile
   * never arrive) this delivers what was missed without waiting for a later message to reveal the gap.
   */
  resyncAll(): void {
    for (const st of this.rooms.values()) {
      if (st.cursor < 0 || st.lost) continue;
      st.queue.push({ room: st.room, id: '', seq: Number.MAX_SAFE_INTEGER, from: '', body: '', ts: 0, prev: -2 });
      this.deliverQueued(st);
    }
  }

  /** Starts delivering the room's queue unless that already runs. */
  private deliverQueued(st: RoomState): void {
    if (st.delivering) return;
    st.delivering = true;
    void this.deliverQueue(st).finally(() => {
      st.delivering = false;
    });
  }

  private async deliverQueue(st: RoomState): Promise<void> {
    while (st.queue.length > 0 && this.rooms.get(st.room) === st && !st.lost) {
      st.queue.sort((a, b) => a.seq - b.seq);
      const b = st.queue[0]!;
      if (b.seq <= st.cursor) {
        st.queue.shift();
        continue;
      }
      if (b.prev !== st.cursor) {
        const resync = b.prev === -2;
        const filled = await this.fillOrGiveUp(st, resync ? Number.MAX_SAFE_INTEGER : b.seq - 1);
        if (!filled) return;
        if (resync) {
          st.queue.shift();
          continue;
        }
        // The stream no longer holds what `prev` names (its limits dropped it): only MongoDB has it, which is what
        // `join {since}` reads. Delivering `b` now would hide the hole.
        if (b.prev !== undefined && b.prev > st.cursor) {
          this.giveUp(st, 'the stream no longer holds the gap');
          return;
        }
      }
      st.queue.shift();
      if (b.seq > st.cursor) {
        const prev = st.cursor;
        st.cursor = b.seq;
        this.deliver(b, prev);
      }
    }
  }

  /**
   * Fills the room up to `upTo` from the stream, retrying with back-off while it cannot be read; false when the room
   * was given up (after `gapTimeoutMs`) or left meanwhile.
   */
  private async fillOrGiveUp(st: RoomState, upTo: number): Promise<boolean> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.fillFromStream(st, upTo);
        return this.rooms.get(st.room) === st && !st.lost;
      } catch (err) {
        if (this.rooms.get(st.room) !== st || st.lost) return false;
        if (Date.now() - started >= this.gapTimeoutMs) {
          this.log.warn({ err, room: st.room, cursor: st.cursor }, 'gap could not be read from the stream');
          this.giveUp(st, 'the stream could not be read');
          return false;
        }
        const wait = GAP_RETRY.backoff(attempt);
        this.log.debug({ err, room: st.room, cursor: st.cursor, waitMs: wait }, 'gap read failed; holding the room');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private giveUp(st: RoomState, why: string): void {
    st.lost = true;
    st.queue = [];
    this.log.warn({ room: st.room, cursor: st.cursor, members: st.members, why }, 'room given up; its members must recover');
    this.onLost(st.room);
  }

  /** Delivers from the stream every message of the room after the cursor and up to `upTo`. */
  private async fillFromStream(st: RoomState, upTo: number): Promise<void> {
    for (;;) {
      const missing = await this.reader.range(st.room, st.cursor + 1, upTo, GAP_READ);
      for (const m of missing) {
        if (m.seq <= st.cursor) continue;
        const prev = st.cursor;
        st.cursor = m.seq;
        this.deliver(m, prev);
      }
      // Only an empty read proves nothing is left: a short one may be the server's batch byte limit.
      if (missing.length === 0) return;
    }
  }

  /** Runs Redis (un)subscribes of one room strictly in order, so join-leave-join cannot end unsubscribed. */
  private chain(room: RoomId, op: () => Promise<void>): Promise<void> {
    const prev = this.pending.get(room) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(op);
    const settled = next.catch(() => undefined);
    this.pending.set(room, settled);
    void settled.then(() => {
      if (this.pending.get(room) === settled) this.pending.delete(room);
    });
    return next;
  }
}
