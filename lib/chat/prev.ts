// The `prev` hint of each broadcast: the seq of the message before it in its room, as the stream has them.
import type { RoomReader } from '../eventlog/index.js';
import type { Logger } from '../observability/index.js';
import type { Broadcast } from '../protocol/index.js';
import type { MessageDoc } from '../store/index.js';
import { toStored } from '../store/index.js';

/**
 * Attaches to each message the seq of the message before it in its room, as the stream has them, so gateways can
 * deliver in order without asking the stream themselves. Inside one batch whose seqs run without a hole, the
 * previous message of the room in the batch is that message; otherwise (the first of a room in the batch, or a hole
 * where another instance took messages) the stream is asked. When it cannot be asked, `prev` is left out and
 * gateways check the stream themselves.
 */
export async function withPrev(docs: MessageDoc[], batch: readonly { seq: number }[], reader: RoomReader, log: Logger): Promise<Broadcast[]> {
  // Unique seqs: a repeated one would shift the positions and make a hole look like a run.
  const seqs = [...new Set(batch.map((m) => m.seq))].sort((a, b) => a - b);
  const index = new Map(seqs.map((s, i) => [s, i]));
  const lastInBatch = new Map<string, number>();
  const out: Broadcast[] = [];
  const lookups: Promise<void>[] = [];
  for (const doc of docs) {
    const b: Broadcast = toStored(doc);
    const before = lastInBatch.get(doc.room);
    if (before !== undefined && index.get(doc.seq)! - index.get(before)! === doc.seq - before) {
      b.prev = before;
    } else {
      lookups.push(reader.prevOf(doc.room, doc.seq).then(
        (p) => { b.prev = p; },
        (err: unknown) => log.warn({ err, room: doc.room, seq: doc.seq }, 'prev lookup failed; gateways will check'),
      ));
    }
    lastInBatch.set(doc.room, doc.seq);
    out.push(b);
  }
  await Promise.all(lookups);
  return out;
}
