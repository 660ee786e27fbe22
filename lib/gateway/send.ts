// A send, idempotent for hours (docs/decisions/0015): an id already stored is acked with its original seq and never
// published again; a new one is published (JetStream deduplicates within its own window) and its seq recorded.
import { namespacedId } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
import type { GatewayDeps } from './deps.js';
import { withSpan } from '../observability/index.js';
import type { Span } from '../observability/index.js';

export interface SendOutcome {
  ack(seq: number, duplicate: boolean): void;
  fail(err: unknown): void;
}

/**
 * Starts the lookup of a send's id. The gateway starts it together with the send's rate-limit check (a separate
 * Redis round trip, on another slot of a Redis Cluster), so the two cost one round trip of latency, not two.
 */
export function lookupSend(d: GatewayDeps, from: string, id: string): Promise<number | undefined> {
  const p = d.ids.lookup(namespacedId(from, id));
  p.catch(() => undefined); // a send refused by the limiter never awaits its lookup
  return p;
}

/** Never rejects: the outcome is one call of `ack` or `fail`. `lookup` is the id's lookup, started by `lookupSend`. */
export async function sendOnce(
  d: GatewayDeps, ev: ChatMessage, span: Span | undefined, out: SendOutcome, lookup = lookupSend(d, ev.from, ev.id),
): Promise<void> {
  const { metrics, log } = d;
  const nsid = namespacedId(ev.from, ev.id);
  // Redis down: JetStream's duplicate window is all there is (the ack of a resend beyond it carries a new seq, which
  // chat then drops; docs/decisions/0015), and the outcome of the record below decides.
  let known: number | undefined;
  let lookedUp = true;
  try {
    known = await lookup;
  } catch (err) {
    lookedUp = false;
    log.debug({ err }, 'message id lookup failed; JetStream deduplicates alone');
  }
  if (known !== undefined) {
    metrics.duplicateSends.inc();
    out.ack(known, true);
    return;
  }
  const started = performance.now();
  let seq: number;
  let duplicate: boolean;
  try {
    const pa = await withSpan(span, () => d.publisher.publish(ev, span));
    metrics.jetstreamPublish.observe({ result: 'ok' }, (performance.now() - started) / 1000);
    seq = pa.seq;
    duplicate = pa.duplicate;
  } catch (err) {
    metrics.jetstreamPublish.observe({ result: 'error' }, (performance.now() - started) / 1000);
    out.fail(err);
    return;
  }
  if (duplicate) {
    metrics.duplicateSends.inc();
    out.ack(seq, true);
    return;
  }
  const recorded = d.ids.record(nsid, seq).catch((err: unknown) => {
    log.debug({ err }, 'message id not recorded; chat records it when it consumes the event');
    return seq;
  });
  if (lookedUp) {
    // The common case: nothing was recorded a moment ago, so nothing else can be now but this seq (a concurrent
    // resend is JetStream's duplicate of it, and chat records the same seq); the ack need not wait.
    metrics.messagesSent.inc();
    out.ack(seq, false);
    void recorded.then((first) => {
      if (first !== seq) log.warn({ seq, first }, 'message id recorded with another seq meanwhile');
    });
    return;
  }
  // The lookup failed: the id may well be stored under another seq, which the record tells if Redis answers now.
  const first = await recorded;
  if (first === seq) metrics.messagesSent.inc();
  else metrics.duplicateSends.inc();
  out.ack(first, first !== seq);
}
