// The webhook signature: HMAC-SHA256 over `<timestamp>.<body>` with the shared secret, sent as
//   Parley-Timestamp: <unix seconds>        Parley-Signature: v1=<hex>
// A receiver recomputes it over the raw body, compares in constant time, and rejects a timestamp further than its
// tolerance from its own clock (a captured request replayed later fails), then deduplicates by Parley-Notification-Id.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'parley-signature';
export const TIMESTAMP_HEADER = 'parley-timestamp';
export const NOTIFICATION_ID_HEADER = 'parley-notification-id';
/** Default tolerance for the timestamp, in seconds. */
export const SIGNATURE_TOLERANCE_SEC = 300;

export function signWebhook(secret: string, timestampSec: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampSec}.${body}`).digest('hex')}`;
}

export type VerifyResult = { ok: true } | { ok: false; reason: 'missing' | 'stale' | 'mismatch' };

/** Checks a request as a receiver should: signature over timestamp + raw body, and a timestamp within tolerance. */
export function verifyWebhook(
  secret: string, headers: { timestamp?: string | null; signature?: string | null }, body: string,
  nowSec = Math.floor(Date.now() / 1000), toleranceSec = SIGNATURE_TOLERANCE_SEC,
): VerifyResult {
  const ts = headers.timestamp ?? '';
  const sig = headers.signature ?? '';
  if (!/^\d{1,12}$/.test(ts) || !sig.startsWith('v1=')) return { ok: false, reason: 'missing' };
  if (Math.abs(nowSec - Number(ts)) > toleranceSec) return { ok: false, reason: 'stale' };
  const want = Buffer.from(signWebhook(secret, Number(ts), body));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: 'mismatch' };
  return { ok: true };
}
