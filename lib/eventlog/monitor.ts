// What a consuming service (chat, notify) reports on /readyz besides its consumer's own health: whether its MongoDB
// answers a ping, and its durable consumer's lag (also the `consumer_*_messages` gauges). Checked in the background,
// so a probe never waits on either.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger, Metrics } from '../observability/index.js';

/** How often the store and the consumer's lag are checked (and how long a ping may take). */
const MONITOR_MS = 2_000;

export interface ConsumerLag {
  pending: number | undefined;
  ackPending: number | undefined;
}

export interface ServiceMonitor {
  storeOk(): boolean;
  lag(): ConsumerLag;
  close(): void;
}

export interface ServiceMonitorOptions {
  /** Rejects when the store does not answer within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  jsm: JetStreamManager;
  stream: string;
  consumer: string;
  metrics: Metrics;
  log: Logger;
}

export function startServiceMonitor(o: ServiceMonitorOptions): ServiceMonitor {
  const unknown: ConsumerLag = { pending: undefined, ackPending: undefined };
  let storeOk = true;
  let lag = unknown;
  const labels = { consumer: o.consumer };
  const timer = setInterval(() => {
    o.ping(MONITOR_MS).then(() => { storeOk = true; }, (err: unknown) => {
      if (storeOk) o.log.warn({ err }, 'mongo does not answer');
      storeOk = false;
    });
    o.jsm.consumers.info(o.stream, o.consumer).then((info) => {
      lag = { pending: info.num_pending, ackPending: info.num_ack_pending };
      o.metrics.consumerPending.set(labels, info.num_pending);
      o.metrics.consumerAckPending.set(labels, info.num_ack_pending);
    }, () => {
      lag = unknown;
    });
  }, MONITOR_MS);
  timer.unref();
  return { storeOk: () => storeOk, lag: () => lag, close: () => clearInterval(timer) };
}
