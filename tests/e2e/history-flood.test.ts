// History floods (issue 10, item 1): one user's history requests, over WebSocket and HTTP, are limited per connection
// and per user, storage reads are bounded per gateway, and none of it delays another user's live messages. Work
// whose client has gone is skipped, and a read that hangs times out instead of holding its slot.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import type { TestClient } from '../harness/client.js';
import { startFlooder } from '../harness/flood-process.js';
import { metricSum, token } from '../harness/parley.js';
import type { ParleyProcess } from '../harness/parley.js';

const HISTORY_RATE = 5;
const HISTORY_BURST = 20;
/**
 * Delivery bound for the other user while the flood is on. Measured here (2 cores, shared with the other suites):
 * p99 100-450 ms with the fix; without it delivery stopped (a message still missing after 30 s).
 */
const P99_BOUND_MS = 1_500;

async function fill(suite: Suite, room: string, n: number): Promise<void> {
  const docs = Array.from({ length: n }, (_, i) => ({
    _id: `seed:${room}-${i}`, room, seq: i + 1, from: 'seed', body: `archived message ${i} ${'x'.repeat(200)}`, ts: Date.now(),
  }));
  await suite.messages().insertMany(docs as never[]);
}

describe('history flood while others chat', () => {
  let suite: Suite;
  let gw: ParleyProcess;

  before(async () => {
    suite = await Suite.open('hflood', {
      env: {
        PARLEY_RATE_HISTORY_USER: String(HISTORY_RATE),
        PARLEY_RATE_HISTORY_USER_BURST: String(HISTORY_BURST),
        PARLEY_STORAGE_MAX_INFLIGHT: '4',
        PARLEY_STORAGE_MAX_QUEUED: '16',
      },
    });
    [gw] = await Promise.all([suite.start('gateway'), suite.start('chat'), fill(suite, 'archive', 2_000)]);
  });
  after(() => suite.close());

  it('one user floods history over WS and HTTP; another user\'s messages stay within the bound and nothing stays queued', async (t) => {
    const alice = await suite.connect(gw, 'alice');
    const bob = await suite.connect(gw, 'bob');
    await alice.join('live');
    await bob.join('live');
    const arrived = new Map<string, number>();
    bob.ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; id?: string };
      if (f.type === 'message' && f.id) arrived.set(f.id, performance.now());
    });

    const before = gw.opsPort > 0 ? await gw.metricsText() : '';
    const flooder = startFlooder({
      wsUrl: gw.url, httpUrl: gw.http, token: token('mallory'), room: 'archive',
      connections: 3, framesPerConnection: 2_000, httpRequests: 600,
    });
    await flooder.started;
    const started = performance.now();

    // Closed loop while the flood is on (at least 40 messages, at most 500): alice sends, bob must receive it, then the next.
    const latencies: number[] = [];
    for (let i = 0; (i < 40 || !flooder.done()) && i < 500; i++) {
      const id = `live${i}`;
      const t0 = performance.now();
      alice.send({ type: 'send', room: 'live', id, body: `hello ${i}` });
      await until(() => arrived.has(id), { timeout: 30_000, interval: 2, message: `bob receives ${id}` });
      latencies.push(arrived.get(id)! - t0);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const p99 = sorted[Math.ceil(sorted.length * 0.99) - 1]!;
    const p50 = sorted[Math.ceil(sorted.length * 0.5) - 1]!;
    t.diagnostic(`bob: ${latencies.length} messages during the flood, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`);
    assert.ok(p99 <= P99_BOUND_MS, `bob's p99 ${p99.toFixed(1)} ms during the flood (bound ${P99_BOUND_MS} ms; p50 ${p50.toFixed(1)} ms)`);

    const flood = await flooder.summary;
    const elapsedSec = (performance.now() - started) / 1000;
    t.diagnostic(`flood: ${JSON.stringify(flood)} in ${elapsedSec.toFixed(1)} s`);
    const statuses = Object.keys(flood.httpStatus);
    assert.ok(statuses.every((x) => ['200', '429', '503'].includes(x)), `only 200, 429 and 503: ${statuses.join(',')}`);
    assert.ok((flood.httpStatus['429'] ?? 0) + (flood.httpStatus['503'] ?? 0) > 0, 'the HTTP flood was limited');
    assert.ok(flood.retryAfterOk, 'every 429 and 503 has a Retry-After');
    assert.ok((flood.wsErrors.RATE_LIMITED ?? 0) > 0, 'the WebSocket flood was limited');
    assert.ok(flood.wsCloseCodes.includes(4008), 'and a connection that kept going was closed with 4008');

    // Work done is bounded by the user's budget, not by what the flooder asked for (6,600 pages).
    await until(async () => {
      const m = await gw.metricsText();
      return metricSum(m, 'storage_queries_inflight') === 0 && metricSum(m, 'storage_queries_queued') === 0;
    }, { timeout: 15_000, message: 'no storage query in flight or queued' });
    const afterText = await gw.metricsText();
    const ran = metricSum(afterText, 'storage_queries_total') - metricSum(before, 'storage_queries_total')
      - (metricSum(afterText, 'storage_queries_total', { result: 'rejected' }) - metricSum(before, 'storage_queries_total', { result: 'rejected' }));
    const budget = HISTORY_BURST + Math.ceil(HISTORY_RATE * (elapsedSec + 1));
    assert.ok(ran <= budget, `${ran} storage queries for 6,600 requested pages in ${elapsedSec.toFixed(1)} s; budget ${budget}`);
    assert.ok(ran >= 1, 'the flooder got some pages');
    assert.ok(gw.running);
  });
});

