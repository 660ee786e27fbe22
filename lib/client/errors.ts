// Errors the SDK reports: the protocol's codes (lib/protocol/codes.ts) plus the client's own few.
import type { ErrorCode } from '../protocol/codes.js';

/**
 * `CLOSED`: the client was closed (by the app, or by a close code that says not to reconnect: `closeCode`).
 * `QUEUE_FULL`: more unacknowledged sends than `maxQueuedSends` (the offline queue's bound).
 */
export type ClientErrorCode = ErrorCode | 'CLOSED' | 'QUEUE_FULL';

export class ParleyError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly ref?: string,
    /** The WebSocket close code that caused it, for `CLOSED`. */
    readonly closeCode?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ParleyError';
  }
}
