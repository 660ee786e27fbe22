// The client SDK (parley/client, as a Node app imports it) against real gateways: a gateway SIGKILLed mid-conversation,
// the SDK reconnects to the other, recovers with `since`, and the app-level stream has no gap and no duplicate;
// unacknowledged sends are resent with the same id (seen on the wire) and a send made during the outage is delivered
// once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as Sdk from '../../lib/client/node.js';
import type { MessageFrame, ParleyClient } from '../../lib/client/node.js';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import type { ParleyProcess } from '../harness/parley.js';

/** Every message follows the one before it (strictly increasing seq, unbroken `prev` from `start`), none twice. */
function assertStream(got: MessageFrame[], start: number, who: string): void {
  let prev = start;
  for (const m of got) {
    assert.equal(m.prev, prev, `${who}: message ${m.seq} says prev ${m.prev}, the app saw ${prev} last (a gap)`);
    assert.ok(m.seq > prev, `${who}: seq ${m.seq} after ${prev} (out of order or duplicate)`);
    prev = m.seq;
  }
}

describe('client SDK against real gateways', () => {
  let suite: Suite;
  let gwA: ParleyProcess;
  let gwB: ParleyProcess;
  let sdk: typeof Sdk;

  before(async () => {
    // Through the package's exports map, as an app would: in Node it resolves to the entry that brings `ws`.
    sdk = await import('parley/client' as string) as typeof Sdk;
    suite = await Suite.open('sdk');
    await suite.start('chat');
    [gwA, gwB] = await Promise.all([suite.start('gateway'), suite.start('gateway')]);
  });
  after(() => suite.close());

  // The suite's SDK clients, but built with the `connect` of the package entry an app imports.
  const open = (user: string, gws: ParleyProcess[]): ParleyClient => suite.sdk(gws, user, {
    WebSocket: sdk.NodeWebSocket,
  });

  it('a gateway killed mid-conversation: reconnect to the other, no gap, no duplicate; an outage send is delivered once', async () => {
    const room = 'sdk-kill';
    assert.equal(typeof sdk.NodeWebSocket, 'function', 'parley/client resolves to the Node entry in Node');
    // alice and bob start on A and fail over to B; carol stays on B and sees the room's true order.
    // alice's sends on the wire, per connection: the SDK's `WebSocket` option, wrapped.
    const wire: string[][] = [];
    class Recording extends sdk.NodeWebSocket {
      private readonly ids: string[] = [];
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        wire.push(this.ids);
      }
      override send(data: string): void {
        const f = JSON.parse(data) as { type: string; id?: string };
        if (f.type === 'send') this.ids.push(f.id!);
        super.send(data);
      }
    }
    const alice = suite.sdk([gwA, gwB], 'alice', { WebSocket: Recording });
    const bob = open('bob', [gwA, gwB]);
    const carol = open('carol', [gwB]);
    const seen = new Map<ParleyClient, MessageFrame[]>([[alice, []], [bob, []], [carol, []]]);
    for (const [c, list] of seen) c.on('message', (m) => list.push(m));
    const bobStates: string[] = [];
    bob.on('state', (s) => bobStates.push(s));
    const starts = await Promise.all([alice.join(room), bob.join(room), carol.join(room)]);

    const N = 200;
    const sends: Promise<Sdk.SendResult>[] = [];
    for (let i = 0; i < N; i++) {
      sends.push(alice.send(room, `a${i}`));
      // Paced, so the kill lands mid-conversation with sends in flight.
      if (i % 10 === 9) await new Promise((r) => setImmediate(r));
      if (i === 60) {
        await until(() => seen.get(carol)!.length >= 40, { message: 'conversation under way' });
        // Frozen first: sends 61..69 go onto A's wire and are certainly not acknowledged when it dies.
        process.kill(gwA.pid!, 'SIGSTOP');
      }
      if (i === 69) await gwA.kill('SIGKILL');
    }
    await until(() => bob.state !== 'open', { message: 'bob notices the lost gateway' });
    const outage = bob.send(room, 'sent during the outage');
    const acks = await Promise.all(sends);
    const outageAck = await outage;
    // The sends A never answered went onto the new connection again, with the same id.
    const connections = (id: string): number => wire.filter((ids) => ids.includes(id)).length;
    for (const a of acks.slice(61, 70)) assert.ok(connections(a.id) >= 2, `send ${a.id}, on the wire when A died, resent with its id`);
    const all = [...acks, outageAck].map((a) => a.seq).sort((x, y) => x - y);
    assert.equal(new Set(all).size, N + 1, 'every send got its own seq (a resend after the kill was deduplicated, not stored twice)');

    await until(() => [...seen.values()].every((l) => l.length >= N + 1), { timeout: 30_000, message: `${N + 1} messages at every client` });
    for (const [i, [c, got]] of [...seen].entries()) {
      assertStream(got, starts[i]!.seq, c.user ?? '?');
      assert.deepEqual(got.map((m) => m.seq), all, `${c.user}: every acked message once, in seq order`);
    }
    assert.equal(seen.get(carol)!.filter((m) => m.body === 'sent during the outage').length, 1);
    assert.ok(bobStates.includes('recovering') && bobStates.at(-1) === 'open', `bob: ${bobStates.join(' > ')}`);
    assert.equal(await suite.messages().countDocuments({ room }), N + 1, 'stored once each');
  });

  it('history pages back through a room; a bad room id is an error with the protocol code, and the client stays open', async () => {
    const room = 'sdk-history';
    const c = open('dora', [gwB]);
    await c.join(room);
    let delivered = 0;
    c.on('message', () => delivered++);
    for (let i = 0; i < 5; i++) await c.send(room, `h${i}`);
    // History reads MongoDB; the chat service broadcasts after it stored, so delivery means stored.
    await until(() => delivered === 5, { message: 'the five messages delivered' });
    const p1 = await c.history(room, { limit: 3 });
    assert.deepEqual(p1.messages.map((m) => m.body), ['h4', 'h3', 'h2']);
    assert.equal(p1.more, true);
    const p2 = await c.history(room, { before: p1.next!, limit: 3 });
    assert.deepEqual(p2.messages.map((m) => m.body), ['h1', 'h0']);
    await assert.rejects(c.join('no.dots'), (e: Sdk.ParleyError) => e.code === 'UNKNOWN_ROOM');
    assert.equal(c.state, 'open');
  });
});
