// RoomFeed against a fake stream reader and a fake subscription: per-room order, gaps filled from the stream before
// the broadcast that revealed them, catch-up after a lost subscription, and giving a room up rather than hiding a hole.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { FanoutSubscriber } from '../../lib/fanout/index.js';
import type { RoomReader } from '../../lib/eventlog/index.js';
import { RoomFeed } from '../../lib/gateway/rooms.js';
import type { Broadcast, StoredMessage } from '../../lib/protocol/index.js';
import { until } from '../harness/wait.js';

const log = pino({ level: 'silent' });

const msg = (seq: number): StoredMessage => ({ room: 'r', id: `m${seq}`, seq, from: 'u', body: `b${seq}`, ts: 1 });
const broadcast = (seq: number, prev?: number): Broadcast => (prev === undefined ? msg(seq) : { ...msg(seq), prev });

/** A stream holding `seqs` of room r; `failing` makes every read throw. */
function fakeReader(seqs: number[]): RoomReader & { failing: boolean; reads: number } {
  const r = {
    failing: false,
    reads: 0,
    async range(room: string, from: number, to: number, max: number) {
      r.reads++;
      if (r.failing) throw new Error('stream unreachable');
      return seqs.filter((s) => room === 'r' && s >= from && s <= to).slice(0, max).map(msg);
    },
    async rangeAll() { return []; },
    async prevOf() { return 0; },
    async lastSeq() {
      if (r.failing) throw new Error('stream unreachable');
      return seqs.length > 0 ? seqs[seqs.length - 1]! : 0;
    },
    async bounds() { return { first: seqs[0] ?? 1, last: seqs[seqs.length - 1] ?? 0 }; },
  };
  return r;
}

const noSub: FanoutSubscriber = { listen: () => undefined, subscribe: async () => undefined, unsubscribe: async () => undefined, ready: () => true };

function feed(reader: RoomReader, gapTimeoutMs = 60_000) {
  const delivered: Array<{ seq: number; prev: number }> = [];
  const lost: string[] = [];
  const f = new RoomFeed(noSub, reader, (m, prev) => delivered.push({ seq: m.seq, prev }), log, gapTimeoutMs, (room) => lost.push(room));
  return { f, delivered, lost };
}

describe('room feed (unit, fake stream)', () => {
  it('delivers broadcasts that follow the cursor in order, and drops repeats', async () => {
    const { f, delivered } = feed(fakeReader([1, 2]));
    const st = await f.join('r');
    assert.equal(st.cursor, 2, 'the cursor starts at the stream\'s last seq of the room');
    f.onBroadcast('r', broadcast(3, 2));
    f.onBroadcast('r', broadcast(4, 3));
    f.onBroadcast('r', broadcast(3, 2));
    assert.deepEqual(delivered, [{ seq: 3, prev: 2 }, { seq: 4, prev: 3 }]);
  });

  it('a gap is read from the stream and delivered before the broadcast that revealed it', async () => {
    const seqs = [1, 2];
    const { f, delivered } = feed(fakeReader(seqs));
    await f.join('r');
    seqs.push(3, 4, 5); // the stream grew, but only 5 arrived on Redis
    f.onBroadcast('r', broadcast(5, 4));
    await until(() => delivered.length === 3);
    assert.deepEqual(delivered, [{ seq: 3, prev: 2 }, { seq: 4, prev: 3 }, { seq: 5, prev: 4 }]);
  });

  it('out-of-order broadcasts are sorted by seq and none is delivered twice', async () => {
    const seqs = [1];
    const reader = fakeReader(seqs);
    const { f, delivered } = feed(reader);
    await f.join('r');
    seqs.push(2, 3);
    f.onBroadcast('r', broadcast(3, 2));
    f.onBroadcast('r', broadcast(2, 1));
    await until(() => delivered.length === 2);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(delivered, [{ seq: 2, prev: 1 }, { seq: 3, prev: 2 }]);
  });

  it('resyncAll catches a room up with the stream after the subscription was lost', async () => {
    const seqs = [1];
    const { f, delivered } = feed(fakeReader(seqs));
    await f.join('r');
    seqs.push(2, 3, 4); // published while Redis was away: no broadcast will ever arrive
    f.resyncAll();
    await until(() => delivered.length === 3);
    assert.deepEqual(delivered.map((d) => d.seq), [2, 3, 4]);
    f.onBroadcast('r', broadcast(5, 4));
    assert.deepEqual(delivered.at(-1), { seq: 5, prev: 4 }, 'live again on the fast path');
  });

  it('holds the room while the stream cannot be read, then fills the gap in order', async () => {
    const seqs = [1];
    const reader = fakeReader(seqs);
    const { f, delivered, lost } = feed(reader);
    await f.join('r');
    seqs.push(2, 3);
    reader.failing = true;
    f.onBroadcast('r', broadcast(3, 2));
    await until(() => reader.reads >= 2, { message: 'read retried' });
    assert.deepEqual(delivered, [], 'nothing delivered past the hole');
    reader.failing = false;
    await until(() => delivered.length === 2, { timeout: 5_000 });
    assert.deepEqual(delivered, [{ seq: 2, prev: 1 }, { seq: 3, prev: 2 }]);
    assert.deepEqual(lost, []);
  });

  it('gives the room up when the gap cannot be read in time, and refuses joins until it is reset', async () => {
    const reader = fakeReader([1]);
    const { f, delivered, lost } = feed(reader, 150);
    await f.join('r');
    reader.failing = true;
    f.onBroadcast('r', broadcast(3, 2));
    await until(() => lost.length === 1, { timeout: 5_000 });
    assert.deepEqual(lost, ['r']);
    assert.deepEqual(delivered, []);
    f.onBroadcast('r', broadcast(4, 3));
    assert.deepEqual(delivered, [], 'a lost room delivers nothing more');
    await assert.rejects(f.join('r'), /being reset/);
    f.leave('r');
    f.leave('r');
    reader.failing = false;
    const st = await f.join('r');
    assert.equal(st.lost, false, 'once its members are gone the room starts afresh');
  });

  it('gives the room up when the stream no longer holds what prev names', async () => {
    const { f, delivered, lost } = feed(fakeReader([1]));
    await f.join('r');
    // The stream dropped 2 (limits): the read finds nothing, yet 3 says it follows 2.
    f.onBroadcast('r', broadcast(3, 2));
    await until(() => lost.length === 1);
    assert.deepEqual(delivered, []);
  });
});
