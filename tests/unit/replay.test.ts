// The `join {since}` replay against a fake stream and a fake MongoDB: every message after `since` exactly once and
// in order (prev chained), re-reading while the room cursor moves, MongoDB for what the stream dropped, no replay
// for a client too far behind, and a clean stop when the client goes away.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replay } from '../../lib/gateway/replay.js';
import type { ReplaySources, ReplayTarget } from '../../lib/gateway/replay.js';
import type { StoredMessage } from '../../lib/protocol/index.js';
import type { ReadGate } from '../../lib/store/index.js';

const msg = (seq: number): StoredMessage => ({ room: 'r', id: `m${seq}`, seq, from: 'u', body: `b${seq}`, ts: 1 });
const between = (seqs: number[], from: number, to: number, max: number): StoredMessage[] =>
  seqs.filter((s) => s >= from && s <= to).slice(0, max).map(msg);

interface World {
  /** Seqs of room r the stream still holds. */
  stream: number[];
  /** Seqs of room r in MongoDB. */
  mongo: number[];
  /** The stream's first seq (all rooms): what is below was dropped by its limits. */
  first: number;
  last: number;
  storeRanges: Array<[number, number]>;
}

function sources(w: World, maxMessages = 1_000, batch = 2, storeBatch?: number): ReplaySources {
  const reads = { run: <T>(fn: () => Promise<T>) => fn() } as unknown as ReadGate;
  return {
    reads, maxMessages, batch, ...(storeBatch === undefined ? {} : { storeBatch }),
    reader: {
      range: async (_room, from, to, max) => between(w.stream, from, to, max),
      bounds: async () => ({ first: w.first, last: w.last }),
    },
    store: {
      range: async (_room, from, to, max) => {
        w.storeRanges.push([from, to]);
        return between(w.mongo, from, to, max);
      },
      countAfter: async (_room, after, cap) => Math.min(cap, w.mongo.filter((s) => s > after).length),
    },
  };
}

function client(onSend?: (seq: number) => void): ReplayTarget & { got: Array<{ seq: number; prev: number }>; gone: boolean } {
  const t = {
    got: [] as Array<{ seq: number; prev: number }>,
    gone: false,
    alive: () => !t.gone,
    send: async (m: StoredMessage, prev: number) => {
      if (t.gone) return false;
      t.got.push({ seq: m.seq, prev });
      onSend?.(m.seq);
      return true;
    },
  };
  return t;
}

const chain = (seqs: number[], since: number) => seqs.map((seq, i) => ({ seq, prev: i === 0 ? since : seqs[i - 1]! }));

describe('replay (join with since)', () => {
  it('replays every message after since up to the cursor, once, in order, prev chained', async () => {
    const w: World = { stream: [1, 2, 4, 5, 7], mongo: [1, 2, 4, 5, 7], first: 1, last: 7, storeRanges: [] };
    const c = client();
    const r = await replay(sources(w), 'r', 2, () => 7, c);
    assert.deepEqual(r, { ahead: false, recovered: true, replayed: 3 });
    assert.deepEqual(c.got, chain([4, 5, 7], 2));
    assert.deepEqual(w.storeRanges, [], 'the stream held everything: MongoDB is not read');
  });

  it('keeps reading while the cursor moves, up to where it stands at the last check', async () => {
    const w: World = { stream: [1, 2, 3], mongo: [], first: 1, last: 3, storeRanges: [] };
    let cursor = 3;
    const c = client((seq) => {
      if (seq === 3) { w.stream.push(4, 5); w.last = 5; cursor = 5; }
    });
    const r = await replay(sources(w), 'r', 0, () => cursor, c);
    assert.deepEqual(r, { ahead: false, recovered: true, replayed: 5 });
    assert.deepEqual(c.got, chain([1, 2, 3, 4, 5], 0));
  });

  it('reads what the stream no longer holds from MongoDB (inclusive bounds), before what it still holds', async () => {
    const w: World = { stream: [6, 8], mongo: [2, 3, 5, 6, 8], first: 6, last: 8, storeRanges: [] };
    const c = client();
    const r = await replay(sources(w), 'r', 2, () => 8, c);
    assert.deepEqual(r, { ahead: false, recovered: true, replayed: 4 });
    assert.deepEqual(c.got, chain([3, 5, 6, 8], 2));
    assert.deepEqual(w.storeRanges, [[3, 5]], 'from the seq after since up to the one before the stream\'s first');
  });

  it('reads a long backlog from MongoDB in pages, never all of it at once', async () => {
    const seqs = Array.from({ length: 10 }, (_, i) => i + 1);
    const w: World = { stream: [9, 10], mongo: seqs, first: 9, last: 10, storeRanges: [] };
    const c = client();
    const r = await replay(sources(w, 1_000, 2, 3), 'r', 0, () => 10, c);
    assert.deepEqual(r, { ahead: false, recovered: true, replayed: 10 });
    assert.deepEqual(c.got, chain(seqs, 0));
    assert.deepEqual(w.storeRanges, [[1, 8], [4, 8], [7, 8]], 'pages of 3 up to the stream\'s first, each after the last one sent');
  });

  it('a client too far behind gets no replay and recovered: false', async () => {
    const seqs = Array.from({ length: 20 }, (_, i) => i + 1);
    const w: World = { stream: seqs, mongo: seqs, first: 1, last: 20, storeRanges: [] };
    const c = client();
    const r = await replay(sources(w, 5), 'r', 1, () => 20, c);
    assert.deepEqual(r, { ahead: false, recovered: false, replayed: 0 });
    assert.deepEqual(c.got, []);
  });

  it('a since ahead of the stream is refused before anything is read or sent', async () => {
    const w: World = { stream: [1], mongo: [1], first: 1, last: 1, storeRanges: [] };
    const c = client();
    assert.deepEqual(await replay(sources(w), 'r', 9, () => 1, c), { ahead: true, last: 1 });
    assert.deepEqual(c.got, []);
  });

  it('stops when the client goes away in the middle', async () => {
    const seqs = [1, 2, 3, 4, 5, 6];
    const w: World = { stream: seqs, mongo: seqs, first: 1, last: 6, storeRanges: [] };
    const c = client((seq) => { if (seq === 3) c.gone = true; });
    const r = await replay(sources(w), 'r', 0, () => 6, c);
    assert.equal(r.ahead, false);
    assert.deepEqual(c.got.map((g) => g.seq), [1, 2, 3]);
  });

  it('a failed read rejects (the caller answers UNAVAILABLE) instead of skipping messages', async () => {
    const w: World = { stream: [1, 2], mongo: [1, 2], first: 1, last: 2, storeRanges: [] };
    const src = sources(w);
    src.reader = { ...src.reader, range: async () => { throw new Error('stream unreachable'); } };
    const c = client();
    await assert.rejects(replay(src, 'r', 0, () => 2, c), /stream unreachable/);
    assert.deepEqual(c.got, []);
  });
});
