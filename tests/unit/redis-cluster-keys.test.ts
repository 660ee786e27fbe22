import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../lib/config/index.js';
import { formatRedisTarget, parseRedisTarget, redisKeys } from '../../lib/redis/index.js';

/** Redis Cluster's key slot (CRC16/XMODEM of the hash tag, or of the key, mod 16384), as the spec defines it. */
function slot(key: string): number {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  const hashed = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('Redis keys on a Redis Cluster (ADR 0024)', () => {
  it('the CRC16 slot function matches the values Redis documents', () => {
    assert.equal(slot('123456789'), 12739);
    assert.equal(slot('{user1000}.following'), slot('{user1000}.followers'));
  });

  for (const prefix of ['', 'p1:']) {
    const k = redisKeys(prefix);
    it(`every key a presence script touches is in one slot (prefix ${JSON.stringify(prefix)})`, () => {
      const names = [k.session('s1'), k.userSessions('u'), k.ipSessions('1.2.3.4'), k.roomOnline('r'), k.gatewayAlive('g'),
        k.gatewaySessions('g'), k.gatewayRooms('g'), k.gateways, k.presencePending, k.connectRate('user', 'u'),
        k.connectRate('ip', '::1'), k.presenceSlot];
      assert.deepEqual(new Set(names.map(slot)).size, 1, names.join(' '));
      // ... including the names the scripts build from the templates they get in ARGV.
      for (let i = 0; i < 14; i += 2) assert.equal(slot(`${k.scriptNames[i]}anything${k.scriptNames[i + 1]}`), slot(k.gateways));
      for (const n of names) assert.ok(n.startsWith(prefix), `${n} keeps the deployment prefix first (ACL key patterns)`);
    });

    it(`a send's and a history page's limit keys share a slot (prefix ${JSON.stringify(prefix)})`, () => {
      const names = ['send', 'history'].flatMap((s) => [k.rate(`${s}-user`, 'alice'), k.rate(`${s}-ip`, '10.0.0.1'), k.rate(`${s}-user`, 'bob')]);
      assert.equal(new Set(names.map(slot)).size, 1);
    });
  }

  it('room channels carry no tag: rooms spread over the slots (sharded fan-out scales with masters)', () => {
    const k = redisKeys('p1:');
    const slots = new Set(Array.from({ length: 50 }, (_, i) => slot(k.roomChannel(`room-${i}`))));
    assert.ok(slots.size > 40, `${slots.size} distinct slots for 50 rooms`);
  });
});

describe('REDIS_URL and REDIS_CLUSTER', () => {
  it('a redis+cluster:// URL names the seed nodes (credentials on the first)', () => {
    assert.deepEqual(parseRedisTarget('redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001'),
      { cluster: true, nodes: ['redis://u:p%40ss@10.0.0.1:7000', 'redis://10.0.0.2:7001'] });
    assert.deepEqual(parseRedisTarget('rediss+cluster://h:1').nodes, ['rediss://h:1']);
    assert.equal(formatRedisTarget(parseRedisTarget('redis+cluster://u:p@a:1,b:2')), 'redis+cluster://u:p@a:1,b:2');
  });

  it('REDIS_CLUSTER=1 makes a plain URL (or list) a cluster; a list without it is refused, naming the variable', () => {
    const base = { JWT_SECRET: 'x'.repeat(32) };
    assert.equal(loadConfig({ ...base, REDIS_URL: 'redis://a:1,redis://b:2', REDIS_CLUSTER: '1' }).redisUrl, 'redis+cluster://a:1,b:2');
    assert.equal(loadConfig({ ...base, REDIS_URL: 'redis://a:1', REDIS_CLUSTER: 'true' }).redisUrl, 'redis+cluster://a:1');
    assert.equal(loadConfig({ ...base, REDIS_URL: 'redis://a:1' }).redisUrl, 'redis://a:1');
    assert.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://a:1,redis://b:2' }), /REDIS_URL: a list of Redis servers needs REDIS_CLUSTER=1/);
    assert.throws(() => loadConfig({ ...base, REDIS_URL: 'http://a:1' }), /REDIS_URL: scheme must be/);
    assert.throws(() => loadConfig({ ...base, REDIS_CLUSTER: 'maybe' }), /REDIS_CLUSTER/);
  });
});
