// Parley on a Redis Cluster (3 masters + 3 replicas, REDIS_URL=redis+cluster://...): room fan-out over sharded
// Pub/Sub across gateways, sessions, presence and limits (every script's keys in one slot), and service that goes on
// when a master is SIGKILLed under load and its replica takes over: every acked message delivered once, in order,
// and stored; sessions, presence and limits work again after the failover.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { redisKeys } from '../../lib/redis/index.js';
import type { RedisKeys } from '../../lib/redis/index.js';
import { assertChain } from '../harness/client.js';
import type { TestClient } from '../harness/client.js';
import { redisMasterOf, redisReplicaInSync } from '../harness/clusters.js';
import type { ClusterHandle } from '../harness/clusters.js';
import { ContractSender } from '../harness/contract.js';
import type { ParleyProcess } from '../harness/parley.js';
import type { RedisInspector } from '../harness/redis.js';
import { Suite } from '../harness/suite.js';
import { until } from '../harness/wait.js';

const GRACE_MS = 300;

/** How many subscribers `channel` has on the node at `url`: [sharded (SSUBSCRIBE), plain (SUBSCRIBE)]. */
async function subscribers(url: string, channel: string): Promise<[number, number]> {
  const c = createClient({ url, socket: { reconnectStrategy: false } });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const sharded = await c.sendCommand(['PUBSUB', 'SHARDNUMSUB', channel]) as unknown[];
    const plain = await c.sendCommand(['PUBSUB', 'NUMSUB', channel]) as unknown[];
    return [Number(sharded[1]), Number(plain[1])];
  } finally {
    c.destroy();
  }
}

