// /healthz and /readyz of every service: readiness flips to 503, naming what is missing, when Redis or NATS goes away,
// and back to 200 when it returns (MongoDB for chat: reconcile.test.ts). A gateway answers on its public port and on
// its ops port alike; liveness stays 200 throughout (a dependency outage is no reason to restart the process).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { ParleyProcess } from '../harness/parley.js';
import { Suite } from '../harness/suite.js';

interface Probe { status: number; body: Record<string, unknown> }

async function probe(url: string): Promise<Probe> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('health: readiness follows NATS and Redis, with the reason in the body', () => {
  let suite: Suite;
  let chat: ParleyProcess;
  let presence: ParleyProcess;
  let gw: ParleyProcess;
  let readyz: Record<string, string>;

  before(async () => {
    suite = await Suite.open('health', { dedicatedNats: true, dedicatedRedis: true });
    chat = await suite.start('chat');
    presence = await suite.start('presence');
    gw = await suite.start('gateway');
    readyz = {
      chat: `http://127.0.0.1:${chat.opsPort}/readyz`,
      presence: `http://127.0.0.1:${presence.opsPort}/readyz`,
      'gateway ops': `http://127.0.0.1:${gw.opsPort}/readyz`,
      'gateway public': `${gw.http}/readyz`,
    };
  });
  after(() => suite.close());

  const all = async (): Promise<Record<string, Probe>> =>
    Object.fromEntries(await Promise.all(Object.entries(readyz).map(async ([k, u]) => [k, await probe(u)] as const)));
  const live = async (): Promise<void> => {
    for (const p of [chat, presence, gw]) {
      const r = await probe(`http://127.0.0.1:${p.opsPort}/healthz`);
      assert.equal(r.status, 200, `${p.command} is alive`);
    }
  };

  it('Redis down: every service is not ready and says redis; back up: ready again', async () => {
    await until(async () => Object.values(await all()).every((r) => r.status === 200), { timeout: 20_000, message: 'all ready' });
    await suite.redis.kill();
    let seen: Record<string, Probe> = {};
    await until(async () => {
      seen = await all();
      return Object.values(seen).every((r) => r.status === 503);
    }, { timeout: 20_000, message: 'all not ready without Redis' });
    assert.equal(seen.chat!.body.redis, 'unreachable');
    assert.equal(seen.presence!.body.presence, false);
    assert.equal(seen['gateway ops']!.body.redis, false);
    assert.equal(seen['gateway public']!.body.redis, false);
    for (const r of Object.values(seen)) assert.equal(r.body.status, 'not ready');
    await live();

    await suite.redis.start();
    await until(async () => Object.values(await all()).every((r) => r.status === 200), { timeout: 30_000, message: 'all ready again' });
  });

  it('NATS down: chat and the gateway are not ready and say nats; back up: ready again', async () => {
    await until(async () => Object.values(await all()).every((r) => r.status === 200), { timeout: 20_000, message: 'all ready' });
    await suite.nats.kill();
    let seen: Record<string, Probe> = {};
    await until(async () => {
      seen = await all();
      return seen.chat!.status === 503 && seen['gateway ops']!.status === 503 && seen['gateway public']!.status === 503;
    }, { timeout: 20_000, message: 'chat and gateway not ready without NATS' });
    assert.equal(seen.chat!.body.nats, 'disconnected');
    assert.equal(seen['gateway ops']!.body.nats, 'disconnected');
    assert.equal(seen['gateway public']!.body.nats, false);
    assert.equal(seen.presence!.status, 200, 'presence does not use NATS');
    await live();

    await suite.nats.start();
    await until(async () => Object.values(await all()).every((r) => r.status === 200), { timeout: 30_000, message: 'all ready again' });
  });
});
