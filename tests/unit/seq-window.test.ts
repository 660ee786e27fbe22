import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeqWindow } from '../../lib/gateway/index.js';

describe('SeqWindow', () => {
  it('accepts each seq once, in any order', () => {
    const w = new SeqWindow(8);
    assert.equal(w.accept(5), true);
    assert.equal(w.accept(3), true, 'out of order is not a duplicate');
    assert.equal(w.accept(5), false);
    assert.equal(w.accept(3), false);
    assert.equal(w.accept(6), true);
  });

  it('stays bounded and drops what is older than its window', () => {
    const w = new SeqWindow(4);
    for (let s = 1; s <= 100; s++) assert.equal(w.accept(s), true);
    for (let s = 1; s <= 100; s++) assert.equal(w.accept(s), false, `repeat of ${s}`);
    assert.equal(w.accept(101), true);
  });
});
