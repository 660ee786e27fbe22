// Sessions and presence across gateways: online while any session lives, offline once after the last one (with a
// grace period against flapping), dead gateways reaped within the configured bound, no duplicate events from several
// presence instances, typing across gateways without storage, and per-user connection limits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redisKeys } from '../../lib/redis/index.js';
import type { RedisKeys } from '../../lib/redis/index.js';
import type { RedisInspector } from '../harness/redis.js';
import { uniqueName, until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import { TestClient } from '../harness/client.js';
import type { Frame } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

const GATEWAY_TTL_MS = 1500;
const GRACE_MS = 800;
const TICK_MS = 100;

describe('sessions and presence across gateways', () => {
  let suite: Suite;
  let redis: RedisInspector;
  let env: Record<string, string>;
  let keys: RedisKeys;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;
  let gw3: ParleyProcess;

  before(async () => {
    suite = await Suite.open('presence', {
      env: {
        PARLEY_GATEWAY_TTL_MS: String(GATEWAY_TTL_MS),
        PARLEY_PRESENCE_GRACE_MS: String(GRACE_MS),
        PARLEY_PRESENCE_TICK_MS: String(TICK_MS),
        PARLEY_MAX_CONNECTIONS_PER_USER: '2',
      },
    });
    env = suite.env;
    keys = redisKeys(env.PARLEY_REDIS_PREFIX!);
    // Three presence instances side by side: every test below also checks that no event is doubled.
    [gw1, gw2, gw3] = await Promise.all([suite.start('gateway'), suite.start('gateway'), suite.start('gateway'),
      suite.start('chat'), suite.start('presence'), suite.start('presence'), suite.start('presence')]);
    redis = suite.redisClient();
  });
  after(() => suite.close());

  const connect = (gw: ParleyProcess, user: string): Promise<TestClient> => suite.connect(gw, user);
  const presenceOf = (c: TestClient, room: string, user: string): string[] =>
    c.frames.filter((f) => f.type === 'presence' && f.room === room && f.user === user).map((f) => f.status as string);
  /** Everything published on `presence` before a later event has been relayed by the time that event arrives. */
  const marker = async (watcher: TestClient, gw: ParleyProcess, room: string): Promise<void> => {
    const m = await connect(gw, uniqueName('marker'));
    await m.join(room);
    await watcher.waitFor((f) => f.type === 'presence' && f.room === room && f.user === m.user && f.status === 'online');
  };
  const online = (room: string, user: string): Promise<string | null> => redis.hget(keys.roomOnline(room), user);
  const sessionsOf = (user: string): Promise<number> => redis.scard(keys.userSessions(user));

  it('a user with sessions on two gateways stays online until the last one closes: one online, one offline', async () => {
    const room = 'two-gw';
    const watcher = await connect(gw1, 'wanda');
    await watcher.join(room);
    const a = await connect(gw1, 'ulla');
    const b = await connect(gw2, 'ulla');
    await a.join(room);
    await b.join(room);
    await until(async () => (await online(room, 'ulla')) === '2', { message: 'both sessions in the room' });
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'ulla' && f.status === 'online');

    await a.close();
    await until(async () => (await online(room, 'ulla')) === '1' && (await sessionsOf('ulla')) === 1, { message: 'first session gone' });
    assert.equal(await redis.zscore(keys.presencePending, `${room} ulla`), null, 'no offline pending while a session lives');

    await b.close();
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'ulla' && f.status === 'offline');
    await marker(watcher, gw2, room);
    assert.deepEqual(presenceOf(watcher, room, 'ulla'), ['online', 'offline']);
    assert.equal(await online(room, 'ulla'), null);
    assert.equal(await sessionsOf('ulla'), 0);
  });

  it('a reconnect within the grace period produces no offline/online pair (flapping is debounced)', async () => {
    const room = 'flap';
    const watcher = await connect(gw1, 'walt');
    await watcher.join(room);
    const first = await connect(gw1, 'fred');
    await first.join(room);
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'fred' && f.status === 'online');
    for (let i = 0; i < 3; i++) {
      await first.close();
      const again = await connect(i % 2 === 0 ? gw2 : gw1, 'fred');
      await again.join(room);
      if (i < 2) await again.close();
    }
    await until(async () => (await online(room, 'fred')) === '1', { message: 'fred back in the room' });
    await until(async () => (await redis.zscore(keys.presencePending, `${room} fred`)) === null, { message: 'pending offline cancelled' });
    await marker(watcher, gw2, room);
    assert.deepEqual(presenceOf(watcher, room, 'fred'), ['online'], 'no offline/online pair for the reconnects');
  });

  it('a gateway killed with SIGKILL: its users go offline within TTL + grace, and their session keys are gone', async () => {
    const room = 'killed';
    const watcher = await connect(gw1, 'wendy');
    await watcher.join(room);
    const k = await connect(gw3, 'kurt');
    const welcome = k.frames.find((f) => f.type === 'welcome')!;
    const sid = welcome.session as string;
    await k.join(room);
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'kurt' && f.status === 'online');
    assert.equal(await redis.exists(keys.session(sid)), 1);
    assert.equal(await redis.hget(keys.session(sid), 'user'), 'kurt');

    const killedAt = Date.now();
    await gw3.kill('SIGKILL');
    // Bound: the alive key expires at most TTL after the last heartbeat, a presence tick notices, then the grace.
    const bound = GATEWAY_TTL_MS + GRACE_MS + 2 * TICK_MS;
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'kurt' && f.status === 'offline', { timeout: bound + 5_000 });
    const took = Date.now() - killedAt;
    assert.ok(took <= bound + 1_000, `offline after ${took} ms, bound ${bound} ms (+1 s of slack for process scheduling)`);
    assert.equal(await redis.exists(keys.session(sid)), 0, 'session key gone');
    assert.equal(await sessionsOf('kurt'), 0);
    const deadId = gw3Id(gw3);
    assert.notEqual(deadId, '?');
    assert.equal(await redis.sismember(keys.gateways, deadId), 0, 'the dead gateway is unregistered');
    assert.equal(await redis.exists(keys.gatewaySessions(deadId)), 0);
    await marker(watcher, gw1, room);
    assert.deepEqual(presenceOf(watcher, room, 'kurt'), ['online', 'offline']);
  });

  it('several presence instances: each user gets exactly one online and one offline event', async () => {
    const room = 'crowd';
    const watcher = await connect(gw2, 'wilma');
    await watcher.join(room);
    const users = Array.from({ length: 8 }, (_, i) => `crowd${i}`);
    const cs = await Promise.all(users.map((u, i) => connect(i % 2 ? gw1 : gw2, u)));
    await Promise.all(cs.map((c) => c.join(room)));
    await until(() => users.every((u) => presenceOf(watcher, room, u).length === 1), { message: 'all online' });
    await Promise.all(cs.map((c) => c.close()));
    await until(() => users.every((u) => presenceOf(watcher, room, u).length === 2), { message: 'all offline', timeout: 10_000 });
    await marker(watcher, gw1, room);
    for (const u of users) assert.deepEqual(presenceOf(watcher, room, u), ['online', 'offline'], u);
  });

  it('typing reaches members on other gateways, not the sender, is throttled, and is never stored', async () => {
    const room = 'typing';
    const far = await connect(gw1, 'tara');
    const typist = await connect(gw2, 'theo');
    const near = await connect(gw2, 'tina');
    const other = await connect(gw2, 'tom');
    for (const c of [far, typist, near, other]) assert.equal((await c.join(room)).type, 'joined');

    for (let i = 0; i < 5; i++) typist.send({ type: 'typing', room });
    other.send({ type: 'typing', room });
    // Typing frames from one gateway reach another in order: tom's arrives after whatever of theo's was relayed.
    await far.waitFor((f) => f.type === 'typing' && f.user === 'tom');
    await near.waitFor((f) => f.type === 'typing' && f.user === 'tom');
    const typingOf = (c: TestClient, user: string): Frame[] => c.frames.filter((f) => f.type === 'typing' && f.user === user);
    assert.equal(typingOf(far, 'theo').length, 1, 'one typing per user and room per interval, on another gateway');
    assert.equal(typingOf(near, 'theo').length, 1, 'and on the same gateway');
    assert.deepEqual(typingOf(far, 'theo')[0], { type: 'typing', room, user: 'theo' });
    assert.equal(typingOf(typist, 'theo').length, 0, 'the sender does not get its own typing back');
    assert.equal(typist.errors().length, 0, 'extra typing is dropped silently');

    const outsider = await connect(gw1, 'otto');
    outsider.send({ type: 'typing', room });
    const err = await outsider.waitFor((f) => f.type === 'error');
    assert.equal(err.code, 'UNKNOWN_ROOM');
    assert.equal(err.ref, room);

    assert.equal(far.messages(room).length, 0);
    assert.equal(await suite.messages().countDocuments({ room }), 0, 'nothing stored');
  });

  it('a connection over the per-user limit is closed with 4008; closing one frees a slot cluster-wide', async () => {
    const a = await connect(gw1, 'lim');
    const b = await connect(gw2, 'lim');
    await until(async () => (await sessionsOf('lim')) === 2);
    const c = await connect(gw1, 'lim');
    const closed = await c.closed;
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /too many connections for this user/);
    assert.equal(await sessionsOf('lim'), 2, 'the refused connection left no session');
    await a.close();
    await until(async () => (await sessionsOf('lim')) === 1);
    await connect(gw1, 'lim');
    await until(async () => (await sessionsOf('lim')) === 2, { message: 'admitted on another gateway' });
    await b.close();
  });
});

/** The gateway id a ParleyProcess registered, read back from its log. */
function gw3Id(p: ParleyProcess): string {
  const m = /"gateway":"([^"]+)"/.exec(p.tail(200));
  return m ? m[1]! : '?';
}
