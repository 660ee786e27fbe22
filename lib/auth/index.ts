// JWT verification at the edge (fast-jwt), with an explicit algorithm allow-list, and dev-token minting.
import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import type { JwtConfig } from '../config/index.js';
import { isUserId } from '../protocol/index.js';

export interface Identity {
  user: string;
  /** Expiry in ms since the epoch, or undefined for a token without `exp` (only when `requireExp` is off). */
  expiresAt: number | undefined;
  claims: Record<string, unknown>;
}

export class AuthError extends Error {
  constructor(readonly reason: 'missing' | 'malformed' | 'expired' | 'invalid', message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuthError';
  }
}

export interface Authenticator {
  verify(token: string): Identity;
}

type Verify = (token: string) => Record<string, unknown>;

const SYMMETRIC = /^HS/;

export function createAuthenticator(cfg: JwtConfig): Authenticator {
  const hs = cfg.algorithms.filter((a) => SYMMETRIC.test(a));
  const asym = cfg.algorithms.filter((a) => !SYMMETRIC.test(a));
  const common = {
    clockTolerance: cfg.clockToleranceMs,
    ...(cfg.issuer ? { allowedIss: cfg.issuer } : {}),
    ...(cfg.audience ? { allowedAud: cfg.audience } : {}),
    // allowedIss/allowedAud only check a claim that is present: require it when configured.
    requiredClaims: ['sub', ...(cfg.requireExp ? ['exp'] : []), ...(cfg.issuer ? ['iss'] : []), ...(cfg.audience ? ['aud'] : [])],
    // Verified tokens are cached (bounded) so reconnect storms do not redo signature checks.
    cache: 10_000,
  };
  // One verifier per key type, each restricted to algorithms of that type: an HS token can never be checked with
  // the RSA public key as an HMAC secret (key confusion), and `none` is in no list.
  const verifiers = new Map<string, Verify>();
  if (hs.length && cfg.secret) {
    const v = createVerifier({ ...common, key: cfg.secret, algorithms: hs as never }) as Verify;
    for (const a of hs) verifiers.set(a, v);
  }
  if (asym.length && cfg.publicKey) {
    const v = createVerifier({ ...common, key: cfg.publicKey, algorithms: asym as never }) as Verify;
    for (const a of asym) verifiers.set(a, v);
  }

  return {
    verify(token: string): Identity {
      if (!token) throw new AuthError('missing', 'no token');
      const alg = headerAlg(token);
      const verify = verifiers.get(alg);
      // Messages are fixed strings: nothing from the token (its alg, claims) is reflected to the client.
      if (!verify) throw new AuthError('invalid', 'token algorithm is not accepted');
      let claims: Record<string, unknown>;
      try {
        claims = verify(token);
      } catch (err) {
        if (err instanceof TokenError) {
          if (err.code === TokenError.codes.expired) throw new AuthError('expired', 'token expired', { cause: err });
          if (err.code === TokenError.codes.malformed) throw new AuthError('malformed', 'token malformed', { cause: err });
          if (err.code === TokenError.codes.missingRequiredClaim) {
            throw new AuthError('invalid', 'token lacks a required claim (sub, exp, or the configured iss/aud)', { cause: err });
          }
        }
        throw new AuthError('invalid', 'token rejected', { cause: err });
      }
      const sub = claims.sub;
      if (!isUserId(sub)) throw new AuthError('invalid', 'token sub is not a valid user id');
      let expiresAt: number | undefined;
      if (claims.exp !== undefined) {
        if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw new AuthError('invalid', 'token exp is not a number');
        expiresAt = claims.exp * 1000;
      }
      if (cfg.maxTtlMs > 0 && expiresAt !== undefined && expiresAt - Date.now() > cfg.maxTtlMs + cfg.clockToleranceMs) {
        throw new AuthError('invalid', `token lifetime exceeds the ${Math.round(cfg.maxTtlMs / 1000)} s maximum`);
      }
      return { user: sub, expiresAt, claims };
    },
  };
}

function headerAlg(token: string): string {
  const dot = token.indexOf('.');
  if (dot <= 0 || token.length > 8192) throw new AuthError('malformed', 'token malformed');
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as { alg?: unknown };
    if (typeof header.alg !== 'string') throw new Error('no alg');
    return header.alg;
  } catch (cause) {
    throw new AuthError('malformed', 'token header malformed', { cause });
  }
}

export interface MintOptions {
  secret: string;
  user: string;
  ttlMs?: number;
  issuer?: string;
  audience?: string;
  extra?: Record<string, unknown>;
}

/** A development HS256 token (`parley token <user>`); production tokens come from the user's identity provider. */
export function mintToken(o: MintOptions): string {
  const sign = createSigner({
    key: o.secret,
    algorithm: 'HS256',
    expiresIn: o.ttlMs ?? 3_600_000,
    sub: o.user,
    ...(o.issuer ? { iss: o.issuer } : {}),
    ...(o.audience ? { aud: o.audience } : {}),
  });
  return sign({ ...(o.extra ?? {}) });
}

/** Whether a user may join (and read the history of) a room. */
export type RoomAccess = (room: string) => boolean;

const OPEN: RoomAccess = () => true;

/**
 * Rooms are open by default. A token with a `rooms` claim (an array of room ids; an entry ending in `*` is a prefix)
 * may only join, recover and read those. The identity provider decides membership; Parley enforces it.
 */
export function roomAccess(claims: Record<string, unknown>): RoomAccess {
  const rooms = claims.rooms;
  if (rooms === undefined) return OPEN;
  if (!Array.isArray(rooms)) return () => false;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const r of rooms) {
    if (typeof r !== 'string') continue;
    if (r.endsWith('*')) prefixes.push(r.slice(0, -1));
    else exact.add(r);
  }
  return (room) => exact.has(room) || prefixes.some((p) => room.startsWith(p));
}
