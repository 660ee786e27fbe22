// The client SDK's state machine against a fake transport (the frames a gateway would send, the closes it would
// make): rejoin with `since`, resend with the same id, `prev` checks, the close-code table, the offline queue's bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLOSE_CODES, ParleyError, closePolicy, connect, reconnectDelay } from '../../lib/client/index.js';
import type { ClientOptions, ConnectionState, DisconnectEvent, MessageFrame, ParleyClient, SocketLike } from '../../lib/client/index.js';
import { until } from '../harness/wait.js';

type Sent = Record<string, unknown> & { type: string };

class FakeSocket implements SocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Sent[] = [];
  closedWith: number | undefined;
  constructor(readonly url: string, readonly protocols: string[]) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Sent);
  }
  close(code?: number): void {
    this.closedWith = code;
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: '' }));
  }
  // The server's side.
  push(f: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  welcome(user = 'u'): void {
    this.push({ type: 'welcome', user, session: 's', protocol: 1 });
  }
  drop(code: number, reason = ''): void {
    this.onclose?.({ code, reason });
  }
  frames(type: string): Sent[] {
    return this.sent.filter((f) => f.type === type);
  }
}

interface World { client: ParleyClient; sockets: FakeSocket[]; states: ConnectionState[]; got: MessageFrame[]; errors: ParleyError[] }

function world(o: Partial<ClientOptions> = {}): World {
  const sockets: FakeSocket[] = [];
  const WS = class extends FakeSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols as string[]);
      sockets.push(this);
    }
  };
  const client = connect({ url: ['ws://a/ws', 'ws://b/ws'], token: 't0', WebSocket: WS, reconnect: { minDelayMs: 1, maxDelayMs: 5, policyDelayMs: 5 }, ...o });
  const w: World = { client, sockets, states: [], got: [], errors: [] };
  client.on('state', (s) => w.states.push(s));
  client.on('message', (m) => w.got.push(m));
  client.on('error', (e) => w.errors.push(e));
  return w;
}

const last = (w: World): FakeSocket => w.sockets.at(-1)!;
const msg = (seq: number, prev: number, room = 'r'): Record<string, unknown> =>
  ({ type: 'message', room, id: `m${seq}`, seq, prev, from: 'x', body: `b${seq}`, ts: 1 });
const joined = (seq: number, room = 'r', recovered = true): Record<string, unknown> =>
  ({ type: 'joined', room, seq, recovered, replayed: 0, presence: [] });

/** A connected client with room r joined at seq `at`. */
async function joinedWorld(at = 10, o: Partial<ClientOptions> = {}): Promise<World> {
  const w = world(o);
  last(w).welcome();
  const p = w.client.join('r');
  last(w).push(joined(at));
  await p;
  return w;
}

