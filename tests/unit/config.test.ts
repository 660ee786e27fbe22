import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEV_JWT_SECRET, loadConfig } from '../../lib/config/index.js';

describe('loadConfig', () => {
  it('has laptop defaults', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.natsUrl, 'nats://127.0.0.1:4222');
    assert.equal(c.stream.name, 'CHAT');
    assert.equal(c.mongoDb, 'parley');
    assert.equal(c.jwt.secret, DEV_JWT_SECRET);
    assert.deepEqual(c.jwt.algorithms, ['HS256']);
  });

  it('hardening defaults (issue 10): exp required and capped, bounded reads, history budgets, metrics cache', () => {
    const c = loadConfig({ MONGO_URL: 'mongodb://db:27017' });
    assert.equal(c.jwt.requireExp, true);
    assert.equal(c.jwt.maxTtlMs, 86_400_000);
    assert.equal(c.storage.readUrl, 'mongodb://db:27017', 'reads default to MONGO_URL');
    assert.deepEqual([c.storage.maxInflight, c.storage.maxQueued, c.storage.queryTimeoutMs], [8, 64, 2_000]);
    assert.deepEqual(c.rateLimits.historyPerUser, { perSec: 5, burst: 20 });
    assert.equal(c.metricsCacheMs, 1_000);
    assert.equal(c.stream.idempotencyWindowMs, 86_400_000, 'resends are recognised for a day (issue 12)');
    assert.deepEqual([c.chat.maxUnstored, c.chat.storeConcurrency], [20_000, 4]);
    assert.equal(loadConfig({ PARLEY_IDEMPOTENCY_WINDOW_MS: '0' }).stream.idempotencyWindowMs, 0, '0 turns it off');
    const lax = loadConfig({ PARLEY_JWT_REQUIRE_EXP: 'false', PARLEY_JWT_MAX_TTL_SEC: '0', PARLEY_MONGO_READ_URL: 'mongodb://replica:27017/?readPreference=secondaryPreferred' });
    assert.equal(lax.jwt.requireExp, false);
    assert.equal(lax.jwt.maxTtlMs, 0);
    assert.match(lax.storage.readUrl, /secondaryPreferred/);
  });

  it('names the variable and the bad value', () => {
    const bad: Array<[Record<string, string>, string]> = [
      [{ PORT: 'eighty' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ NATS_URL: 'http://x' }, 'NATS_URL'],
      [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
      [{ JWT_PUBLIC_KEY: '/no/such/file.pem' }, 'JWT_PUBLIC_KEY'],
      [{ PARLEY_JWT_ALGORITHMS: 'none' }, 'PARLEY_JWT_ALGORITHMS'],
      [{ PARLEY_JWT_ALGORITHMS: 'RS256' }, 'PARLEY_JWT_ALGORITHMS'],
      [{ PARLEY_SUBJECT_ROOT: 'chat.>' }, 'PARLEY_SUBJECT_ROOT'],
      [{ PARLEY_MAX_BODY_BYTES: '0' }, 'PARLEY_MAX_BODY_BYTES'],
      [{ NODE_ENV: 'production' }, 'JWT_SECRET'],
      [{ PARLEY_JWT_REQUIRE_EXP: 'maybe' }, 'PARLEY_JWT_REQUIRE_EXP'],
      [{ PARLEY_STORAGE_MAX_INFLIGHT: '0' }, 'PARLEY_STORAGE_MAX_INFLIGHT'],
      [{ PARLEY_MONGO_READ_URL: 'http://x' }, 'PARLEY_MONGO_READ_URL'],
      [{ PARLEY_RATE_VIOLATIONS_PER_SEC: '0' }, 'PARLEY_RATE_VIOLATIONS_PER_SEC'],
      [{ PARLEY_IDEMPOTENCY_WINDOW_MS: '60000' }, 'PARLEY_IDEMPOTENCY_WINDOW_MS'],
      [{ PARLEY_IDEMPOTENCY_WINDOW_MS: '-1' }, 'PARLEY_IDEMPOTENCY_WINDOW_MS'],
      [{ PARLEY_CHAT_MAX_UNSTORED: '0' }, 'PARLEY_CHAT_MAX_UNSTORED'],
      [{ PARLEY_CHAT_STORE_CONCURRENCY: '0' }, 'PARLEY_CHAT_STORE_CONCURRENCY'],
    ];
    for (const [env, variable] of bad) {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable &&
        err.message.startsWith(variable), JSON.stringify(env));
    }
  });
});
