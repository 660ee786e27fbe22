// Focused tests of the defects that lost acked messages or hid holes under faults, one module at a time against
// real servers: the store's insert cut off by a crash, the consumer's flow control and hand-back, and a gateway
// room feed that cannot read a gap from the stream. The chaos suite (npm run chaos) exercises them together.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { JsMsg } from '@nats-io/jetstream';
import { pino } from 'pino';
import { loadConfig } from '../../lib/config/index.js';
import type { StreamConfig } from '../../lib/config/index.js';
import { RoomFeed } from '../../lib/gateway/rooms.js';
import { connectNats, createPublisher, createRoomReader, createdWildcard, ensureDurable, ensureStream, startBatchConsumer } from '../../lib/eventlog/index.js';
import type { BatchConsumer, NatsHandle } from '../../lib/eventlog/index.js';
import type { Broadcast, StoredMessage } from '../../lib/protocol/index.js';
import { openMessageStore } from '../../lib/store/index.js';
import type { MessageDoc } from '../../lib/store/index.js';
import { provideMongo, provideNats, uniqueName, until } from '../harness/index.js';
import type { ServiceHandle } from '../harness/index.js';

const log = pino({ level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'silent' });

/** A logger that keeps every line, so a test can wait for what a component reports it is doing. */
function captureLog(): { log: typeof log; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => { lines.push(s); } }), lines };
}

/** Bytes the kernel holds for a local listener on `port` that its (frozen) process has not read: a request in flight. */
async function queuedTo(port: number): Promise<number> {
  let total = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(f, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 5 || parseInt(cols[1]!.split(':')[1]!, 16) !== port) continue;
      total += parseInt(cols[4]!.split(':')[1]!, 16);
    }
  }
  return total;
}

function streamConfig(name: string): StreamConfig {
  return { ...loadConfig({}).stream, name: name.toUpperCase(), subjectRoot: name };
}

describe('store: an insert cut off by a crash', () => {
  let mongo: ServiceHandle;
  before(async () => {
    mongo = await provideMongo({ dedicated: true });
  });
  after(() => mongo.close());

  const doc = (i: number): MessageDoc => ({ _id: `u:m${i}`, room: 'r', seq: i, from: 'u', body: `b${i}`, ts: 1 });

  it('a connection reset mid-insert is a failure, never a success', async () => {
    const store = await openMessageStore(mongo.url, uniqueName('crash'), log);
    try {
      assert.deepEqual((await store.insert([doc(1)])).inserted.map((d) => d.seq), [1]);
      // Freeze the server so the insert is in flight, then kill it: the driver sees its connection closed. It
      // reports that as a MongoBulkWriteError with no write errors, which used to count as "all stored".
      await mongo.freeze();
      const pending = store.insert([doc(2), doc(3)]).then(() => 'resolved', (err: unknown) => err);
      // Wait until the insert sits unread at the frozen server (a container's socket is not visible from here: then
      // the kill may come before the write, and the insert fails either way).
      const port = Number(new URL(mongo.url).port);
      await until(async () => (await queuedTo(port)) > 0, { timeout: 3_000, message: 'the insert in flight' }).catch(() => undefined);
      await mongo.kill();
      await mongo.start();
      const outcome = await pending;
      assert.notEqual(outcome, 'resolved', 'an insert the server never confirmed must reject');
      // The retry the caller makes stores both, once.
      const again = await store.insert([doc(2), doc(3)]);
      assert.equal(again.inserted.length + again.existing.length, 2);
      assert.deepEqual([...await store.seqsIn(1, 3)].sort(), [1, 2, 3]);
    } finally {
      await store.close();
    }
  });

  it('a redelivered batch resolves with the documents already stored, without a second copy', async () => {
    const store = await openMessageStore(mongo.url, uniqueName('redeliver'), log);
    try {
      await store.insert([doc(1), doc(2)]);
      const r = await store.insert([doc(1), doc(2), doc(3)]);
      assert.deepEqual(r.inserted.map((d) => d.seq), [3]);
      assert.deepEqual(r.existing.map((d) => d.seq).sort(), [1, 2]);
      assert.deepEqual([...await store.seqsIn(0, 10)].sort(), [1, 2, 3]);
    } finally {
      await store.close();
    }
  });
});

