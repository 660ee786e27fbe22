// Cluster-wide rate limits: a user spread over two gateways shares one budget (burst, then the rate), limited sends
// are neither stored nor broadcast, a flooding client is closed with 4008, and connection attempts and per-address
// connections are limited with 4008 too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redisKeys } from '../../lib/redis/index.js';
import type { RedisInspector } from '../harness/redis.js';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import { TestClient } from '../harness/client.js';
import type { Frame } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

const RATE = 2;
const BURST = 10;

describe('rate and connection limits', () => {
  let suite: Suite;
  let redis: RedisInspector;
  let env: Record<string, string>;
  let gwA: ParleyProcess;
  let gwB: ParleyProcess;
  let gwIp: ParleyProcess;

  before(async () => {
    suite = await Suite.open('limits', {
      env: {
          PARLEY_RATE_SEND_USER: String(RATE),
          PARLEY_RATE_SEND_USER_BURST: String(BURST),
          PARLEY_MAX_BODY_BYTES: '1000',
          PARLEY_RATE_SEND_BYTES_USER: '100',
          PARLEY_RATE_SEND_BYTES_USER_BURST: '2000',
          PARLEY_RATE_MAX_VIOLATIONS: '25',
          PARLEY_RATE_CONNECT_USER: '0.05',
          PARLEY_RATE_CONNECT_USER_BURST: '6',
          PARLEY_MAX_CONNECTIONS_PER_USER: '3',
      },
    });
    env = suite.env;
    // A gateway with a Redis prefix of its own, so its per-address limit counts only its own connections.
    const ipEnv = { PARLEY_REDIS_PREFIX: `${env.PARLEY_REDIS_PREFIX}ip:`, PARLEY_MAX_CONNECTIONS_PER_IP: '2' };
    [, gwA, gwB, gwIp] = await Promise.all([suite.start('chat'), suite.start('gateway'), suite.start('gateway'), suite.start('gateway', ipEnv)]);
    redis = suite.redisClient();
  });
  after(() => suite.close());

  const connect = (gw: ParleyProcess, user: string): Promise<TestClient> => suite.connect(gw, user);
  const messages = () => suite.messages();

  it('a user on two gateways shares one budget: the burst, then the rate; limited sends are not stored nor broadcast', async () => {
    const room = 'shared';
    const r1 = await connect(gwA, 'rhea');
    const r2 = await connect(gwB, 'rhea');
    const watcher = await connect(gwB, 'vic');
    for (const c of [r1, r2, watcher]) assert.equal((await c.join(room)).type, 'joined');

    // Interleaved, without waiting for replies in between.
    const started = Date.now();
    for (let i = 0; i < 15; i++) {
      r1.send({ type: 'send', room, id: `a${i}`, body: `a${i}` });
      r2.send({ type: 'send', room, id: `b${i}`, body: `b${i}` });
    }
    const replyOf = (c: TestClient, id: string): Frame | undefined =>
      c.frames.find((f) => (f.type === 'ack' && f.id === id) || (f.type === 'error' && f.ref === id));
    const ids = Array.from({ length: 15 }, (_, i) => i);
    await until(() => ids.every((i) => replyOf(r1, `a${i}`) && replyOf(r2, `b${i}`)), { message: 'a reply to every send' });
    const elapsedSec = (Date.now() - started) / 1000;
    const re1 = ids.map((i) => replyOf(r1, `a${i}`)!);
    const re2 = ids.map((i) => replyOf(r2, `b${i}`)!);
    const replies = [...re1, ...re2];
    const accepted = replies.filter((f) => f.type === 'ack');
    const limited = replies.filter((f) => f.type === 'error');
    for (const f of limited) {
      assert.equal(f.code, 'RATE_LIMITED');
      assert.ok(typeof f.retryAfterMs === 'number' && f.retryAfterMs > 0, JSON.stringify(f));
    }
    // One budget for both gateways: the burst plus what the rate refilled while sending, never twice the burst.
    const allowed = BURST + Math.floor(RATE * elapsedSec) + 1;
    assert.ok(accepted.length >= BURST, `at least the burst passes: ${accepted.length}`);
    assert.ok(accepted.length <= allowed, `${accepted.length} accepted in ${elapsedSec}s, at most ${allowed}`);
    // Budgets per gateway would let each gateway accept its own burst: at least 2 * BURST in all.
    assert.ok(allowed < 2 * BURST, 'the test sends fast enough to tell one budget from two');

    const acceptedIds = new Set(accepted.map((f) => f.id as string));
    const limitedIds = limited.map((f) => `rhea:${f.ref as string}`);
    await until(async () => (await messages().countDocuments({ room })) === accepted.length, { message: 'accepted stored' });
    assert.equal(await messages().countDocuments({ _id: { $in: limitedIds as never[] } }), 0, 'limited sends not stored');
    const mark = await watcher.sendMessage(room, 'marker', 'after');
    await watcher.waitFor((f) => f.type === 'message' && f.seq === mark.seq);
    const seen = watcher.messages(room).filter((m) => m.from === 'rhea').map((m) => m.id);
    assert.deepEqual(new Set(seen), acceptedIds, 'exactly the accepted sends were broadcast');
    assert.equal(seen.length, acceptedIds.size);
  });

  it('the byte budget refuses a message that would exceed it, with a retryAfterMs', async () => {
    const room = 'bytes';
    const c = await connect(gwA, 'bea');
    await c.join(room);
    const body = 'x'.repeat(1000);
    assert.equal((await c.sendMessage(room, 'k1', body)).type, 'ack');
    assert.equal((await c.sendMessage(room, 'k2', body)).type, 'ack');
    const third = await c.sendMessage(room, 'k3', body);
    assert.equal(third.code, 'RATE_LIMITED');
    assert.ok((third.retryAfterMs as number) > 1000, `1000 bytes at 100 B/s: ${String(third.retryAfterMs)} ms`);
    assert.equal((await c.sendMessage(room, 'k4', 'tiny')).type, 'ack', 'a small message still fits');
  });

  it('a client that keeps flooding is closed with 4008 once its rejected frames exceed the budget', async () => {
    const room = 'flood';
    const c = await connect(gwB, 'flo');
    await c.join(room);
    for (let i = 0; i < 80; i++) c.send({ type: 'send', room, id: `f${i}`, body: 'spam' });
    const closed = await c.closed;
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /too many rejected frames/);
    assert.ok(c.errors().filter((f) => f.code === 'RATE_LIMITED').length >= 25);
  });

  it('connection attempts per user are limited (burst, then 4008)', async () => {
    for (let i = 0; i < 6; i++) {
      const c = await connect(i % 2 ? gwA : gwB, 'cora');
      await until(async () => (await redis.scard(redisKeys(env.PARLEY_REDIS_PREFIX!).userSessions('cora'))) === 1, { message: 'admitted' });
      await c.close();
      await until(async () => (await redis.scard(redisKeys(env.PARLEY_REDIS_PREFIX!).userSessions('cora'))) === 0, { message: 'removed' });
    }
    const refused = await connect(gwA, 'cora');
    const closed = await refused.closed;
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /too many connection attempts/);
  });

  it('connections per address are limited cluster-wide with 4008', async () => {
    // gwIp has a prefix of its own (PARLEY_REDIS_PREFIX + 'ip:'), so its address cap counts only its sessions.
    const key = redisKeys(`${env.PARLEY_REDIS_PREFIX}ip:`).ipSessions('127.0.0.1');
    await connect(gwIp, 'ian');
    await connect(gwIp, 'ida');
    await until(async () => (await redis.scard(key)) === 2, { message: 'two sessions from 127.0.0.1' });
    const third = await connect(gwIp, 'ivy');
    const closed = await third.closed;
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /too many connections from this address/);
  });
});

