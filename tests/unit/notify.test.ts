// The notification service's pure parts: recipients and direct rooms, the webhook signature, Retry-After, email
// content, its configuration, and the mute frames.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, emailSenderOf, loadConfig } from '../../lib/config/index.js';
import {
  candidates, createEmailSink, directMembers, directRoom, emailContent, fillTemplate, retryAfterMs, signWebhook, verifyWebhook,
} from '../../lib/notify/index.js';
import { ProtocolError, parseClientFrame } from '../../lib/protocol/index.js';
import { pino } from 'pino';

const limits = { maxBodyBytes: 4096, maxMentions: 50 };

describe('notify recipients', () => {
  it('a direct room is named by its two members, sorted, and only such a name is one', () => {
    assert.equal(directRoom('zoe', 'adam'), 'dm-adam-zoe');
    assert.equal(directRoom('adam', 'zoe'), 'dm-adam-zoe');
    assert.deepEqual(directMembers('dm-adam-zoe'), ['adam', 'zoe']);
    assert.equal(directMembers('dm-zoe-adam'), undefined, 'unsorted');
    assert.equal(directMembers('dm-adam-adam'), undefined, 'one member');
    assert.equal(directMembers('lobby'), undefined);
    assert.equal(directRoom('a-b', 'c'), undefined, 'a dash would make the name ambiguous');
    assert.equal(directRoom('x'.repeat(31), 'y'), undefined, 'the room id would exceed 64 characters');
  });

  it('mentioned users and the other member of a direct room, each once, never the sender', () => {
    const base = { id: 'm', body: 'b', ts: 1 };
    assert.deepEqual(candidates({ ...base, room: 'lobby', from: 'ann', mentions: ['bob', 'ann', 'bob', 'not valid', 'cy'] }, 50),
      [{ recipient: 'bob', reason: 'mention' }, { recipient: 'cy', reason: 'mention' }]);
    assert.deepEqual(candidates({ ...base, room: 'dm-ann-bob', from: 'ann' }, 50), [{ recipient: 'bob', reason: 'direct' }]);
    assert.deepEqual(candidates({ ...base, room: 'dm-ann-bob', from: 'ann', mentions: ['bob'] }, 50), [{ recipient: 'bob', reason: 'mention' }]);
    // Someone writing in a direct room that is not theirs (their token allowed it) notifies nobody as a member.
    assert.deepEqual(candidates({ ...base, room: 'dm-ann-bob', from: 'eve' }, 50), []);
    assert.deepEqual(candidates({ ...base, room: 'lobby', from: 'ann', mentions: ['a', 'b', 'c'] }, 2).map((c) => c.recipient), ['a', 'b']);
  });
});

describe('webhook signature', () => {
  const secret = 's'.repeat(32);
  const body = '{"id":"n_1"}';
  it('verifies what was signed, within the tolerance, and nothing else', () => {
    const ts = 1_700_000_000;
    const sig = signWebhook(secret, ts, body);
    assert.match(sig, /^v1=[0-9a-f]{64}$/);
    assert.deepEqual(verifyWebhook(secret, { timestamp: String(ts), signature: sig }, body, ts + 10), { ok: true });
    assert.deepEqual(verifyWebhook(secret, { timestamp: String(ts), signature: sig }, `${body} `, ts), { ok: false, reason: 'mismatch' });
    assert.deepEqual(verifyWebhook('t'.repeat(32), { timestamp: String(ts), signature: sig }, body, ts), { ok: false, reason: 'mismatch' });
    assert.deepEqual(verifyWebhook(secret, { timestamp: String(ts + 1), signature: sig }, body, ts), { ok: false, reason: 'mismatch' });
    assert.deepEqual(verifyWebhook(secret, { timestamp: String(ts), signature: sig }, body, ts + 301), { ok: false, reason: 'stale' });
    assert.deepEqual(verifyWebhook(secret, { timestamp: null, signature: sig }, body, ts), { ok: false, reason: 'missing' });
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
    assert.equal(retryAfterMs('soon'), undefined);
    assert.equal(retryAfterMs(null), undefined);
  });
});

describe('email content', () => {
  it('fills templates and escapes the HTML part', () => {
    assert.equal(fillTemplate('{from} in {room} {nope}', { from: 'ann', room: 'lobby' }), 'ann in lobby {nope}');
    const c = emailContent({
      id: 'n_1', messageId: 'ann:1', recipient: 'bob', reason: 'mention', room: 'lobby', seq: 1, from: 'ann',
      body: '<script>x</script> & "q"', ts: 1, attempt: 1, round: 0,
    });
    assert.ok(c.text.includes('<script>x</script> & "q"'));
    assert.ok(!c.html.includes('<script>'));
    assert.ok(c.html.includes('&#60;script&#62;'));
  });
});