describe('storage reads whose client has gone, and reads that hang', () => {
  let suite: Suite;
  let gw: ParleyProcess;

  before(async () => {
    suite = await Suite.open('hgone', {
      dedicatedMongo: true,
      env: { PARLEY_STORAGE_MAX_INFLIGHT: '2', PARLEY_STORAGE_MAX_QUEUED: '4', PARLEY_MONGO_QUERY_TIMEOUT_MS: '1500', PARLEY_STORAGE_QUEUE_TIMEOUT_MS: '20000' },
    });
    gw = await suite.start('gateway');
    await fill(suite, 'archive', 100);
  });
  after(async () => {
    await suite.mongoServer.thaw().catch(() => undefined);
    await suite.close();
  });

  it('the gateway queue is bounded, hung reads time out, and queued reads of closed clients never run', async () => {
    const before = await gw.metricsText();
    await suite.mongoServer.freeze();
    const readers: TestClient[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const c = await suite.connect(gw, `reader${i}`);
        c.send({ type: 'history', room: 'archive', limit: 10 });
        readers.push(c);
      }
      await until(async () => {
        const m = await gw.metricsText();
        return metricSum(m, 'storage_queries_inflight') === 2 && metricSum(m, 'storage_queries_queued') === 4;
      }, { message: '2 reads in flight and 4 queued' });
      // Beyond the bound: refused at once, with a hint when to retry.
      const late = await suite.connect(gw, 'late');
      late.send({ type: 'history', room: 'archive', limit: 10 });
      const refused = await late.waitFor((f) => f.type === 'error');
      assert.equal(refused.code, 'UNAVAILABLE');
      assert.ok(typeof refused.retryAfterMs === 'number' && refused.retryAfterMs > 0);
      const res = await fetch(`${gw.http}/rooms/archive/messages`, { headers: { authorization: `Bearer ${token('late')}` } });
      assert.equal(res.status, 503);
      assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
      await res.text();
      // The clients give up; their queued reads must not run when the slots free up.
      await Promise.all(readers.map((c) => c.close()));
      await until(async () => {
        const m = await gw.metricsText();
        return metricSum(m, 'storage_queries_inflight') === 0 && metricSum(m, 'storage_queries_queued') === 0;
      }, { timeout: 15_000, message: 'the hung reads timed out and the queue emptied' });
    } finally {
      await suite.mongoServer.thaw();
    }
    const m = await gw.metricsText();
    const delta = (result: string): number => metricSum(m, 'storage_queries_total', { result }) - metricSum(before, 'storage_queries_total', { result });
    assert.equal(delta('skipped'), 4, 'the four queued reads of closed clients were skipped');
    assert.equal(delta('error'), 2, 'the two hung reads failed by the query timeout');
    assert.equal(delta('ok'), 0);
    // And the store works again once MongoDB answers.
    const c = await suite.connect(gw, 'after');
    await until(async () => {
      const from = c.frames.length;
      c.send({ type: 'history', room: 'archive', limit: 10 });
      const f = await c.waitFor((x) => x.type === 'history' || x.type === 'error', { from });
      return f.type === 'history' && (f.messages as unknown[]).length === 10;
    }, { timeout: 20_000, interval: 500, message: 'history works again' });
  });
});
