// Recovery beyond what the stream still holds (read from MongoDB), and replay of a large backlog to a reader that
// does not read: bounded by backpressure, and nobody else waits for it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { Suite, ids } from '../harness/suite.js';
import type { TestClient } from '../harness/client.js';
import type { ParleyProcess } from '../harness/parley.js';

describe('retention and slow readers', () => {
  let suite: Suite;
  let gw: ParleyProcess;

  before(async () => {
    suite = await Suite.open('retain', {
      env: {
        // The stream keeps only the newest 200 events; MongoDB keeps everything. (Limits also drop events not yet
        // consumed, so tests send in chunks the chat service keeps up with.)
        PARLEY_STREAM_MAX_MSGS: '200',
        PARLEY_MAX_INFLIGHT: '1000',
        PARLEY_MAX_BACKPRESSURE_BYTES: String(64 * 1024),
        PARLEY_MAX_BODY_BYTES: String(64 * 1024),
        PARLEY_MAX_FRAME_BYTES: String(70 * 1024),
        // FerretDB v1 answers every range read with a scan of the whole collection (explain: SCAN, no filter, sort or
        // limit pushdown on SQLite): ~0.65 s for this suite's 18 MB on an idle machine, past the default 2 s read
        // timeout when three other suites load the same two cores, and the join then fails with UNAVAILABLE. What is
        // tested here is the replay's pacing, not the read timeout.
        PARLEY_MONGO_QUERY_TIMEOUT_MS: '15000',
      },
    });
    gw = await suite.start('all');
  });
  after(() => suite.close());

  const connect = (user: string): Promise<TestClient> => suite.connect(gw, user);
  const stored = (room: string) => suite.messages().countDocuments({ room });

  it('since older than the stream holds: the rest comes from MongoDB, complete and in order', async () => {
    const room = 'old';
    const w = await connect('w');
    const start = await w.join(room);
    const acks = [];
    for (let chunk = 0; chunk < 4; chunk++) {
      acks.push(...await w.sendAll(room, ids(`o${chunk}-`, 100)));
      await until(async () => (await stored(room)) === 100 * (chunk + 1), { message: 'chunk stored' });
    }
    const since = acks[9]!.seq as number; // the stream no longer holds the first 200 of these
    const r = await connect('r');
    const j = await r.join(room, since);
    assert.equal(j.recovered, true);
    const got = r.messages(room);
    assert.deepEqual(got.map((m) => m.seq), acks.slice(10).map((a) => a.seq as number));
    assert.equal(got[0]!.prev, since);
    void start;
  });

  it('a reader that stops reading gets a bounded replay and stalls no one; once it reads again it gets everything', async () => {
    const room = 'backlog';
    const w = await connect('bw');
    await w.join(room);
    // 600 x 30 KB: the first 400 come from MongoDB (the stream holds 200), far more than socket buffers absorb.
    const body = 'x'.repeat(30_000);
    const acks = [];
    for (let chunk = 0; chunk < 6; chunk++) {
      acks.push(...await w.sendAll(room, ids(`b${chunk}-`, 100), () => body));
      await until(async () => (await stored(room)) === 100 * (chunk + 1), { message: 'chunk stored' });
    }
    assert.ok(acks.every((a) => a.type === 'ack'));

    const slow = await connect('slow');
    const sock = slow.ws;
    // Stops reading (ws.pause cooperates with ws's own flow control): the gateway's send buffer fills, and the
    // replay must wait for it to drain.
    sock.pause();
    slow.send({ type: 'join', room, since: 0 });

    // Meanwhile the gateway serves everyone else normally.
    const a = await connect('fast-a');
    const b = await connect('fast-b');
    await a.join('other');
    await b.join('other');
    const live = await a.sendAll('other', ids('f', 50));
    await until(() => b.messages('other').length === 50, { message: 'others unaffected' });
    assert.ok(live.every((x) => x.type === 'ack'));

    sock.resume();
    const joined = await slow.waitFor((f) => f.type === 'joined' && f.room === room, { timeout: 30_000 });
    assert.equal(joined.recovered, true);
    assert.equal(joined.replayed, 600);
    assert.deepEqual(slow.messages(room).map((m) => m.seq), acks.map((x) => x.seq as number));
  });

  it('a live reader too far behind is disconnected (1006), never silently skipped, and recovers the rest with since', async () => {
    const room = 'firehose';
    // The cut-off shows in the gateway's closes by code. uWS itself closes a live reader past the backpressure limit
    // (closeOnBackpressureLimit: room broadcasts are uWS publishes), and reports that close to the gateway as 1006,
    // not 4009: only frames the gateway sends itself (acks, errors, replay) end with its own 4009.
    const cutOff = (): Promise<number> => gw.metric('connections_closed_total', { code: '1006' });
    const cutOffBefore = await cutOff();
    const w = await connect('fw');
    await w.join(room);
    const lag = await connect('lag');
    await lag.join(room);
    const sock = lag.ws;
    sock.pause();
    const acks = [];
    // ~14 MB: more than loopback socket buffers (several MB each way) and PARLEY_MAX_BACKPRESSURE_BYTES together.
    const big = 'z'.repeat(60_000);
    for (let chunk = 0; chunk < 4; chunk++) {
      acks.push(...await w.sendAll(room, ids(`h${chunk}-`, 60), () => big));
      await until(async () => (await stored(room)) === 60 * (chunk + 1), { message: 'chunk stored' });
    }
    await until(() => w.messages(room).length === 240, { timeout: 20_000, message: 'the writer itself keeps up' });
    let closed: { code: number } | undefined;
    void lag.closed.then((c) => { closed = c; });
    sock.resume();
    await until(() => closed !== undefined, { timeout: 20_000, message: 'the lagging reader to be cut off' });
    assert.equal(closed!.code, 1006);
    const got = lag.messages(room);
    assert.ok(got.length < 240, 'it was cut off');
    for (let i = 1; i < got.length; i++) assert.equal(got[i]!.prev, got[i - 1]!.seq, 'what it did get has no hole');
    await until(async () => (await cutOff()) > cutOffBefore, { timeout: 10_000, message: 'connections_closed_total{code="1006"} to count the reader' });

    const back = await connect('lag');
    const last = got.length > 0 ? got[got.length - 1]!.seq : (acks[0]!.seq as number) - 1;
    // ~12 MB of replay, paced by the socket: allow for a busy machine.
    const j = await back.join(room, last, 30_000);
    assert.equal(j.recovered, true);
    assert.deepEqual([...got, ...back.messages(room)].map((m) => m.seq), acks.map((a) => a.seq as number));
  });
});
