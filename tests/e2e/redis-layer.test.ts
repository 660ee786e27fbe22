// lib/redis against a real redis-server that the test kills and restarts: the subscriber's reconnect hook runs after
// every reconnect (not only the first) with its subscriptions re-issued, commands fail at once while Redis is away
// (no offline queue), and scripts survive a Redis that came back without its script cache.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { connectRedis, connectSubscriber, loadScripts } from '../../lib/redis/index.js';
import type { RedisConnection, RedisSubscriber } from '../../lib/redis/index.js';
import { provideRedis } from '../harness/services.js';
import type { ServiceHandle } from '../harness/services.js';
import { until } from '../harness/wait.js';

const log = pino({ level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'silent' });

describe('the Redis layer across Redis restarts', () => {
  let redis: ServiceHandle;
  let sub: RedisSubscriber;
  let cmd: RedisConnection;
  let pub: RedisConnection;

  before(async () => {
    redis = await provideRedis({ dedicated: true });
    sub = await connectSubscriber(redis.url, log, 'test-sub');
    cmd = await connectRedis(redis.url, log, { name: 'test-cmd', profile: 'commands' });
    pub = await connectRedis(redis.url, log, { name: 'test-pub', profile: 'publisher' });
  });
  after(async () => {
    await Promise.all([sub.close(), cmd.close(), pub.close()]);
    await redis.close();
  });

  it('the subscriber reconnect hook runs after every reconnect, and subscriptions deliver again each time', async () => {
    const got: string[] = [];
    let reconnects = 0;
    sub.onReconnect(() => { reconnects++; });
    await sub.subscribe('t.room', (payload) => got.push(payload));
    await pub.client.publish('t.room', 'before');
    await until(() => got.includes('before'));
    for (let round = 1; round <= 2; round++) {
      await redis.kill();
      // While Redis is away a command fails at once instead of waiting in a queue.
      await until(() => !cmd.ready(), { message: 'commands connection notices the outage' });
      const started = Date.now();
      await assert.rejects(cmd.client.ping());
      assert.ok(Date.now() - started < 500, 'a command fails fast while disconnected');
      await redis.start();
      await until(() => reconnects === round, { timeout: 15_000, message: `reconnect hook #${round}` });
      await until(() => cmd.ready() && pub.ready(), { timeout: 15_000 });
      await until(async () => {
        await pub.client.publish('t.room', `after-${round}`);
        return got.includes(`after-${round}`);
      }, { timeout: 10_000, interval: 100, message: `delivery after reconnect #${round}` });
    }
    assert.equal(reconnects, 2);
  });

  it('a script is loaded again when Redis lost its script cache', async () => {
    const scripts = loadScripts(cmd.client, { echo: 'return ARGV[1]' });
    await scripts.load();
    assert.equal(await scripts.run<string>('echo', [], ['one']), 'one');
    await cmd.client.scriptFlush();
    assert.equal(await scripts.run<string>('echo', [], ['two']), 'two');
  });
});