describe('consumer: flow control and hand-back', () => {
  let server: ServiceHandle;
  let nats: NatsHandle;
  before(async () => {
    server = await provideNats();
    nats = await connectNats(server.url, 'consumer-test', log);
  });
  after(async () => {
    await nats.close();
    await server.close();
  });

  /** A fresh stream with `n` events and a durable consumer on it. */
  async function streamWith(n: number, ackWaitMs: number): Promise<{ stream: string; durable: string; settled: () => Promise<boolean>; idle: () => Promise<boolean> }> {
    const cfg = streamConfig(uniqueName('cons'));
    const jsm = await ensureStream(nats.nc, cfg, log);
    const pub = createPublisher(nats, cfg);
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publish({ room: 'r', id: `m${i}`, from: 'u', body: 'b', ts: 1 })));
    await ensureDurable(jsm, cfg.name, { name: 'persist', filterSubject: createdWildcard(cfg.subjectRoot), ackWaitMs, maxAckPending: 1_000 }, log);
    const settled = async (): Promise<boolean> => {
      const info = await jsm.consumers.info(cfg.name, 'persist');
      // consumer_seq counts every delivery, redeliveries included: n means each message went out exactly once.
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.consumer_seq === n;
    };
    const idle = async (): Promise<boolean> => {
      const info = await jsm.consumers.info(cfg.name, 'persist');
      return info.num_pending === 0 && info.num_ack_pending === 0;
    };
    return { stream: cfg.name, durable: 'persist', settled, idle };
  }

  it('a slow handler never turns the messages queued behind it into redeliveries', async () => {
    const ackWaitMs = 1_000;
    const { stream, durable, settled } = await streamWith(40, ackWaitMs);
    const seen: number[] = [];
    let redelivered = 0;
    let maxHeld = 0;
    const consumer: BatchConsumer = await startBatchConsumer(nats, {
      stream, durable, maxBatch: 10, ackWaitMs, maxHoldMs: 60_000, log,
      async handle(batch: JsMsg[]) {
        maxHeld = Math.max(maxHeld, consumer.health().held);
        // A database that takes longer than ack_wait for every batch (the FerretDB scan that stalled chat).
        await new Promise((r) => setTimeout(r, ackWaitMs * 1.5));
        for (const m of batch) {
          if (m.redelivered) redelivered++;
          seen.push(m.seq);
          m.ack();
        }
      },
    });
    try {
      await until(() => seen.length >= 40, { timeout: 30_000, message: '40 messages handled' });
      await until(settled, { timeout: 10_000, message: 'the consumer delivered each message once and has nothing pending' });
      assert.equal(redelivered, 0, 'no message was redelivered while this instance held it');
      assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => i + 1), 'each once, in stream order');
      assert.ok(maxHeld <= 10, `held at most one batch (${maxHeld})`);
    } finally {
      await consumer.close();
    }
  });

  // Two steps per batch (docs/decisions/0014): the ordered one (the broadcast) must never wait for the unordered one
  // (the store), and a batch is acked only after both.
  it('an unordered step that hangs holds back neither the ordered steps of later batches nor anything else; its batch is handed back alone and acked once stored', async () => {
    const { stream, durable, idle } = await streamWith(30, 1_000);
    const ordered: number[] = [];
    const stored = new Set<number>();
    let storeUp = false;
    const stuck: string[] = [];
    const consumer = await startBatchConsumer(nats, {
      stream, durable, maxBatch: 10, ackWaitMs: 1_000, maxHoldMs: 1_500, log,
      async handle(batch: JsMsg[]) {
        return {
          ack: batch,
          ordered: async () => { for (const m of batch) ordered.push(m.seq); },
          // A store that hangs (a frozen server) until it is back; then it stores.
          unordered: () => (storeUp ? Promise.resolve().then(() => { for (const m of batch) stored.add(m.seq); }) : new Promise<void>(() => undefined)),
        };
      },
      onStuck: async (step) => { stuck.push(step); },
    });
    try {
      await until(() => ordered.length >= 30, { message: 'every batch broadcast while the store hangs' });
      assert.deepEqual(ordered.slice(0, 30), Array.from({ length: 30 }, (_, i) => i + 1), 'in stream order');
      assert.equal(stored.size, 0);
      assert.ok(!(await idle()), 'nothing is acked before it is stored');
      storeUp = true;
      await until(() => stored.size === 30, { timeout: 20_000, message: 'everything stored once the store is back' });
      await until(() => idle(), { timeout: 10_000, message: 'and acked' });
      assert.ok(stuck.includes('unordered') && !stuck.includes('ordered'), `only the store step was recycled (${stuck.join(',')})`);
    } finally {
      await consumer.close();
    }
  });

  it('the unordered steps of several batches run at once (a store round trip does not bound throughput)', async () => {
    const { stream, durable, idle } = await streamWith(80, 5_000);
    let inFlight = 0;
    let most = 0;
    const stored = new Set<number>();
    const consumer = await startBatchConsumer(nats, {
      stream, durable, maxBatch: 10, ackWaitMs: 5_000, maxHoldMs: 30_000, unorderedConcurrency: 4, log,
      async handle(batch: JsMsg[]) {
        return {
          ack: batch,
          ordered: async () => undefined,
          unordered: async () => {
            most = Math.max(most, ++inFlight);
            await new Promise((r) => setTimeout(r, 200));
            inFlight--;
            for (const m of batch) stored.add(m.seq);
          },
        };
      },
    });
    try {
      await until(() => stored.size === 80, { timeout: 20_000, message: 'all stored' });
      await until(() => idle(), { message: 'and acked' });
      assert.ok(most > 1 && most <= 4, `several stores in flight, at most the configured 4 (${most})`);
    } finally {
      await consumer.close();
    }
  });

  const wedgedHandlers: [string, () => Promise<void>][] = [
    ['keeps failing', async () => { throw new Error('MongoServerSelectionError: connection closed'); }],
    ['hangs (a driver call that never returns)', () => new Promise<void>(() => undefined)],
  ];
  for (const [how, wedgedHandle] of wedgedHandlers) it(`a batch that ${how} is handed back within maxHoldMs and another instance stores it`, async () => {
    const { stream, durable } = await streamWith(5, 1_000);
    let stuck = 0;
    const wedged = await startBatchConsumer(nats, {
      stream, durable, maxBatch: 10, ackWaitMs: 1_000, maxHoldMs: 1_500, log,
      handle: wedgedHandle,
      onStuck: async () => { stuck++; },
    });
    const got = new Set<number>();
    let healthy: BatchConsumer | undefined;
    try {
      await until(() => wedged.health().held > 0, { message: 'the wedged instance took the batch' });
      healthy = await startBatchConsumer(nats, {
        stream, durable, maxBatch: 10, ackWaitMs: 1_000, maxHoldMs: 60_000, log,
        async handle(batch: JsMsg[]) {
          for (const m of batch) {
            got.add(m.seq);
            m.ack();
          }
        },
      });
      await until(() => got.size === 5, { timeout: 20_000, message: 'the healthy instance stored every message' });
      assert.ok(stuck >= 1, 'the wedged instance recycled its clients');
      assert.equal(wedged.health().healthy, false, 'and reports itself unhealthy');
      assert.ok(wedged.health().handedBack >= 5);
    } finally {
      await wedged.close();
      await healthy?.close();
    }
  });
});

