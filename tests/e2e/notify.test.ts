// The notification service against real servers (NATS, the MongoDB-wire server, Redis), a local webhook receiver
// and Mailpit: the right recipients get exactly one notification each, through redeliveries, concurrent instances,
// failing receivers (retries, the dead-letter stream and its replay) and a notify process killed mid-batch.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { namespacedId } from '../../lib/protocol/index.js';
import { notificationId } from '../../lib/store/index.js';
import type { NotificationDoc } from '../../lib/store/index.js';
import { directRoom } from '../../lib/notify/index.js';
import { MailpitHandle } from '../harness/mailpit.js';
import { mintToken } from '../../lib/auth/index.js';
import { TEST_JWT_SECRET, metricSum, token } from '../harness/parley.js';
import type { ParleyProcess } from '../harness/parley.js';
import { Suite } from '../harness/suite.js';
import { until } from '../harness/index.js';
import { WebhookReceiver } from '../harness/webhook.js';

const PARLEY = fileURLToPath(new URL('../../cmd/parley.js', import.meta.url));
const SECRET = 'webhook-secret-0123456789abcdef0123456789';
const run = promisify(execFile);

describe('notifications', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let mailpit: MailpitHandle;
  const receivers: WebhookReceiver[] = [];

  before(async () => {
    suite = await Suite.open('notify');
    [mailpit, gw] = await Promise.all([MailpitHandle.start(), suite.start('gateway'), suite.start('chat')]);
    nc = await connect({ servers: suite.nats.url });
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    await nc?.drain();
    await Promise.all(receivers.map((r) => r.close()));
    await suite?.close();
    await mailpit?.close();
  });

  // A test's notify processes stop with it (a failed test must not leave one consuming the next test's events).
  let running: ParleyProcess[] = [];
  afterEach(async () => {
    await Promise.all(running.map((p) => p.stop()));
    running = [];
  });

  /** Timeouts short enough for a test to see them fire, a lease and an ack wait that expire within it. */
  const SHORT = { PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS: '1000', PARLEY_NOTIFY_LEASE_MS: '4000', PARLEY_NOTIFY_ACK_WAIT_MS: '3000' };
  const receiver = async (): Promise<WebhookReceiver> => {
    const r = await WebhookReceiver.start(SECRET);
    receivers.push(r);
    return r;
  };
  /** A notify process with the webhook sink pointed at `r`, plus `extra`; `onLine` sees all its output. */
  const notify = async (r: WebhookReceiver, extra: Record<string, string> = {}, onLine?: (line: string) => void): Promise<ParleyProcess> => {
    const p = await suite.start('notify', {
    PARLEY_NOTIFY_SINKS: 'log,webhook',
    PARLEY_NOTIFY_WEBHOOK_URL: r.url,
    PARLEY_NOTIFY_WEBHOOK_SECRET: SECRET,
    // Generous: a request that times out after the receiver took it is sent again (at-least-once towards receivers,
    // ADR 0018), so a test that counts requests exactly must not race a short timeout on a loaded machine (a 1 s one
    // did once in CI). Tests of timeouts, leases and kills set their own short values (SHORT).
    PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS: '10000',
    PARLEY_NOTIFY_WEBHOOK_BACKOFF_MS: '20',
    PARLEY_NOTIFY_LEASE_MS: '30000',
    PARLEY_NOTIFY_ACK_WAIT_MS: '20000',
    PARLEY_NOTIFY_RETRY_MS: '100',
    ...extra,
    }, onLine);
    running.push(p);
    return p;
  };
  const idle = async (durable: string): Promise<boolean> => {
    const info = await jsm.consumers.info(suite.env.PARLEY_STREAM!, durable);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  };
  const notifications = () => suite.mongo.db(suite.env.PARLEY_MONGO_DB).collection<NotificationDoc>('notifications');
  const nid = (from: string, clientId: string, recipient: string): string => notificationId(namespacedId(from, clientId), recipient);
  const dlq = async (...args: string[]): Promise<unknown[]> => {
    const { stdout } = await run(process.execPath, [PARLEY, 'dlq', ...args], { env: { ...process.env, ...suite.env, ...dlqEnv } });
    return JSON.parse(stdout) as unknown[];
  };
  let dlqEnv: Record<string, string> = {};

  it('a mention of an online and an offline user and a DM to an offline user reach exactly those users, once (webhook and email)', async () => {
    const r = await receiver();
    await notify(r, {
      PARLEY_NOTIFY_CONSUMER: 'notify-recipients',
      PARLEY_NOTIFY_SINKS: 'log,webhook,email',
      PARLEY_SMTP_URL: mailpit.smtpUrl,
      PARLEY_NOTIFY_EMAIL_TO: '{user}@example.test',
      PARLEY_SMTP_TIMEOUT_MS: '10000',
      PARLEY_NOTIFY_EMAIL_SUBJECT: 'Parley: {from} in {room}',
      PARLEY_NOTIFY_EMAIL_FROM: '{from} via Parley <notify@parley.test>',
    });
    const alice = await suite.connect(gw, 'alice');
    const bob = await suite.connect(gw, 'bob');
    // dave mutes the room over WebSocket, frank over HTTP; both are then offline, and mentioned.
    const dave = await suite.connect(gw, 'dave');
    const before = dave.frames.length;
    dave.send({ type: 'mute', room: 'lobby' });
    assert.deepEqual(await dave.waitFor((f) => f.type === 'muted', { from: before }), { type: 'muted', room: 'lobby', until: null });
    await dave.close();
    const put = await fetch(`${gw.http}/rooms/lobby/mute`, {
      method: 'PUT', headers: { authorization: `Bearer ${token('frank')}` }, body: JSON.stringify({ until: Date.now() + 3_600_000 }),
    });
    assert.equal(put.status, 200);
    assert.equal(((await put.json()) as { muted: boolean }).muted, true);
    await until(async () => (await suite.redisClient().scard(`${suite.env.PARLEY_REDIS_PREFIX}user:dave:sessions`)) === 0);
    await bob.join('lobby');
    await alice.join('lobby');
    const body = 'hello @bob @carol, lunch at noon?';
    alice.send({ type: 'send', room: 'lobby', id: 'm1', body, mentions: ['bob', 'carol', 'dave', 'frank', 'alice', 'bad id'] });
    const ackOrError = await alice.waitFor((f) => (f.type === 'ack' || f.type === 'error') && (f.id === 'm1' || f.ref === 'm1'));
    // 'bad id' (whitespace) is not a user id: the send is refused as a whole.
    assert.equal(ackOrError.type, 'error');
    alice.send({ type: 'send', room: 'lobby', id: 'm1', body, mentions: ['bob', 'carol', 'dave', 'frank', 'alice'] });
    await alice.waitFor((f) => f.type === 'ack' && f.id === 'm1');
    // A direct room with an offline member (erin) and one with an online member (bob).
    const toErin = directRoom('alice', 'erin')!;
    const toBob = directRoom('alice', 'bob')!;
    await bob.join(toBob);
    await alice.join(toErin);
    await alice.join(toBob);
    assert.equal((await alice.sendMessage(toErin, 'd1', 'are you there, erin?')).type, 'ack');
    assert.equal((await alice.sendMessage(toBob, 'd2', 'and you, bob?')).type, 'ack');

    const want = new Map([
      [nid('alice', 'm1', 'bob'), 'bob'], [nid('alice', 'm1', 'carol'), 'carol'], [nid('alice', 'd1', 'erin'), 'erin'],
    ]);
    await until(() => r.delivered().size >= 3, { timeout: 20_000, message: 'three webhook deliveries' });
    await until(() => idle('notify-recipients'), { timeout: 20_000, message: 'notify done with every event' });
    assert.deepEqual([...r.delivered()].sort(), [...want.keys()].map((id) => [id, 1] as [string, number]).sort());
    assert.ok(r.requests.every((q) => q.verified), 'every request carries a valid signature');
    for (const q of r.requests) assert.equal(q.body.recipient, want.get(q.id));
    assert.equal(r.requests.find((q) => q.body.recipient === 'carol')?.body.body, body);
    assert.equal(r.requests.find((q) => q.body.recipient === 'erin')?.body.reason, 'direct');
    const docs = await notifications().find({}).toArray();
    assert.deepEqual(docs.filter((d) => d.room === 'lobby' || d.room.startsWith('dm-')).map((d) => [d.recipient, d.state]).sort(),
      [['bob', 'sent'], ['carol', 'sent'], ['erin', 'sent']]);

    await until(async () => (await mailpit.messages()).length >= 3, { timeout: 20_000, message: 'three emails in Mailpit' });
    const mails = await mailpit.messages();
    assert.deepEqual(mails.map((m) => m.To.map((t) => t.Address).join(',')).sort(), ['bob@example.test', 'carol@example.test', 'erin@example.test']);
    const toCarol = mails.find((m) => m.To[0]!.Address === 'carol@example.test')!;
    assert.equal(toCarol.Subject, 'Parley: alice in lobby');
    assert.deepEqual(toCarol.From, { Name: 'alice via Parley', Address: 'notify@parley.test' });
    const detail = await mailpit.message(toCarol.ID);
    assert.ok(detail.Text.includes(body), 'plain text carries the message');
    assert.ok(detail.HTML.includes('lunch at noon?'), 'HTML carries the message');
  });

  it('mute and unmute answer bad input with errors, over WebSocket and HTTP', async () => {
    const u = await suite.connect(gw, 'muter');
    let from = u.frames.length;
    u.send({ type: 'mute', room: 'lobby', until: -5 });
    assert.equal((await u.waitFor((f) => f.type === 'error', { from })).code, 'BAD_FRAME');
    from = u.frames.length;
    u.send({ type: 'mute', room: 'no.dots' });
    assert.equal((await u.waitFor((f) => f.type === 'error', { from })).code, 'UNKNOWN_ROOM');
    from = u.frames.length;
    u.send({ type: 'unmute', room: 'lobby' });
    assert.deepEqual(await u.waitFor((f) => f.type === 'unmuted', { from }), { type: 'unmuted', room: 'lobby', was: false });
    const auth = { authorization: `Bearer ${token('muter')}` };
    assert.equal((await fetch(`${gw.http}/rooms/lobby/mute`, { method: 'PUT' })).status, 401);
    assert.equal((await fetch(`${gw.http}/rooms/lobby/mute`, { method: 'PUT', headers: auth, body: '{"until":"soon"}' })).status, 400);
    assert.equal((await fetch(`${gw.http}/rooms/lobby/mute`, { method: 'PUT', headers: auth, body: 'x'.repeat(5000) })).status, 413);
    assert.equal((await fetch(`${gw.http}/rooms/lobby/mute`, { method: 'PUT', headers: auth })).status, 200);
    const del = await fetch(`${gw.http}/rooms/lobby/mute`, { method: 'DELETE', headers: auth });
    assert.deepEqual(await del.json(), { room: 'lobby', muted: false, was: true });
    // The gateway is still fine.
    assert.equal((await u.join('lobby')).type, 'joined');
  });

  it('the same events redelivered to two notify instances at once still make one notification per recipient', async () => {
    const r = await receiver();
    // Two durable consumers: each instance gets every event, including the earlier tests' (all sent already). The
    // base settings' generous timeout and lease keep this about two instances racing for the same claims.
    await Promise.all([notify(r, { PARLEY_NOTIFY_CONSUMER: 'notify-x' }), notify(r, { PARLEY_NOTIFY_CONSUMER: 'notify-y' })]);
    const alice = await suite.connect(gw, 'alice');
    await alice.join('race');
    const ids = Array.from({ length: 20 }, (_, i) => `r${i}`);
    for (const id of ids) alice.send({ type: 'send', room: 'race', id, body: `race ${id}`, mentions: ['u1', 'u2'] });
    await until(() => ids.every((id) => alice.frames.some((f) => f.type === 'ack' && f.id === id)), { message: 'acks' });
    const want = ids.flatMap((id) => [nid('alice', id, 'u1'), nid('alice', id, 'u2')]);
    await until(async () => (await idle('notify-x')) && (await idle('notify-y')), { timeout: 60_000, message: 'both instances done' });
    const got = r.delivered();
    assert.equal(got.size, want.length, 'one notification per (message, recipient), nothing of the earlier tests');
    for (const id of want) assert.equal(got.get(id), 1, `${id} delivered once`);
    assert.equal(r.requests.length, want.length, 'no request beyond one per notification');
  });

  it('a webhook answering 500, 500, then 200 delivers once, after retries, with a signature the receiver verifies', async () => {
    const r = await receiver();
    r.answer = (_id, nth) => (nth < 2 ? { status: 500 } : { status: 200 });
    await notify(r, { PARLEY_NOTIFY_CONSUMER: 'notify-retry', PARLEY_NOTIFY_WEBHOOK_RETRIES: '3' });
    const alice = await suite.connect(gw, 'alice');
    await alice.join('retry');
    alice.send({ type: 'send', room: 'retry', id: 'w1', body: 'retry me', mentions: ['walt'] });
    const id = nid('alice', 'w1', 'walt');
    await until(() => r.delivered().get(id) === 1, { timeout: 20_000, message: 'delivered after two 500s' });
    await until(() => idle('notify-retry'), { timeout: 20_000 });
    const reqs = r.requests.filter((q) => q.id === id);
    assert.deepEqual(reqs.map((q) => q.status), [500, 500, 200]);
    assert.ok(reqs.every((q) => q.verified));
    assert.equal(r.delivered().get(id), 1);
    const doc = await notifications().findOne({ _id: id });
    assert.equal(doc?.state, 'sent');
    assert.equal(doc?.attempts, 1, 'the retries were within one attempt');
  });

  it('a receiver that always fails ends in the dead-letter stream; replay after it recovers delivers once, and only once', async () => {
    const r = await receiver();
    let healthy = false;
    const id1 = nid('alice', 'x1', 'zed');
    const id2 = nid('alice', 'x2', 'zed');
    // x2 is refused for good (404: dead at once, no second attempt); x1 keeps failing with 503 and a Retry-After.
    r.answer = (id) => (healthy ? { status: 200 } : id === id2 ? { status: 404 } : { status: 503, headers: { 'retry-after': '0' } });
    const env = { ...SHORT, PARLEY_NOTIFY_CONSUMER: 'notify-dlq', PARLEY_NOTIFY_MAX_ATTEMPTS: '2', PARLEY_NOTIFY_WEBHOOK_RETRIES: '1' };
    await notify(r, env);
    dlqEnv = {
      PARLEY_NOTIFY_SINKS: 'webhook', PARLEY_NOTIFY_WEBHOOK_URL: r.url, PARLEY_NOTIFY_WEBHOOK_SECRET: SECRET,
      PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS: '1000', PARLEY_NOTIFY_LEASE_MS: '4000', PARLEY_NOTIFY_MAX_ATTEMPTS: '2',
      PARLEY_NOTIFY_WEBHOOK_RETRIES: '1', PARLEY_NOTIFY_WEBHOOK_BACKOFF_MS: '20', PARLEY_NOTIFY_RETRY_MS: '100',
    };
    const alice = await suite.connect(gw, 'alice');
    await alice.join('dead');
    alice.send({ type: 'send', room: 'dead', id: 'x1', body: 'nobody hears this', mentions: ['zed'] });
    alice.send({ type: 'send', room: 'dead', id: 'x2', body: 'gone for good', mentions: ['zed'] });
    await until(async () => (await dlq('list')).length === 2, { timeout: 30_000, message: 'two dead letters' });
    await until(() => idle('notify-dlq'), { timeout: 20_000 });
    const entries = (await dlq('list')) as { letter: { id: string; error: string; attempts: number } }[];
    const e1 = entries.find((e) => e.letter.id === id1)!;
    const e2 = entries.find((e) => e.letter.id === id2)!;
    assert.equal(e1.letter.attempts, 2);
    assert.match(e1.letter.error, /webhook: webhook failed: webhook answered 503/);
    assert.equal(e2.letter.attempts, 1, 'a 404 is not retried');
    assert.match(e2.letter.error, /404/);
    assert.equal((await notifications().findOne({ _id: id1 }))?.state, 'dead');
    assert.equal(r.delivered().size, 0);

    healthy = true;
    // Two replays at once, then a third: each dead letter is delivered exactly once.
    const [a, b] = await Promise.all([dlq('replay'), dlq('replay', '--id', id1)]) as { id: string; result: string }[][];
    const c = (await dlq('replay')) as { id: string; result: string }[];
    assert.ok([...a!, ...b!].some((x) => x.id === id1 && x.result === 'delivered'), JSON.stringify({ a, b }));
    assert.ok([...a!, ...b!].some((x) => x.id === id2 && x.result === 'delivered'), JSON.stringify({ a, b }));
    assert.ok(c.every((x) => x.result !== 'delivered'), JSON.stringify(c));
    assert.equal(r.delivered().get(id1), 1);
    assert.equal(r.delivered().get(id2), 1);
    assert.deepEqual(await dlq('list'), []);
    assert.equal((await notifications().findOne({ _id: id1 }))?.state, 'sent');
  });

  it('a webhook answering 429 or 408 with Retry-After: 1 is retried no sooner and delivers once; a 503 without it is retried with back-off', async () => {
    const r = await receiver();
    const [id429, id408, id503] = ['ra1', 'ra2', 'ra3'].map((m) => nid('alice', m, 'rose')) as [string, string, string];
    r.answer = (id, nth) => {
      if (id === id429 && nth === 0) return { status: 429, headers: { 'retry-after': '1' } };
      if (id === id408 && nth === 0) return { status: 408, headers: { 'retry-after': '1' } };
      if (id === id503 && nth < 2) return { status: 503 };
      return { status: 200 };
    };
    // Back-off from 200 ms, doubling, jitter x1 to x2: the 503's retries come at least 200 and then 400 ms apart.
    // The default lease (30 s) leaves one attempt room for a Retry-After plus back-off on a loaded machine.
    await notify(r, {
      PARLEY_NOTIFY_CONSUMER: 'notify-retry-after', PARLEY_NOTIFY_WEBHOOK_RETRIES: '3', PARLEY_NOTIFY_WEBHOOK_BACKOFF_MS: '200',
    });
    const alice = await suite.connect(gw, 'alice');
    await alice.join('retryafter');
    for (const m of ['ra1', 'ra2', 'ra3']) alice.send({ type: 'send', room: 'retryafter', id: m, body: `retry ${m}`, mentions: ['rose'] });
    await until(() => [id429, id408, id503].every((id) => r.delivered().get(id) === 1), { timeout: 20_000, message: 'three deliveries' });
    await until(() => idle('notify-retry-after'), { timeout: 20_000 });
    const of = (id: string) => r.requests.filter((q) => q.id === id);
    for (const [id, status] of [[id429, 429], [id408, 408]] as const) {
      const reqs = of(id);
      assert.deepEqual(reqs.map((q) => q.status), [status, 200], `${status} then delivered, once`);
      const gap = reqs[1]!.at - reqs[0]!.at;
      assert.ok(gap >= 900, `the retry after a ${status} with Retry-After: 1 came ${gap} ms after it`);
    }
    const reqs = of(id503);
    assert.deepEqual(reqs.map((q) => q.status), [503, 503, 200]);
    const [g1, g2] = [reqs[1]!.at - reqs[0]!.at, reqs[2]!.at - reqs[1]!.at];
    assert.ok(g1 >= 180 && g2 >= 380, `back-off between the 503s: ${g1} ms, then ${g2} ms (at least 200, then 400)`);
    assert.ok(r.requests.every((q) => q.verified));
    for (const id of [id429, id408, id503]) {
      const doc = await notifications().findOne({ _id: id });
      assert.equal(doc?.state, 'sent');
      assert.equal(doc?.attempts, 1, 'the retries were within one attempt');
    }
    await alice.close();
  });

  it('a mute whose until has passed no longer mutes, unmute notifies again, and the mute endpoint refuses a room the token may not use', async () => {
    const r = await receiver();
    await notify(r, { PARLEY_NOTIFY_CONSUMER: 'notify-mutes' });
    const room = 'mutes';
    const mutes = suite.mongo.db(suite.env.PARLEY_MONGO_DB).collection('mutes');
    const recipientsOf = (clientId: string): string[] => r.requests
      .filter((q) => q.body.messageId === namespacedId('alice', clientId) && q.status === 200).map((q) => String(q.body.recipient)).sort();
    // pia's mute ended a minute ago (HTTP); quinn's ends in a few seconds (a frame); rita's has no end (a frame).
    const piaPut = await fetch(`${gw.http}/rooms/${room}/mute`, {
      method: 'PUT', headers: { authorization: `Bearer ${token('pia')}` }, body: JSON.stringify({ until: Date.now() - 60_000 }),
    });
    assert.equal(piaPut.status, 200);
    const quinnUntil = Date.now() + 5_000;
    const quinn = await suite.connect(gw, 'quinn');
    let from = quinn.frames.length;
    quinn.send({ type: 'mute', room, until: quinnUntil });
    assert.deepEqual(await quinn.waitFor((f) => f.type === 'muted', { from }), { type: 'muted', room, until: quinnUntil });
    const rita = await suite.connect(gw, 'rita');
    from = rita.frames.length;
    rita.send({ type: 'mute', room });
    await rita.waitFor((f) => f.type === 'muted', { from });

    const alice = await suite.connect(gw, 'alice');
    await alice.join(room);
    alice.send({ type: 'send', room, id: 'mu1', body: 'while muted', mentions: ['pia', 'quinn', 'rita', 'ref'] });
    await until(() => recipientsOf('mu1').length >= 2, { timeout: 20_000, message: 'mu1 delivered to pia and ref' });
    await until(() => idle('notify-mutes'), { timeout: 20_000 });
    // A notification's createdAt is the time notify read the mutes at: quinn's must still have held then.
    const decidedAt = (await notifications().findOne({ _id: nid('alice', 'mu1', 'ref') }))!.createdAt;
    assert.ok(decidedAt < quinnUntil, `notify decided mu1 ${decidedAt - quinnUntil} ms after quinn's mute ended (a machine this slow needs a longer mute)`);
    assert.deepEqual(recipientsOf('mu1'), ['pia', 'ref'], 'an expired mute does not mute; live ones do');
    assert.equal(await notifications().countDocuments({ _id: { $in: [nid('alice', 'mu1', 'quinn'), nid('alice', 'mu1', 'rita')] } }), 0);

    from = rita.frames.length;
    rita.send({ type: 'unmute', room });
    assert.deepEqual(await rita.waitFor((f) => f.type === 'unmuted', { from }), { type: 'unmuted', room, was: true });
    // A token without access to the room may neither mute nor unmute it (HTTP 403, FORBIDDEN on the socket), and
    // stores nothing: rita stays unmuted.
    const elsewhere = mintToken({ secret: TEST_JWT_SECRET, user: 'rita', extra: { rooms: ['elsewhere'] } });
    const auth = { authorization: `Bearer ${elsewhere}` };
    const put = await fetch(`${gw.http}/rooms/${room}/mute`, { method: 'PUT', headers: auth });
    assert.equal(put.status, 403);
    assert.equal(((await put.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
    const del = await fetch(`${gw.http}/rooms/${room}/mute`, { method: 'DELETE', headers: auth });
    assert.equal(del.status, 403);
    await del.body?.cancel();
    const limited = await suite.connect(gw, 'rita', elsewhere);
    from = limited.frames.length;
    limited.send({ type: 'mute', room });
    assert.equal((await limited.waitFor((f) => f.type === 'error', { from })).code, 'FORBIDDEN');
    assert.equal(await mutes.countDocuments({ _id: `${room} rita` } as never), 0);

    await until(() => Date.now() > quinnUntil, { timeout: 10_000, message: "quinn's mute over" });
    alice.send({ type: 'send', room, id: 'mu2', body: 'after the mutes', mentions: ['quinn', 'rita', 'ref'] });
    await until(() => recipientsOf('mu2').length >= 3, { timeout: 20_000, message: 'mu2 delivered to quinn, rita and ref' });
    await until(() => idle('notify-mutes'), { timeout: 20_000 });
    assert.deepEqual(recipientsOf('mu2'), ['quinn', 'ref', 'rita']);
    for (const c of [quinn, rita, limited, alice]) await c.close();
  });

  it("notify's /metrics count what it sent, what failed and died, and its attempts", async () => {
    const r = await receiver();
    const ok = nid('alice', 'me1', 'mo');
    const bad = nid('alice', 'me2', 'mo');
    r.answer = (id) => (id === bad ? { status: 404 } : { status: 200 });
    // A new durable reads the stream from its start: earlier tests' events whose notifications are recorded count
    // nothing, but one whose recipients changed since (a mute ended) records and sends new ones. So the counts are
    // compared with what this process's receiver saw (every webhook request is this process's), and those of me1/me2.
    // A generous timeout: a request that timed out on a loaded machine would add an attempt.
    const p = await notify(r, {
      PARLEY_NOTIFY_CONSUMER: 'notify-metrics', PARLEY_NOTIFY_WEBHOOK_RETRIES: '0', PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS: '5000',
      PARLEY_NOTIFY_LEASE_MS: '20000', PARLEY_NOTIFY_ACK_WAIT_MS: '15000',
    });
    const alice = await suite.connect(gw, 'alice');
    await alice.join('metered');
    alice.send({ type: 'send', room: 'metered', id: 'me1', body: 'counted', mentions: ['mo'] });
    alice.send({ type: 'send', room: 'metered', id: 'me2', body: 'refused', mentions: ['mo'] });
    await until(async () => (await notifications().countDocuments({ _id: { $in: [ok, bad] }, state: { $in: ['sent', 'dead'] } })) === 2,
      { timeout: 20_000, message: 'one sent, one dead' });
    await until(() => idle('notify-metrics'), { timeout: 20_000 });
    const scrape = (): Promise<string> => p.metricsText();
    const text = await scrape();
    const v = (name: string, labels: Record<string, string>): number => metricSum(text, name, labels);
    assert.deepEqual(r.requests.filter((q) => q.id === ok || q.id === bad).map((q) => q.status).sort(), [200, 404]);
    const answered = (status: number): number => r.requests.filter((q) => q.status === status).length;
    assert.equal(r.requests.length, answered(200) + 1, 'every other request was answered 200');
    assert.equal(v('notifications_total', { sink: 'webhook', result: 'sent' }), answered(200));
    assert.equal(v('notifications_total', { sink: 'webhook', result: 'failed' }), 1, 'the 404 failed its attempt');
    assert.equal(v('notifications_total', { sink: 'webhook', result: 'dead' }), 1, 'and went to the dead-letter stream');
    assert.equal(v('notifications_total', { sink: 'log', result: 'sent' }), r.requests.length, 'the log sink took each, the dead one too');
    assert.equal(v('notifications_total', { sink: 'log', result: 'dead' }), 0);
    // No retries within an attempt: one request per attempt.
    assert.equal(v('notification_attempts_total', { sink: 'webhook' }), r.requests.length);
    assert.equal(v('notification_attempts_total', { sink: 'log' }), r.requests.length);
    assert.equal(v('notifications_recorded_total', { result: 'new' }), r.requests.length);
    assert.ok(v('notifications_recorded_total', { result: 'existing' }) > 0, "earlier tests' notifications found recorded");
    // The lag gauges are set by the monitor's next poll.
    await until(async () => /^consumer_pending_messages\{[^}]*consumer="notify-metrics"/m.test(await scrape()),
      { timeout: 15_000, message: 'consumer lag of notify-metrics exported' });
    await alice.close();
  });

  it('logs at info name no message body and no email address, through sends, email and a dead letter', async () => {
    const r = await receiver();
    const secret = randomBytes(8).toString('hex');
    const bodies = [`the launch code is ${secret}`, `and the backup code is ${secret}`];
    // Addresses from the users' documents (no PARLEY_NOTIFY_EMAIL_TO); oli has none (skipped).
    await suite.mongo.db(suite.env.PARLEY_MONGO_DB).collection<{ _id: string; email: string }>('users').insertMany([
      { _id: 'lia', email: 'lia.private@secret-mail.test' }, { _id: 'mia', email: 'mia.private@secret-mail.test' },
    ]);
    const dead = nid('alice', 'lg2', 'lia');
    r.answer = (id) => (id === dead ? { status: 404 } : { status: 200 });
    const lines: string[] = [];
    await notify(r, {
      PARLEY_NOTIFY_CONSUMER: 'notify-logs', PARLEY_NOTIFY_SINKS: 'log,webhook,email', PARLEY_SMTP_URL: mailpit.smtpUrl,
      PARLEY_SMTP_TIMEOUT_MS: '1500', LOG_LEVEL: 'info',
    }, (line) => lines.push(line));
    const alice = await suite.connect(gw, 'alice');
    await alice.join('logged');
    alice.send({ type: 'send', room: 'logged', id: 'lg1', body: bodies[0]!, mentions: ['lia', 'mia', 'oli'] });
    alice.send({ type: 'send', room: 'logged', id: 'lg2', body: bodies[1]!, mentions: ['lia'] });
    const mailsTo = async (addr: string): Promise<number> => (await mailpit.messages()).filter((m) => m.To.some((t) => t.Address === addr)).length;
    await until(async () => (await mailsTo('lia.private@secret-mail.test')) === 2 && (await mailsTo('mia.private@secret-mail.test')) === 1,
      { timeout: 20_000, message: 'three emails' });
    await until(async () => (await notifications().findOne({ _id: dead }))?.state === 'dead', { timeout: 20_000, message: 'lg2 to lia dead' });
    await until(() => idle('notify-logs'), { timeout: 20_000 });
    // The run is in the log: a line per notification from the log sink, and the dead letter's warning.
    for (const u of ['lia', 'mia', 'oli']) assert.ok(lines.some((l) => l.includes('"msg":"notification"') && l.includes(`"recipient":"${u}"`)), u);
    assert.ok(lines.some((l) => l.includes('notification dead-lettered')), 'the dead letter was logged');
    const address = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+/;
    for (const l of lines) {
      assert.ok(!l.includes(secret), `a body in the log: ${l}`);
      assert.ok(!address.test(l), `an email address in the log: ${l}`);
    }
    await alice.close();
  });

  it('a webhook that hangs holds no more than max_ack_pending events and chat stores every message meanwhile', async () => {
    const r = await receiver();
    r.answer = () => ({ status: 200, delayMs: 3_000 }); // past the 1 s timeout: every request times out
    const durable = 'notify-slow';
    await notify(r, {
      ...SHORT, PARLEY_NOTIFY_CONSUMER: durable, PARLEY_NOTIFY_BATCH: '4', PARLEY_NOTIFY_CONCURRENCY: '2', PARLEY_NOTIFY_WEBHOOK_RETRIES: '0',
    });
    const alice = await suite.connect(gw, 'alice');
    await alice.join('slow');
    const ids = Array.from({ length: 60 }, (_, i) => `s${i}`);
    let maxAckPending = 0;
    const watch = setInterval(() => {
      jsm.consumers.info(suite.env.PARLEY_STREAM!, durable).then((i) => { maxAckPending = Math.max(maxAckPending, i.num_ack_pending); }, () => undefined);
    }, 50);
    try {
      for (const id of ids) alice.send({ type: 'send', room: 'slow', id, body: `slow ${id}`, mentions: ['sam'] });
      await until(async () => (await suite.messages().countDocuments({ room: 'slow' })) === ids.length,
        { timeout: 30_000, message: 'chat stores every message while the webhook hangs' });
      const info = await jsm.consumers.info(suite.env.PARLEY_STREAM!, durable);
      assert.ok(info.num_pending + info.num_ack_pending > 0, 'notify is still behind: chat did not wait for it');
      // Held while sends hang: at most 4 x PARLEY_NOTIFY_BATCH events, however many are waiting in the stream.
      await until(() => maxAckPending > 0, { message: 'notify holding events' });
      await until(async () => (await jsm.consumers.info(suite.env.PARLEY_STREAM!, durable)).num_pending > 0 || maxAckPending >= 16,
        { timeout: 10_000, message: 'a backlog beyond what notify holds' });
    } finally {
      clearInterval(watch);
    }
    assert.ok(maxAckPending <= 16, `ack pending ${maxAckPending} <= max_ack_pending 16`);
    await alice.close();
  });

  it('notify killed mid-batch and restarted loses nothing and sends nothing again that was recorded as sent', async () => {
    const rounds = Number(process.env.PARLEY_TEST_NOTIFY_KILL_ROUNDS ?? 2);
    for (let round = 0; round < rounds; round++) {
      const r = await receiver();
      r.answer = () => ({ status: 200, delayMs: 150 });
      const durable = `notify-kill-${round}`;
      const env = { ...SHORT, PARLEY_NOTIFY_CONSUMER: durable, PARLEY_NOTIFY_BATCH: '8', PARLEY_NOTIFY_CONCURRENCY: '4', LOG_LEVEL: process.env.PARLEY_TEST_NOTIFY_LOG ?? 'info' };
      // A new durable reads the stream from its start: the earlier tests' notifications are recorded as sent and
      // are not sent again (counted below only by the ids of this round).
      const n = await notify(r, env);
      const alice = await suite.connect(gw, 'alice');
      const room = `kill${round}`;
      await alice.join(room);
      const ids = Array.from({ length: 30 }, (_, i) => `k${round}_${i}`);
      for (const id of ids) alice.send({ type: 'send', room, id, body: `kill ${id}`, mentions: ['k1', 'k2'] });
      await until(() => ids.every((id) => alice.frames.some((f) => f.type === 'ack' && f.id === id)), { message: 'acks' });
      const want = ids.flatMap((id) => [nid('alice', id, 'k1'), nid('alice', id, 'k2')]);
      const wanted = new Set(want);
      await until(() => r.requests.filter((q) => wanted.has(q.id)).length >= 12, { timeout: 30_000, message: 'sends under way' });
      await n.kill('SIGKILL');
      // What the killed process recorded as sent must never be sent again.
      const sentAtKill = new Set((await notifications().find({ _id: { $in: want }, state: 'sent' }).toArray()).map((d) => d._id));
      const beforeRestart = new Map([...r.delivered()].filter(([id]) => wanted.has(id)));
      await n.start();
      await until(async () => (await notifications().countDocuments({ _id: { $in: want }, state: 'sent' })) === want.length,
        { timeout: 60_000, message: 'every notification sent after the restart' });
      await until(() => idle(durable), { timeout: 30_000 });
      const got = r.delivered();
      for (const id of want) assert.ok((got.get(id) ?? 0) >= 1, `${id} delivered`);
      for (const id of sentAtKill) assert.equal(got.get(id), beforeRestart.get(id), `${id} was recorded sent before the kill: not sent again`);
      assert.equal(await notifications().countDocuments({ _id: { $in: want } }), want.length, 'one record per (message, recipient)');
      const doubled = want.filter((id) => (got.get(id) ?? 0) > 1);
      // Only a send the process made but did not live to record can be repeated (at most the sends in flight).
      assert.ok(doubled.length <= 4, `doubled: ${doubled.length}`);
      console.log(`# notify kill round ${round}: ${want.length} notifications, ${sentAtKill.size} recorded sent at the kill, ` +
        `${beforeRestart.size} delivered before it, ${doubled.length} delivered twice (sent but not recorded when killed)`);
      await n.stop();
      await alice.close();
    }
  });
});
