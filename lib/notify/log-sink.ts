// The default sink: one structured log line per notification (ids and names only, never the body).
import type { Logger } from '../observability/index.js';
import type { Notification, Sink } from './sink.js';

export function createLogSink(log: Logger): Sink {
  return {
    name: 'log',
    async send(n: Notification) {
      log.info({ notification: n.id, recipient: n.recipient, reason: n.reason, room: n.room, seq: n.seq, from: n.from, attempt: n.attempt },
        'notification');
      return 'sent';
    },
    async close() {},
  };
}
