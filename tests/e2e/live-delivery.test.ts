// Live delivery never waits on MongoDB (docs/decisions/0014): while the MongoDB-wire server is frozen or dead, sent
// messages still reach the room's members on other gateways; once it answers again every message is stored exactly
// once, and nobody saw a message twice, out of order or behind a hole.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite, ids } from '../harness/suite.js';
import { assertChain } from '../harness/client.js';
import type { Frame, TestClient } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

describe('live delivery while MongoDB is away', () => {
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;

  before(async () => {
    suite = await Suite.open('live', { dedicatedMongo: true, env: { PARLEY_MAX_INFLIGHT: '1000' } });
    await suite.start('chat');
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  const members = async (room: string): Promise<{ a: TestClient; b: TestClient; start: number[] }> => {
    const a = await suite.connect(gw1, `${room}-a`);
    const b = await suite.connect(gw2, `${room}-b`);
    const start = [(await a.join(room)).seq as number, (await b.join(room)).seq as number];
    return { a, b, start };
  };
  const delivered = (c: TestClient, room: string, n: number, message: string): Promise<void> =>
    until(() => c.messages(room).length >= n, { timeout: 20_000, message });

  /** Every acked message stored once with its acked seq; every member saw each once, in order, on an unbroken chain. */
  const allOnce = async (room: string, acks: Frame[], clients: TestClient[], start: number[]): Promise<void> => {
    assert.ok(acks.every((f) => f.type === 'ack' && f.duplicate === false), 'JetStream is up: every send is acked, once');
    const seqs = acks.map((f) => f.seq as number);
    await until(async () => (await suite.messages().countDocuments({ room })) >= seqs.length, { timeout: 60_000, message: 'all stored' });
    const docs = await suite.messages().find({ room }).sort({ seq: 1 }).toArray();
    assert.deepEqual(docs.map((d) => d.seq as number), seqs, 'one document per message, with its acked seq');
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(c.messages(room).map((m) => m.seq), seqs, `${c.user}: all, once, in order`);
      assertChain(c.messages(room), start[i]!, c.user);
    }
  };

  it('MongoDB frozen: messages sent meanwhile are delivered while it is frozen; after it thaws each is stored once', async () => {
    const room = 'frozen';
    const { a, b, start } = await members(room);
    const pre = await a.sendAll(room, ids('pre', 10));
    await delivered(b, room, 10, 'delivery before the freeze');
    await until(async () => (await suite.messages().countDocuments({ room })) === 10, { message: 'stored before the freeze' });
    await suite.mongoServer.freeze();
    let during: Frame[];
    try {
      during = await a.sendAll(room, ids('mid', 40));
      // Still frozen here: delivery must not wait for the store.
      await delivered(b, room, 50, 'live delivery while MongoDB is frozen');
      await delivered(a, room, 50, 'the sender\'s own gateway too');
    } finally {
      await suite.mongoServer.thaw();
    }
    await allOnce(room, [...pre, ...during], [a, b], start);
  });

  it('MongoDB killed and restarted under sends: delivery goes on while it is down; afterwards each is stored once', async () => {
    const room = 'killed';
    const { a, b, start } = await members(room);
    const sent: Frame[] = [];
    sent.push(...await a.sendAll(room, ids('pre', 10)));
    await suite.mongoServer.kill();
    try {
      sent.push(...await a.sendAll(room, ids('down', 30)));
      await delivered(b, room, 40, 'live delivery while MongoDB is down');
    } finally {
      const restarting = suite.mongoServer.start();
      // Sends go on while it comes back.
      sent.push(...await a.sendAll(room, ids('back', 20)));
      await restarting;
    }
    await delivered(b, room, 60, 'delivery after the restart');
    await allOnce(room, sent, [a, b], start);
  });
});
