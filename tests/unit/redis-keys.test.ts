import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SCRIPT_FIXED, SCRIPT_NAMES_LUA, SCRIPT_NAME_COUNT, SCRIPT_TEMPLATES, redisKeys } from '../../lib/redis/index.js';

describe('Redis names (lib/redis keys.ts)', () => {
  const keys = redisKeys('t1:');

  it('the names scripts receive spell every key exactly as the TypeScript side does', () => {
    assert.equal(keys.scriptNames.length, SCRIPT_NAME_COUNT);
    SCRIPT_TEMPLATES.forEach((name, i) => {
      const [head, tail] = [keys.scriptNames[i * 2]!, keys.scriptNames[i * 2 + 1]!];
      for (const id of ['gw-1', 'r 1', '']) assert.equal(`${head}${id}${tail}`, keys[name](id), name);
    });
    SCRIPT_FIXED.forEach((name, i) => assert.equal(keys.scriptNames[SCRIPT_TEMPLATES.length * 2 + i], keys[name], name));
  });

  it('the Lua prelude reads each name from its place in ARGV, and the script arguments after them', () => {
    SCRIPT_TEMPLATES.forEach((name, i) => {
      assert.ok(SCRIPT_NAMES_LUA.includes(`N.${name} = function(id) return ARGV[${i * 2 + 1}] .. id .. ARGV[${i * 2 + 2}] end`), name);
    });
    SCRIPT_FIXED.forEach((name, i) => assert.ok(SCRIPT_NAMES_LUA.includes(`N.${name} = ARGV[${SCRIPT_TEMPLATES.length * 2 + i + 1}]`), name));
    assert.ok(SCRIPT_NAMES_LUA.includes(`for i = ${SCRIPT_NAME_COUNT + 1}, #ARGV do ARG[i - ${SCRIPT_NAME_COUNT}] = ARGV[i] end`));
  });

  it('every name is under the prefix, and a room channel maps back to its room', () => {
    for (const n of keys.scriptNames.filter((_, i) => i % 2 === 0 || i >= SCRIPT_TEMPLATES.length * 2)) assert.ok(n.startsWith('t1:'), n);
    assert.equal(keys.roomOfChannel(keys.roomChannel('lobby')), 'lobby');
    assert.equal(keys.roomOfChannel(keys.presenceChannel), undefined);
  });

  it('a message id key is under the prefix with the whole namespaced id as its hash tag', () => {
    const k = keys.messageId('alice:m-1');
    assert.ok(k.startsWith('t1:'), k);
    assert.equal(k.slice(k.indexOf('{') + 1, k.indexOf('}')), 'alice:m-1');
    assert.notEqual(keys.messageId('alice:m-1'), keys.messageId('alice:m-2'));
  });
});
