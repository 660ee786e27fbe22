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
    ];
    for (const [env, variable] of bad) {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable &&
        err.message.startsWith(variable), JSON.stringify(env));
    }
  });
});
