// A gateway that crashed comes back on its own port, and one whose port is still taken (by a predecessor that has not
// let go of it, or its connections) retries the bind for PARLEY_LISTEN_RETRY_MS instead of exiting into a restart loop.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
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
});
