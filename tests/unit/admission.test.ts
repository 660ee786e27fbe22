import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConnectionAdmission } from '../../lib/limits/index.js';
import { redisKeys } from '../../lib/redis/index.js';

describe('connection admission (lib/limits admission.ts)', () => {
  const keys = redisKeys('t:');
  const cfg = { maxPerUser: 2, maxPerIp: 3, connectPerUser: { perSec: 0, burst: 0 }, connectPerIp: { perSec: 1, burst: 2 } };

  it('hands the Redis check its caps, the force flag and only the enabled connect rates, on the connect-rate keys', () => {
    const a = createConnectionAdmission(keys, cfg);
    const { keys: k, args } = a.scriptArgs('ann', '10.0.0.1', false);
    assert.deepEqual(k, [keys.connectRate('user', 'ann'), keys.connectRate('ip', '10.0.0.1')]);
    assert.deepEqual(args, [2, 3, '0', 2, 'm', 1000, 2, 1]);
    assert.equal(a.scriptArgs('ann', '10.0.0.1', true).args[2], '1');
  });

  it('names each refusal of the Redis check (the 4008 reason)', () => {
    const a = createConnectionAdmission(keys, cfg);
    assert.equal(a.refusal(1, 0), undefined);
    assert.equal(a.refusal(0, 0), 'too many connections for this user (max 2)');
    assert.equal(a.refusal(-1, 0), 'too many connections from this address (max 3)');
    assert.equal(a.refusal(-2, 250), 'too many connection attempts; retry in 250 ms');
  });

  it('falls back to this gateway\'s own counts and an in-process rate while Redis does not answer', () => {
    const a = createConnectionAdmission(keys, { ...cfg, connectPerIp: { perSec: 0, burst: 0 } });
    for (let i = 0; i < 2; i++) {
      a.opened('bo', `10.0.0.${i}`);
      assert.equal(a.admitLocally('bo', `10.0.0.${i}`), undefined);
    }
    a.opened('bo', '10.0.0.9');
    assert.equal(a.admitLocally('bo', '10.0.0.9'), 'too many connections for this user (max 2)');
    a.closed('bo', '10.0.0.9');
    a.closed('bo', '10.0.0.1');
    a.opened('bo', '10.0.0.9');
    assert.equal(a.admitLocally('bo', '10.0.0.9'), undefined);
    const rated = createConnectionAdmission(keys, cfg);
    assert.equal(rated.admitLocally('cy', '10.1.1.1'), undefined);
    assert.equal(rated.admitLocally('cy', '10.1.1.1'), undefined);
    assert.match(rated.admitLocally('cy', '10.1.1.1') ?? '', /^too many connection attempts; retry in \d+ ms$/);
  });
});
