// The reconciler: the stream is the truth and MongoDB its projection (docs/decisions/0002), so whatever MongoDB
// lacks of what the chat consumer has acknowledged is re-inserted from the stream, keyed by the namespaced id as
// every insert is (idempotent, original seq). It compares by seq range: seqs are unique across the stream, and one
// indexed query per chunk tells which of the chunk's seqs are stored, so a pass that finds nothing missing costs a
// stream read and one query per chunk.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { RoomReader } from '../eventlog/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import { toDoc } from '../store/index.js';
import type { MessageStore } from '../store/index.js';

export interface ReconcileDeps {
  reader: RoomReader;
  store: MessageStore;
  jsm: JetStreamManager;
  stream: string;
  /** The chat consumer: only what it acknowledged must be stored (beyond its ack floor chat is still at work). */
  consumer: string;
  log: Logger;
  metrics?: Metrics;
}

export interface ReconcileOptions {
  /** Only this room. */
  room?: RoomId;
  /** Only seqs after this one (default: the stream's first). */
  since?: number;
  /** Stop early (checked between chunks). */
  aborted?: () => boolean;
}

export interface ReconcileReport {
  /** The seq range checked, inclusive (from > to: nothing to check). */
  from: number;
  to: number;
  /** Stream messages checked. */
  checked: number;
  /** Of those, not in MongoDB. */
  missing: number;
  /** Re-inserted now. */
  inserted: number;
  /** Missing by seq but their id is stored under another seq: a resend after the duplicate window, left alone. */
  duplicates: number;
}

/** Seqs compared per MongoDB query. */
const CHUNK = 10_000;
/** Messages per stream read. */
const READ = 1_000;

export async function reconcile(d: ReconcileDeps, o: ReconcileOptions = {}): Promise<ReconcileReport> {
  const { first, last } = await d.reader.bounds();
  const info = await d.jsm.consumers.info(d.stream, d.consumer);
  const to = Math.min(last, info.ack_floor.stream_seq);
  const from = Math.max(first, (o.since ?? 0) + 1, 1);
  const report: ReconcileReport = { from, to, checked: 0, missing: 0, inserted: 0, duplicates: 0 };
  for (let pos = from; pos <= to && !o.aborted?.(); pos += CHUNK) {
    const end = Math.min(pos + CHUNK - 1, to);
    const events: StoredMessage[] = [];
    for (let p = pos; p <= end;) {
      const got = o.room === undefined ? await d.reader.rangeAll(p, end, READ) : await d.reader.range(o.room, p, end, READ);
      if (got.length === 0) break;
      events.push(...got);
      p = got[got.length - 1]!.seq + 1;
    }
    if (events.length === 0) continue;
    const stored = await d.store.seqsIn(pos, end, o.room);
    const missing = events.filter((e) => !stored.has(e.seq)).map(toDoc);
    report.checked += events.length;
    report.missing += missing.length;
    if (missing.length > 0) {
      const { inserted, existing } = await d.store.insert(missing);
      report.inserted += inserted.length;
      report.duplicates += existing.length;
      d.log.warn({ from: pos, to: end, missing: missing.length, inserted: inserted.length }, 'reconciler re-inserted messages missing from MongoDB');
    }
  }
  const m = d.metrics?.reconciled;
  if (m) {
    m.inc({ result: 'checked' }, report.checked);
    m.inc({ result: 'missing' }, report.missing);
    m.inc({ result: 'inserted' }, report.inserted);
    m.inc({ result: 'duplicate' }, report.duplicates);
  }
  return report;
}

export interface Reconciler {
  close(): Promise<void>;
}

/**
 * Runs the reconciler in the background: at start-up over the newest `window` messages, then every `intervalMs`
 * over what is new since the last pass (0: start-up only). A failed pass is logged and retried at the next tick.
 * Older ranges are checked by hand: `parley reconcile --since <seq>`.
 */
export function startReconciler(d: ReconcileDeps, intervalMs: number, window: number): Reconciler {
  let closed = false;
  let checkedTo: number | undefined;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const pass = async (): Promise<void> => {
    try {
      let since = checkedTo;
      if (since === undefined) {
        const { last } = await d.reader.bounds();
        since = Math.max(0, last - window);
      }
      const r = await reconcile(d, { since, aborted: () => closed });
      if (!closed) checkedTo = Math.max(since, r.to);
      d.log.info(r, 'reconciled');
    } catch (err) {
      d.log.warn({ err }, 'reconcile pass failed; retrying at the next tick');
    }
  };
  const tick = (): void => {
    if (closed) return;
    running = pass().finally(() => {
      running = undefined;
      if (!closed && intervalMs > 0) timer = setTimeout(tick, intervalMs);
    });
  };
  tick();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
