// The sinks PARLEY_NOTIFY_SINKS names, built from config (several at once: a notification is sent to each).
import type { NotifyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { NotificationStore } from '../store/index.js';
import { createEmailSink } from './email-sink.js';
import { createLogSink } from './log-sink.js';
import type { Sink } from './sink.js';
import { createWebhookSink } from './webhook-sink.js';

export function createSinks(cfg: NotifyConfig, store: Pick<NotificationStore, 'emailOf'>, log: Logger): Sink[] {
  return cfg.sinks.map((name) => {
    const slog = log.child({ sink: name });
    switch (name) {
      case 'log': return createLogSink(slog);
      case 'webhook': return createWebhookSink(cfg.webhook, slog);
      case 'email': return createEmailSink(cfg.email, (user) => store.emailOf(user), slog);
    }
  });
}
