import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BUS_VERSION, decodeMessage, decodePresence, decodeTyping, encodeMessage, encodePresence, encodeTyping,
} from '../../lib/fanout/index.js';
import type { Broadcast } from '../../lib/protocol/index.js';

describe('bus codec (Redis Pub/Sub events)', () => {
  const b: Broadcast = { room: 'r1', id: 'm1', seq: 7, prev: 5, from: 'ann\u00e9', body: 'hi "there"\n', ts: 1700000000000, mentions: ['bo'] };

  it('a message round-trips with its version, kind and optional traceparent', () => {
    const e = decodeMessage(encodeMessage(b));
    assert.ok(e);
    assert.equal(e.v, BUS_VERSION);
    assert.equal(e.kind, 'message');
    assert.deepEqual({ ...e, v: undefined, kind: undefined }, { ...b, v: undefined, kind: undefined });
    assert.equal(e.traceparent, undefined);
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    assert.equal(decodeMessage(encodeMessage(b, tp))?.traceparent, tp);
  });

  it('presence and typing round-trip; global presence has no room', () => {
    assert.deepEqual(decodePresence(encodePresence('r', 'u"1', 'online')), { v: 1, kind: 'presence', room: 'r', user: 'u"1', status: 'online' });
    assert.deepEqual(decodePresence(encodePresence(undefined, 'u', 'offline')), { v: 1, kind: 'presence', user: 'u', status: 'offline' });
    assert.deepEqual(decodeTyping(encodeTyping('gw\nodd', 'r', 'u')), { v: 1, kind: 'typing', gateway: 'gw\nodd', room: 'r', user: 'u' });
  });

  it('another version, another kind or a malformed payload decodes to undefined', () => {
    assert.equal(decodeMessage(JSON.stringify({ ...b })), undefined, 'no version');
    assert.equal(decodeMessage(JSON.stringify({ ...b, v: 2, kind: 'message' })), undefined, 'a later version');
    assert.equal(decodeMessage(encodeTyping('g', 'r', 'u')), undefined, 'a typing event on a room channel');
    assert.equal(decodeMessage(JSON.stringify({ v: 1, kind: 'message', room: 'r' })), undefined, 'fields missing');
    assert.equal(decodePresence(JSON.stringify({ v: 1, kind: 'presence', user: 'u', status: 'away' })), undefined);
    assert.equal(decodeTyping('{'), undefined);
    assert.equal(decodeTyping('null'), undefined);
  });
});