describe('room feed: a gap the stream cannot fill', () => {
  let server: ServiceHandle;
  let nats: NatsHandle;
  before(async () => {
    server = await provideNats({ dedicated: true });
    nats = await connectNats(server.url, 'feed-test', log);
  });
  after(async () => {
    await nats.close();
    await server.close();
  });

  const noRedis = { listen: () => {}, subscribe: async () => {}, unsubscribe: async () => {}, ready: () => true };

  async function setup(gapTimeoutMs: number, feedLog = log) {
    const cfg = { ...streamConfig(uniqueName('feed')), publishTimeoutMs: 500 };
    const jsm = await ensureStream(nats.nc, cfg, log);
    const pub = createPublisher(nats, cfg);
    const send = async (id: string): Promise<number> => (await pub.publish({ room: 'r', id, from: 'u', body: id, ts: 1 })).seq;
    const delivered: { seq: number; prev: number }[] = [];
    const lost: string[] = [];
    const feed = new RoomFeed(noRedis, createRoomReader(nats.nc, jsm, cfg), (m: StoredMessage, prev: number) => {
      delivered.push({ seq: m.seq, prev });
    }, feedLog, gapTimeoutMs, (room) => lost.push(room));
    // Room r with one message, joined; then two more, whose broadcasts were lost (Redis); then the stream goes away.
    await send('a');
    await feed.join('r');
    const s2 = await send('b');
    const s3 = await send('c');
    await server.stop();
    return { delivered, lost, feed, s2, s3 };
  }
  const broadcast = (seq: number, prev: number): Broadcast => ({ room: 'r', id: `b${seq}`, seq, prev, from: 'u', body: '', ts: 1 });

  it('holds the room while the stream is unreachable and delivers the gap in order once it is back', async () => {
    const capture = captureLog();
    const { delivered, lost, feed, s2, s3 } = await setup(60_000, capture.log);
    try {
      feed.onBroadcast('r', broadcast(s3, s2));
      await until(() => capture.lines.some((l) => l.includes('holding the room')),
        { timeout: 15_000, message: 'a failed read of the gap' });
      assert.deepEqual(delivered, [], 'nothing past the gap is delivered while it cannot be filled');
    } finally {
      await server.start();
    }
    await until(() => delivered.length === 2, { timeout: 20_000, message: 'the gap and the held message' });
    assert.deepEqual(delivered, [{ seq: s2, prev: 1 }, { seq: s3, prev: s2 }]);
    assert.deepEqual(lost, []);
  });

  it('gives the room up (its clients must recover) instead of delivering past a gap it cannot fill in time', async () => {
    const { delivered, lost, feed, s2, s3 } = await setup(500);
    try {
      feed.onBroadcast('r', broadcast(s3, s2));
      await until(() => lost.length > 0, { timeout: 10_000, message: 'the room given up' });
      assert.deepEqual(lost, ['r']);
      feed.onBroadcast('r', broadcast(s3 + 1, s3));
      assert.deepEqual(delivered, [], 'never a message whose prev would hide the hole');
      await assert.rejects(feed.join('r'), /join again/, 'no one joins the lost room until its members are gone');
      feed.leave('r');
    } finally {
      await server.start();
    }
  });
});
