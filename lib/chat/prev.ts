// The `prev` hint of each broadcast: the seq of the message before it in its room, as the stream has them.
import type { RoomReader } from '../eventlog/index.js';
import type { Logger } from '../observability/index.js';
import type { Broadcast } from '../protocol/index.js';
import type { MessageDoc } from '../store/index.js';
import { toStored } from '../store/index.js';

/** What withPrev needs of a delivered message: its stream seq and, from JetStream, its delivery bookkeeping. */
export interface Delivered {
  seq: number;
  info?: { deliverySequence: number; deliveryCount: number };
}

/** Rooms remembered across batches at most (the oldest is forgotten first; a forgotten room is asked of the stream). */
const CHAIN_ROOMS = 10_000;

/**
 * What this chat instance has broadcast while it alone took every message of the consumer: each room's last seq.
 * The consumer's delivery sequence counts every delivery to any instance, so two first deliveries with consecutive
 * delivery sequences prove that no message lay between them (new messages are delivered in stream order): the chain
 * holds, and a room's last broadcast seq is its `prev`, with no stream lookup. Any other delivery (a redelivery, a
 * jump in the delivery sequence: another instance took messages, a restart) breaks the chain and forgets the rooms.
 */
export class PrevChain {
  private last: { delivery: number; seq: number } | undefined;
  private rooms = new Map<string, number>();
  /** Counts changes of the chain: a plan commits only onto the state it was made from. */
  private gen = 0;

  /**
   * The rooms' last seqs before `batch` if the chain holds up to its first message, else undefined; and what to
   * `commit` once the batch has been broadcast. `known` is the chain's own map, not a copy (that would cost every
   * batch a pass over up to CHAIN_ROOMS rooms): only this plan's commit changes it in place, and a commit of any other
   * plan (an attempt abandoned at its hold deadline that finishes late) finds the chain moved on and forgets it,
   * which replaces the map instead of changing it.
   */
  plan(batch: readonly Delivered[]): { known: ReadonlyMap<string, number> | undefined; commit(docs: readonly MessageDoc[]): void } {
    const gen = this.gen;
    const sorted = [...batch].sort((a, b) => a.seq - b.seq);
    let at = this.last;
    let holds = at !== undefined;
    for (const m of sorted) {
      const i = m.info;
      if (!i || i.deliveryCount !== 1 || !at || i.deliverySequence !== at.delivery + 1 || m.seq <= at.seq) holds = false;
      at = i ? { delivery: i.deliverySequence, seq: m.seq } : undefined;
    }
    const known = holds ? this.rooms : undefined;
    // Whether the batch itself is one unbroken run (then it can start a chain even when it does not continue one).
    const end = at;
    const run = sorted.every((m, k) => {
      const i = m.info;
      if (!i || i.deliveryCount !== 1) return false;
      const before = sorted[k - 1]?.info;
      return k === 0 || (before !== undefined && i.deliverySequence === before.deliverySequence + 1);
    });
    return {
      known,
      commit: (docs) => {
        if (!end || !run || this.gen !== gen) {
          this.forget();
          return;
        }
        this.gen++;
        // A chain that did not hold before the batch starts afresh with it: only its own rooms are known.
        if (!known) this.rooms = new Map();
        for (const d of docs) {
          this.rooms.delete(d.room);
          this.rooms.set(d.room, d.seq);
        }
        while (this.rooms.size > CHAIN_ROOMS) this.rooms.delete(this.rooms.keys().next().value!);
        this.last = end;
      },
    };
  }

  forget(): void {
    this.gen++;
    this.last = undefined;
    this.rooms = new Map();
  }
}

/**
 * Attaches to each message the seq of the message before it in its room, as the stream has them, so gateways can
 * deliver in order without asking the stream themselves. Inside one batch whose seqs run without a hole, the
 * previous message of the room in the batch is that message; a room the unbroken chain of deliveries already knows
 * (`known`, from PrevChain) takes its last broadcast seq; otherwise (the first of a room in the batch, or a hole where
 * another instance took messages) the stream is asked. When it cannot be asked, `prev` is left out and gateways check
 * the stream themselves.
 */
export async function withPrev(
  docs: MessageDoc[], batch: readonly Delivered[], reader: RoomReader, log: Logger, known?: ReadonlyMap<string, number>,
): Promise<Broadcast[]> {
  // Unique seqs: a repeated one would shift the positions and make a hole look like a run.
  const seqs = [...new Set(batch.map((m) => m.seq))].sort((a, b) => a - b);
  const index = new Map(seqs.map((s, i) => [s, i]));
  const lastInBatch = new Map<string, number>();
  const out: Broadcast[] = [];
  const lookups: Promise<void>[] = [];
  for (const doc of docs) {
    const b: Broadcast = toStored(doc);
    const before = lastInBatch.get(doc.room);
    const chained = known?.get(doc.room);
    if (before !== undefined && index.get(doc.seq)! - index.get(before)! === doc.seq - before) {
      b.prev = before;
    } else if (known !== undefined && before !== undefined) {
      // The chain holds through the whole batch: what this batch broadcast last in the room comes right before.
      b.prev = before;
    } else if (before === undefined && chained !== undefined) {
      b.prev = chained;
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
