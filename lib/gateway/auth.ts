// Pulls the token out of an upgrade request: Authorization: Bearer, ?token=, or a `token.<jwt>` subprotocol entry.
import type { Authenticator, Identity } from '../auth/index.js';
import { AuthError, roomAccess } from '../auth/index.js';
import { ROOM_ID, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/index.js';

export interface UpgradeCredentials {
  token: string | undefined;
  /**
   * The Sec-WebSocket-Protocol to answer with: `parley.v1` when offered, else '' (none). Never the `token.<jwt>`
   * entry: that would echo the credential into a response header (and into proxies' logs). Browsers fail a handshake
   * answered without one of their offers, so browser clients offer `parley.v1` beside the token.
   */
  protocol: string;
}

export function credentialsFrom(authorization: string, query: string, protocols: string): UpgradeCredentials {
  let token: string | undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (m) token = m[1];
  if (!token && query) token = new URLSearchParams(query).get('token') ?? undefined;
  let protocol = '';
  if (protocols) {
    const offered = protocols.split(',').map((p) => p.trim()).filter(Boolean);
    const tokenEntry = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
    if (!token && tokenEntry) token = tokenEntry.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
    if (offered.includes(SUBPROTOCOL)) protocol = SUBPROTOCOL;
  }
  return { token: token || undefined, protocol };
}

/** An HTTP refusal: the status line and the `{error: {code, message}}` body. */
export interface HttpRefusal {
  status: string;
  body: { error: { code: string; message: string } };
}

/**
 * The identity of an HTTP request about one room (`Authorization: Bearer`, a valid room id the token may use), or
 * the refusal to answer with: 401, 400 (UNKNOWN_ROOM) or 403.
 */
export function authorizeRoomRequest(auth: Authenticator, authorization: string, room: string, forbidden: string): Identity | HttpRefusal {
  const fail = (status: string, code: string, message: string): HttpRefusal => ({ status, body: { error: { code, message } } });
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  let id: Identity;
  try {
    if (!m) throw new AuthError('missing', 'no token (use Authorization: Bearer)');
    id = auth.verify(m[1]!);
  } catch (err) {
    return fail('401 Unauthorized', 'UNAUTHORIZED', err instanceof AuthError ? err.message : 'token rejected');
  }
  if (!ROOM_ID.test(room)) return fail('400 Bad Request', 'UNKNOWN_ROOM', 'room id must match [A-Za-z0-9_-]{1,64}');
  if (!roomAccess(id.claims)(room)) return fail('403 Forbidden', 'FORBIDDEN', forbidden);
  return id;
}
