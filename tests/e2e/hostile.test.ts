// Hostile clients (issue 10): access rules hold after a refresh, user ids are well-formed, rejected frames are
// budgeted, tokens must expire, the token is never echoed, and the HTTP edge neither reflects input nor leaks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createSigner } from 'fast-jwt';
import { mintToken } from '../../lib/auth/index.js';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import { upgradeStatus } from '../harness/client.js';
import type { TestClient } from '../harness/client.js';
import { TEST_JWT_SECRET, token } from '../harness/parley.js';
import type { ParleyProcess } from '../harness/parley.js';

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const withRooms = (user: string, rooms: string[]): string => mintToken({ secret: TEST_JWT_SECRET, user, extra: { rooms } });

/** One raw HTTP/1.1 exchange (Connection: close): the bytes the server sent back, untouched by any client library. */
function rawHttp(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => { out += d; });
    s.once('error', reject);
    s.once('close', () => resolve(out));
    s.write(`${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

interface Exchange {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A WebSocket upgrade request made by hand (a client library would refuse some answers itself): status, headers, body. */
function upgradeExchange(port: number, headers: Record<string, string>): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path: '/ws',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: 101, headers: res.headers, body: '' });
    });
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

const upgradeHeaders = async (port: number, headers: Record<string, string>): Promise<Exchange['headers']> => {
  const x = await upgradeExchange(port, headers);
  assert.equal(x.status, 101, x.body);
  return x.headers;
};

describe('hostile clients', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let good: TestClient;
  let goodPeer: TestClient;
  let goodCount = 0;
  const assertStillFlowing = async (): Promise<void> => {
    const id = `good${++goodCount}`;
    assert.equal((await good.sendMessage('healthy', id, 'still here')).type, 'ack');
    await goodPeer.waitFor((f) => f.type === 'message' && f.id === id);
  };

  before(async () => {
    suite = await Suite.open('hostile', { env: { PARLEY_RATE_MAX_VIOLATIONS: '20', PARLEY_JWT_MAX_TTL_SEC: '86400' } });
    gw = await suite.start('all');
    good = await suite.connect(gw, 'gina');
    goodPeer = await suite.connect(gw, 'gus');
    await good.join('healthy');
    await goodPeer.join('healthy');
  });
  after(() => suite.close());

  it('a refresh that drops a room leaves it with a reason; sends, typing and its live messages stop there', async () => {
    const c = await suite.connect(gw, 'rita', withRooms('rita', ['ra', 'rb']));
    const peer = await suite.connect(gw, 'pete');
    for (const room of ['ra', 'rb']) {
      assert.equal((await c.join(room)).type, 'joined');
      assert.equal((await peer.join(room)).type, 'joined');
    }
    const from = c.frames.length;
    c.send({ type: 'refresh', token: withRooms('rita', ['ra']) });
    const left = await c.waitFor((f) => f.type === 'left' && f.room === 'rb', { from });
    assert.equal(left.reason, 'forbidden');
    await c.waitFor((f) => f.type === 'refreshed', { from });
    assert.equal(c.frames.slice(from).filter((f) => f.type === 'left').length, 1, 'only the room no longer allowed is left');

    const refused = await c.sendMessage('rb', 'sneak1', 'after the refresh');
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'FORBIDDEN');
    const typingFrom = c.frames.length;
    c.send({ type: 'typing', room: 'rb' });
    assert.equal((await c.waitFor((f) => f.type === 'error', { from: typingFrom })).code, 'FORBIDDEN');
    assert.equal((await c.join('rb')).code, 'FORBIDDEN');
    assert.equal(await suite.messages().countDocuments({ _id: 'rita:sneak1' as never }), 0, 'nothing was stored');

    // The peer talks in both rooms; only ra still reaches rita.
    const inB = await peer.sendMessage('rb', 'pb1', 'private');
    const inA = await peer.sendMessage('ra', 'pa1', 'public');
    await c.waitFor((f) => f.type === 'message' && f.seq === inA.seq);
    assert.equal(c.messages('rb').filter((m) => m.seq === inB.seq).length, 0, 'rb messages no longer arrive');
    assert.equal((await c.sendMessage('ra', 'ok1', 'still allowed')).type, 'ack');
  });

  it('user ids that are not well-formed Unicode, or hide bidi or zero-width characters, are refused', async () => {
    for (const sub of ['a\uD800', 'a\uDC00', '\uDFFFz', 'adm\u202Ein', 'ad\u200Bmin', 'x\u2066y', '\uFEFFroot']) {
      assert.equal(await upgradeStatus(gw.url, { authorization: `Bearer ${token(sub)}` }), 401, JSON.stringify(sub));
    }
    for (const sub of ['élodie', '用户', 'a.b@example.com', 'ünïcödé-Ωmega']) {
      assert.equal(await upgradeStatus(gw.url, { authorization: `Bearer ${token(sub)}` }), 101, JSON.stringify(sub));
    }
  });

  it('every rejected frame counts: a burst of invalid frames is closed with 4008 while others chat on', async () => {
    const c = await suite.connect(gw, 'iris');
    for (let i = 0; i < 5_000; i++) c.sendRaw('{not json');
    const closed = await Promise.race([c.closed, until(() => false, { timeout: 15_000, message: 'the flooder to be closed' }).then(() => undefined)]);
    assert.ok(closed, 'closed');
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /rejected/);
    const errors = c.errors().length;
    assert.ok(errors <= 21, `at most the budget (20) plus the last one is answered: ${errors}`);
    await assertStillFlowing();
  });

  it('tokens must expire, within the configured lifetime; a refresh to one without exp is refused', async () => {
    const forever = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256' })({ sub: 'nox' });
    assert.equal(await upgradeStatus(gw.url, { authorization: `Bearer ${forever}` }), 401, 'no exp');
    assert.equal(await upgradeStatus(gw.url, { authorization: `Bearer ${token('nox', 30 * 86_400_000)}` }), 401, '30 days');
    assert.equal(await upgradeStatus(gw.url, { authorization: `Bearer ${token('nox', 23 * 3_600_000)}` }), 101, '23 hours');
    const c = await suite.connect(gw, 'nox');
    const from = c.frames.length;
    c.send({ type: 'refresh', token: forever });
    const f = await c.waitFor((x) => x.type === 'error' || x.type === 'refreshed', { from });
    assert.equal(f.type, 'error');
    assert.equal(f.code, 'UNAUTHORIZED');
  });

  it('the token in Sec-WebSocket-Protocol is never echoed: the answer is parley.v1 or nothing', async () => {
    const tok = token('sp');
    const both = await upgradeHeaders(gw.port, { 'sec-websocket-protocol': `parley.v1, token.${tok}` });
    assert.equal(both['sec-websocket-protocol'], 'parley.v1');
    const only = await upgradeHeaders(gw.port, { 'sec-websocket-protocol': `token.${tok}` });
    assert.equal(only['sec-websocket-protocol'], undefined);
    const other = await upgradeHeaders(gw.port, { 'sec-websocket-protocol': `chat.evil, token.${tok}` });
    assert.equal(other['sec-websocket-protocol'], undefined);
    for (const h of [both, only, other]) assert.ok(!JSON.stringify(h).includes(tok.split('.')[2]!), 'no part of the token');
  });

  it('HTTP: HEAD has no body, no uWebSockets header, and a 401 does not reflect the token header', async () => {
    const head = await rawHttp(gw.port, 'HEAD /healthz HTTP/1.1');
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.equal(head.slice(head.indexOf('\r\n\r\n') + 4), '', 'no body after HEAD');
    const missing = await rawHttp(gw.port, 'HEAD /nope HTTP/1.1');
    assert.match(missing, /^HTTP\/1\.1 404 /);
    assert.equal(missing.slice(missing.indexOf('\r\n\r\n') + 4), '', 'no body after HEAD of an unknown path');
    const get = await rawHttp(gw.port, 'GET /healthz HTTP/1.1');
    assert.match(get, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(get, /uWebSockets/i);
    const upgrade = await upgradeHeaders(gw.port, { authorization: `Bearer ${token('hdr')}` });
    assert.equal(upgrade.uwebsockets, undefined);

    const evil = `${b64({ alg: 'EVIL<script>alert(1)</script>', typ: 'JWT' })}.${b64({ sub: 'x' })}.sig`;
    const refused = await upgradeExchange(gw.port, { authorization: `Bearer ${evil}` });
    assert.equal(refused.status, 401);
    assert.doesNotMatch(refused.body, /EVIL|script/);
    const hist = await fetch(`${gw.http}/rooms/lobby/messages`, { headers: { authorization: `Bearer ${evil}` } });
    assert.equal(hist.status, 401);
    assert.doesNotMatch(await hist.text(), /EVIL|script/);
    await assertStillFlowing();
  });

  it('/metrics is not on the public port; the metrics port serves it', async () => {
    assert.equal((await fetch(`${gw.http}/metrics`)).status, 404);
    assert.ok(gw.opsPort > 0, 'the gateway has a metrics port');
    const res = await fetch(`http://127.0.0.1:${gw.opsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /active_connections_total/);
  });

  it('an invalid-UTF-8 text frame or a huge header closes only that connection; the gateway carries on', async () => {
    // uWebSockets.js drops the TCP connection on invalid UTF-8 (no close frame, so 1006) and on request headers over
    // 4 KiB (no 431); both are documented, see the README's close codes and Security section.
    const c = await suite.connect(gw, 'utf');
    c.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    assert.equal((await c.closed).code, 1006);
    const big = await rawHttp(gw.port, `GET /healthz HTTP/1.1\r\nX-Big: ${'a'.repeat(1024 * 1024)}`).catch(() => '');
    assert.doesNotMatch(big, /^HTTP\/1\.1 200/);
    assert.equal((await fetch(`${gw.http}/healthz`)).status, 200);
    await assertStillFlowing();
  });
});