describe('Redis Cluster (3 masters + 3 replicas)', { timeout: 300_000 }, () => {
  let suite: Suite;
  let cluster: ClusterHandle;
  let keys: RedisKeys;
  let redis: RedisInspector;
  let gw1: ParleyProcess;
  let gw2: ParleyProcess;

  before(async () => {
    suite = await Suite.open('rclu', {
      redisCluster: true,
      env: { PARLEY_PRESENCE_GRACE_MS: String(GRACE_MS), PARLEY_PRESENCE_TICK_MS: '100', PARLEY_RECOVERY_MAX_MESSAGES: '100000' },
    });
    cluster = suite.redisCluster!;
    assert.match(suite.env.REDIS_URL!, /^redis\+cluster:\/\//);
    keys = redisKeys(suite.env.PARLEY_REDIS_PREFIX!);
    redis = suite.redisClient();
    [gw1, gw2] = await Promise.all([suite.start('gateway'), suite.start('gateway'), suite.start('chat'), suite.start('presence')]);
  });
  after(() => suite?.close());

  it('room messages fan out across gateways over sharded Pub/Sub, on the shard of the room channel', async () => {
    const room = 'shardroom';
    const a = await suite.connect(gw1, 'alice');
    const b = await suite.connect(gw2, 'bob');
    await a.join(room);
    const start = (await b.join(room)).seq as number;
    const replies = await a.sendAll(room, ['s1', 's2', 's3']);
    assert.ok(replies.every((f) => f.type === 'ack'));
    await until(() => b.messages(room).length === 3, { message: 'bob got the 3 messages from the other gateway' });
    assertChain(b.messages(room), start, 'bob');
    // Both gateways hold a sharded subscription on the master of the channel's slot, and no plain one anywhere.
    const channel = keys.roomChannel(room);
    const master = await redisMasterOf(cluster, channel);
    assert.deepEqual(await subscribers(master.url, channel), [2, 0], 'two SSUBSCRIBEs (one per gateway), no SUBSCRIBE');
  });

  it('sessions, presence and limits run their scripts on the cluster (one slot each) and work across gateways', async () => {
    const room = 'presroom';
    const w = await suite.connect(gw2, 'wendy');
    await w.join(room);
    const u = await suite.connect(gw1, 'ursula');
    const sid = (u.frames.find((f) => f.type === 'welcome')!.session) as string;
    assert.equal(await redis.hget(keys.session(sid), 'user'), 'ursula', 'session hash');
    assert.equal(await redis.sismember(keys.userSessions('ursula'), sid), 1, 'user sessions set');
    const joined = await u.join(room);
    assert.ok((joined.presence as string[]).includes('wendy'), 'joined.presence lists the member on the other gateway');
    await w.waitFor((f) => f.type === 'presence' && f.room === room && f.user === 'ursula' && f.status === 'online');
    assert.equal(await redis.hget(keys.roomOnline(room), 'ursula'), '1');
    await u.close();
    await w.waitFor((f) => f.type === 'presence' && f.room === room && f.user === 'ursula' && f.status === 'offline', { timeout: 15_000 });
    assert.equal(await redis.exists(keys.session(sid)), 0, 'session removed on close');

    // Limits: a gateway with a send budget of burst 3 (cluster-wide, in Redis) refuses the 4th send at once.
    const limited = await suite.start('gateway', { PARLEY_RATE_SEND_USER: '0.5', PARLEY_RATE_SEND_USER_BURST: '3', PARLEY_MAX_CONNECTIONS_PER_USER: '1',
      PARLEY_RATE_CONNECT_USER: '5' });
    const l = await suite.connect(limited, 'lim');
    await l.join(room);
    const sends = await l.sendAll(room, ['l1', 'l2', 'l3', 'l4']);
    assert.deepEqual(sends.map((f) => f.type === 'ack' ? 'ack' : f.code), ['ack', 'ack', 'ack', 'RATE_LIMITED']);
    assert.equal(await redis.exists(keys.rate('send-user', 'lim')), 1, 'the budget lives in Redis (not the per-gateway fallback)');
    // Connection admission runs inside the session-open script: a second connection of the user is closed with 4008.
    const second = await suite.connect(limited, 'lim');
    assert.equal((await second.closed).code, 4008);
    assert.equal(await redis.exists(keys.connectRate('user', 'lim')), 1, 'connect rate charged in the presence slot');
    await l.close();
  });

  it('a master SIGKILLed under load: its replica takes over; every acked message delivered once, in order, and stored', async () => {
    const room = 'failroom';
    const receivers = [await suite.connect(gw1, 'r1'), await suite.connect(gw2, 'r2')];
    const starts = await Promise.all(receivers.map(async (r) => (await r.join(room)).seq as number));
    const senders: ContractSender[] = [];
    for (const [i, gw] of [gw1, gw2].entries()) {
      const c = await suite.connect(gw, `fs${i}`);
      await c.join(room);
      senders.push(new ContractSender(c, { room, rate: 20, maxMessages: 2_000, idPrefix: `f${i}-` }));
    }
    const acked = (): number => senders.reduce((n, s) => n + s.acked.size, 0);
    const delivered = (r: TestClient): number => r.messages(room).length;
    try {
      for (const s of senders) s.start();
      await until(() => acked() >= 30, { timeout: 30_000, message: 'warm-up' });

      // 1. The master of the room channel's shard (sharded fan-out), then 2. the master of the presence slot.
      for (const what of ['room channel', 'presence'] as const) {
        const key = what === 'room channel' ? keys.roomChannel(room) : keys.presenceSlot;
        const victim = await redisMasterOf(cluster, key);
        await victim.kill('SIGKILL');
        const killedAt = acked();
        await until(async () => (await redisMasterOf(cluster, key)).nodeName !== victim.nodeName,
          { timeout: 60_000, interval: 200, message: `a replica promoted for the ${what} slot` });
        // Service continues: new sends are acked and reach both gateways' receivers live.
        await until(() => acked() >= killedAt + 40, { timeout: 60_000, message: `sends acked after the ${what} master died` });
        const target = Math.max(...senders.map((s) => Math.max(0, ...s.acked.values())));
        await until(() => receivers.every((r) => r.messages(room).some((m) => m.seq >= target)),
          { timeout: 60_000, message: `live delivery after the ${what} failover` });
        // The old master comes back as a replica of the promoted one, and is in sync before the next kill (which may hit
        // the same shard: without a synced replica there is nobody to take over).
        await victim.start();
        await until(() => redisReplicaInSync(victim), { timeout: 60_000, interval: 200, message: `${victim.nodeName} in sync as a replica` });
      }
      // Sessions and presence work after both failovers: a new connection registers and is announced.
      const late = await suite.connect(gw2, 'late');
      const sid = (late.frames.find((f) => f.type === 'welcome')!.session) as string;
      await until(async () => (await redis.hget(keys.session(sid), 'user')) === 'late', { timeout: 30_000, message: 'session after failover' });
      await late.join(room);
      await receivers[0]!.waitFor((f) => f.type === 'presence' && f.user === 'late' && f.status === 'online', { timeout: 30_000 });

      for (const s of senders) s.stopNew();
      await until(() => senders.every((s) => s.unacked === 0), { timeout: 60_000, message: 'every send acked' });
      const seqs = senders.flatMap((s) => [...s.acked.values()]).sort((x, y) => x - y);
      for (const [i, r] of receivers.entries()) {
        await until(() => delivered(r) >= seqs.length, { timeout: 60_000, message: `${r.user} received every acked message` });
        assert.deepEqual(r.messages(room).map((m) => m.seq), seqs, `${r.user}: each acked message once, in order`);
        assertChain(r.messages(room), starts[i]!, r.user);
      }
      await until(async () => (await suite.messages().countDocuments({ room })) === seqs.length, { timeout: 60_000, message: 'stored' });
      process.stderr.write(`[redis-cluster] ${seqs.length} acked and delivered through two master failovers\n`);
    } finally {
      for (const s of senders) s.close();
    }
  });
});
