// Reads one room's events back from the stream by subject: gap repair at the gateways and `join {since}` replay.
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { StreamConfig } from '../config/index.js';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import { storedAt } from '../protocol/index.js';
import { isNoMessage } from './errors.js';
import { decodeEvent } from './publisher.js';
import { createdSubject, createdWildcard } from './subjects.js';

export interface RoomReader {
  /** Messages of `room` with from <= seq <= to, ascending, at most `max`. */
  range(room: RoomId, from: number, to: number, max: number): Promise<StoredMessage[]>;
  /** Messages of every room with from <= seq <= to, ascending, at most `max` (the reconciler's scan). */
  rangeAll(from: number, to: number, max: number): Promise<StoredMessage[]>;
  /** The seq of the room's message just before `seq` in the stream (0 when there is none). */
  prevOf(room: RoomId, seq: number): Promise<number>;
  /** The last seq stored for the room (0 when none). */
  lastSeq(room: RoomId): Promise<number>;
  /** First and last seq the stream still holds (first > last when empty). */
  bounds(): Promise<{ first: number; last: number }>;
}

export function createRoomReader(nc: NatsConnection, jsm: JetStreamManager, cfg: StreamConfig): RoomReader {
  const directSubject = `$JS.API.DIRECT.GET.${cfg.name}`;
  async function readSubject(subject: string, from: number, to: number, max: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    if (from > to || max <= 0) return out;
    // Probe with a single direct get first. The common gap check finds nothing and costs one round trip, and a
    // batch get is only issued when it cannot come back empty: nats.js 3.4 turns an empty batch ("no results")
    // into an error thrown outside the iterator, which would take the process down.
    let head: StoredMsg | null;
    try {
      head = await jsm.direct.getMessage(cfg.name, { seq: from, next_by_subj: subject });
    } catch (err) {
      if (isNoMessage(err)) return out;
      throw err;
    }
    if (!head || head.seq > to) return out;
    if (max === 1 || head.seq === to) {
      const s = toStored(head);
      if (s) out.push(s);
      return out;
    }
    const iter = await jsm.direct.getBatch(cfg.name, { seq: head.seq, next_by_subj: subject, batch: max });
    for await (const m of iter) {
      if (m.seq > to) break;
      const s = toStored(m);
      if (s) out.push(s);
    }
    return out;
  }

  return {
    async prevOf(room, seq) {
      if (seq <= 1) return 0;
      // A batch direct get (multi_last with up_to_seq: nats-server >= 2.11) answers "last message on this subject at or
      // before seq - 1". Issued as a raw request, because nats.js 3.4's batch iterator mishandles an empty answer.
      const body = JSON.stringify({ multi_last: [createdSubject(cfg.subjectRoot, room)], up_to_seq: seq - 1, batch: 1 });
      const replies = await nc.requestMany(directSubject, body, { strategy: 'sentinel', maxWait: cfg.publishTimeoutMs });
      let prev = 0;
      let answered = false;
      for await (const m of replies) {
        answered = true;
        const status = m.headers?.code ?? 0;
        if (status === 404) break; // no message: the room starts here
        if (status >= 400) throw new Error(`direct get failed: ${status} ${m.headers?.description ?? ''}`);
        const s = Number(m.headers?.get('Nats-Sequence'));
        if (Number.isSafeInteger(s) && s > 0) prev = s;
      }
      // No reply at all within maxWait (a stream still recovering after a restart) is not "no previous message":
      // a made-up 0 would send every gateway to the stream for nothing.
      if (!answered) throw new Error('direct get: no answer');
      return prev;
    },
    range(room, from, to, max) {
      return readSubject(createdSubject(cfg.subjectRoot, room), from, to, max);
    },
    rangeAll(from, to, max) {
      return readSubject(createdWildcard(cfg.subjectRoot), from, to, max);
    },
    async lastSeq(room) {
      try {
        const m = await jsm.direct.getMessage(cfg.name, { last_by_subj: createdSubject(cfg.subjectRoot, room) });
        return m ? m.seq : 0;
      } catch (err) {
        if (isNoMessage(err)) return 0;
        throw err;
      }
    },
    async bounds() {
      const info = await jsm.streams.info(cfg.name);
      return { first: info.state.first_seq, last: info.state.last_seq };
    },
  };
}

function toStored(m: StoredMsg): StoredMessage | undefined {
  const ev = decodeEvent(m.data);
  if (!ev) return undefined;
  return storedAt(ev, m.seq);
}
