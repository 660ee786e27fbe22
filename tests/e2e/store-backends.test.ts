// FerretDB on each backend the native stack can start (SQLite files, or a PostgreSQL cluster of the stack's own):
// killed with SIGKILL together with its backend in the middle of inserts, started again, it still holds every
// document whose insert was acknowledged, and takes new ones.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { launchFerretdb, MONGO_BACKENDS } from '../../lib/stack/index.js';
import type { FerretdbService } from '../../lib/stack/index.js';
import { openMessageStore } from '../../lib/store/index.js';
import type { MessageDoc, MessageStore } from '../../lib/store/index.js';
import { until } from '../harness/index.js';

const log = pino({ level: process.env.PARLEY_TEST_LOG_LEVEL ?? 'silent' });

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

for (const backend of MONGO_BACKENDS) {
  describe(`FerretDB on ${backend}`, () => {
    const dirs: string[] = [];
    let svc: FerretdbService | undefined;
    after(async () => {
      await svc?.stop();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    it('no acknowledged insert is lost when FerretDB and its backend are killed with SIGKILL mid-load', async () => {
      const dir = await mkdtemp(join(tmpdir(), `parley-backend-${backend}-`));
      dirs.push(dir);
      svc = await launchFerretdb({ dataDir: dir, log, backend });
      if (backend === 'postgresql') {
        assert.ok(svc.backend?.pid, 'the stack started a PostgreSQL of its own');
        assert.match(svc.backend.url, /^postgres:\/\/parley@127\.0\.0\.1:\d+\//);
        assert.notEqual(svc.backend.port, 5432, 'never the machine\'s own PostgreSQL port');
      } else {
        assert.equal(svc.backend, undefined);
      }
      const store: MessageStore = await openMessageStore(svc.url, 'backend_test', log,
        { client: { socketTimeoutMS: 5_000, connectTimeoutMS: 2_000, waitQueueTimeoutMS: 5_000 } });
      let seq = 0;
      const acked: number[] = [];
      let failed = 0;
      let stop = false;
      const batch = (): MessageDoc[] => Array.from({ length: 64 }, () => {
        const s = ++seq;
        return { _id: `u:${s}`, room: 'r', seq: s, from: 'u', body: `m${s}`, ts: s };
      });
      const writers = Array.from({ length: 3 }, async () => {
        while (!stop) {
          const b = batch();
          try {
            await store.insert(b);
            for (const d of b) acked.push(d.seq);
          } catch {
            failed++;
            return;
          }
        }
      });
      await until(() => acked.length >= 2_000, { timeout: 60_000, message: 'inserts acknowledged before the kill' });
      const pids = [svc.pid!, svc.backend?.pid].filter((p): p is number => p !== undefined);
      await svc.kill('SIGKILL');
      for (const pid of pids) assert.ok(processGone(pid), `pid ${pid} is gone after SIGKILL`);
      stop = true;
      await Promise.all(writers);
      await Promise.race([store.close().catch(() => undefined), new Promise((r) => setTimeout(r, 3_000))]);

      await svc.start();
      const again = await openMessageStore(svc.url, 'backend_test', log);
      try {
        const present = await again.seqsIn(1, seq);
        const lost = acked.filter((s) => !present.has(s));
        assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged documents lost (${failed} writers saw the kill)`);
        const next = { _id: 'u:after', room: 'r', seq: seq + 1, from: 'u', body: 'after', ts: 0 };
        assert.deepEqual((await again.insert([next])).inserted.map((d) => d._id), ['u:after']);
        assert.deepEqual((await again.page('r', undefined, 1)).map((m) => m.seq), [seq + 1]);
      } finally {
        await again.close();
      }
    });
  });
}
