// The storage read gate: bounded in flight and queued, refuses beyond, expires long waits, skips reads of clients
// that left; and the metrics rendering cache.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../lib/observability/index.js';
import { ClientGoneError, StorageBusyError, createReadGate } from '../../lib/store/index.js';
import type { GateResult } from '../../lib/store/index.js';

function deferred(): { promise: Promise<string>; resolve(v: string): void } {
  let resolve!: (v: string) => void;
  const promise = new Promise<string>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('read gate', () => {
  it('runs at most maxInflight at once, queues at most maxQueued, refuses the rest at once', async () => {
    const results: GateResult[] = [];
    let depth = [0, 0];
    const gate = createReadGate({ maxInflight: 2, maxQueued: 3, queueTimeoutMs: 60_000 }, {
      depth: (i, q) => { depth = [i, q]; },
      result: (r) => results.push(r),
    });
    const tasks = Array.from({ length: 6 }, () => deferred());
    let started = 0;
    const runs = tasks.map((t) => gate.run(() => { started++; return t.promise; }));
    assert.equal(started, 2);
    assert.deepEqual(depth, [2, 3]);
    await assert.rejects(runs[5]!, StorageBusyError);
    for (const t of tasks) t.resolve('ok');
    assert.deepEqual(await Promise.all(runs.slice(0, 5)), ['ok', 'ok', 'ok', 'ok', 'ok']);
    assert.equal(started, 5);
    assert.deepEqual(depth, [0, 0]);
    assert.deepEqual(results.sort(), ['ok', 'ok', 'ok', 'ok', 'ok', 'rejected']);
  });

  it('never runs a queued read whose client has gone, and expires reads that wait too long', async () => {
    const results: GateResult[] = [];
    const gate = createReadGate({ maxInflight: 1, maxQueued: 5, queueTimeoutMs: 50 }, { depth: () => undefined, result: (r) => results.push(r) });
    const first = deferred();
    const running = gate.run(() => first.promise);
    let alive = true;
    let ranGone = false;
    const gone = gate.run(async () => { ranGone = true; return 'x'; }, () => alive);
    const expired = gate.run(async () => 'late');
    alive = false;
    const goneRefused = assert.rejects(gone, ClientGoneError);
    await assert.rejects(expired, StorageBusyError);
    first.resolve('done');
    assert.equal(await running, 'done');
    await goneRefused;
    assert.equal(ranGone, false);
    assert.equal(gate.inflight() + gate.queued(), 0);
    assert.deepEqual(results.sort(), ['expired', 'ok', 'skipped']);
  });

  it('a task that throws or rejects frees its slot', async () => {
    const gate = createReadGate({ maxInflight: 1, maxQueued: 1, queueTimeoutMs: 1_000 });
    await assert.rejects(gate.run(() => { throw new Error('sync'); }), /sync/);
    await assert.rejects(gate.run(() => Promise.reject(new Error('async'))), /async/);
    assert.equal(await gate.run(async () => 'fine'), 'fine');
  });
});

describe('metrics rendering', () => {
  it('is shared by concurrent scrapes and reused within the cache window', async () => {
    const m = createMetrics('unit', { renderCacheMs: 60_000 });
    let renders = 0;
    const original = m.registry.metrics.bind(m.registry);
    m.registry.metrics = () => { renders++; return original(); };
    const texts = await Promise.all(Array.from({ length: 100 }, () => m.render()));
    assert.equal(renders, 1);
    assert.match(texts[0]!, /storage_queries_inflight/);
    await m.render();
    assert.equal(renders, 1);
    const fresh = createMetrics('unit', { renderCacheMs: 0 });
    let freshRenders = 0;
    const o2 = fresh.registry.metrics.bind(fresh.registry);
    fresh.registry.metrics = () => { freshRenders++; return o2(); };
    await fresh.render();
    await new Promise((r) => setImmediate(r));
    await fresh.render();
    assert.equal(freshRenders, 2);
  });
});