describe('client SDK state machine (fake transport)', () => {
  it('authenticates with the parley.v1 + token.<jwt> subprotocols and opens once welcomed and joined', async () => {
    const w = world();
    assert.deepEqual(last(w).protocols, ['parley.v1', 'token.t0']);
    assert.equal(w.client.state, 'connecting');
    last(w).welcome('alice');
    assert.equal(w.client.state, 'open');
    assert.equal(w.client.user, 'alice');
    const p = w.client.join('r');
    assert.deepEqual(last(w).frames('join'), [{ type: 'join', room: 'r' }]);
    last(w).push(joined(7));
    assert.equal((await p).seq, 7);
    assert.equal(w.client.lastSeq('r'), 7);
    await w.client.close();
    assert.equal(w.client.state, 'closed');
  });

  it('state events: connecting (to a listener added after connect) then open; a failed first attempt repeats none', async () => {
    const w = world();
    await Promise.resolve();
    assert.deepEqual(w.states, ['connecting'], 'connecting before any socket event');
    last(w).drop(1006); // the first attempt fails
    await until(() => w.sockets.length === 2);
    assert.deepEqual(w.states, ['connecting']);
    last(w).welcome();
    const p = w.client.join('r');
    last(w).push(joined(3));
    await p;
    assert.deepEqual(w.states, ['connecting', 'open']);
    await w.client.close();
  });

  it('state events: connecting is emitted first even when the state moves on before the microtask', async () => {
    const w = world();
    last(w).welcome(); // synchronously, before the constructor's microtask
    await Promise.resolve();
    assert.deepEqual(w.states, ['connecting', 'open']);
    await w.client.close();
  });

  it('state events after a drop: one recovering however many attempts the reconnect takes, then open once rejoined', async () => {
    const w = await joinedWorld(10);
    last(w).drop(1006);
    await until(() => w.sockets.length === 2);
    last(w).drop(1006); // the first reconnect attempt fails
    await until(() => w.sockets.length === 3);
    last(w).welcome();
    assert.deepEqual(w.states, ['connecting', 'open', 'recovering'], 'not open before the room is rejoined');
    last(w).push(joined(10));
    assert.deepEqual(w.states, ['connecting', 'open', 'recovering', 'open']);
    await w.client.close();
  });

  it('state events on close: closed once, by close() or by a close code that ends the client', async () => {
    const w1 = await joinedWorld(10);
    await w1.client.close();
    await w1.client.close();
    assert.deepEqual(w1.states, ['connecting', 'open', 'closed']);

    const w2 = await joinedWorld(10);
    last(w2).drop(4003);
    assert.deepEqual(w2.states, ['connecting', 'open', 'closed']);

    const w3 = world();
    await w3.client.close(); // before the first connection is made
    await Promise.resolve();
    assert.deepEqual(w3.states, ['connecting', 'closed']);
  });

  it('delivers messages once, in order; drops a seq already delivered', async () => {
    const w = await joinedWorld(10);
    last(w).push(msg(11, 10));
    last(w).push(msg(11, 10));
    last(w).push(msg(14, 11));
    assert.deepEqual(w.got.map((m) => m.seq), [11, 14]);
    await w.client.close();
  });

  it('after a lost connection: reconnects to the next URL, rejoins with since = last delivered, no duplicate at the seam', async () => {
    const w = await joinedWorld(10);
    last(w).push(msg(11, 10));
    last(w).drop(1012, 'restart');
    assert.equal(w.client.state, 'recovering');
    await until(() => w.sockets.length === 2);
    assert.equal(last(w).url, 'ws://b/ws');
    last(w).welcome();
    assert.deepEqual(last(w).frames('join'), [{ type: 'join', room: 'r', since: 11 }]);
    assert.equal(w.client.state, 'recovering', 'not open before every room is rejoined');
    last(w).push(msg(11, 10)); // an overlap the app must not see twice
    last(w).push(msg(12, 11));
    last(w).push(joined(12));
    last(w).push(msg(13, 12));
    assert.equal(w.client.state, 'open');
    assert.deepEqual(w.got.map((m) => m.seq), [11, 12, 13]);
    assert.deepEqual(w.states, ['connecting', 'open', 'recovering', 'open']);
    await w.client.close();
  });

  it('a hole in the prev chain is never delivered past: the client reconnects and recovers from the last seq', async () => {
    const w = await joinedWorld(10);
    last(w).push(msg(11, 10));
    last(w).push(msg(13, 12)); // 12 missing
    assert.deepEqual(w.got.map((m) => m.seq), [11]);
    assert.equal(w.errors[0]?.code, 'INTERNAL');
    await until(() => w.sockets.length === 2);
    last(w).welcome();
    assert.deepEqual(last(w).frames('join'), [{ type: 'join', room: 'r', since: 11 }]);
    last(w).push(msg(12, 11));
    last(w).push(msg(13, 12));
    last(w).push(joined(13));
    assert.deepEqual(w.got.map((m) => m.seq), [11, 12, 13]);
    await w.client.close();
  });

  it('unacknowledged sends are resent with the same id after a reconnect; sends while offline wait for the rejoin', async () => {
    const w = await joinedWorld(10);
    const a = w.client.send('r', 'one');
    const sentA = last(w).frames('send')[0]!;
    last(w).drop(1006);
    const b = w.client.send('r', 'two', { mentions: ['bob'] }); // during the outage
    await until(() => w.sockets.length === 2);
    last(w).welcome();
    assert.equal(last(w).frames('send').length, 0, 'no send before the room is rejoined');
    last(w).push(joined(10));
    const resent = last(w).frames('send');
    assert.equal(resent.length, 2);
    assert.equal(resent[0]!.id, sentA.id, 'same id');
    assert.deepEqual(resent[1]!.mentions, ['bob']);
    last(w).push({ type: 'ack', id: resent[0]!.id, seq: 11, duplicate: true });
    last(w).push({ type: 'ack', id: resent[1]!.id, seq: 12, duplicate: false });
    assert.deepEqual(await a, { id: sentA.id, seq: 11, duplicate: true });
    assert.equal((await b).seq, 12);
    await w.client.close();
  });

  it('UNAVAILABLE and RATE_LIMITED sends are retried with the same id; other errors reject with their code', async () => {
    const w = await joinedWorld(10);
    const a = w.client.send('r', 'one', { id: 'a1' });
    const b = w.client.send('r', 'two', { id: 'b1' });
    last(w).push({ type: 'error', code: 'UNAVAILABLE', message: 'x', ref: 'a1' });
    last(w).push({ type: 'error', code: 'TOO_LARGE', message: 'too big', ref: 'b1' });
    await assert.rejects(b, (e: ParleyError) => e.code === 'TOO_LARGE' && e.ref === 'b1');
    await until(() => last(w).frames('send').filter((f) => f.id === 'a1').length === 2, { message: 'a1 resent' });
    last(w).push({ type: 'error', code: 'RATE_LIMITED', message: 'x', ref: 'a1', retryAfterMs: 1 });
    await until(() => last(w).frames('send').filter((f) => f.id === 'a1').length === 3, { message: 'a1 resent again' });
    last(w).push({ type: 'ack', id: 'a1', seq: 11, duplicate: false });
    assert.equal((await a).seq, 11);
    await w.client.close();
  });

  it('a send held back after RATE_LIMITED is resent when its time comes, also after a reconnect in between', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = await joinedWorld(10);
    const a = w.client.send('r', 'one', { id: 'a1' });
    last(w).push({ type: 'error', code: 'RATE_LIMITED', message: 'x', ref: 'a1', retryAfterMs: 5_000 });
    t.mock.timers.tick(1_000);
    last(w).drop(1006);
    t.mock.timers.tick(20);
    assert.equal(w.sockets.length, 2);
    last(w).welcome();
    last(w).push(joined(10));
    assert.equal(last(w).frames('send').length, 0, 'not before retryAfterMs');
    t.mock.timers.tick(3_979); // 1 ms before the 5 s are over
    assert.equal(last(w).frames('send').length, 0, 'not before retryAfterMs');
    t.mock.timers.tick(1);
    assert.deepEqual(last(w).frames('send').map((f) => f.id), ['a1'], 'resent, same id');
    last(w).push({ type: 'ack', id: 'a1', seq: 11, duplicate: false });
    assert.equal((await a).seq, 11);
    await w.client.close();
  });

  it('the offline queue is bounded: one send more is refused with QUEUE_FULL', async () => {
    const w = world({ maxQueuedSends: 2 });
    const joining = w.client.join('r');
    const p = [w.client.send('r', '1'), w.client.send('r', '2')];
    await assert.rejects(w.client.send('r', '3'), (e: ParleyError) => e.code === 'QUEUE_FULL');
    await assert.rejects(w.client.send('other', 'x'), (e: ParleyError) => e.code === 'UNKNOWN_ROOM');
    await w.client.close();
    await assert.rejects(joining, (e: ParleyError) => e.code === 'CLOSED');
    for (const s of p) await assert.rejects(s, (e: ParleyError) => e.code === 'CLOSED');
  });

  for (const code of [1000, 1009, 4003]) {
    it(`close ${code}: no reconnect; the client is closed and pending work fails`, async () => {
      const w = await joinedWorld(10);
      const gone: Array<number | undefined> = [];
      w.client.on('disconnect', (d) => gone.push(d.retryInMs));
      const s = w.client.send('r', 'x');
      last(w).drop(code);
      await assert.rejects(s);
      assert.equal(w.client.state, 'closed');
      assert.deepEqual(gone, [undefined], 'no reconnect scheduled');
      if (code === 4003) assert.equal(w.errors.at(-1)?.code, 'FORBIDDEN');
      if (code === 1009) assert.equal(w.errors.at(-1)?.closeCode, 1009);
    });
  }

  it('4001 without getToken closes (the token cannot get better); with getToken it reconnects with a fresh one', async () => {
    const w1 = await joinedWorld(10);
    last(w1).drop(4001);
    assert.equal(w1.client.state, 'closed');
    assert.equal(w1.errors.at(-1)?.code, 'UNAUTHORIZED');

    const reasons: string[] = [];
    let n = 0;
    const w2 = world({ token: undefined, getToken: ({ reason }) => { reasons.push(reason); return `tok${n++}`; } });
    await until(() => w2.sockets.length === 1);
    last(w2).welcome();
    last(w2).drop(4001);
    await until(() => w2.sockets.length === 2);
    assert.deepEqual(reasons, ['connect', 'expired']);
    assert.deepEqual(last(w2).protocols, ['parley.v1', 'token.tok1']);
    await w2.client.close();
  });

  it('4010, 4008 and 1013: reconnect and recover every room with since', async () => {
    for (const code of [4010, 4008, 1013]) {
      const w = await joinedWorld(10);
      last(w).push(msg(12, 10));
      const retry: Array<number | undefined> = [];
      w.client.on('disconnect', (d) => retry.push(d.retryInMs));
      last(w).drop(code);
      assert.equal(typeof retry[0], 'number', `a reconnect is scheduled after ${code}`);
      await until(() => w.sockets.length === 2, { message: `reconnect after ${code}` });
      last(w).welcome();
      assert.deepEqual(last(w).frames('join'), [{ type: 'join', room: 'r', since: 12 }]);
      await w.client.close();
    }
  });

  it('after 4008 and 1013 the next attempt waits for the policy back-off; after other codes only for the short one', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const reconnect = { minDelayMs: 10, maxDelayMs: 60_000, policyDelayMs: 1_000 };
    for (const [code, later] of [[4008, true], [1013, true], [1006, false], [1012, false], [4010, false]] as const) {
      const w = await joinedWorld(10, { reconnect });
      const gone: DisconnectEvent[] = [];
      w.client.on('disconnect', (d) => gone.push(d));
      last(w).drop(code);
      const delay = gone[0]?.retryInMs;
      assert.ok(delay !== undefined, `a reconnect is scheduled after ${code}`);
      if (later) {
        // The policy's floor, randomised x[1, 2) and rounded.
        assert.ok(delay >= 1_000 && delay <= 2_000, `${code}: retry in ${delay} ms, not the short back-off`);
        t.mock.timers.tick(999);
        assert.equal(w.sockets.length, 1, `${code}: no attempt before policyDelayMs`);
        t.mock.timers.tick(1_001);
      } else {
        assert.ok(delay >= 10 && delay <= 20, `${code}: retry in ${delay} ms, the short back-off`);
        t.mock.timers.tick(20);
      }
      assert.equal(w.sockets.length, 2, `${code}: reconnected once the back-off passed`);
      await w.client.close();
    }
  });

  it('recovered:false (too far behind) emits reset with the range to page from history', async () => {
    const w = await joinedWorld(10);
    const resets: unknown[] = [];
    w.client.on('reset', (e) => resets.push(e));
    last(w).drop(1006);
    await until(() => w.sockets.length === 2);
    last(w).welcome();
    last(w).push(joined(900, 'r', false));
    assert.deepEqual(resets, [{ room: 'r', from: 10, to: 900 }]);
    last(w).push(msg(901, 900));
    assert.deepEqual(w.got.map((m) => m.seq), [901]);
    await w.client.close();
  });

  it('history: one request per room on the wire, answered in order, resent after a reconnect', async () => {
    const w = await joinedWorld(10);
    const h1 = w.client.history('r', { limit: 2 });
    const h2 = w.client.history('r', { before: 5, limit: 2 });
    assert.equal(last(w).frames('history').length, 1);
    last(w).drop(1006);
    await until(() => w.sockets.length === 2);
    last(w).welcome();
    assert.equal(last(w).frames('history').length, 0, 'not before the rejoin is answered');
    last(w).push(joined(10));
    assert.deepEqual(last(w).frames('history'), [{ type: 'history', room: 'r', limit: 2 }]);
    last(w).push({ type: 'history', room: 'r', messages: [], more: true, next: 5 });
    assert.equal((await h1).next, 5);
    assert.deepEqual(last(w).frames('history')[1], { type: 'history', room: 'r', before: 5, limit: 2 });
    last(w).push({ type: 'error', code: 'FORBIDDEN', message: 'no', ref: 'r' });
    await assert.rejects(h2, (e: ParleyError) => e.code === 'FORBIDDEN');
    await w.client.close();
  });

  it('refresh swaps the token on the open connection; a server leave after it is reported', async () => {
    const w = await joinedWorld(10);
    const left: unknown[] = [];
    w.client.on('left', (f) => left.push(f));
    const p = w.client.refresh('t1');
    assert.deepEqual(last(w).frames('refresh'), [{ type: 'refresh', token: 't1' }]);
    last(w).push({ type: 'left', room: 'r', reason: 'forbidden' });
    last(w).push({ type: 'refreshed', expiresAt: null });
    assert.equal((await p).type, 'refreshed');
    assert.equal(left.length, 1);
    assert.equal(w.client.lastSeq('r'), undefined, 'not rejoined');
    last(w).drop(1006);
    await until(() => w.sockets.length === 2);
    assert.deepEqual(last(w).protocols, ['parley.v1', 'token.t1']);
    last(w).welcome();
    assert.equal(last(w).frames('join').length, 0);
    await w.client.close();
  });

  it('leave: a leave frame; the room\'s pending sends fail with UNKNOWN_ROOM; it is not rejoined, online or offline', async () => {
    const w = await joinedWorld(10);
    const left: unknown[] = [];
    w.client.on('left', (f) => left.push(f));
    const pending = w.client.send('r', 'x');
    const j2 = w.client.join('r2');
    last(w).push(joined(3, 'r2'));
    await j2;
    w.client.leave('r');
    w.client.leave('r'); // twice: one frame
    w.client.leave('never-joined');
    assert.deepEqual(last(w).frames('leave'), [{ type: 'leave', room: 'r' }]);
    await assert.rejects(pending, (e: ParleyError) => e.code === 'UNKNOWN_ROOM' && e.ref === 'r');
    await assert.rejects(w.client.send('r', 'y'), (e: ParleyError) => e.code === 'UNKNOWN_ROOM');
    assert.equal(w.client.lastSeq('r'), undefined);
    last(w).push({ type: 'left', room: 'r' }); // the server's answer to our leave: not a `left` event
    last(w).push(msg(11, 10)); // in flight before the leave: not delivered
    assert.deepEqual(left, []);
    assert.deepEqual(w.got, []);
    assert.equal(w.client.state, 'open');

    last(w).drop(1006);
    await until(() => w.sockets.length === 2);
    last(w).welcome();
    assert.deepEqual(last(w).frames('join'), [{ type: 'join', room: 'r2', since: 3 }], 'only r2 is rejoined');
    last(w).push(joined(3, 'r2'));
    last(w).drop(1006);
    w.client.leave('r2'); // while offline: nothing to send, and nothing to rejoin
    await until(() => w.sockets.length === 3);
    last(w).welcome();
    assert.deepEqual(last(w).sent, []);
    assert.equal(w.client.state, 'open');
    await w.client.close();
  });

  it('typing: at most one signal a second per room; none for a room not joined or while disconnected', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const w = await joinedWorld(10);
    const j2 = w.client.join('r2');
    last(w).push(joined(3, 'r2'));
    await j2;
    const typed = (room: string): number => last(w).frames('typing').filter((f) => f.room === room).length;
    w.client.typing('r');
    w.client.typing('r');
    assert.equal(typed('r'), 1);
    assert.deepEqual(last(w).frames('typing')[0], { type: 'typing', room: 'r' });
    w.client.typing('r2'); // its own throttle
    assert.equal(typed('r2'), 1);
    t.mock.timers.tick(999);
    w.client.typing('r');
    assert.equal(typed('r'), 1, 'not within a second');
    t.mock.timers.tick(1);
    w.client.typing('r');
    assert.equal(typed('r'), 2, 'again after a second');
    w.client.typing('other');
    assert.equal(typed('other'), 0, 'not joined');
    t.mock.timers.tick(1_000);
    last(w).drop(1006);
    w.client.typing('r'); // dropped, not queued
    t.mock.timers.tick(20);
    assert.equal(w.sockets.length, 2);
    last(w).welcome();
    last(w).push(joined(10));
    assert.equal(typed('r'), 0, 'a typing signal made while disconnected is not sent later');
    await w.client.close();
  });

  it('presence and typing frames from the server are emitted as events', async () => {
    const w = await joinedWorld(10);
    const presence: unknown[] = [];
    const typing: unknown[] = [];
    w.client.on('presence', (f) => presence.push(f));
    w.client.on('typing', (f) => typing.push(f));
    const p1 = { type: 'presence', room: 'r', user: 'bob', status: 'online' };
    const p2 = { type: 'presence', user: 'bob', status: 'offline' };
    const t1 = { type: 'typing', room: 'r', user: 'bob' };
    last(w).push(p1);
    last(w).push(t1);
    last(w).push(p2);
    assert.deepEqual(presence, [p1, p2]);
    assert.deepEqual(typing, [t1]);
    await w.client.close();
  });

  it('a connection without welcome in time is dropped and retried', async () => {
    const w = world({ connectTimeoutMs: 5 });
    await until(() => w.sockets.length >= 2, { message: 'a second attempt' });
    assert.equal(w.sockets[0]!.closedWith, 4000);
    await w.client.close();
  });
});

