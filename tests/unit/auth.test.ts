import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { createSigner } from 'fast-jwt';
import { AuthError, createAuthenticator, mintToken } from '../../lib/auth/index.js';
import type { JwtConfig } from '../../lib/config/index.js';
import { credentialsFrom } from '../../lib/gateway/index.js';

const secret = 'unit-secret-0123456789abcdef0123456789abcdef';
const hs: JwtConfig = { secret, publicKey: undefined, algorithms: ['HS256'], issuer: undefined, audience: undefined, clockToleranceMs: 0, requireExp: true, maxTtlMs: 86_400_000 };
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const reason = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err));
    return err.reason;
  }
  return 'accepted';
};

describe('authenticator', () => {
  it('verifies HS256 and returns the user and expiry', () => {
    const id = createAuthenticator(hs).verify(mintToken({ secret, user: 'alice', ttlMs: 60_000 }));
    assert.equal(id.user, 'alice');
    assert.ok(id.expiresAt! > Date.now());
  });

  it('refuses expired, not-yet-valid, unsigned and mis-signed tokens', () => {
    const auth = createAuthenticator(hs);
    assert.equal(reason(() => auth.verify(mintToken({ secret, user: 'a', ttlMs: -1000 }))), 'expired');
    const early = createSigner({ key: secret, notBefore: 60_000 })({ sub: 'a' });
    assert.equal(reason(() => auth.verify(early)), 'invalid');
    assert.equal(reason(() => auth.verify(`${b64({ alg: 'none' })}.${b64({ sub: 'a' })}.`)), 'invalid');
    assert.equal(reason(() => auth.verify(mintToken({ secret: `${secret}x`, user: 'a' }))), 'invalid');
    assert.equal(reason(() => auth.verify('')), 'missing');
    assert.equal(reason(() => auth.verify('abc')), 'malformed');
    assert.equal(reason(() => auth.verify(createSigner({ key: secret })({ name: 'no sub' }))), 'invalid');
  });

  it('checks iss and aud when configured', () => {
    const auth = createAuthenticator({ ...hs, issuer: 'idp', audience: 'parley' });
    assert.equal(reason(() => auth.verify(mintToken({ secret, user: 'a', issuer: 'idp', audience: 'parley' }))), 'accepted');
    assert.equal(reason(() => auth.verify(mintToken({ secret, user: 'a', issuer: 'evil', audience: 'parley' }))), 'invalid');
    assert.equal(reason(() => auth.verify(mintToken({ secret, user: 'a', issuer: 'idp' }))), 'invalid');
  });

  it('an RS256 setup refuses HS tokens signed with the public key (key confusion)', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const auth = createAuthenticator({ ...hs, secret: undefined, publicKey, algorithms: ['RS256'] });
    assert.equal(auth.verify(createSigner({ key: privateKey, algorithm: 'RS256', expiresIn: 60_000 })({ sub: 'r' })).user, 'r');
    assert.equal(reason(() => auth.verify(createSigner({ key: publicKey, algorithm: 'HS256' })({ sub: 'r' }))), 'invalid');
  });

  it('verifies ES256 with an EC public key', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const auth = createAuthenticator({ ...hs, secret: undefined, publicKey, algorithms: ['ES256'] });
    assert.equal(auth.verify(createSigner({ key: privateKey, algorithm: 'ES256', expiresIn: 60_000 })({ sub: 'e' })).user, 'e');
  });
});

describe('authenticator: identities and lifetimes (issue 10)', () => {
  const message = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };

  it('refuses a sub that is not well-formed Unicode or hides format characters; accepts other scripts', () => {
    const auth = createAuthenticator(hs);
    for (const sub of ['a\uD800', 'a\uDC00', '\uD800\uD800', 'adm\u202Ein', 'ad\u200Bmin', 'a\u200Db', '\uFEFFx', 'a\u2066b', 'a\uE000', 'a b', '']) {
      assert.equal(reason(() => auth.verify(mintToken({ secret, user: sub }))), 'invalid', JSON.stringify(sub));
    }
    for (const sub of ['élodie', '用户', '👩💻', 'a.b@example.com', 'x'.repeat(128)]) {
      assert.equal(auth.verify(mintToken({ secret, user: sub })).user, sub);
    }
    assert.equal(reason(() => auth.verify(mintToken({ secret, user: 'x'.repeat(129) }))), 'invalid');
  });

  it('requires exp unless configured otherwise, and caps the lifetime', () => {
    const noExp = createSigner({ key: secret })({ sub: 'svc' });
    assert.equal(reason(() => createAuthenticator(hs).verify(noExp)), 'invalid');
    const lax = createAuthenticator({ ...hs, requireExp: false });
    assert.equal(lax.verify(noExp).expiresAt, undefined);
    const capped = createAuthenticator({ ...hs, maxTtlMs: 3_600_000 });
    assert.equal(reason(() => capped.verify(mintToken({ secret, user: 'a', ttlMs: 7_200_000 }))), 'invalid');
    assert.ok(capped.verify(mintToken({ secret, user: 'a', ttlMs: 3_000_000 })).expiresAt! > Date.now());
    assert.equal(createAuthenticator({ ...hs, maxTtlMs: 0 }).verify(mintToken({ secret, user: 'a', ttlMs: 365 * 86_400_000 })).user, 'a');
  });

  it('never reflects the token in its messages', () => {
    const auth = createAuthenticator(hs);
    const evil = `${b64({ alg: 'EVIL<script>' })}.${b64({ sub: 'x' })}.sig`;
    assert.doesNotMatch(message(() => auth.verify(evil)), /EVIL|script/);
    const badIss = createAuthenticator({ ...hs, issuer: 'idp' });
    assert.doesNotMatch(message(() => badIss.verify(mintToken({ secret, user: 'a', issuer: 'EVIL-ISSUER' }))), /EVIL/);
  });
});

describe('credentialsFrom', () => {
  it('reads Bearer, then ?token=, then a token.<jwt> subprotocol, and picks the protocol to echo', () => {
    assert.deepEqual(credentialsFrom('Bearer abc', '', ''), { token: 'abc', protocol: '' });
    assert.deepEqual(credentialsFrom('', 'token=q&x=1', ''), { token: 'q', protocol: '' });
    assert.deepEqual(credentialsFrom('', '', 'parley.v1, token.j.w.t'), { token: 'j.w.t', protocol: 'parley.v1' });
    // The token entry is never the answer: it would echo the credential in a response header.
    assert.deepEqual(credentialsFrom('', '', 'token.j.w.t'), { token: 'j.w.t', protocol: '' });
    assert.deepEqual(credentialsFrom('', '', 'other, token.j.w.t'), { token: 'j.w.t', protocol: '' });
    assert.deepEqual(credentialsFrom('Basic xyz', '', ''), { token: undefined, protocol: '' });
  });
});
