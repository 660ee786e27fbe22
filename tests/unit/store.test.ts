import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { duplicatesOnly } from '../../lib/store/index.js';

describe('duplicatesOnly (is a failed insertMany really "already stored"?)', () => {
  it('a bulk error without write errors (the connection closed mid-insert) is a failure', () => {
    assert.equal(duplicatesOnly({ insertedCount: 0, writeErrors: [], hasWriteConcernError: false }, 3), undefined);
  });
  it('duplicate keys for the documents not inserted: those indexes', () => {
    assert.deepEqual(duplicatesOnly({ insertedCount: 1, writeErrors: [{ code: 11000, index: 0 }, { code: 11000, index: 2 }], hasWriteConcernError: false }, 3), [0, 2]);
  });
  it('any other write error is a failure', () => {
    assert.equal(duplicatesOnly({ insertedCount: 1, writeErrors: [{ code: 11000, index: 0 }, { code: 91, index: 2 }], hasWriteConcernError: false }, 3), undefined);
  });
  it('documents neither inserted nor duplicate (a partial write) make it a failure', () => {
    assert.equal(duplicatesOnly({ insertedCount: 0, writeErrors: [{ code: 11000, index: 0 }], hasWriteConcernError: false }, 3), undefined);
  });
  it('a write concern error is a failure', () => {
    assert.equal(duplicatesOnly({ insertedCount: 2, writeErrors: [{ code: 11000, index: 0 }], hasWriteConcernError: true }, 3), undefined);
  });
});
