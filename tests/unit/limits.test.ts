import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalLimiter, gcraStep } from '../../lib/limits/index.js';

describe('GCRA', () => {
  const rate = { perSec: 10, burst: 5 };

  it('lets exactly the burst through at once, then one per emission interval', () => {
    let tat: number | undefined;
    let passed = 0;
    for (let i = 0; i < 20; i++) {
      const s = gcraStep(tat, 1_000, rate, 1);
      if (s.waitMs === 0) {
        tat = s.tat;
        passed++;
      }
    }
    assert.equal(passed, 5);
    const refused = gcraStep(tat, 1_000, rate, 1);
    assert.equal(refused.waitMs, 100, 'the next unit fits one emission interval (100 ms at 10/s) later');
    assert.equal(gcraStep(tat, 1_100, rate, 1).waitMs, 0);
  });

  it('a request larger than the burst never fits; a cost of n waits n intervals', () => {
    assert.ok(gcraStep(undefined, 0, rate, 6).waitMs > 0);
    assert.equal(gcraStep(undefined, 0, rate, 5).waitMs, 0);
  });

  it('old state is the same as none: an idle key regains its full burst', () => {
    const s = gcraStep(undefined, 0, rate, 5);
    assert.equal(gcraStep(s.tat, 10_000, rate, 5).waitMs, 0);
  });
});

describe('LocalLimiter (the fallback while Redis is unreachable)', () => {
  it('charges all limits of a request or none', () => {
    const l = new LocalLimiter();
    const msgs = { perSec: 1, burst: 10 };
    const bytes = { perSec: 100, burst: 1000 };
    assert.equal(l.charge([{ key: 'm', rate: msgs, cost: 1 }, { key: 'b', rate: bytes, cost: 900 }], 0), 0);
    // The byte budget refuses this one: the message budget must not be charged for it.
    const wait = l.charge([{ key: 'm', rate: msgs, cost: 1 }, { key: 'b', rate: bytes, cost: 900 }], 0);
    assert.equal(wait, 8_000, '800 more bytes at 100 B/s');
    let more = 0;
    while (l.charge([{ key: 'm', rate: msgs, cost: 1 }], 0) === 0) more++;
    assert.equal(more, 9, 'nine of ten messages left: the refused request took nothing');
  });

  it('keys are independent, and the rate refills over time', () => {
    const l = new LocalLimiter();
    const r = { perSec: 2, burst: 2 };
    assert.equal(l.charge([{ key: 'a', rate: r, cost: 2 }], 0), 0);
    assert.ok(l.charge([{ key: 'a', rate: r, cost: 1 }], 0) > 0);
    assert.equal(l.charge([{ key: 'b', rate: r, cost: 1 }], 0), 0);
    assert.equal(l.charge([{ key: 'a', rate: r, cost: 1 }], 500), 0, 'one unit back after 500 ms at 2/s');
  });

  it('forgets idle keys once over its size bound', () => {
    const l = new LocalLimiter(10);
    const r = { perSec: 1000, burst: 1 };
    for (let i = 0; i < 20; i++) l.charge([{ key: `k${i}`, rate: r, cost: 1 }], 0);
    l.charge([{ key: 'late', rate: r, cost: 1 }], 5_000);
    assert.ok(l.size() <= 2, `pruned to ${l.size()}`);
  });
});
