// The native stack really runs the servers the e2e suites use: they answer, survive a crash with their data, and stop cleanly.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from 'redis';
import { MongoClient } from 'mongodb';
import {
  answers, launchFerretdb, launchNats, launchRedis, startStack, StackError, type ManagedService,
} from '../../lib/stack/index.js';
import { pino } from 'pino';
import { provideNats, uniqueName, until } from '../harness/index.js';

const log = pino({ level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'warn' }, pino.destination(2));

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Stops `service` and checks that its process is gone. */
async function stopAndCheck(service: ManagedService): Promise<void> {
  const pid = service.pid;
  assert.ok(pid, `${service.name} runs`);
  await service.stop();
  assert.equal(service.running, false);
  assert.equal(service.pid, undefined);
  assert.ok(processGone(pid), `${service.name} pid ${pid} is gone after stop()`);
}

void describe('native stack', () => {
  let dir: string;
  const opened: ManagedService[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-stack-test-'));
  });
  after(async () => {
    await Promise.allSettled(opened.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  void it('nats-server keeps a JetStream stream across a kill and a restart on the same port', async () => {
    const nats = await launchNats({ storeDir: join(dir, 'nats'), log });
    opened.push(nats);
    const stream = uniqueName('STACK');
    let nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    await jetstream(nc).publish(`${stream}.a`, 'kept');
    await nc.close();

    const port = nats.port;
    await nats.kill();
    assert.equal(await answers('nats', nats.url, 500), false, 'killed server does not answer');
    await nats.start();
    assert.equal(nats.port, port);

    nc = await connect({ servers: nats.url });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(stream);
      assert.equal(info.state.messages, 1);
    } finally {
      await nc.close();
    }
    await stopAndCheck(nats);
  });

  void it('redis-server answers again after a kill and a restart on the same port', async () => {
    const redis = await launchRedis({ dir: join(dir, 'redis'), log });
    opened.push(redis);
    const ping = async (): Promise<string> => {
      const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return await client.ping();
      } finally {
        client.destroy();
      }
    };
    assert.equal(await ping(), 'PONG');
    await redis.kill();
    assert.equal(await answers('redis', redis.url, 500), false);
    await redis.start();
    assert.equal(await ping(), 'PONG');
    await stopAndCheck(redis);
  });

  void it('FerretDB keeps a document across a kill and a restart on the same port', async () => {
    const ferretdb = await launchFerretdb({ dataDir: join(dir, 'ferretdb'), log });
    opened.push(ferretdb);
    const db = uniqueName('stack');
    let client = await MongoClient.connect(ferretdb.url, { serverSelectionTimeoutMS: 5000 });
    await client.db(db).collection('docs').insertOne({ _id: 'm1' as unknown as never, body: 'kept' });
    await client.close();

    await ferretdb.kill();
    assert.equal(await answers('mongo', ferretdb.url, 500), false);
    await ferretdb.start();

    client = await MongoClient.connect(ferretdb.url, { serverSelectionTimeoutMS: 5000 });
    try {
      const doc = await client.db(db).collection<{ _id: string; body: string }>('docs').findOne({ _id: 'm1' });
      assert.equal(doc?.body, 'kept');
    } finally {
      await client.close();
    }
    await stopAndCheck(ferretdb);
  });

  void it('a taken port fails with START_FAILED instead of trusting whoever answers there', async () => {
    // Drop probe connections at once: an unread accepted socket would keep close() pending forever.
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      await assert.rejects(launchRedis({ dir: join(dir, 'redis-taken'), port, log }), (err: unknown) => {
        assert.ok(err instanceof StackError);
        assert.equal(err.code, 'START_FAILED');
        assert.match(err.message, new RegExp(`port ${port} .*in use`));
        return true;
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  void it('a server that exits before answering fails with START_FAILED and the tail of its output', async () => {
    // node rejects redis-server's flags and exits at once, printing why.
    await assert.rejects(launchRedis({ dir: join(dir, 'redis-bad'), binary: process.execPath, log }), (err: unknown) => {
      assert.ok(err instanceof StackError);
      assert.equal(err.code, 'START_FAILED');
      assert.match(err.message, /exited \(exit code \d+\) before answering.*last output:\n.*--port/s);
      return true;
    });
  });

  void it('startStack starts the three servers and stop() stops them all', async () => {
    const stack = await startStack({ dir: join(dir, 'stack'), log });
    const services = Object.values(stack.services);
    opened.push(...services);
    assert.match(stack.env.NATS_URL, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(await answers('nats', stack.env.NATS_URL));
    assert.ok(await answers('redis', stack.env.REDIS_URL));
    assert.ok(await answers('mongo', stack.env.MONGO_URL));
    const pids = services.map((s) => s.pid as number);
    await stack.stop();
    assert.ok(pids.every(processGone), 'no server process is left');
  });
});

void describe('test harness', () => {
  void it('a dedicated NATS can be killed and started again by the suite', async () => {
    const nats = await provideNats({ dedicated: true });
    try {
      await nats.kill();
      await nats.start();
      await until(() => answers('nats', nats.url, 500), { timeout: 5000, message: 'NATS answering after restart' });
    } finally {
      await nats.close();
    }
  });

  void it('until() names what it waited for when it times out', async () => {
    await assert.rejects(until(() => false, { timeout: 50, message: 'the impossible' }), /timed out after 50 ms .*the impossible/);
  });
});
