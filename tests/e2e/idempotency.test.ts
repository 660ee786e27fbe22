// Idempotency for hours (docs/decisions/0015): a resend of an id after JetStream's duplicate window is acked with the
// ORIGINAL seq and `duplicate: true`, reaches nobody and stores nothing. The suite's stream has a 1 s duplicate window,
// so "after the window" takes seconds.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import { assertChain } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

const DUPLICATE_WINDOW_MS = 1_000;

describe('idempotency beyond JetStream\'s duplicate window', () => {
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;

  before(async () => {
    suite = await Suite.open('idem', { dedicatedRedis: true, env: { PARLEY_DUPLICATE_WINDOW_MS: String(DUPLICATE_WINDOW_MS) } });
    await suite.start('chat');
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  /** JetStream forgets an id some time after its window (it purges on a timer): wait well past it. */
  const pastWindow = (since: number): Promise<void> =>
    until(() => Date.now() - since > DUPLICATE_WINDOW_MS * 3, { timeout: DUPLICATE_WINDOW_MS * 5, message: 'the duplicate window to pass' });
  const stored = (room: string, n: number): Promise<void> =>
    until(async () => (await suite.messages().countDocuments({ room })) === n, { message: `${n} stored in ${room}` });

  it('a resend after the window gets the original seq with duplicate: true; one copy delivered, one document stored', async () => {
    const room = 'resend';
    const a = await suite.connect(gw1, 'idem-a');
    const b = await suite.connect(gw2, 'idem-b');
    const start = (await b.join(room)).seq as number;
    await a.join(room);
    const first = await a.sendMessage(room, 'x1', 'hello');
    assert.equal(first.type, 'ack');
    assert.equal(first.duplicate, false);
    const sentAt = Date.now();
    await until(() => b.messages(room).length === 1, { message: 'the original delivered' });
    await stored(room, 1);
    await pastWindow(sentAt);

    // Two resends at once, on both gateways (a reconnect to the other one while the first is still in flight).
    const a2 = await suite.connect(gw2, 'idem-a');
    await a2.join(room);
    const [again, twice] = await Promise.all([a.sendMessage(room, 'x1', 'hello'), a2.sendMessage(room, 'x1', 'hello')]);
    for (const f of [again, twice]) assert.deepEqual({ type: f.type, seq: f.seq, duplicate: f.duplicate },
      { type: 'ack', seq: first.seq, duplicate: true }, 'the original seq, marked duplicate');

    // A later message arrives after anything the resend could have caused, in order: the room shows x1 once.
    const next = await a.sendMessage(room, 'x2', 'later');
    await until(() => b.messages(room).some((m) => m.seq === next.seq), { message: 'the next message delivered' });
    assert.deepEqual(b.messages(room).map((m) => m.id), ['x1', 'x2'], 'one copy of x1');
    assert.deepEqual(a2.messages(room).map((m) => m.id), ['x2'], 'the resending connection did not get x1 again either');
    assertChain(b.messages(room), start, 'b');
    await stored(room, 2);
    const doc = await suite.messages().findOne({ room, seq: first.seq as number });
    assert.ok(doc, 'x1 stored with its original seq');
  });

  it('Redis down at resend time: JetStream alone answers (a new seq), yet the resend is never shown, stored, or replayed', async () => {
    const room = 'noredis';
    const a = await suite.connect(gw1, 'nr-a');
    const b = await suite.connect(gw2, 'nr-b');
    const start = (await b.join(room)).seq as number;
    await a.join(room);
    const first = await a.sendMessage(room, 'z1', 'hello');
    const sentAt = Date.now();
    await until(() => b.messages(room).length === 1, { message: 'the original delivered' });
    await stored(room, 1);
    await pastWindow(sentAt);

    await suite.redis.freeze();
    let resend;
    try {
      resend = await a.sendMessage(room, 'z1', 'hello');
    } finally {
      await suite.redis.thaw();
    }
    // Documented fallback: without Redis the gateway cannot know the id, and JetStream's window is over.
    assert.equal(resend.type, 'ack', 'JetStream is up: the resend is acked');
    assert.notEqual(resend.seq, first.seq, 'with a new seq (the documented fallback)');
    assert.equal(resend.duplicate, false);

    const next = await a.sendMessage(room, 'z2', 'later');
    await until(() => b.messages(room).some((m) => m.seq === next.seq), { timeout: 30_000, message: 'the next message delivered' });
    assert.deepEqual(b.messages(room).map((m) => m.seq), [first.seq, next.seq], 'the resend was not broadcast');
    assertChain(b.messages(room), start, 'b');
    await stored(room, 2);
    assert.equal(await suite.messages().countDocuments({ room, seq: resend.seq as number }), 0, 'nor stored');
    // Chat deleted it from the stream: a recovery from before the original replays z1 and z2 only.
    const c = await suite.connect(gw1, 'nr-c');
    const joined = await c.join(room, start);
    assert.equal(joined.type, 'joined');
    await until(() => c.messages(room).length >= 2, { message: 'the replay' });
    assert.deepEqual(c.messages(room).map((m) => m.seq), [first.seq, next.seq], 'the replay does not show the resend');
    assertChain(c.messages(room), start, 'c');
  });
});
