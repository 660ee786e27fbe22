// The notification service's metrics, on the process's Parley registry (lib/observability); consumer lag goes to
// the shared consumer_pending_messages / consumer_ack_pending_messages gauges with consumer="notify".
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';

export interface NotifyMetrics {
  /** Notifications by sink and result: sent, skipped (nothing to do for the recipient), failed (an attempt), dead. */
  results: Counter<'service' | 'sink' | 'result'>;
  /** Attempts by sink (one per claimed attempt and sink it still had to reach). */
  attempts: Counter<'service' | 'sink'>;
  /** Notifications recorded (new) and found recorded already (a redelivery, another instance). */
  recorded: Counter<'service' | 'result'>;
}

export function createNotifyMetrics(registry: Registry): NotifyMetrics {
  return {
    results: new Counter({ name: 'notifications_total', help: 'Notifications by sink and result (sent, skipped, failed, dead).', labelNames: ['service', 'sink', 'result'], registers: [registry] }),
    attempts: new Counter({ name: 'notification_attempts_total', help: 'Delivery attempts by sink.', labelNames: ['service', 'sink'], registers: [registry] }),
    recorded: new Counter({ name: 'notifications_recorded_total', help: 'Notification records: new, or existing (recorded by an earlier delivery or another instance).', labelNames: ['service', 'result'], registers: [registry] }),
  };
}
