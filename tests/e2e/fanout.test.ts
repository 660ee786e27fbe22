// Guarantees 1, 2 and 4 on the walking skeleton: two gateways and a chat service as separate processes, real
// nats-server, Redis and MongoDB-wire server, clients over real sockets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import type { TestClient } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

describe('fan-out across two gateways', () => {
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;
  let chat: ParleyProcess;

  before(async () => {
    suite = await Suite.open('fanout');
    chat = await suite.start('chat');
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  const connect = (gw: ParleyProcess, user: string): Promise<TestClient> => suite.connect(gw, user);

  it('every client on both gateways receives every message exactly once, in seq order, and each is stored', async () => {
    const room = 'general';
    const users = ['ann', 'ben', 'cat', 'dan', 'eve', 'fay'];
    const members = await Promise.all(users.map((u, i) => connect(i < 3 ? gw1 : gw2, u)));
    for (const m of members) assert.equal((await m.join(room)).type, 'joined');

    // Three senders on both gateways, interleaved, without waiting for acks in between.
    const senders = [members[0]!, members[3]!, members[4]!];
    const perSender = 20;
    const acks = await Promise.all(senders.flatMap((s, si) =>
      Array.from({ length: perSender }, (_, k) => s.sendMessage(room, `s${si}-m${k}`, `hello ${si}/${k}`))));
    for (const a of acks) assert.equal(a.type, 'ack', `expected ack, got ${JSON.stringify(a)}`);
    const seqs = acks.map((a) => a.seq as number);
    assert.equal(new Set(seqs).size, seqs.length, 'every message has its own seq');
    const total = senders.length * perSender;

    await until(() => members.every((m) => m.messages(room).length >= total), { timeout: 15_000, message: 'all deliveries' });
    for (const m of members) {
      const got = m.messages(room);
      assert.equal(got.length, total, `${m.user} received each message exactly once`);
      const order = got.map((f) => f.seq);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `${m.user} received in seq order`);
      assert.deepEqual(new Set(order), new Set(seqs), `${m.user} received exactly the acked seqs`);
    }

    const docs = await suite.messages().find({ room }).toArray();
    assert.equal(docs.length, total);
    const one = docs.find((d) => d._id === ('ann:s0-m0' as unknown));
    assert.ok(one, 'stored under the namespaced id');
    assert.equal(one.room, room);
    assert.equal(one.from, 'ann');
    assert.equal(one.body, 'hello 0/0');
    assert.equal(typeof one.seq, 'number');
    assert.equal(typeof one.ts, 'number');
    assert.equal(one.seq, acks[0]!.seq);
  });

  it('the same client id sent twice yields the same seq, duplicate: true, one document and one broadcast', async () => {
    const room = 'idem';
    const alice = await connect(gw1, 'alice');
    const watcher = await connect(gw2, 'walt');
    await alice.join(room);
    await watcher.join(room);

    const first = await alice.sendMessage(room, 'dup-1', 'once');
    const second = await alice.sendMessage(room, 'dup-1', 'once');
    assert.equal(first.type, 'ack');
    assert.equal(first.duplicate, false);
    assert.equal(second.type, 'ack');
    assert.equal(second.seq, first.seq);
    assert.equal(second.duplicate, true);

    // A later message proves the stream moved on: anything broadcast for dup-1 has arrived by the time it does.
    const marker = await alice.sendMessage(room, 'marker', 'after');
    await watcher.waitFor((f) => f.type === 'message' && f.seq === marker.seq);
    assert.equal(watcher.messages(room).filter((m) => m.id === 'dup-1').length, 1);
    assert.equal(alice.messages(room).filter((m) => m.id === 'dup-1').length, 1);
    const count = await suite.messages().countDocuments({ _id: 'alice:dup-1' as never });
    assert.equal(count, 1);
  });

  it('two users with the same client id make two messages', async () => {
    const room = 'twins';
    const a = await connect(gw1, 'amy');
    const b = await connect(gw2, 'bob');
    await a.join(room);
    await b.join(room);
    const ackA = await a.sendMessage(room, 'same-id', 'from amy');
    const ackB = await b.sendMessage(room, 'same-id', 'from bob');
    assert.equal(ackA.duplicate, false);
    assert.equal(ackB.duplicate, false);
    assert.notEqual(ackA.seq, ackB.seq);
    await until(() => a.messages(room).length === 2 && b.messages(room).length === 2);
    assert.deepEqual(a.messages(room).map((m) => m.from), ['amy', 'bob']);
    const n = await suite.messages().countDocuments({ room });
    assert.equal(n, 2);
  });

  it('the chat service and the gateways expose Prometheus metrics and health', async () => {
    const chatMetrics = await (await fetch(`http://127.0.0.1:${chat.opsPort}/metrics`)).text();
    const stored = /^messages_persisted_total\{[^}]*result="stored"[^}]*\} (\d+)/m.exec(chatMetrics);
    assert.ok(stored && Number(stored[1]) > 0, 'chat counts what it stored');
    assert.equal((await fetch(`http://127.0.0.1:${chat.opsPort}/readyz`)).status, 200);
    // On the metrics port: the public port has no /metrics.
    const gwMetrics = await (await fetch(`http://127.0.0.1:${gw1.opsPort}/metrics`)).text();
    for (const name of ['messages_sent_total', 'active_connections_total', 'avg_message_latency_ms', 'message_latency_seconds_bucket', 'jetstream_publish_seconds_bucket']) {
      assert.match(gwMetrics, new RegExp(`^${name}`, 'm'), name);
    }
  });
});
