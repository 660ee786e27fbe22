// Pulls the token out of an upgrade request: Authorization: Bearer, ?token=, or a `token.<jwt>` subprotocol entry.
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/index.js';

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
