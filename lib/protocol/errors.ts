import type { ErrorCode } from './codes.js';

/** A client-visible error: becomes an `error {code, message, ref}` frame and the connection stays open. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly ref?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ProtocolError';
  }
}
