// Pulls the token out of an upgrade request: Authorization: Bearer, ?token=, or a `token.<jwt>` subprotocol entry.
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/index.js';

export interface UpgradeCredentials {
  token: string | undefined;
  /** The Sec-WebSocket-Protocol value to answer with ('' for none). Browsers require one of the offered values. */
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
    protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : (tokenEntry ?? offered[0] ?? '');
  }
  return { token: token || undefined, protocol };
}
