// HTTP webhook sink: POSTs the notification as JSON, signed (signature.ts), with a timeout per request and retries
// within the attempt (p-retry: exponential back-off with jitter; at least Retry-After when the receiver sends one).
// 4xx other than 408 and 429 is permanent: the notification goes to the dead-letter stream without more attempts.
import pRetry, { AbortError } from 'p-retry';
import type { WebhookConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { NOTIFICATION_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signWebhook } from './signature.js';
import { SinkError } from './sink.js';
import type { Notification, Sink } from './sink.js';

class HttpStatusError extends Error {
  constructor(readonly status: number, readonly retryAfterMs: number | undefined) {
    super(`webhook answered ${status}`);
    this.name = 'HttpStatusError';
  }
}

/** Retry-After as delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const permanentStatus = (s: number): boolean => s >= 400 && s < 500 && s !== 408 && s !== 429;

/** The JSON a receiver gets. */
export function webhookPayload(n: Notification): string {
  return JSON.stringify({
    type: 'notification', id: n.id, messageId: n.messageId, recipient: n.recipient, reason: n.reason, room: n.room,
    seq: n.seq, from: n.from, body: n.body, ts: n.ts, attempt: n.attempt, round: n.round,
  });
}

export function createWebhookSink(cfg: WebhookConfig, log: Logger): Sink {
  const url = cfg.url!;
  const secret = cfg.secret!;
  const wait = (ms: number, signal: AbortSignal): Promise<void> => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
  return {
    name: 'webhook',
    async send(n, signal) {
      const body = webhookPayload(n);
      try {
        await pRetry(async () => {
          const ts = Math.floor(Date.now() / 1000);
          let res: Response;
          try {
            res = await fetch(url, {
              method: 'POST',
              body,
              headers: {
                'content-type': 'application/json',
                [TIMESTAMP_HEADER]: String(ts),
                [SIGNATURE_HEADER]: signWebhook(secret, ts, body),
                [NOTIFICATION_ID_HEADER]: n.id,
              },
              signal: AbortSignal.any([signal, AbortSignal.timeout(cfg.timeoutMs)]),
            });
          } catch (err) {
            if (signal.aborted) throw new AbortError(new SinkError('attempt deadline reached', false, { cause: err }));
            throw err; // a timeout, a refused connection: retried
          }
          await res.body?.cancel();
          if (res.ok) return;
          if (permanentStatus(res.status)) throw new AbortError(new SinkError(`webhook answered ${res.status}`, true));
          throw new HttpStatusError(res.status, retryAfterMs(res.headers.get('retry-after')));
        }, {
          retries: cfg.retries,
          factor: 2,
          minTimeout: cfg.backoffMs,
          maxTimeout: cfg.backoffMaxMs,
          randomize: true,
          signal,
          onFailedAttempt: async (err) => {
            const after = err instanceof HttpStatusError ? err.retryAfterMs : undefined;
            log.debug({ notification: n.id, attempt: err.attemptNumber, retriesLeft: err.retriesLeft, err: err.message }, 'webhook request failed');
            // The receiver asked for a pause: wait for it (bounded) before p-retry's own back-off.
            if (after !== undefined && err.retriesLeft > 0) await wait(Math.min(after, cfg.maxRetryAfterMs), signal);
          },
        });
      } catch (err) {
        if (err instanceof SinkError) throw err;
        throw new SinkError(`webhook failed: ${(err as Error).message}`, false, { cause: err });
      }
      return 'sent';
    },
    async close() {},
  };
}
