// Guarantees 4 and 5: per-room order across gateways and chat instances (also when one dies), gap-free recovery
// with `join {since}`, and history paging with room authorization.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite, ids } from '../harness/suite.js';
import type { TestClient } from '../harness/client.js';
import { assertChain } from '../harness/client.js';
import type { Frame, MessageFrame } from '../harness/client.js';
import { token } from '../harness/parley.js';
import type { ParleyProcess } from '../harness/parley.js';
import { mintToken } from '../../lib/auth/index.js';
import { TEST_JWT_SECRET } from '../harness/parley.js';

describe('order, recovery and history', () => {
  let suite: Suite;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;
  let chatA: ParleyProcess;

  before(async () => {
    suite = await Suite.open('order', { env: { PARLEY_RECOVERY_MAX_MESSAGES: '400', PARLEY_MAX_INFLIGHT: '1000' } });
    // Two chat instances share the durable consumer, so a room's events are stored and published by both.
    [chatA] = await Promise.all([suite.start('chat'), suite.start('chat')]);
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  const connect = (gw: ParleyProcess, user: string, tok?: string): Promise<TestClient> => suite.connect(gw, user, tok);

  it('1,000 messages from several senders on two gateways with two chat instances arrive everywhere in seq order, gap-free', async () => {
    const room = 'busy';
    const members = await Promise.all([connect(gw1, 'a1'), connect(gw1, 'a2'), connect(gw2, 'b1'), connect(gw2, 'b2')]);
    const joined = await Promise.all(members.map((m) => m.join(room)));
    const acks = (await Promise.all(members.map((m, i) => m.sendAll(room, ids(`m${i}-`, 250))))).flat();
    assert.ok(acks.every((a) => a.type === 'ack'));
    await until(() => members.every((m) => m.messages(room).length >= 1000), { timeout: 30_000, message: '1,000 deliveries each' });
    const expected = acks.map((a) => a.seq as number).sort((x, y) => x - y);
    for (const [i, m] of members.entries()) {
      const got = m.messages(room);
      assert.deepEqual(got.map((f) => f.seq), expected, `${m.user}: all 1,000, in seq order, once`);
      assertChain(got, joined[i]!.seq as number, m.user);
    }
  });

  it('a chat instance killed mid-stream: order and completeness still hold for every client', async () => {
    const room = 'crashy';
    const members = await Promise.all([connect(gw1, 'k1'), connect(gw2, 'k2')]);
    const joined = await Promise.all(members.map((m) => m.join(room)));
    const sending = members[0]!.sendAll(room, ids('k', 300));
    await until(() => members[1]!.messages(room).length >= 50, { message: 'stream under way' });
    await chatA.kill('SIGKILL');
    const acks = await sending;
    assert.ok(acks.every((a) => a.type === 'ack'));
    await chatA.start();
    await until(() => members.every((m) => m.messages(room).length >= 300), { timeout: 30_000, message: 'all 300 delivered' });
    for (const [i, m] of members.entries()) {
      const got = m.messages(room);
      assert.equal(got.length, 300, `${m.user}: no duplicates`);
      assertChain(got, joined[i]!.seq as number, m.user);
    }
  });

  it('a client that rejoins with since gets exactly what it missed, then live messages, while senders keep sending', async () => {
    const room = 'mobile';
    const sender = await connect(gw1, 'snd');
    await sender.join(room);
    let phone = await connect(gw2, 'phone');
    await phone.join(room);
    await sender.sendAll(room, ids('pre', 10));
    await until(() => phone.messages(room).length === 10);
    const lastSeen = phone.messages(room).at(-1)!.seq;
    await phone.close();

    const missed = await sender.sendAll(room, ids('gap', 100));
    // Keep sending while the phone reconnects and replays.
    const during = sender.sendAll(room, ids('live', 100));
    phone = await connect(gw2, 'phone');
    const joined = await phone.join(room, lastSeen);
    const live = await during;
    assert.equal(joined.type, 'joined');
    assert.equal(joined.recovered, true);
    await until(() => phone.messages(room).length >= 200, { timeout: 20_000, message: 'replay and live' });
    const got = phone.messages(room);
    assertChain(got, lastSeen, 'phone');
    assert.deepEqual(got.map((m) => m.seq), [...missed, ...live].map((a) => a.seq as number).sort((x, y) => x - y));
    // Replayed messages come before `joined`, live ones after it: the seam has no gap and no repeat.
    const seam = phone.frames.indexOf(joined);
    const replayed = phone.frames.slice(0, seam).filter((f) => f.type === 'message').length;
    assert.equal(joined.replayed, replayed);
    assert.ok(replayed >= 100, 'at least what was missed is replayed');
  });

  it('since older than the recovery window gives recovered: false; since in the future and bad values are errors', async () => {
    const room = 'deep';
    const sender = await connect(gw1, 'deepsender');
    const first = await sender.join(room);
    await sender.sendAll(room, ids('d', 420)); // more than PARLEY_RECOVERY_MAX_MESSAGES=400
    await until(() => sender.messages(room).length === 420);
    const late = await connect(gw2, 'late');
    await until(async () => {
      const n = await (await fetch(`${gw2.http}/rooms/${room}/messages?limit=1`, { headers: { authorization: `Bearer ${token('late')}` } })).json() as { messages: unknown[] };
      return n.messages.length > 0;
    });
    const j = await late.join(room, first.seq as number);
    assert.equal(j.type, 'joined');
    assert.equal(j.recovered, false);
    assert.equal(j.replayed, 0);
    await late.send({ type: 'leave', room });
    await late.waitFor((f) => f.type === 'left');

    const future = await late.join(room, 10_000_000);
    assert.equal(future.type, 'error');
    assert.equal(future.code, 'BAD_FRAME');
    for (const since of [-1, 1.5, '7', null]) {
      const before = late.frames.length;
      late.send({ type: 'join', room, since });
      const f = await late.waitFor((x) => x.type === 'error' || x.type === 'joined', { from: before });
      assert.equal(f.code, 'BAD_FRAME', `since ${JSON.stringify(since)}`);
    }
    // A recent since still recovers.
    const recent = sender.messages(room).at(-5)!.seq;
    const ok = await late.join(room, recent);
    assert.equal(ok.recovered, true);
    assert.equal(ok.replayed, 4);
  });

  it('history pages return each stored message exactly once, newest first; forbidden rooms are refused', async () => {
    const room = 'archive';
    const writer = await connect(gw1, 'writer');
    await writer.join(room);
    const acks = await writer.sendAll(room, ids('h', 45));
    const want = acks.map((a) => a.seq as number).sort((x, y) => y - x);
    const auth = { authorization: `Bearer ${token('reader')}` };
    await until(async () => ((await (await fetch(`${gw2.http}/rooms/${room}/messages?limit=50`, { headers: auth })).json()) as { messages: unknown[] }).messages.length === 45);

    // Over HTTP.
    const seen: number[] = [];
    let before: number | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const q: string = before === null ? 'limit=10' : `limit=10&before=${before}`;
      const page = await (await fetch(`${gw2.http}/rooms/${room}/messages?${q}`, { headers: auth })).json() as { messages: MessageFrame[]; more: boolean; next: number | null };
      seen.push(...page.messages.map((m) => m.seq));
      if (!page.more) break;
      before = page.next;
    }
    assert.deepEqual(seen, want);

    // Over the socket.
    const reader = await connect(gw2, 'reader');
    const viaWs: number[] = [];
    let cursor: number | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const n = reader.frames.length;
      reader.send(cursor === undefined ? { type: 'history', room, limit: 20 } : { type: 'history', room, limit: 20, before: cursor });
      const page = await reader.waitFor((f) => f.type === 'history', { from: n }) as Frame & { messages: MessageFrame[]; more: boolean; next: number };
      viaWs.push(...page.messages.map((m) => m.seq));
      if (!page.more) break;
      cursor = page.next;
    }
    assert.deepEqual(viaWs, want);

    // Bad cursors and limits.
    for (const q of ['before=abc', 'before=-3', 'limit=0', 'limit=100000', 'before=1.5']) {
      assert.equal((await fetch(`${gw2.http}/rooms/${room}/messages?${q}`, { headers: auth })).status, 400, q);
    }
    assert.equal((await fetch(`${gw2.http}/rooms/${room}/messages`)).status, 401);
    assert.equal((await fetch(`${gw2.http}/rooms/a.b/messages`, { headers: auth })).status, 400);

    // A token restricted to other rooms can neither join, recover nor read this one.
    const restricted = mintToken({ secret: TEST_JWT_SECRET, user: 'guest', extra: { rooms: ['lobby', 'team-*'] } });
    assert.equal((await fetch(`${gw2.http}/rooms/${room}/messages`, { headers: { authorization: `Bearer ${restricted}` } })).status, 403);
    assert.equal((await fetch(`${gw2.http}/rooms/team-red/messages`, { headers: { authorization: `Bearer ${restricted}` } })).status, 200);
    const guest = await connect(gw1, 'guest', restricted);
    assert.equal((await guest.join(room, 0)).code, 'FORBIDDEN');
    assert.equal((await guest.join('team-blue')).type, 'joined');
    guest.send({ type: 'history', room });
    assert.equal((await guest.waitFor((f) => f.type === 'error' && f.ref === room)).code, 'FORBIDDEN');
  });
});