describe('email sink addresses', () => {
  it('never builds an address from a user id that is not a plain local part', async () => {
    const sink = createEmailSink({
      smtpUrl: 'smtp://127.0.0.1:9', requireTls: false, tlsRejectUnauthorized: true, tlsCa: undefined, timeoutMs: 100,
      from: { name: 'p', address: 'p@x' }, subject: 's', toTemplate: '{user}@example.test',
    }, async () => undefined, pino({ enabled: false }));
    const n = { id: 'n_1', messageId: 'a:1', reason: 'mention' as const, room: 'r', seq: 1, from: 'a', body: 'b', ts: 1, attempt: 1, round: 0 };
    // Skipped before any connection is tried (port 9 would refuse it).
    assert.equal(await sink.send({ ...n, recipient: 'a@evil.example,b' }, new AbortController().signal), 'skipped');
    assert.equal(await sink.send({ ...n, recipient: '<x>' }, new AbortController().signal), 'skipped');
    await sink.close();
  });
});

describe('notify config', () => {
  const bad = (env: Record<string, string>, variable: string): void => {
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.variable === variable);
  };
  it('defaults to the log sink and NOTIFY_DLQ, and names the variable that is wrong', () => {
    const cfg = loadConfig({});
    assert.deepEqual(cfg.notify.sinks, ['log']);
    assert.equal(cfg.notify.dlqStream, 'NOTIFY_DLQ');
    assert.equal(loadConfig({ PARLEY_STREAM: 'T1' }).notify.dlqStream, 'T1_NOTIFY_DLQ');
    bad({ PARLEY_NOTIFY_SINKS: 'log,pigeon' }, 'PARLEY_NOTIFY_SINKS');
    bad({ PARLEY_NOTIFY_SINKS: 'webhook' }, 'PARLEY_NOTIFY_WEBHOOK_URL');
    bad({ PARLEY_NOTIFY_SINKS: 'webhook', PARLEY_NOTIFY_WEBHOOK_URL: 'http://h/x', PARLEY_NOTIFY_WEBHOOK_SECRET: 'short' }, 'PARLEY_NOTIFY_WEBHOOK_SECRET');
    bad({ PARLEY_NOTIFY_SINKS: 'email' }, 'PARLEY_SMTP_URL');
    bad({ PARLEY_SMTP_URL: 'http://mail' }, 'PARLEY_SMTP_URL');
    bad({ PARLEY_NOTIFY_SINKS: 'webhook', PARLEY_NOTIFY_WEBHOOK_URL: 'http://h/x', PARLEY_NOTIFY_WEBHOOK_SECRET: 'x'.repeat(32), PARLEY_NOTIFY_LEASE_MS: '5000' },
      'PARLEY_NOTIFY_LEASE_MS');
  });
  it('reads the email sender as a display name template and a fixed address', () => {
    assert.deepEqual(loadConfig({}).notify.email.from, { name: 'Parley', address: 'notify@localhost' });
    assert.deepEqual(emailSenderOf('{from} via Parley <notify@parley.test>'), { name: '{from} via Parley', address: 'notify@parley.test' });
    assert.deepEqual(emailSenderOf('"Parley, {room}" <n@x.test>'), { name: 'Parley, {room}', address: 'n@x.test' });
    assert.deepEqual(emailSenderOf('n@x.test'), { name: '', address: 'n@x.test' });
    // A variable in the address could let a sender id (which may hold `<`, `,`, `@`) choose the From address.
    for (const v of ['{from}@x.test', 'P <{from}@x.test>', 'P <n@{room}>', 'Parley', 'P <>']) {
      bad({ PARLEY_NOTIFY_EMAIL_FROM: v }, 'PARLEY_NOTIFY_EMAIL_FROM');
    }
  });
});

describe('mute frames', () => {
  it('parses mute and unmute, and refuses a bad until', () => {
    assert.deepEqual(parseClientFrame('{"type":"mute","room":"r"}', limits), { type: 'mute', room: 'r' });
    assert.deepEqual(parseClientFrame('{"type":"mute","room":"r","until":5}', limits), { type: 'mute', room: 'r', until: 5 });
    assert.deepEqual(parseClientFrame('{"type":"unmute","room":"r"}', limits), { type: 'unmute', room: 'r' });
    for (const until of ['0', '-1', '1.5', '"x"']) {
      assert.throws(() => parseClientFrame(`{"type":"mute","room":"r","until":${until}}`, limits),
        (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_FRAME');
    }
  });
});
