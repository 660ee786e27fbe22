// Every error and close code of protocol v1 is declared here once; a test checks each against the README tables.

export const ERROR_CODES = {
  UNAUTHORIZED: 'The token is missing, malformed, expired or its signature does not verify.',
  FORBIDDEN: 'The user may not do this (for example, a refresh for another user).',
  BAD_FRAME: 'The frame is not valid JSON, has an unknown type, or a field is missing or malformed.',
  TOO_LARGE: 'The message body exceeds PARLEY_MAX_BODY_BYTES.',
  RATE_LIMITED: 'Too many requests: too many unacknowledged sends or history requests in flight, or a send or history rate limit was hit (then `retryAfterMs` says when the same request would fit; nothing was published or read).',
  UNKNOWN_ROOM: 'The room id is invalid, or the connection has not joined the room.',
  UNAVAILABLE: 'A backing service (JetStream, MongoDB) did not answer, or the gateway\'s storage reads are at their bound (then `retryAfterMs`); retrying with the same id is safe.',
  INTERNAL: 'An unexpected server error; the connection stays open.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * WebSocket close codes. 1xxx are standard; 4xxx are Parley's. `reconnect` tells a client whether reconnecting
 * (with back-off) can help, in the spirit of Centrifugo's disconnect codes.
 */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, reconnect: false, reason: 'normal closure' },
  GOING_AWAY: { code: 1001, reconnect: true, reason: 'server is shutting down' },
  MESSAGE_TOO_BIG: { code: 1009, reconnect: false, reason: 'frame larger than PARLEY_MAX_FRAME_BYTES' },
  INTERNAL: { code: 1011, reconnect: true, reason: 'unexpected server error' },
  SERVICE_RESTART: { code: 1012, reconnect: true, reason: 'service restart: reconnect, ideally to another gateway' },
  TRY_AGAIN_LATER: { code: 1013, reconnect: true, reason: 'temporarily overloaded: reconnect with back-off' },
  TOKEN_EXPIRED: { code: 4001, reconnect: true, reason: 'token expired: reconnect with a fresh token' },
  FORBIDDEN: { code: 4003, reconnect: false, reason: 'not allowed' },
  POLICY: {
    code: 4008,
    reconnect: true,
    reason: 'policy or limit violation (too many connections for the user or the address, too many connection attempts, ' +
      'or too many rejected frames; the close reason says which): reconnect after back-off',
  },
  SLOW_CONSUMER: { code: 4009, reconnect: true, reason: 'send buffer full (the client reads too slowly): reconnect and recover with since' },
  RECOVER: {
    code: 4010,
    reconnect: true,
    reason: 'the gateway could not deliver a room without a gap (the stream was unreachable for PARLEY_GAP_REPAIR_TIMEOUT_MS): ' +
      'reconnect and recover every room with since',
  },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;

export const PROTOCOL_VERSION = 1;
/** Subprotocol a client may offer in Sec-WebSocket-Protocol; the server echoes it. */
export const SUBPROTOCOL = 'parley.v1';
/** A Sec-WebSocket-Protocol entry `token.<jwt>` carries the token (browsers cannot set Authorization). */
export const TOKEN_SUBPROTOCOL_PREFIX = 'token.';
