// The gateway refuses uWebSockets.js's JavaScript fallback: Parley's performance is the native server's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isNative } from '../../lib/gateway/index.js';

const require = createRequire(import.meta.url);
const PARLEY = fileURLToPath(new URL('../../cmd/parley.js', import.meta.url));

describe('uWebSockets.js native check', () => {
  it('tells the native binary from the JavaScript fallback', () => {
    assert.equal(isNative(require('uWebSockets.js') as { App: unknown }), true);
    assert.equal(isNative(require('uWebSockets.js/dist/index.js') as { App: unknown }), false);
  });

  it('parley gateway refuses to start on the fallback, before touching any service', () => {
    const r = spawnSync(process.execPath, [PARLEY, 'gateway'], {
      env: { ...process.env, UWS_USE_FALLBACK: '1', NATS_URL: 'nats://127.0.0.1:1', LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 70, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /JavaScript fallback/);
  });
});
