import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { withPrev } from '../../lib/chat/prev.js';
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
});
