import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTyping, encodeTyping } from '../../lib/fanout/index.js';
import { Throttle } from '../../lib/presence/index.js';
import { errorFrame, presenceFrame, typingFrame } from '../../lib/protocol/index.js';

describe('Throttle (typing, per user and room)', () => {
  it('passes one per interval per key', () => {
    const t = new Throttle(2_000);
    assert.equal(t.allow('r u', 0), true);
    assert.equal(t.allow('r u', 1_999), false);
    assert.equal(t.allow('r v', 1_999), true, 'another key is independent');
    assert.equal(t.allow('r u', 2_000), true);
  });

  it('a dropped signal does not extend the interval', () => {
    const t = new Throttle(1_000);
    t.allow('k', 0);
    t.allow('k', 900);
    assert.equal(t.allow('k', 1_000), true);
  });

  it('forgets stale keys once over its size bound', () => {
    const t = new Throttle(100, 5);
    for (let i = 0; i < 10; i++) t.allow(`k${i}`, 0);
    t.allow('new', 1_000);
    assert.equal(t.size(), 1);
  });
});

describe('typing relay payload', () => {
  it('round-trips gateway, room and frame, whatever the gateway id holds', () => {
    const frame = typingFrame('room-1', 'ann\u00e9');
    for (const gw of ['gw-1', 'gw\nodd', '']) {
      const t = decodeTyping(encodeTyping(gw, 'room-1', 'ann\u00e9'));
      assert.ok(t);
      assert.deepEqual({ gateway: t.gateway, room: t.room, frame: typingFrame(t.room, t.user) }, { gateway: gw, room: 'room-1', frame });
    }
    assert.equal(decodeTyping('no newline'), undefined);
    assert.deepEqual(JSON.parse(frame), { type: 'typing', room: 'room-1', user: 'ann\u00e9' });
  });
});

describe('presence and error frames', () => {
  it('presence frames with and without a room', () => {
    assert.deepEqual(JSON.parse(presenceFrame('r', 'u"1', 'online')), { type: 'presence', room: 'r', user: 'u"1', status: 'online' });
    assert.deepEqual(JSON.parse(presenceFrame(undefined, 'u', 'offline')), { type: 'presence', user: 'u', status: 'offline' });
  });

  it('errorFrame keeps its old shape and adds retryAfterMs only when given', () => {
    assert.deepEqual(JSON.parse(errorFrame('BAD_FRAME', 'm')), { type: 'error', code: 'BAD_FRAME', message: 'm' });
    assert.deepEqual(JSON.parse(errorFrame('RATE_LIMITED', 'm', 'id1', 250)),
      { type: 'error', code: 'RATE_LIMITED', message: 'm', ref: 'id1', retryAfterMs: 250 });
  });
});
