// Guarantee 7: bad input gets a documented error frame, HTTP status or close code; the server and other clients
// carry on, and nothing invalid reaches a subject, a key or a document.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createSigner } from 'fast-jwt';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import { upgradeStatus } from '../harness/client.js';
import type { TestClient } from '../harness/client.js';
import { token } from '../harness/parley.js';
import type { ParleyProcess } from '../harness/parley.js';

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const nowSec = (): number => Math.floor(Date.now() / 1000);

describe('bad input', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let rsGw: ParleyProcess;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const signRs = createSigner({ key: rsa.privateKey, algorithm: 'RS256', expiresIn: 60_000 });

  // A healthy pair whose conversation must keep flowing whatever the others send.
  let good: TestClient;
  let goodPeer: TestClient;
  let goodCount = 0;
  const assertStillFlowing = async (): Promise<void> => {
    const id = `good${++goodCount}`;
    const ack = await good.sendMessage('healthy', id, 'still here');
    assert.equal(ack.type, 'ack');
    await goodPeer.waitFor((f) => f.type === 'message' && f.id === id);
  };

  before(async () => {
    suite = await Suite.open('bad', { env: { PARLEY_MAX_FRAME_BYTES: '2048', PARLEY_MAX_BODY_BYTES: '512' } });
    [gw, rsGw] = await Promise.all([suite.start('all'), suite.start('gateway', { JWT_SECRET: '', JWT_PUBLIC_KEY: rsa.publicKey })]);
    good = await connect('gina');
    goodPeer = await connect('gus');
    await good.join('healthy');
    await goodPeer.join('healthy');
  });
  after(() => suite.close());

  const connect = (user: string, url?: ParleyProcess, tok?: string): Promise<TestClient> => suite.connect(url ?? gw, user, tok);

  it('malformed frames get BAD_FRAME and the connection stays open', async () => {
    const c = await connect('mallory');
    await c.join('lobby');
    const cases: Array<[string, string]> = [
      ['{not json', 'BAD_FRAME'],
      ['[]', 'BAD_FRAME'],
      ['"text"', 'BAD_FRAME'],
      ['{"room":"lobby"}', 'BAD_FRAME'],
      ['{"type":"explode","room":"lobby"}', 'BAD_FRAME'],
      ['{"type":"send","room":"lobby","id":"x1"}', 'BAD_FRAME'],
      ['{"type":"send","room":"lobby","body":"no id"}', 'BAD_FRAME'],
      ['{"type":"send","id":"x2","body":"no room"}', 'BAD_FRAME'],
      ['{"type":"send","room":"lobby","id":"has:colon","body":"b"}', 'BAD_FRAME'],
      ['{"type":"send","room":"lobby","id":"x3","body":42}', 'BAD_FRAME'],
      ['{"type":"send","room":"lobby","id":"x4","body":""}', 'BAD_FRAME'],
      ['{"type":"join","room":"lobby","since":-1}', 'BAD_FRAME'],
      ['{"type":"join"}', 'BAD_FRAME'],
    ];
    for (const [raw, code] of cases) {
      const before = c.frames.length;
      c.sendRaw(raw);
      const f = await c.waitFor((x) => x.type === 'error', { from: before });
      assert.equal(f.code, code, `${raw} -> ${code}`);
      assert.equal(typeof f.message, 'string');
    }
    const before = c.frames.length;
    c.sendRaw(Buffer.from([1, 2, 3]), true);
    assert.equal((await c.waitFor((x) => x.type === 'error', { from: before })).code, 'BAD_FRAME');
    assert.equal((await c.sendMessage('lobby', 'fine', 'ok')).type, 'ack', 'the same connection still works');
    await assertStillFlowing();
  });

  it('invalid room ids are refused before they reach a subject, a key or a document', async () => {
    const c = await connect('trudy');
    for (const room of ['a.b', '*', '>', 'a b', 'x'.repeat(65), '', 'chat.message.created.>', 'a\nb']) {
      const joined = await c.join(room);
      assert.equal(joined.type, 'error', `join ${JSON.stringify(room)}`);
      assert.equal(joined.code, room === '' ? 'UNKNOWN_ROOM' : 'UNKNOWN_ROOM');
      const sent = await c.sendMessage(room, `r${room.length}`, 'sneaky');
      assert.equal(sent.type, 'error');
      assert.equal(sent.code, 'UNKNOWN_ROOM');
    }
    const sent = await c.sendMessage('not-joined', 'nj', 'x');
    assert.equal(sent.code, 'UNKNOWN_ROOM', 'sending to a room not joined');
    const stored = await suite.messages().countDocuments({ from: 'trudy' });
    assert.equal(stored, 0);
    assert.equal((await c.join('x'.repeat(64))).type, 'joined', '64 characters is allowed');
    await assertStillFlowing();
  });

  it('an oversize body gets TOO_LARGE; an oversize frame closes with 1009; others are unaffected', async () => {
    const c = await connect('oscar');
    await c.join('big');
    const tooBig = await c.sendMessage('big', 'big1', 'é'.repeat(300)); // 600 bytes > 512, though 300 characters
    assert.equal(tooBig.code, 'TOO_LARGE');
    assert.equal(tooBig.ref, 'big1');
    assert.equal((await c.sendMessage('big', 'fits', 'x'.repeat(512))).type, 'ack');
    c.sendRaw(JSON.stringify({ type: 'send', room: 'big', id: 'huge', body: 'x'.repeat(3000) })); // over 2048, under 2x
    const closed = await c.closed;
    assert.equal(closed.code, 1009);
    // Far beyond the limit uWS cuts the connection itself (documented as 1006); the server survives either way.
    const d = await connect('dave');
    d.sendRaw('x'.repeat(1024 * 1024));
    assert.equal((await d.closed).code, 1006);
    await assertStillFlowing();
  });

  it('bad tokens are refused with HTTP 401 before the upgrade completes', async () => {
    const expired = token('late', -60_000);
    const [h, p] = token('mallory').split('.');
    const wrongSig = createSigner({ key: 'another-secret-0123456789abcdef0123456789', algorithm: 'HS256' })({ sub: 'mallory' });
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', exp: nowSec() + 60 })}.`;
    const cases: Array<[string, Record<string, string>]> = [
      ['missing', {}],
      ['garbled', { authorization: 'Bearer not.a.jwt' }],
      ['garbage header', { authorization: 'Bearer %%%%' }],
      ['expired', { authorization: `Bearer ${expired}` }],
      ['wrong signature', { authorization: `Bearer ${wrongSig}` }],
      ['tampered payload', { authorization: `Bearer ${h}.${b64({ sub: 'admin', exp: nowSec() + 60 })}.${token('x').split('.')[2]}` }],
      ['alg none', { authorization: `Bearer ${algNone}` }],
      ['truncated', { authorization: `Bearer ${h}.${p}` }],
    ];
    for (const [name, headers] of cases) assert.equal(await upgradeStatus(gw.url, headers), 401, name);
  });

  it('RS256 gateway: accepts RS tokens, refuses an HS token signed with its public key (key confusion) and HS tokens', async () => {
    const confused = createSigner({ key: rsa.publicKey, algorithm: 'HS256' })({ sub: 'mallory' });
    assert.equal(await upgradeStatus(rsGw.url, { authorization: `Bearer ${confused}` }), 401);
    assert.equal(await upgradeStatus(rsGw.url, { authorization: `Bearer ${token('mallory')}` }), 401);
    const c = await connect('rosa', rsGw, signRs({ sub: 'rosa' }));
    assert.equal(c.frames[0]!.type, 'welcome');
    assert.equal(c.frames[0]!.user, 'rosa');
  });

  it('tokens are also accepted from ?token= and the token.<jwt> subprotocol', async () => {
    assert.equal(await upgradeStatus(`${gw.url}?token=${token('qq')}`), 101);
    assert.equal(await upgradeStatus(gw.url, {}, ['parley.v1', `token.${token('sp')}`]), 101);
    assert.equal(await upgradeStatus(`${gw.url}?token=bogus`), 401);
  });

  it('a token that expires while connected closes the connection with 4001', async () => {
    const c = await connect('brief', gw, token('brief', 1_500));
    const closed = await c.closed;
    assert.equal(closed.code, 4001);
  });

  it('a refresh for another user is refused with FORBIDDEN; one for the same user is accepted', async () => {
    const c = await connect('ref');
    c.send({ type: 'refresh', token: token('someone-else') });
    assert.equal((await c.waitFor((f) => f.type === 'error')).code, 'FORBIDDEN');
    c.send({ type: 'refresh', token: token('ref', 7_200_000) });
    await c.waitFor((f) => f.type === 'refreshed');
    c.send({ type: 'refresh', token: 'garbage' });
    assert.equal((await c.waitFor((f) => f.type === 'error' && f.code === 'UNAUTHORIZED')).code, 'UNAUTHORIZED');
  });

  it('the server is still healthy after all of it', async () => {
    const res = await fetch(`${gw.http}/healthz`);
    assert.equal(res.status, 200);
    await until(async () => (await fetch(`${gw.http}/readyz`)).status === 200);
    assert.equal((await fetch(`${gw.http}/nope`)).status, 404);
    await assertStillFlowing();
  });
});
