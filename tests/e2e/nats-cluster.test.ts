// Guarantees 1, 2 and 6 on a 3-node JetStream cluster (stream R3): under steady load the stream leader is SIGKILLed
// and restarted, then a follower: nothing acked is lost or duplicated (stream, MongoDB, every receiver), sends are
// answered UNAVAILABLE only between the kill and the first send acked after it, and succeed again by themselves.
// Gateways and chat get every node's URL (NATS_URL, comma-separated) and fail over on their own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { assertChain } from '../harness/client.js';
import type { TestClient } from '../harness/client.js';
import { natsNode, readStream, streamLeader } from '../harness/clusters.js';
import { ContractSender } from '../harness/contract.js';
import type { Attempt } from '../harness/contract.js';
import type { ParleyProcess } from '../harness/parley.js';
import { Suite } from '../harness/suite.js';
import { until } from '../harness/wait.js';

const ROOM = 'cluster';
const PUBLISH_TIMEOUT_MS = 2_000;

describe('NATS JetStream cluster (3 nodes, stream R3): node loss under load', { timeout: 300_000 }, () => {
  let suite: Suite;
  let gws: ParleyProcess[];
  let nc: NatsConnection;
  let senders: ContractSender[];
  let receivers: TestClient[];
  let starts: number[];

  before(async () => {
    suite = await Suite.open('natsclu', {
      natsCluster: 3,
      env: { PARLEY_PUBLISH_TIMEOUT_MS: String(PUBLISH_TIMEOUT_MS), PARLEY_RECOVERY_MAX_MESSAGES: '100000' },
    });
    assert.equal(suite.env.PARLEY_STREAM_REPLICAS, '3');
    assert.equal(suite.env.NATS_URL!.split(',').length, 3, 'every process gets every node');
    await suite.start('chat');
    gws = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
    nc = await connect({ servers: suite.natsCluster!.url.split(','), name: 'test-observer', maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    receivers = await Promise.all(gws.map((gw, i) => suite.connect(gw, `rcv${i}`)));
    starts = await Promise.all(receivers.map(async (r) => (await r.join(ROOM)).seq as number));
    senders = await Promise.all(gws.map(async (gw, i) => {
      const c = await suite.connect(gw, `snd${i}`);
      assert.equal((await c.join(ROOM)).type, 'joined');
      return new ContractSender(c, { room: ROOM, rate: 25, maxMessages: 3_000, idPrefix: `m${i}-`, answerTimeoutMs: PUBLISH_TIMEOUT_MS * 2, maxInflight: 32, retryDelayMs: 250 });
    }));
    for (const s of senders) s.start();
  });

  after(async () => {
    for (const s of senders ?? []) s.close();
    await nc?.close();
    await suite?.close();
  });

  const acks = (): number => senders.reduce((n, s) => n + s.acked.size, 0);
  const all = (): Attempt[] => senders.flatMap((s) => s.attempts);
  const refused = (a: Attempt): boolean => a.result !== undefined && a.result !== 'ack';

  /**
   * Kills `node`, waits until every sender has a send acked that it first sent after the kill (sends succeed again),
   * restarts the node and waits until it is part of the stream's replicas again; returns the fault's events.
   */
  const killAndRestart = async (name: string, describeIt: string): Promise<{ killedAt: number; okAt: number }> => {
    const node = natsNode(suite.natsCluster!, name);
    const killedAt = Date.now();
    await node.kill('SIGKILL');
    // Sends succeed again: for each sender, an attempt sent after the kill was acked.
    await until(() => senders.every((s) => s.attempts.some((a) => a.sentAt > killedAt && a.result === 'ack')),
      { timeout: 60_000, message: `sends acked again after the ${describeIt} was killed` });
    const okAt = Math.max(...senders.map((s) => s.attempts.find((a) => a.sentAt > killedAt && a.result === 'ack')!.sentAt));
    const before = acks();
    await node.start();
    // The restarted node catches up and is a current replica again; load goes on meanwhile.
    await until(async () => {
      const info = await (await jetstreamManager(nc, { timeout: 2_000 })).streams.info(suite.env.PARLEY_STREAM!);
      const peers = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name)];
      return peers.includes(name);
    }, { timeout: 60_000, message: `${name} current in the stream again` });
    await until(() => acks() >= before + 20, { timeout: 30_000, message: 'load acked after the restart' });
    const gone = all().filter((a) => refused(a) && a.sentAt >= killedAt - PUBLISH_TIMEOUT_MS && a.sentAt <= okAt);
    process.stderr.write(`[nats-cluster] ${describeIt} ${name}: ${gone.length} sends refused (${[...new Set(gone.map((a) => a.result))].join(',') || 'none'}), `
      + `sends acked again ${((okAt - killedAt) / 1000).toFixed(1)} s after the kill\n`);
    return { killedAt, okAt };
  };

  it('leader SIGKILLed and restarted, then a follower: UNAVAILABLE only until sends succeed again; nothing acked lost or duplicated', async () => {
    await until(() => acks() >= 50, { timeout: 30_000, message: 'warm-up acks' });
    assert.deepEqual(all().filter(refused).map((a) => `${a.id} ${a.result}`), [], 'no send refused before any fault');

    const leader = await streamLeader(nc, suite.env.PARLEY_STREAM!);
    assert.ok(leader, 'the stream has a leader');
    const f1 = await killAndRestart(leader, 'stream leader');
    const newLeader = await streamLeader(nc, suite.env.PARLEY_STREAM!);
    assert.ok(newLeader);

    // A follower other than the node just restarted, when that one is not the only one.
    const follower = ['n0', 'n1', 'n2'].filter((n) => n !== newLeader).sort((x, y) => Number(x === leader) - Number(y === leader))[0]!;
    const f2 = await killAndRestart(follower, 'follower');
    const end = Date.now();

    // UNAVAILABLE (or no answer) only for sends made between a kill and the first send acked after it.
    const outside = all().filter((a) => refused(a) && !((a.sentAt >= f1.killedAt - PUBLISH_TIMEOUT_MS && a.sentAt <= f1.okAt)
      || (a.sentAt >= f2.killedAt - PUBLISH_TIMEOUT_MS && a.sentAt <= f2.okAt)));
    assert.deepEqual(outside.map((a) => `${a.id} sent at +${a.sentAt - f1.killedAt} ms: ${a.result}`), [],
      'no send refused outside the elections');
    assert.ok(all().filter(refused).every((a) => a.result === 'UNAVAILABLE' || a.result === 'timeout'),
      `refusals are UNAVAILABLE: ${[...new Set(all().filter(refused).map((a) => a.result))].join(',')}`);

    // Settle: no new messages; every one the senders hold is resent until acked.
    for (const s of senders) s.stopNew();
    await until(() => senders.every((s) => s.unacked === 0), { timeout: 60_000, message: 'every send acked' });
    assert.ok(all().filter((a) => a.sentAt > end).every((a) => !refused(a)), 'sends after the faults succeed');
    for (const s of senders) assert.deepEqual(s.conflicts, [], 'a resend is acked with the seq of the first ack');

    // The stream: every acked id once, with its acked seq, and nothing else.
    const acked = new Map<string, number>();
    senders.forEach((s, i) => { for (const [id, seq] of s.acked) acked.set(`snd${i}:${id}`, seq); });
    const stream = await readStream(nc, suite.env.PARLEY_STREAM!, suite.env.PARLEY_SUBJECT_ROOT!);
    const seen = new Map<string, number[]>();
    for (const e of stream) seen.set(e.nsId, [...(seen.get(e.nsId) ?? []), e.seq]);
    const dupes = [...seen].filter(([, seqs]) => seqs.length > 1);
    assert.deepEqual(dupes, [], 'no id twice in the stream');
    const lost = [...acked].filter(([id, seq]) => seen.get(id)?.[0] !== seq);
    assert.deepEqual(lost, [], 'every acked id in the stream with its acked seq');
    assert.equal(stream.length, acked.size, 'nothing in the stream that was not acked');

    // MongoDB: each once; every receiver: each once, in seq order, unbroken prev chain.
    await until(async () => (await suite.messages().countDocuments({ room: ROOM })) === acked.size,
      { timeout: 60_000, message: `${acked.size} documents` });
    const docs = await suite.messages().find({ room: ROOM }, { projection: { _id: 1, seq: 1 } }).toArray();
    assert.deepEqual(new Map(docs.map((d) => [String(d._id), Number(d.seq)])), acked, 'MongoDB holds exactly the acked messages');
    const seqs = [...acked.values()].sort((a, b) => a - b);
    for (const [i, r] of receivers.entries()) {
      await until(() => r.messages(ROOM).length >= seqs.length, { timeout: 60_000, message: `${r.user} received everything` });
      assert.deepEqual(r.messages(ROOM).map((m) => m.seq), seqs, `${r.user}: every message once, in order`);
      assertChain(r.messages(ROOM), starts[i]!, r.user);
    }
    process.stderr.write(`[nats-cluster] ${acked.size} acked, ${all().length} attempts, ${all().filter(refused).length} refused\n`);
  });
});