describe('reconnect policy', () => {
  it('follows the close-code table: no reconnect exactly where it says no', () => {
    for (const c of Object.values(CLOSE_CODES)) {
      const p = closePolicy(c.code);
      assert.equal(p === 'stop', !c.reconnect, `${c.code}`);
    }
    assert.equal(closePolicy(1007), 'stop');
    assert.equal(closePolicy(1006), 'now');
    assert.equal(closePolicy(4001), 'token');
    assert.equal(closePolicy(4008), 'later');
    assert.equal(closePolicy(1013), 'later');
  });

  it('backs off exponentially with jitter, from policyDelayMs after 4008/1013, capped at maxDelayMs', () => {
    const o = { minDelayMs: 100, maxDelayMs: 5_000, policyDelayMs: 1_000 };
    for (let i = 0; i < 50; i++) {
      const d0 = reconnectDelay(0, 'now', o);
      assert.ok(d0 >= 100 && d0 <= 200, `first delay ${d0}`);
      const d3 = reconnectDelay(3, 'now', o);
      assert.ok(d3 >= 800 && d3 <= 1_600, `fourth delay ${d3}`);
      assert.ok(reconnectDelay(0, 'later', o) >= 1_000);
      assert.ok(reconnectDelay(20, 'now', o) <= 5_000);
    }
    const spread = new Set(Array.from({ length: 20 }, () => reconnectDelay(2, 'now', o)));
    assert.ok(spread.size > 1, 'jittered');
  });
});
