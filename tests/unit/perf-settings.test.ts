// Settings added for issue 12: FerretDB's backend in the native stack, and the bench-only GC endpoint on the ops port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createMetrics, startOpsServer } from '../../lib/observability/index.js';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MONGO_BACKEND, StackError, holdsSqliteOnly, parseMongoBackend, resolveMongoBackend, stackSettings } from '../../lib/stack/index.js';

describe('PARLEY_STACK_MONGO_BACKEND', () => {
  it('defaults to the backend ADR 0016 chose, and takes sqlite or postgresql', () => {
    assert.equal(stackSettings({}).mongoBackend, DEFAULT_MONGO_BACKEND);
    assert.equal(stackSettings({}).mongoBackendChosen, false, 'the default may fall back to SQLite');
    assert.equal(stackSettings({ PARLEY_STACK_MONGO_BACKEND: 'postgresql' }).mongoBackendChosen, true, 'a chosen backend may not');
    assert.equal(stackSettings({ PARLEY_STACK_MONGO_BACKEND: 'postgresql' }).mongoBackend, 'postgresql');
    assert.equal(stackSettings({ PARLEY_STACK_MONGO_BACKEND: 'sqlite' }).mongoBackend, 'sqlite');
  });

  it('a data dir that holds SQLite data keeps SQLite unless PostgreSQL is asked for', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-backend-'));
    const log = pino({ enabled: false });
    try {
      await mkdir(join(dir, 'sqlite'), { recursive: true });
      await writeFile(join(dir, 'sqlite', 'parley.sqlite'), '');
      const byDefault = { ...stackSettings({}), mongoBackend: 'postgresql' as const, mongoBackendChosen: false };
      assert.equal(await resolveMongoBackend(byDefault, log, dir), 'sqlite', 'the messages it holds stay visible');
      // Once a PostgreSQL cluster was initialised there, the dir is PostgreSQL's (SQLite files may be leftovers).
      await mkdir(join(dir, 'postgres'), { recursive: true });
      await writeFile(join(dir, 'postgres', 'PG_VERSION'), '15');
      assert.equal(await holdsSqliteOnly(dir), false);
      await rm(join(dir, 'postgres'), { recursive: true });
      assert.equal(await holdsSqliteOnly(dir), true);
      assert.equal(await holdsSqliteOnly(join(dir, 'nothing-here')), false, 'a new data dir gets the default');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects anything else with an error that names the variable', () => {
    assert.throws(() => stackSettings({ PARLEY_STACK_MONGO_BACKEND: 'mysql' }),
      (err: unknown) => err instanceof StackError && err.code === 'BAD_USAGE' && /PARLEY_STACK_MONGO_BACKEND.*mysql/.test(err.message));
    assert.throws(() => parseMongoBackend('', '--mongo-backend'), /--mongo-backend/);
  });
});

describe('POST /debug/gc on the ops port', () => {
  const log = pino({ enabled: false });
  const ready = () => ({ ready: true, details: {} });

  it('does not exist unless PARLEY_BENCH_GC turned it on', async () => {
    const ops = await startOpsServer('127.0.0.1', 0, createMetrics('test'), ready, log);
    try {
      const r = await fetch(`http://127.0.0.1:${ops.port}/debug/gc`, { method: 'POST' });
      await r.arrayBuffer();
      assert.equal(r.status, 405);
    } finally {
      await ops.close();
    }
  });

  it('collects garbage and reports memory when on (501 without --expose-gc)', async () => {
    const ops = await startOpsServer('127.0.0.1', 0, createMetrics('test'), ready, log, { benchGc: true });
    try {
      const r = await fetch(`http://127.0.0.1:${ops.port}/debug/gc`, { method: 'POST' });
      const body = (await r.json()) as { rss?: number; error?: string };
      if ((globalThis as { gc?: unknown }).gc) {
        assert.equal(r.status, 200);
        assert.ok((body.rss ?? 0) > 0);
      } else {
        assert.equal(r.status, 501);
        assert.match(body.error ?? '', /--expose-gc/);
      }
      const get = await fetch(`http://127.0.0.1:${ops.port}/debug/gc`);
      await get.arrayBuffer();
      assert.notEqual(get.status, 200, 'only POST collects');
    } finally {
      await ops.close();
    }
  });
});
