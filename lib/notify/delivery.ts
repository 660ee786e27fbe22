// One notification's attempts, safe with any number of instances on FerretDB v1 (no transactions, no atomic
// compare-and-set): attempt k of round r is owned by whoever inserts the claim `<id>#<r>#<k>` (unique _id), for a
// lease. Only the holder of the current claim writes the notification's document, and it writes nothing once its
// lease is nearly over; an attempt whose holder died is taken over with the next claim once the lease has passed.
// So two instances never send the same notification at the same time, and every attempt, including one that
// crashed, counts towards the limit after which the notification goes to the dead-letter stream (docs/decisions/0018).
import { backoff } from '@nats-io/transport-node';
import type { Logger } from '../observability/index.js';
import type { NotificationDoc, NotificationStore } from '../store/index.js';
import type { DeadLetters } from './dlq.js';
import type { NotifyMetrics } from './metrics.js';
import { SinkError } from './sink.js';
import type { Notification, Sink } from './sink.js';

export interface DeliveryDeps {
  store: NotificationStore;
  sinks: Sink[];
  dlq: DeadLetters;
  metrics: NotifyMetrics;
  log: Logger;
  /** This instance, written into its claims. */
  owner: string;
  maxAttempts: number;
  leaseMs: number;
  retryMs: number;
  retryMaxMs: number;
}

/** Final: nothing more to do (sent, or dead and in the dead-letter stream). Later: try again at `at` (epoch ms). */
export type Outcome = { final: true; state: 'sent' | 'dead' } | { final: false; at: number };

export function toNotification(doc: NotificationDoc, attempt: number): Notification {
  return {
    id: doc._id, messageId: doc.messageId, recipient: doc.recipient, reason: doc.reason, room: doc.room, seq: doc.seq,
    from: doc.from, body: doc.body, ts: doc.ts, attempt, round: doc.round,
  };
}

export interface Delivery {
  /** Runs the next attempt of `doc` if nobody holds it; `doc` must have been read (or inserted) just before. */
  deliver(doc: NotificationDoc): Promise<Outcome>;
}

export function createDelivery(d: DeliveryDeps): Delivery {
  // Delay before attempt k+1: retryMs doubling per attempt up to retryMaxMs, with jitter (nats.js's backoff helper).
  const policy = Array.from({ length: Math.max(1, d.maxAttempts) }, (_, i) => Math.min(d.retryMaxMs, d.retryMs * 2 ** i));
  const retryDelay = backoff(policy);
  // The holder stops writing this long before its lease ends, and its sinks give up twice as long before: a write
  // that lands after the lease could race the next holder's.
  const margin = Math.min(5_000, Math.floor(d.leaseMs / 10));

  const markDead = async (doc: NotificationDoc, attempts: number, done: string[], error: string): Promise<Outcome> => {
    // Recorded first, then published: a crash in between leaves a dead notification whose redelivery publishes it
    // (the entry's Nats-Msg-Id makes that publish once).
    await d.store.update(doc._id, { state: 'dead', attempts, done, lastError: error });
    await d.dlq.publish({ ...doc, attempts, done }, error);
    for (const s of d.sinks) if (!done.includes(s.name)) d.metrics.results.inc({ sink: s.name, result: 'dead' });
    d.log.warn({ notification: doc._id, recipient: doc.recipient, attempts, round: doc.round, error }, 'notification dead-lettered');
    return { final: true, state: 'dead' };
  };

  return {
    async deliver(doc) {
      if (doc.state === 'sent') return { final: true, state: 'sent' };
      if (doc.state === 'dead') {
        await d.dlq.publish(doc, doc.lastError ?? 'dead');
        return { final: true, state: 'dead' };
      }
      let k = doc.attempts + 1;
      let skipped = false;
      let leaseUntil = 0;
      for (;;) {
        if (k > d.maxAttempts) {
          // Every attempt was claimed and its lease has passed (holders that died count too): the last holder
          // could not record a death, so whoever gets here does; the same values from two of them are harmless.
          return markDead(doc, d.maxAttempts, doc.done, doc.lastError ?? 'attempts exhausted (the last holders stopped)');
        }
        const claimId = `${doc._id}#${doc.round}#${k}`;
        leaseUntil = Date.now() + d.leaseMs;
        if (await d.store.claim(claimId, d.owner, leaseUntil)) break;
        const c = await d.store.claimOf(claimId);
        if (c && c.leaseUntil > Date.now()) return { final: false, at: c.leaseUntil + 50 };
        k++;
        skipped = true;
      }
      if (skipped) {
        // An earlier holder may have finished within its lease after `doc` was read: read it again, now that no
        // one else may write it.
        const [fresh] = await d.store.get([doc._id]);
        if (!fresh || fresh.state === 'sent') return { final: true, state: 'sent' };
        if (fresh.state === 'dead' || fresh.round !== doc.round) return { final: true, state: 'dead' };
        doc = fresh;
      }
      const todo = d.sinks.filter((s) => !doc.done.includes(s.name));
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), Math.max(0, leaseUntil - 2 * margin - Date.now()));
      const n = toNotification(doc, k);
      const results = await Promise.allSettled(todo.map(async (s) => {
        d.metrics.attempts.inc({ sink: s.name });
        const r = await s.send(n, ac.signal);
        d.metrics.results.inc({ sink: s.name, result: r });
        return s.name;
      }));
      clearTimeout(timer);
      const done = [...doc.done];
      const failures: { sink: string; err: unknown }[] = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') done.push(r.value);
        else failures.push({ sink: todo[i]!.name, err: r.reason });
      });
      if (Date.now() > leaseUntil - margin) {
        // The lease is (nearly) over: hold on by claiming the next attempt ourselves. If someone else has it, they
        // own the document now and we must not write (what we sent may be sent again: at-least-once, 0018).
        k += 1;
        leaseUntil = Date.now() + d.leaseMs;
        if (!(await d.store.claim(`${doc._id}#${doc.round}#${k}`, d.owner, leaseUntil))) {
          d.log.warn({ notification: doc._id, attempt: k - 1 }, 'attempt outlived its lease; left to the next claim');
          return { final: false, at: Date.now() };
        }
      }
      if (failures.length === 0) {
        await d.store.update(doc._id, { state: 'sent', attempts: k, done });
        return { final: true, state: 'sent' };
      }
      for (const f of failures) d.metrics.results.inc({ sink: f.sink, result: 'failed' });
      const error = failures.map((f) => `${f.sink}: ${f.err instanceof Error ? f.err.message : String(f.err)}`).join('; ');
      const permanent = failures.some((f) => f.err instanceof SinkError && f.err.permanent);
      if (permanent || k >= d.maxAttempts) return markDead({ ...doc }, k, done, error);
      await d.store.update(doc._id, { state: 'failed', attempts: k, done, lastError: error });
      d.log.warn({ notification: doc._id, recipient: doc.recipient, attempt: k, error }, 'notification attempt failed');
      return { final: false, at: Date.now() + retryDelay.backoff(k - 1) };
    },
  };
}
