// A gateway that crashed comes back on its own port, and one whose port is still taken (by a predecessor that has not
// let go of it, or its connections) retries the bind for PARLEY_LISTEN_RETRY_MS instead of exiting into a restart loop;
// once that is over, start-up fails and closes everything it had opened before it exits.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { redisKeys } from '../../lib/redis/index.js';
import { freePort } from '../../lib/stack/index.js';
import { ParleyProcess } from '../harness/parley.js';
import { until } from '../harness/index.js';
import { after, before, describe, it } from 'node:test';
import { Suite } from '../harness/suite.js';

describe('gateway restart', () => {
  let suite: Suite;
  before(async () => {
    suite = await Suite.open('restart');
    await suite.start('chat');
  });
  after(() => suite.close());

  it('a gateway killed with clients connected listens on its port again and serves them', async () => {
    const gw = await suite.start('gateway');
    const port = gw.port;
    const clients = await Promise.all(['a', 'b', 'c'].map((u) => suite.connect(gw, u)));
    await Promise.all(clients.map((c) => c.join('lobby')));
    await gw.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.closed));
    // The kill leaves the gateway's side of each connection in TIME_WAIT for about 60 s.
    await gw.start(120_000);
    assert.equal(gw.port, port);
    const back = await suite.connect(gw, 'a');
    assert.equal((await back.join('lobby')).type, 'joined');
  });

  it('a gateway whose port is taken waits for it instead of exiting', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    const gw = ParleyProcess.create('gateway', suite.env);
    gw.port = port;
    await gw.spawn();
    try {
      await until(() => gw.lines().some((l) => l.includes('port busy')), { timeout: 15_000, message: 'the gateway retrying its port' });
      assert.ok(gw.running, 'still running while the port is taken');
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
      await gw.ready(30_000);
      const c = await suite.connect(gw, 'late');
      assert.equal((await c.join('lobby')).type, 'joined');
    } finally {
      squatter.close();
      await gw.stop();
    }
  });

  it('a gateway that cannot bind its port exits non-zero at once and undoes what start-up had opened', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    const gatewayId = `restart-fail-${port}`;
    // Listening is the last step: MongoDB, three Redis connections, the presence registration and NATS are open by then.
    const gw = ParleyProcess.create('gateway', { ...suite.env, PARLEY_LISTEN_RETRY_MS: '0', PARLEY_GATEWAY_ID: gatewayId });
    gw.port = port;
    const started = Date.now();
    try {
      await gw.spawn();
      await until(() => !gw.running, { timeout: 15_000, message: 'the gateway exiting after a failed start-up' });
      assert.equal(await gw.stop(), 1, 'exit code');
      assert.ok(Date.now() - started < 15_000);
      assert.ok(gw.lines().some((l) => l.includes('start-up failed')), gw.tail());
      assert.ok(!gw.lines().some((l) => l.includes('close failed') || l.includes('deadline exceeded')), gw.tail());
      // The presence registration was undone by the close list, not left for the reaper (its alive key has a TTL).
      const redis = suite.redisClient();
      const keys = redisKeys(suite.env.PARLEY_REDIS_PREFIX!);
      assert.equal(await redis.exists(keys.gatewayAlive(gatewayId)), 0, 'heartbeat key removed');
      assert.equal(await redis.sismember(keys.gateways, gatewayId), 0, 'gateway unregistered');
    } finally {
      squatter.close();
      await gw.stop();
    }
  });
});
