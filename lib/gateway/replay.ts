// `join {room, since}`: replays every message of the room after `since` up to the room cursor, before the socket is
// subscribed to the room's live broadcasts. The stream is read first; what it no longer holds (its limits dropped
// it) comes from MongoDB. The cursor may move while the replay runs (live messages keep arriving at the room
// feed), so the replay re-reads until it has reached the cursor as it stands when it checks last; the caller then
// subscribes in the same tick, so there is neither a gap nor a duplicate at the seam.
import type { RoomReader } from '../eventlog/index.js';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import type { MessageStore, ReadGate } from '../store/index.js';

export interface ReplaySources {
  reader: Pick<RoomReader, 'range' | 'bounds'>;
  store: Pick<MessageStore, 'range' | 'countAfter'>;
  /** The gateway's bound on storage reads. */
  reads: ReadGate;
  /** A client further behind than this gets no replay (`recovered: false`) and pages `history` instead. */
  maxMessages: number;
  /** Messages per stream read. */
  batch?: number;
  /**
   * Messages per MongoDB read (default 256). A backlog the stream no longer holds is read in pages this size, each one
   * its own slot of the ReadGate: one read of the whole backlog held up to `maxMessages` bodies in memory at once
   * (10,000 x 64 KB at the defaults).
   */
  storeBatch?: number;
}

export interface ReplayTarget {
  /** False once the client has gone: the replay stops and its reads are dropped. */
  alive(): boolean;
  /** Sends one message (after waiting for room in the send buffer); false when the client went away meanwhile. */
  send(m: StoredMessage, prev: number): Promise<boolean>;
}

export type ReplayResult =
  | { ahead: true; last: number }
  | { ahead: false; recovered: boolean; replayed: number };

export async function replay(
  src: ReplaySources, room: RoomId, since: number, cursor: () => number, to: ReplayTarget,
): Promise<ReplayResult> {
  const { last } = await src.reader.bounds();
  if (since > last) return { ahead: true, last };
  const alive = (): boolean => to.alive();
  const batch = src.batch ?? 256;
  const storeBatch = src.storeBatch ?? 256;
  let pos = since;
  let prev = since;
  let replayed = 0;
  let recovered = true;
  const one = async (m: StoredMessage): Promise<boolean> => {
    if (!(await to.send(m, prev))) return false;
    prev = m.seq;
    pos = m.seq;
    replayed++;
    return true;
  };
  // Seqs are dense across the stream, so a seq gap within the limit bounds the backlog without a count query.
  const backlog = cursor() - since > src.maxMessages
    ? await src.reads.run(() => src.store.countAfter(room, since, src.maxMessages + 1), alive)
    : 0;
  if (backlog > src.maxMessages) {
    recovered = false; // too far behind: no replay; the client pages `history` back from `joined.seq`
    pos = cursor();
  }
  while (pos < cursor() && alive()) {
    const target = cursor();
    const got = await src.reader.range(room, pos + 1, target, batch);
    // What lies between pos and the first message the stream returned may have been dropped by the stream's
    // limits (also while this replay waited for the socket): MongoDB holds it.
    const upper = got.length > 0 ? got[0]!.seq : target + 1;
    if (upper > pos + 1) {
      const { first } = await src.reader.bounds();
      const end = Math.min(upper, first) - 1;
      // Page by page up to `end`; an empty page means MongoDB holds nothing more there.
      while (pos < end && alive()) {
        const from = pos + 1;
        const older = await src.reads.run(() => src.store.range(room, from, end, storeBatch), alive);
        for (const m of older) {
          if (!(await one(m))) break;
        }
        if (older.length < storeBatch) break;
      }
    }
    for (const m of got) {
      if (m.seq > pos && !(await one(m))) break;
    }
    // An empty read means nothing is left up to target; a short one may just be the server's batch limit.
    if (got.length === 0) pos = Math.max(pos, target);
  }
  return { ahead: false, recovered, replayed };
}
