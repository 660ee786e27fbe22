// Guarantee 6: when MongoDB or Redis fails and comes back, every acked message is eventually stored and delivered,
// exactly once and in order; sending never stops while JetStream is up.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { ServiceHandle } from '../harness/index.js';
import { Suite, ids } from '../harness/suite.js';
import { assertChain } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

describe('MongoDB and Redis outages', () => {
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;

  before(async () => {
    suite = await Suite.open('outage', { dedicatedRedis: true, dedicatedMongo: true, env: { PARLEY_MAX_INFLIGHT: '1000' } });
    await suite.start('chat');
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  /** 10 messages, the outage, 50 messages during it, recovery; then all 60 everywhere, once, in order, stored. */
  const survives = async (room: string, fail: () => Promise<void>, recover: () => Promise<void>): Promise<void> => {
    const a = await suite.connect(gw1, `${room}-a`);
    const b = await suite.connect(gw2, `${room}-b`);
    const start = [(await a.join(room)).seq as number, (await b.join(room)).seq as number];
    const before = await a.sendAll(room, ids('pre', 10));
    await until(() => b.messages(room).length === 10);
    await fail();
    let during;
    try {
      during = await a.sendAll(room, ids('mid', 50));
      assert.ok(during.every((f) => f.type === 'ack'), 'JetStream is up: every send is acked');
    } finally {
      await recover();
    }
    // Nothing is sent afterwards: the system must catch up by itself.
    const total = [...before, ...during].map((f) => f.seq as number);
    await until(() => a.messages(room).length >= 60 && b.messages(room).length >= 60, { timeout: 30_000, message: 'all delivered' });
    await until(async () => (await suite.messages().countDocuments({ room })) === 60, { timeout: 30_000, message: 'all stored' });
    for (const [i, c] of [a, b].entries()) {
      assert.deepEqual(c.messages(room).map((m) => m.seq), total, `${c.user}: all, once, in order`);
      assertChain(c.messages(room), start[i]!, c.user);
    }
  };
  const mongo = (): ServiceHandle => suite.mongoServer;

  it('MongoDB hung: sends are still acked; after it answers again every acked message is stored and delivered once, in order',
    () => survives('nomongo', () => mongo().freeze(), () => mongo().thaw()));

  // The "FerretDB loses acknowledged writes after a restart" once blamed here was chat counting an insert cut off by
  // the crash as stored (the driver reports it as a bulk error with no write errors).
  it('MongoDB killed and restarted: every acked message is stored and delivered once, in order',
    () => survives('killmongo', () => mongo().kill(), () => mongo().start()));

  it('Redis killed: sends are still acked; after it is back every acked message reaches every gateway once, in order',
    () => survives('noredis', () => suite.redis.kill(), () => suite.redis.start()));
});
