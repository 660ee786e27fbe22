// The one interface every notification sink implements (log, webhook, email; Web Push, FCM or APNs would too).
import type { NotificationDoc } from '../store/index.js';

/** What a sink delivers: one notification for one recipient (the record's message fields, `round` included). */
export interface Notification extends Pick<NotificationDoc, 'messageId' | 'recipient' | 'reason' | 'room' | 'seq' | 'from' | 'body' | 'ts' | 'round'> {
  /** Stable across retries, replays and instances: receivers deduplicate by it. */
  id: string;
  /** The attempt (1-based) within the round; a replay from the dead-letter stream starts a new round. */
  attempt: number;
}

export interface Sink {
  readonly name: string;
  /**
   * Delivers `n`, or throws: a SinkError with `permanent` set when retrying cannot help (a 4xx, an SMTP 5xx), any
   * other error is retried by a later attempt. Gives up when `signal` aborts (the attempt's lease is ending).
   * Resolves 'skipped' when the sink has nothing to do for this recipient (no email address).
   */
  send(n: Notification, signal: AbortSignal): Promise<'sent' | 'skipped'>;
  close(): Promise<void>;
}

export class SinkError extends Error {
  constructor(message: string, readonly permanent: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SinkError';
  }
}
