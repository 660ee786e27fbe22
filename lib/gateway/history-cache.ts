// Recent history pages without MongoDB: a bounded per-room tail of the newest messages, read from the stream by
// subject and kept current by asking the stream for the room's last seq on each read (one direct get). Older pages,
// and everything when the stream cannot answer, come from MongoDB as before. docs/decisions/0017 says why.
import type { RoomReader } from '../eventlog/index.js';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import type { MessageStore, ReadGate } from '../store/index.js';

export interface HistoryPagesOptions {
  /** Rooms whose tail is kept (least recently read dropped first); 0 turns the cache off. */
  rooms: number;
  /** Newest messages kept per room. */
  messagesPerRoom: number;
}

export interface PageSources {
  reader: Pick<RoomReader, 'range' | 'lastSeq' | 'bounds'>;
  store: Pick<MessageStore, 'page'>;
  reads: ReadGate;
  /** False while the stream cannot be reached: pages go straight to MongoDB instead of waiting for a timeout. */
  streamUp?: () => boolean;
}

/** Pages of a room, newest first, as MessageStore.page answers them (seq < before, at most `n`). */
export interface HistoryPages {
  page(room: RoomId, before: number | undefined, n: number, alive: () => boolean): Promise<StoredMessage[]>;
}

/**
 * The messages of one room with lo <= seq <= hi, all of them, ascending. `complete`: the room has none below lo
 * anywhere (the stream never dropped any of it), so a page that runs past lo needs no MongoDB either.
 */
interface Tail {
  msgs: StoredMessage[];
  lo: number;
  hi: number;
  complete: boolean;
}

const READ_BATCH = 256;

/** MongoDB only: what the gateway did before the cache, and what it does with the cache off. */
export function storePages(src: Pick<PageSources, 'store' | 'reads'>): HistoryPages {
  return { page: (room, before, n, alive) => src.reads.run(() => src.store.page(room, before, n), alive) };
}

export function createHistoryPages(src: PageSources, opts: HistoryPagesOptions): HistoryPages {
  const fromStore = storePages(src);
  if (opts.rooms <= 0 || opts.messagesPerRoom <= 0) return fromStore;
  const cap = opts.messagesPerRoom;
  const tails = new Map<RoomId, Tail>();
  /** One refresh per room at a time; concurrent readers share it. */
  const refreshing = new Map<RoomId, Promise<Tail>>();

  /** Every message of the room with from <= seq <= to, ascending (several stream reads when there are many). */
  const readAll = async (room: RoomId, from: number, to: number): Promise<StoredMessage[]> => {
    const out: StoredMessage[] = [];
    let pos = from;
    while (pos <= to) {
      const got = await src.reader.range(room, pos, to, READ_BATCH);
      if (got.length === 0) break;
      for (const m of got) out.push(m);
      pos = got[got.length - 1]!.seq + 1;
    }
    return out;
  };

  /** The newest `cap` messages up to `last`: windows back from `last`, four times wider each time, until full. */
  const seed = async (room: RoomId, last: number): Promise<Tail> => {
    const first = Math.max(1, (await src.reader.bounds()).first);
    let msgs: StoredMessage[] = [];
    let start = last + 1;
    let width = cap * 2;
    while (msgs.length < cap && start > first) {
      const from = Math.max(first, start - width);
      msgs = (await readAll(room, from, start - 1)).concat(msgs);
      start = from;
      width *= 4;
    }
    // What the stream dropped while we read it is not in msgs: the tail starts after it.
    const firstNow = Math.max(1, (await src.reader.bounds()).first);
    let lo = Math.max(start, firstNow);
    msgs = msgs.filter((m) => m.seq >= lo);
    if (msgs.length > cap) {
      msgs = msgs.slice(msgs.length - cap);
      lo = msgs[0]!.seq;
    }
    return { msgs, lo, hi: Math.max(last, lo - 1), complete: lo <= 1 };
  };

  const refresh = async (room: RoomId): Promise<Tail> => {
    const last = await src.reader.lastSeq(room);
    const tail = tails.get(room);
    if (tail && last <= tail.hi) {
      tails.delete(room); // most recently read last
      tails.set(room, tail);
      return tail;
    }
    let next: Tail;
    if (!tail) {
      next = await seed(room, last);
    } else {
      const got = await readAll(room, tail.hi + 1, last);
      // Messages between hi and what the stream still holds may have aged out of it before this read: start over.
      const first = (await src.reader.bounds()).first;
      if (first > tail.hi + 1) {
        next = await seed(room, last);
      } else {
        const msgs = tail.msgs.concat(got);
        const drop = Math.max(0, msgs.length - cap);
        next = drop > 0
          ? { msgs: msgs.slice(drop), lo: msgs[drop]!.seq, hi: last, complete: false }
          : { msgs, lo: tail.lo, hi: last, complete: tail.complete };
      }
    }
    tails.delete(room);
    tails.set(room, next);
    while (tails.size > opts.rooms) tails.delete(tails.keys().next().value!);
    return next;
  };

  const current = (room: RoomId): Promise<Tail> => {
    let p = refreshing.get(room);
    if (!p) {
      p = refresh(room).finally(() => refreshing.delete(room));
      refreshing.set(room, p);
    }
    return p;
  };

  return {
    async page(room, before, n, alive) {
      if (src.streamUp && !src.streamUp()) return fromStore.page(room, before, n, alive);
      let tail: Tail;
      try {
        tail = await current(room);
      } catch {
        return fromStore.page(room, before, n, alive); // the stream cannot answer: MongoDB still can
      }
      const upper = before === undefined ? tail.hi + 1 : Math.min(before, tail.hi + 1);
      if (upper <= tail.lo) return fromStore.page(room, before, n, alive); // an older page
      const out: StoredMessage[] = [];
      for (let i = tail.msgs.length - 1; i >= 0 && out.length < n; i--) {
        const m = tail.msgs[i]!;
        if (m.seq < upper) out.push(m);
      }
      if (out.length === n || tail.complete) return out;
      // The page runs past the oldest message the tail holds: the rest is MongoDB's, below lo.
      const older = await fromStore.page(room, tail.lo, n - out.length, alive);
      return out.concat(older);
    },
  };
}
