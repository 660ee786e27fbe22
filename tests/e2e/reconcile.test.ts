// Storage heals itself from the log: documents that MongoDB lost behind Parley's back come back from the stream,
// once, with their original seq (by hand and at chat start-up); chat's /readyz tells an orchestrator when MongoDB
// does not answer.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite, ids } from '../harness/suite.js';
import type { ParleyProcess } from '../harness/parley.js';

const PARLEY = fileURLToPath(new URL('../../cmd/parley.js', import.meta.url));
const run = promisify(execFile);

describe('reconciler', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let chat: ParleyProcess;

  before(async () => {
    suite = await Suite.open('reconcile', { dedicatedMongo: true, env: { PARLEY_RECONCILE_INTERVAL_MS: '0' } });
    chat = await suite.start('chat');
    gw = await suite.start('gateway');
  });
  after(() => suite.close());

  const reconcileByHand = async (...args: string[]): Promise<Record<string, number>> => {
    const { stdout } = await run(process.execPath, [PARLEY, 'reconcile', ...args], { env: { ...process.env, ...suite.env, LOG_LEVEL: 'silent' } });
    return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
  };

  it('documents deleted behind Parley\'s back come back once, with their original seq', async () => {
    const room = 'heal';
    const alice = await suite.connect(gw, 'alice');
    await alice.join(room);
    const acks = await alice.sendAll(room, ids('h', 30));
    const seqOf = new Map(acks.map((a) => [`alice:${String(a.id)}`, a.seq as number]));
    const messages = suite.messages();
    await until(async () => (await messages.countDocuments({ room })) === 30, { timeout: 20_000, message: 'all stored' });
    // Chat acks JetStream after storing: the reconciler only checks what the consumer acknowledged.
    await until(async () => ((await reconcileByHand()).checked ?? 0) >= 30, { timeout: 20_000, message: 'everything acked' });

    const gone = ['alice:h3', 'alice:h4', 'alice:h17', 'alice:h29'];
    await messages.deleteMany({ _id: { $in: gone as never[] } });
    const report = await reconcileByHand('--room', room);
    assert.equal(report.missing, 4);
    assert.equal(report.inserted, 4);
    const back = await messages.find({ _id: { $in: gone as never[] } }).toArray();
    assert.deepEqual(back.map((d) => [d._id, d.seq]).sort(), gone.map((id) => [id, seqOf.get(id)]).sort(), 'original seqs');
    assert.equal(back[0]!.body, `body of ${String(back[0]!._id).split(':')[1]}`);
    assert.equal(await messages.countDocuments({ room }), 30, 'no second copy');

    const again = await reconcileByHand();
    assert.equal(again.missing, 0, 'a second pass finds nothing missing');
    assert.equal(again.inserted, 0);
  });

  it('the chat service reconciles at start-up', async () => {
    const room = 'startup';
    const bob = await suite.connect(gw, 'bob');
    await bob.join(room);
    await bob.sendAll(room, ids('s', 10));
    const messages = suite.messages();
    await until(async () => (await messages.countDocuments({ room })) === 10, { timeout: 20_000, message: 'all stored' });
    await chat.stop();
    await messages.deleteMany({ room, seq: { $mod: [2, 0] } });
    const left = await messages.countDocuments({ room });
    assert.ok(left < 10);
    await chat.start();
    await until(async () => (await messages.countDocuments({ room })) === 10, { timeout: 20_000, message: 'restored at start-up' });
  });

  it('bad arguments get a usage error and exit 2', async () => {
    await assert.rejects(run(process.execPath, [PARLEY, 'reconcile', '--since', 'yesterday'], { env: { ...process.env, ...suite.env } }),
      (err: { code?: number; stderr?: string }) => err.code === 2 && /--since takes a seq/.test(err.stderr ?? ''));
    await assert.rejects(run(process.execPath, [PARLEY, 'reconcile', '--room', 'a.b'], { env: { ...process.env, ...suite.env } }),
      (err: { code?: number }) => err.code === 2);
  });

  it('chat /readyz answers 503 naming MongoDB while it does not answer, and 200 once it does', async () => {
    const readyz = async (): Promise<{ status: number; body: { mongo?: string } }> => {
      const res = await fetch(`http://127.0.0.1:${chat.opsPort}/readyz`);
      return { status: res.status, body: await res.json() as { mongo?: string } };
    };
    await until(async () => (await readyz()).status === 200, { message: 'chat ready' });
    await suite.mongoServer.freeze();
    try {
      await until(async () => {
        const r = await readyz();
        return r.status === 503 && r.body.mongo === 'unreachable';
      }, { timeout: 15_000, message: 'readyz 503 with mongo unreachable' });
    } finally {
      await suite.mongoServer.thaw();
    }
    await until(async () => (await readyz()).status === 200, { timeout: 15_000, message: 'ready again' });
  });
});
