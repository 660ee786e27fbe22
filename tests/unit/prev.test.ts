import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { PrevChain, withPrev } from '../../lib/chat/prev.js';
import type { Delivered } from '../../lib/chat/prev.js';
import type { RoomReader } from '../../lib/eventlog/index.js';
import type { MessageDoc } from '../../lib/store/index.js';

const log = pino({ level: 'silent' });
const doc = (room: string, seq: number): MessageDoc => ({ _id: `u:${seq}`, room, seq, from: 'u', body: '', ts: 1 });
/** The stream as a list of (room, seq); prevOf answers from it, like the real direct get. */
function streamReader(stream: [string, number][]): RoomReader & { asked: number } {
  const r = {
    asked: 0,
    async prevOf(room: string, seq: number) {
      r.asked++;
      return stream.filter(([rm, s]) => rm === room && s < seq).reduce((p, [, s]) => Math.max(p, s), 0);
    },
  };
  return r as unknown as RoomReader & { asked: number };
}

describe('withPrev (the prev hint chat attaches to each broadcast)', () => {
  it('inside a batch without holes, the previous message of the room in the batch, without asking the stream', async () => {
    const reader = streamReader([['a', 1], ['b', 2], ['a', 3], ['a', 4]]);
    const out = await withPrev([doc('a', 3), doc('a', 4)], [{ seq: 3 }, { seq: 4 }], reader, log);
    assert.deepEqual(out.map((b) => b.prev), [1, 3]);
    assert.equal(reader.asked, 1);
  });

  it('a seq delivered twice in one batch does not make a hole look like a run', async () => {
    // a10, b11, a12, a13 in the stream; a12 was taken by another instance, b11 arrived twice (a redelivery while queued).
    const reader = streamReader([['a', 10], ['b', 11], ['a', 12], ['a', 13]]);
    const batch = [{ seq: 10 }, { seq: 11 }, { seq: 11 }, { seq: 13 }];
    const out = await withPrev([doc('a', 10), doc('b', 11), doc('a', 13)], batch, reader, log);
    assert.deepEqual(out.map((b) => [b.seq, b.prev]), [[10, 0], [11, 0], [13, 12]], 'a13 follows a12, which is not in the batch');
  });

  /** A delivery: stream seq, the consumer's delivery sequence, and how often it was delivered. */
  const dl = (seq: number, delivery: number, count = 1): Delivered => ({ seq, info: { deliverySequence: delivery, deliveryCount: count } });
  /** One batch through the chain as chat runs it: plan, withPrev, commit after the broadcast. */
  async function broadcast(chain: PrevChain, reader: RoomReader, batch: Delivered[], docs: MessageDoc[], commit = true): Promise<Array<number | undefined>> {
    const plan = chain.plan(batch);
    const out = await withPrev(docs, batch, reader, log, plan.known);
    if (commit) plan.commit(docs);
    return out.map((b) => b.prev);
  }

  it('across batches, an unbroken chain of first deliveries gives each room its last broadcast seq without asking', async () => {
    // Stream seqs jump (other subjects share the stream) but the delivery sequence runs on: nothing lay between.
    const reader = streamReader([['a', 1], ['b', 2], ['a', 7], ['b', 9], ['a', 12]]);
    const chain = new PrevChain();
    assert.deepEqual(await broadcast(chain, reader, [dl(1, 1), dl(2, 2)], [doc('a', 1), doc('b', 2)]), [0, 0]);
    assert.equal(reader.asked, 2, 'the first batch asks the stream');
    assert.deepEqual(await broadcast(chain, reader, [dl(7, 3), dl(9, 4), dl(12, 5)], [doc('a', 7), doc('b', 9), doc('a', 12)]), [1, 2, 7]);
    assert.equal(reader.asked, 2, 'the chain answered everything, also a7 -> a12 across a stream seq gap');
  });

  it('a jump in the delivery sequence (another instance took messages) breaks the chain: the stream is asked', async () => {
    const reader = streamReader([['a', 1], ['a', 2], ['a', 3]]);
    const chain = new PrevChain();
    await broadcast(chain, reader, [dl(1, 1)], [doc('a', 1)]);
    // Delivery 2 (stream seq 2) went to another instance.
    assert.deepEqual(await broadcast(chain, reader, [dl(3, 3)], [doc('a', 3)]), [2]);
    assert.equal(reader.asked, 2);
  });

  it('a redelivery breaks the chain, and so does a batch whose broadcast failed (never committed)', async () => {
    const reader = streamReader([['a', 1], ['a', 2], ['a', 3], ['a', 4]]);
    const chain = new PrevChain();
    await broadcast(chain, reader, [dl(1, 1)], [doc('a', 1)]);
    assert.deepEqual(await broadcast(chain, reader, [dl(2, 2, 2)], [doc('a', 2)]), [1]);
    assert.equal(reader.asked, 2, 'a redelivery is asked about');
    const before = reader.asked;
    await broadcast(chain, reader, [dl(3, 3)], [doc('a', 3)], false);
    // The failed batch's messages come back later; what follows it must not trust a chain that skipped them.
    assert.deepEqual(await broadcast(chain, reader, [dl(4, 4)], [doc('a', 4)]), [3]);
    assert.equal(reader.asked, before + 2);
  });

  it('a late commit of an abandoned attempt neither changes a later plan\'s rooms nor lets the chain go on', () => {
    const chain = new PrevChain();
    chain.plan([dl(1, 1)]).commit([doc('a', 1)]);
    // Batch 2's first attempt hangs past its hold deadline; the retry broadcasts and commits it.
    const abandoned = chain.plan([dl(2, 2)]);
    const retried = chain.plan([dl(2, 2)]);
    retried.commit([doc('a', 2)]);
    const next = chain.plan([dl(3, 3)]);
    assert.equal(next.known?.get('a'), 2, 'the chain holds after the retry');
    abandoned.commit([doc('a', 2), doc('b', 2)]);
    assert.equal(next.known?.get('a'), 2, 'the late commit did not change what the next batch reads');
    assert.equal(next.known?.has('b'), false);
    next.commit([doc('a', 3)]);
    assert.equal(chain.plan([dl(4, 4)]).known, undefined, 'the chain was forgotten: the next batch asks the stream');
  });

  it('a resend dropped from the batch (no document) is not anyone\'s prev', async () => {
    const reader = streamReader([['a', 1], ['a', 3]]);
    const chain = new PrevChain();
    await broadcast(chain, reader, [dl(1, 1)], [doc('a', 1)]);
    // Seq 2 was a resend beyond the window: claimed by nobody, deleted from the stream, no document.
    assert.deepEqual(await broadcast(chain, reader, [dl(2, 2), dl(3, 3)], [doc('a', 3)]), [1]);
  });
});
