// Guarantees 1 and 6 under faults: a chat service killed with events in flight, and JetStream going away.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import type { ServiceHandle } from '../harness/index.js';
import type { TestClient } from '../harness/client.js';
import type { Frame } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

describe('faults', () => {
  let suite: Suite;
  let nats: ServiceHandle;
  let gw: ParleyProcess;
  let chat: ParleyProcess;

  before(async () => {
    // A NATS server of this suite's own: the test stops it.
    suite = await Suite.open('faults', { dedicatedNats: true });
    nats = suite.nats;
    chat = await suite.start('chat');
    gw = await suite.start('gateway');
  });
  after(() => suite.close());

  const connect = (user: string): Promise<TestClient> => suite.connect(gw, user);
  const messages = () => suite.messages();

  it('a chat service killed with events in flight: every acked message is stored and delivered once after restart', async () => {
    const room = 'crash';
    const sender = await connect('sam');
    const reader = await connect('rita');
    await sender.join(room);
    await reader.join(room);

    const total = 120;
    const acks: Promise<Frame>[] = [];
    for (let i = 0; i < total; i++) {
      acks.push(sender.sendMessage(room, `c${i}`, `body ${i}`));
      // Kill the chat process in the middle of the stream, while earlier events are being stored and published.
      if (i === 40) await chat.kill('SIGKILL');
    }
    const frames = await Promise.all(acks);
    for (const f of frames) assert.equal(f.type, 'ack', `JetStream is up, so every send is acked: ${JSON.stringify(f)}`);
    assert.ok(!chat.running);

    await chat.start();
    await until(async () => (await messages().countDocuments({ room })) === total, { timeout: 20_000, message: 'all stored' });
    await until(() => reader.messages(room).length >= total, { timeout: 20_000, message: 'all delivered' });
    // Let any redelivered copy arrive before counting: a marker sent after the restart is broadcast after them.
    const marker = await sender.sendMessage(room, 'marker', 'end');
    await reader.waitFor((f) => f.type === 'message' && f.seq === marker.seq);

    const got = reader.messages(room).filter((m) => m.id !== 'marker');
    assert.equal(got.length, total, 'each acked message delivered exactly once');
    assert.deepEqual(new Set(got.map((m) => m.seq)), new Set(frames.map((f) => f.seq)));
    const docs = await messages().find({ room }).toArray();
    assert.equal(docs.length, total + 1, 'one document per message');
  });

  it('JetStream unavailable: send gets UNAVAILABLE and never an ack; after NATS is back a retry with the same id succeeds once', async () => {
    const room = 'outage';
    const alice = await connect('alice');
    const bob = await connect('bob');
    await alice.join(room);
    await bob.join(room);
    const ok = await alice.sendMessage(room, 'before', 'before the outage');
    assert.equal(ok.type, 'ack');

    await nats.stop();
    try {
      const failed = await alice.sendMessage(room, 'during', 'while NATS is down');
      assert.equal(failed.type, 'error');
      assert.equal(failed.code, 'UNAVAILABLE');
      assert.equal(failed.ref, 'during');
      assert.equal(alice.frames.filter((f) => f.type === 'ack' && f.id === 'during').length, 0);
    } finally {
      await nats.start();
    }

    // The gateway reconnects by itself; the client retries with the same id until it is stored.
    let retry: Frame | undefined;
    await until(async () => {
      retry = await alice.sendMessage(room, 'during', 'while NATS is down');
      return retry.type === 'ack';
    }, { timeout: 20_000, interval: 200, message: 'retry acked after NATS is back' });
    const again = await alice.sendMessage(room, 'during', 'while NATS is down');
    assert.equal(again.type, 'ack');
    assert.equal(again.seq, retry!.seq);
    assert.equal(again.duplicate, true);

    await until(() => bob.messages(room).some((m) => m.id === 'during'), { timeout: 20_000 });
    const marker = await alice.sendMessage(room, 'marker2', 'end');
    await bob.waitFor((f) => f.type === 'message' && f.seq === marker.seq, { timeout: 20_000 });
    assert.equal(bob.messages(room).filter((m) => m.id === 'during').length, 1, 'delivered once');
    assert.equal(await messages().countDocuments({ _id: 'alice:during' as never }), 1, 'stored once');
  });

  it('SIGTERM drains a gateway: in-flight sends are acked and stored, clients get 1012, the process exits 0', async () => {
    const room = 'drain';
    const leaving = await suite.start('gateway');
    const alice = await suite.connect(leaving, 'alice');
    await alice.join(room);
    const ids = Array.from({ length: 200 }, (_, i) => `t${i}`);
    for (const id of ids) alice.send({ type: 'send', room, id, body: 'bye' });
    const exit = leaving.stop();
    const closed = await alice.closed;
    assert.equal(closed.code, 1012);
    assert.equal(await exit, 0);
    const acked = alice.frames.filter((f) => f.type === 'ack').map((f) => `alice:${String(f.id)}`);
    assert.ok(acked.length > 0, 'sends in flight at SIGTERM were answered before the sockets closed');
    await until(async () => (await messages().countDocuments({ _id: { $in: acked as never[] } })) === acked.length,
      { message: 'every acked message stored' });
  });
});
