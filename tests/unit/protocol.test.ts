import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError, parseClientFrame } from '../../lib/protocol/index.js';

const limits = { maxBodyBytes: 16, maxMentions: 2 };
const parse = (o: unknown) => parseClientFrame(typeof o === 'string' ? o : JSON.stringify(o), limits);
const codeOf = (o: unknown): string => {
  try {
    parse(o);
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    return err.code;
  }
  return 'OK';
};

describe('parseClientFrame', () => {
  it('accepts every v1 frame type', () => {
    assert.deepEqual(parse({ type: 'join', room: 'a-b_C9' }), { type: 'join', room: 'a-b_C9' });
    assert.deepEqual(parse({ type: 'join', room: 'r', since: 0 }), { type: 'join', room: 'r', since: 0 });
    assert.deepEqual(parse({ type: 'leave', room: 'r' }), { type: 'leave', room: 'r' });
    assert.deepEqual(parse({ type: 'send', room: 'r', id: '01HZX-abc_1', body: 'hi', mentions: ['u1'] }),
      { type: 'send', room: 'r', id: '01HZX-abc_1', body: 'hi', mentions: ['u1'] });
    assert.deepEqual(parse({ type: 'typing', room: 'r' }), { type: 'typing', room: 'r' });
    assert.deepEqual(parse({ type: 'history', room: 'r', before: 10, limit: 5 }), { type: 'history', room: 'r', before: 10, limit: 5 });
    assert.deepEqual(parse({ type: 'refresh', token: 't' }), { type: 'refresh', token: 't' });
  });

  it('refuses room ids that could inject into a NATS subject or Redis key', () => {
    for (const room of ['a.b', '*', '>', 'a b', 'x'.repeat(65), '', 'a\u0000', 'é', 'a/b']) {
      assert.equal(codeOf({ type: 'join', room }), 'UNKNOWN_ROOM', JSON.stringify(room));
      assert.equal(codeOf({ type: 'send', room, id: 'i', body: 'b' }), 'UNKNOWN_ROOM', JSON.stringify(room));
    }
    assert.equal(codeOf({ type: 'join', room: 'x'.repeat(64) }), 'OK');
    assert.equal(codeOf({ type: 'join', room: 7 }), 'BAD_FRAME');
  });

  it('measures the body in UTF-8 bytes, not characters', () => {
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'i', body: 'x'.repeat(16) }), 'OK');
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'i', body: 'é'.repeat(9) }), 'TOO_LARGE');
  });

  it('refuses malformed frames with BAD_FRAME and keeps the client id as ref', () => {
    for (const raw of ['{', '[]', 'null', '1', '"s"']) assert.equal(codeOf(raw), 'BAD_FRAME', raw);
    assert.equal(codeOf({ room: 'r' }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'nope' }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'a:b', body: 'b' }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'x'.repeat(65), body: 'b' }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'i', body: 'b', mentions: ['a', 'b', 'c'] }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'send', room: 'r', id: 'i', body: 'b', mentions: 'a' }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'join', room: 'r', since: 1.5 }), 'BAD_FRAME');
    assert.equal(codeOf({ type: 'history', room: 'r', limit: 0 }), 'BAD_FRAME');
    try {
      parse({ type: 'send', room: 'r', id: 'ok-id' });
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.ref, 'ok-id');
    }
  });
});
