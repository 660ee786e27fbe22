// The history fast path (lib/gateway/history-cache.ts) against a real nats-server and a real MongoDB-wire server:
// every page it answers is the page MongoDB answers, also where the room's tail ends, where the stream no longer
// holds older messages, after new messages arrived, and when the stream cannot answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../lib/config/index.js';
import type { StreamConfig } from '../../lib/config/index.js';
import { connectNats, createPublisher, createRoomReader, ensureStream } from '../../lib/eventlog/index.js';
import type { NatsHandle, RoomReader } from '../../lib/eventlog/index.js';
import { createHistoryPages } from '../../lib/gateway/history-cache.js';
import type { HistoryPages } from '../../lib/gateway/history-cache.js';
import type { ChatMessage, StoredMessage } from '../../lib/protocol/index.js';
import { storedAt } from '../../lib/protocol/index.js';
import { createReadGate, openMessageStore, toDoc } from '../../lib/store/index.js';
import type { MessageStore, ReadGate } from '../../lib/store/index.js';
import { provideMongo, provideNats, uniqueName } from '../harness/index.js';
import type { ServiceHandle } from '../harness/index.js';

const log = pino({ level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'silent' });
/** The stream keeps only this many messages: older ones exist in MongoDB alone. */
const STREAM_KEEPS = 60;
const TAIL = 16;

describe('history pages from the room tails', () => {
  let natsServer: ServiceHandle;
  let mongoServer: ServiceHandle;
  let nats: NatsHandle;
  let store: MessageStore;
  let reader: RoomReader;
  let reads: ReadGate;
  let cfg: StreamConfig;
  const alive = (): boolean => true;

  /** Publishes to the stream and stores the projection, as chat would. */
  const send = async (room: string, n: number, tag: string): Promise<void> => {
    const publisher = createPublisher(nats, cfg);
    const stored: StoredMessage[] = [];
    for (let i = 0; i < n; i++) {
      const ev: ChatMessage = { room, id: `${tag}${i}`, from: `u${i % 3}`, body: `body ${tag} ${i}`, ts: Date.now(),
        ...(i % 7 === 0 ? { mentions: ['u1'] } : {}) };
      const ack = await publisher.publish(ev);
      stored.push(storedAt(ev, ack.seq));
    }
    await store.insert(stored.map(toDoc));
  };

  /** Every `before` from past the newest to below the oldest seq, with several limits: the same page as MongoDB. */
  const assertSamePages = async (pages: HistoryPages, room: string): Promise<number> => {
    const { first, last } = await reader.bounds();
    // Every third seq, and each seq around the stream's first one (where the stream's part of a room ends).
    const befores = new Set<number | undefined>([undefined, last + 5, first - 1, first, first + 1, first + 2]);
    for (let s = last + 1; s >= 1; s -= 3) befores.add(s);
    // MongoDB's whole room once, newest first: its page for (before, n) is the first n with seq < before. A few pages
    // are asked of MongoDB itself as well, so the test also holds if page() were to change.
    const all = await store.page(room, undefined, 100_000);
    for (const b of [undefined, first, last]) assert.deepEqual(await store.page(room, b, 45), all.filter((m) => b === undefined || m.seq < b).slice(0, 45));
    let compared = 0;
    for (const n of [1, TAIL + 1, 201]) {
      for (const b of befores) {
        const want = all.filter((m) => b === undefined || m.seq < b).slice(0, n);
        const got = await pages.page(room, b, n, alive);
        assert.deepEqual(got, want, `room ${room}, before ${b}, limit ${n}`);
        compared++;
      }
    }
    return compared;
  };

  before(async () => {
    [natsServer, mongoServer] = await Promise.all([provideNats(), provideMongo()]);
    const name = uniqueName('hcache');
    cfg = { ...loadConfig({}).stream, name: name.toUpperCase(), subjectRoot: name, maxMsgs: STREAM_KEEPS };
    nats = await connectNats(natsServer.url, 'history-cache-test', log);
    const jsm = await ensureStream(nats.nc, cfg, log);
    reader = createRoomReader(nats.nc, jsm, cfg);
    store = await openMessageStore(mongoServer.url, name, log);
    reads = createReadGate({ maxInflight: 4, maxQueued: 100, queueTimeoutMs: 5_000 });
  });

  after(async () => {
    await store?.close();
    await nats?.close();
    await Promise.all([natsServer?.close(), mongoServer?.close()]);
  });

  it('answers exactly the pages MongoDB answers, across the tail and the stream\'s retention boundary', async () => {
    // Two rooms interleaved, more messages than the stream keeps: room a's oldest are in MongoDB only.
    for (let round = 0; round < 4; round++) {
      await send('a', 20, `a${round}-`);
      await send('b', 7, `b${round}-`);
    }
    const { first } = await reader.bounds();
    assert.ok(first > 1, 'the stream dropped its oldest messages');
    const pages = createHistoryPages({ reader, store, reads }, { rooms: 10, messagesPerRoom: TAIL });
    assert.ok(await assertSamePages(pages, 'a') > 0);
    await assertSamePages(pages, 'b');
    await assertSamePages(pages, 'empty');
    // New messages after the tails were built: the next pages include them, still equal to MongoDB's.
    await send('a', 9, 'late-');
    await send('b', 30, 'late-');
    await assertSamePages(pages, 'a');
    await assertSamePages(pages, 'b');
  });

  it('a tail larger than the room, and a cache of one room that keeps evicting, answer the same pages', async () => {
    const big = createHistoryPages({ reader, store, reads }, { rooms: 10, messagesPerRoom: 1_000 });
    await assertSamePages(big, 'a');
    const tiny = createHistoryPages({ reader, store, reads }, { rooms: 1, messagesPerRoom: 3 });
    for (const room of ['a', 'b', 'a']) await assertSamePages(tiny, room);
  });

  it('when the stream cannot answer, pages come from MongoDB', async () => {
    let calls = 0;
    const failing = {
      ...reader,
      lastSeq: async (): Promise<number> => {
        calls++;
        throw new Error('stream unavailable');
      },
    };
    const pages = createHistoryPages({ reader: failing, store, reads }, { rooms: 10, messagesPerRoom: TAIL });
    assert.deepEqual(await pages.page('a', undefined, 10, alive), await store.page('a', undefined, 10));
    assert.ok(calls > 0, 'the stream was asked first');
    // Known to be unreachable: not even asked.
    const down = createHistoryPages({ reader: failing, store, reads, streamUp: () => false }, { rooms: 10, messagesPerRoom: TAIL });
    const asked = calls;
    assert.deepEqual(await down.page('b', undefined, 10, alive), await store.page('b', undefined, 10));
    assert.equal(calls, asked);
  });
});
