// Prometheus metrics on a registry of Parley's own (never the global default); label values stay bounded.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  messagesSent: Counter<'service'>;
  activeConnections: Gauge<'service'>;
  messageLatency: Histogram<'service'>;
  avgMessageLatencyMs: Gauge<'service'>;
  jetstreamPublish: Histogram<'service' | 'result'>;
  framesRejected: Counter<'service' | 'code'>;
  persisted: Counter<'service' | 'result'>;
  consumerPending: Gauge<'service' | 'consumer'>;
  consumerAckPending: Gauge<'service' | 'consumer'>;
  reconciled: Counter<'service' | 'result'>;
  gapsUnrepaired: Counter<'service'>;
  /** Storage reads of this process running / waiting for a slot (lib/store/gate.ts), and how each one ended. */
  storageInflight: Gauge<'service'>;
  storageQueued: Gauge<'service'>;
  storageQueries: Counter<'service' | 'result'>;
  observeLatency(seconds: number): void;
  /**
   * The exposition text, rendered at most once per `renderCacheMs` (concurrent scrapes share one rendering): a
   * rendering walks every metric and costs milliseconds of the event loop, so a scrape flood must not multiply it.
   */
  render(): Promise<string>;
}

export interface MetricsOptions {
  renderCacheMs?: number;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(service: string, opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const messagesSent = new Counter({ name: 'messages_sent_total', help: 'Chat messages acknowledged to senders (stored in JetStream).', labelNames: ['service'], registers: [registry] });
  const activeConnections = new Gauge({ name: 'active_connections_total', help: 'Open WebSocket connections.', labelNames: ['service'], registers: [registry] });
  const messageLatency = new Histogram({ name: 'message_latency_seconds', help: 'End-to-end latency from gateway accept to broadcast by a gateway.', labelNames: ['service'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const avgMessageLatencyMs = new Gauge({ name: 'avg_message_latency_ms', help: 'Moving average (EWMA) of end-to-end message latency in milliseconds.', labelNames: ['service'], registers: [registry] });
  const jetstreamPublish = new Histogram({ name: 'jetstream_publish_seconds', help: 'Time from publish to PubAck.', labelNames: ['service', 'result'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const framesRejected = new Counter({ name: 'frames_rejected_total', help: 'Client frames answered with an error frame, by code.', labelNames: ['service', 'code'], registers: [registry] });
  const persisted = new Counter({ name: 'messages_persisted_total', help: 'Events handled by the chat service: stored, redelivered, or duplicate.', labelNames: ['service', 'result'], registers: [registry] });
  const consumerPending = new Gauge({ name: 'consumer_pending_messages', help: 'Stream messages the consumer has not delivered yet (its lag).', labelNames: ['service', 'consumer'], registers: [registry] });
  const consumerAckPending = new Gauge({ name: 'consumer_ack_pending_messages', help: 'Messages delivered to the consumer and not acknowledged yet.', labelNames: ['service', 'consumer'], registers: [registry] });
  const reconciled = new Counter({ name: 'reconcile_messages_total', help: 'Stream messages the reconciler checked against MongoDB, by result (checked, missing, inserted, duplicate).', labelNames: ['service', 'result'], registers: [registry] });
  const gapsUnrepaired = new Counter({ name: 'room_gaps_unrepaired_total', help: 'Rooms whose gap a gateway could not read from the stream in time; their clients were told to recover (close 4010).', labelNames: ['service'], registers: [registry] });
  const storageInflight = new Gauge({ name: 'storage_queries_inflight', help: 'Storage reads running now.', labelNames: ['service'], registers: [registry] });
  const storageQueued = new Gauge({ name: 'storage_queries_queued', help: 'Storage reads waiting for a slot now.', labelNames: ['service'], registers: [registry] });
  const storageQueries = new Counter({ name: 'storage_queries_total', help: 'Storage reads by outcome: ok, error, rejected (bound reached), expired (waited too long), skipped (client gone).', labelNames: ['service', 'result'], registers: [registry] });
  const cacheMs = opts.renderCacheMs ?? 1_000;
  let cached: { at: number; text: Promise<string> } | undefined;
  let ewma = 0;
  return {
    registry, messagesSent, activeConnections, messageLatency, avgMessageLatencyMs, jetstreamPublish, framesRejected, persisted,
    storageInflight, storageQueued, storageQueries, consumerPending, consumerAckPending, reconciled, gapsUnrepaired,
    render() {
      const now = Date.now();
      if (cached && now - cached.at < cacheMs) return cached.text;
      const text = registry.metrics();
      cached = { at: now, text };
      // A failed rendering is not reused.
      text.catch(() => { if (cached?.text === text) cached = undefined; });
      return text;
    },
    observeLatency(seconds) {
      messageLatency.observe(seconds);
      const ms = seconds * 1000;
      ewma = ewma === 0 ? ms : ewma * 0.95 + ms * 0.05;
      avgMessageLatencyMs.set(ewma);
    },
  };
}
