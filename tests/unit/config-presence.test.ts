import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../lib/config/index.js';

describe('loadConfig: presence and rate limits', () => {
  it('has defaults, decimals for rates, and 0 to disable a limit', () => {
    const c = loadConfig({});
    assert.equal(c.presence.gatewayTtlMs, 15_000);
    assert.equal(c.presence.graceMs, 5_000);
    assert.deepEqual(c.rateLimits.sendPerUser, { perSec: 10, burst: 30 });
    const d = loadConfig({ PARLEY_RATE_CONNECT_USER: '0.5', PARLEY_RATE_CONNECT_USER_BURST: '3', PARLEY_RATE_SEND_USER: '0' });
    assert.deepEqual(d.rateLimits.connectPerUser, { perSec: 0.5, burst: 3 });
    assert.equal(d.rateLimits.sendPerUser.perSec, 0);
  });

  it('names the variable and the bad value', () => {
    const bad: Array<[Record<string, string>, string]> = [
      [{ PARLEY_GATEWAY_TTL_MS: '10' }, 'PARLEY_GATEWAY_TTL_MS'],
      [{ PARLEY_PRESENCE_GRACE_MS: '-1' }, 'PARLEY_PRESENCE_GRACE_MS'],
      [{ PARLEY_PRESENCE_TICK_MS: 'soon' }, 'PARLEY_PRESENCE_TICK_MS'],
      [{ PARLEY_TYPING_INTERVAL_MS: '1' }, 'PARLEY_TYPING_INTERVAL_MS'],
      [{ PARLEY_MAX_CONNECTIONS_PER_USER: 'many' }, 'PARLEY_MAX_CONNECTIONS_PER_USER'],
      [{ PARLEY_MAX_CONNECTIONS_PER_IP: '-3' }, 'PARLEY_MAX_CONNECTIONS_PER_IP'],
      [{ PARLEY_RATE_SEND_USER: '-1' }, 'PARLEY_RATE_SEND_USER'],
      [{ PARLEY_RATE_SEND_USER: '1e3' }, 'PARLEY_RATE_SEND_USER'],
      [{ PARLEY_RATE_SEND_USER_BURST: '0' }, 'PARLEY_RATE_SEND_USER_BURST'],
      [{ PARLEY_RATE_CONNECT_IP_BURST: '2.5' }, 'PARLEY_RATE_CONNECT_IP_BURST'],
      [{ PARLEY_RATE_MAX_VIOLATIONS: '0' }, 'PARLEY_RATE_MAX_VIOLATIONS'],
      // A byte burst below the largest body would refuse such a message forever.
      [{ PARLEY_MAX_BODY_BYTES: '4096', PARLEY_RATE_SEND_BYTES_USER_BURST: '1000' }, 'PARLEY_RATE_SEND_BYTES_USER_BURST'],
      [{ PARLEY_MAX_BODY_BYTES: '4096', PARLEY_RATE_SEND_BYTES_IP_BURST: '1000' }, 'PARLEY_RATE_SEND_BYTES_IP_BURST'],
    ];
    for (const [env, variable] of bad) {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable &&
        err.message.startsWith(variable), JSON.stringify(env));
    }
    assert.doesNotThrow(() => loadConfig({ PARLEY_RATE_SEND_BYTES_USER: '0', PARLEY_RATE_SEND_BYTES_USER_BURST: '1' }), 'disabled: no check');
  });
});
