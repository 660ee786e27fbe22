// Prometheus metrics on a registry of Parley's own (never the global default); label values stay bounded.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODES } from '../protocol/codes.js';

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
  /** Chat's MongoDB insert of one batch. */
  mongoWrite: Histogram<'service' | 'result'>;
  /** JetStream deliveries handed to a consumer's handler, and how many of them were redeliveries. */
  consumerDeliveries: Counter<'service' | 'consumer'>;
  consumerRedeliveries: Counter<'service' | 'consumer'>;
  /** Sends JetStream recognised as duplicates of a stored id (acked with `duplicate: true`, never stored twice). */
  duplicateSends: Counter<'service'>;
  /** WebSocket connections closed, by close code (a fixed set: 1000..1013 and Parley's 4xxx; anything else `other`). */
  connectionsClosed: Counter<'service' | 'code'>;
  observeLatency(seconds: number): void;
  /** Counts a closed connection under its code (bounded, see KNOWN_CLOSE_CODES). */
  observeClose(code: number): void;
  /** Runs a MongoDB write and records its duration in `mongo_write_seconds`. */
  timeMongoWrite<T>(write: () => Promise<T>): Promise<T>;
  /**
   * The exposition text, rendered at most once per `renderCacheMs` (concurrent scrapes share one rendering): a
   * rendering walks every metric and costs milliseconds of the event loop, so a scrape flood must not multiply it.
   */
  render(): Promise<string>;
}

export interface MetricsOptions {
  renderCacheMs?: number;
  /** The `instance` label of every series (one process); Prometheus keeps it with `honor_labels: true`. */
  instance?: string;
}

/** From 100 µs to 10 s: sub-millisecond hops (a local publish) and multi-second stalls resolve alike. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Close codes counted by their number; any other is `other`, so a client cannot grow the label set. */
const KNOWN_CLOSE_CODES = new Set([1000, 1001, 1005, 1006, 1009, 1011, 1012, 1013, 4001, 4003, 4008, 4009, 4010]);

export function createMetrics(service: string, opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels(opts.instance === undefined ? { service } : { service, instance: opts.instance });
  // Event-loop lag (and its percentiles), heap, GC durations, handles, CPU: per process.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const messagesSent = new Counter({ name: 'messages_sent_total', help: 'Chat messages acknowledged to senders (stored in JetStream).', labelNames: ['service'], registers: [registry] });
  const activeConnections = new Gauge({ name: 'active_connections_total', help: 'Open WebSocket connections.', labelNames: ['service'], registers: [registry] });
  const messageLatency = new Histogram({ name: 'message_latency_seconds', help: 'End-to-end latency from gateway accept to broadcast by a gateway.', labelNames: ['service'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const avgMessageLatencyMs = new Gauge({ name: 'avg_message_latency_ms', help: 'Moving average (EWMA) of end-to-end message latency in milliseconds.', labelNames: ['service'], registers: [registry] });
  const jetstreamPublish = new Histogram({ name: 'jetstream_publish_seconds', help: 'Time from publish to PubAck.', labelNames: ['service', 'result'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const framesRejected = new Counter({ name: 'frames_rejected_total', help: 'Client frames answered with an error frame, by code.', labelNames: ['service', 'code'], registers: [registry] });
  // Every code exported from the start at 0: `increase()` over a counter needs a sample before the first rejection.
  for (const code of Object.keys(ERROR_CODES)) framesRejected.inc({ code }, 0);
  const persisted = new Counter({ name: 'messages_persisted_total', help: 'Events handled by the chat service: stored, redelivered, or duplicate.', labelNames: ['service', 'result'], registers: [registry] });
  const consumerPending = new Gauge({ name: 'consumer_pending_messages', help: 'Stream messages the consumer has not delivered yet (its lag).', labelNames: ['service', 'consumer'], registers: [registry] });
  const consumerAckPending = new Gauge({ name: 'consumer_ack_pending_messages', help: 'Messages delivered to the consumer and not acknowledged yet.', labelNames: ['service', 'consumer'], registers: [registry] });
  const reconciled = new Counter({ name: 'reconcile_messages_total', help: 'Stream messages the reconciler checked against MongoDB, by result (checked, missing, inserted, duplicate).', labelNames: ['service', 'result'], registers: [registry] });
  const gapsUnrepaired = new Counter({ name: 'room_gaps_unrepaired_total', help: 'Rooms whose gap a gateway could not read from the stream in time; their clients were told to recover (close 4010).', labelNames: ['service'], registers: [registry] });
  const storageInflight = new Gauge({ name: 'storage_queries_inflight', help: 'Storage reads running now.', labelNames: ['service'], registers: [registry] });
  const storageQueued = new Gauge({ name: 'storage_queries_queued', help: 'Storage reads waiting for a slot now.', labelNames: ['service'], registers: [registry] });
  const storageQueries = new Counter({ name: 'storage_queries_total', help: 'Storage reads by outcome: ok, error, rejected (bound reached), expired (waited too long), skipped (client gone).', labelNames: ['service', 'result'], registers: [registry] });
  const mongoWrite = new Histogram({ name: 'mongo_write_seconds', help: 'Time of one MongoDB insert of a batch of messages (chat).', labelNames: ['service', 'result'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const consumerDeliveries = new Counter({ name: 'consumer_deliveries_total', help: 'JetStream messages delivered to the consumer\'s handler (each attempt of a batch counts).', labelNames: ['service', 'consumer'], registers: [registry] });
  const consumerRedeliveries = new Counter({ name: 'consumer_redeliveries_total', help: 'Deliveries JetStream marked as redelivered (ack_wait passed, nak, or a restart).', labelNames: ['service', 'consumer'], registers: [registry] });
  const duplicateSends = new Counter({ name: 'messages_duplicate_total', help: 'Sends JetStream recognised as a duplicate of a stored id (acked with duplicate: true).', labelNames: ['service'], registers: [registry] });
  const connectionsClosed = new Counter({ name: 'connections_closed_total', help: 'WebSocket connections closed, by close code (4009: slow client, 4008: policy, 4001: token expired).', labelNames: ['service', 'code'], registers: [registry] });
  const cacheMs = opts.renderCacheMs ?? 1_000;
  let cached: { at: number; text: Promise<string> } | undefined;
  let ewma = 0;
  return {
    registry, messagesSent, activeConnections, messageLatency, avgMessageLatencyMs, jetstreamPublish, framesRejected, persisted,
    storageInflight, storageQueued, storageQueries, consumerPending, consumerAckPending, reconciled, gapsUnrepaired,
    mongoWrite, consumerDeliveries, consumerRedeliveries, duplicateSends, connectionsClosed,
    render() {
      const now = Date.now();
      if (cached && now - cached.at < cacheMs) return cached.text;
      const text = registry.metrics();
      cached = { at: now, text };
      // A failed rendering is not reused.
      text.catch(() => { if (cached?.text === text) cached = undefined; });
      return text;
    },
    observeClose(code) {
      connectionsClosed.inc({ code: KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other' });
    },
    async timeMongoWrite(write) {
      const started = performance.now();
      try {
        const r = await write();
        mongoWrite.observe({ result: 'ok' }, (performance.now() - started) / 1000);
        return r;
      } catch (err) {
        mongoWrite.observe({ result: 'error' }, (performance.now() - started) / 1000);
        throw err;
      }
    },
    observeLatency(seconds) {
      messageLatency.observe(seconds);
      const ms = seconds * 1000;
      ewma = ewma === 0 ? ms : ewma * 0.95 + ms * 0.05;
      avgMessageLatencyMs.set(ewma);
    },
  };
}
