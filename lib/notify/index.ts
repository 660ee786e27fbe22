// The notification service (lib/notify): recipients, sinks, attempts, the dead-letter stream and its replay.
export { startNotify } from './service.js';
export { createDelivery, toNotification } from './delivery.js';
export { ensureDeadLetters } from './dlq.js';
export { replayDeadLetters } from './replay.js';
export { candidates, directMembers, directRoom } from './recipients.js';
export { createSinks } from './sinks.js';
export { createNotifyMetrics } from './metrics.js';
export { SinkError } from './sink.js';
export { NOTIFICATION_ID_HEADER, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SEC, TIMESTAMP_HEADER, signWebhook, verifyWebhook } from './signature.js';
export { createWebhookSink, retryAfterMs, webhookPayload } from './webhook-sink.js';
export { createEmailSink, emailContent, fillTemplate } from './email-sink.js';
export { createLogSink } from './log-sink.js';

export type { NotifyDeps, NotifyService, NotifyStatus } from './service.js';
export type { Delivery, DeliveryDeps, Outcome } from './delivery.js';
export type { DeadLetter, DeadLetterEntry, DeadLetters } from './dlq.js';
export type { ReplayReport, ReplayDeps } from './replay.js';
export type { Candidate } from './recipients.js';
export type { Notification, Sink } from './sink.js';
export type { NotifyMetrics } from './metrics.js';
export type { VerifyResult } from './signature.js';