describe('limits and sessions while Redis is unreachable', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let redis: RedisInspector;

  before(async () => {
    // A Redis of this suite's own: the test stops it.
    suite = await Suite.open('rlfail', {
      dedicatedRedis: true,
      env: { PARLEY_RATE_SEND_USER: '1', PARLEY_RATE_SEND_USER_BURST: '5', PARLEY_GATEWAY_TTL_MS: '1500' },
    });
    gw = await suite.start('gateway');
    redis = suite.redisClient();
  });
  after(() => suite.close());

  it('fails open to per-gateway limits, never crashes, and re-registers sessions when Redis is back', async () => {
    const c = await suite.connect(gw, 'olga');
    await c.join('outage');
    await suite.redis.stop();
    try {
      const replies = [];
      for (let i = 0; i < 8; i++) replies.push(await c.sendMessage('outage', `o${i}`, 'hi'));
      const acked = replies.filter((f) => f.type === 'ack').length;
      assert.equal(acked, 5, `the local fallback applies the configured burst: ${JSON.stringify(replies.map((f) => f.type))}`);
      assert.ok(replies.slice(5).every((f) => f.code === 'RATE_LIMITED'));
      await suite.connect(gw, 'otto');
      assert.equal((await fetch(`${gw.http}/healthz`)).status, 200);
      assert.ok(gw.running, 'the gateway is still up');
    } finally {
      await suite.redis.start();
    }
    await redis.connect();
    const k = redisKeys(suite.env.PARLEY_REDIS_PREFIX!);
    await until(async () => (await redis.scard(k.userSessions('olga'))) === 1 && (await redis.scard(k.userSessions('otto'))) === 1,
      { timeout: 15_000, message: 'sessions registered again after Redis came back' });
    assert.equal(await redis.hget(k.roomOnline('outage'), 'olga'), '1', 'and the room membership');
  });
});
