// `parley dlq replay`: gives dead-lettered notifications another round of attempts, exactly once per entry.
// The move to round r+1 is owned by whoever inserts the claim `<id>#replay#<r>` (two replays of one entry, at once
// or one after the other, start one round); the round's attempts are claimed like the consumer's (delivery.ts), so
// a replay racing another replay or a notify instance never sends twice. A replay that stops half-way (killed, or
// out of time) leaves the entry; running it again continues the round it started.
import type { NotificationDoc, NotificationStore } from '../store/index.js';
import type { Delivery } from './delivery.js';
import type { DeadLetters } from './dlq.js';

export interface ReplayDeps {
  store: NotificationStore;
  dlq: DeadLetters;
  delivery: Delivery;
  owner: string;
}

export interface ReplayReport {
  id: string;
  dlqSeq: number;
  /**
   * delivered: sent in the new round; dead-again: the new round failed too (a new entry replaces this one);
   * already-delivered: an earlier replay sent it; in-progress: not finished within the time given (run again);
   * claimed-elsewhere: another replay moved it to the new round and is not done with it; missing: no such notification.
   */
  result: 'delivered' | 'dead-again' | 'already-delivered' | 'in-progress' | 'claimed-elsewhere' | 'missing' | 'not-dead';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function replayDeadLetters(d: ReplayDeps, opts: { id?: string; timeoutMs: number }): Promise<ReplayReport[]> {
  const deadline = Date.now() + opts.timeoutMs;
  const entries = (await d.dlq.list()).filter((e) => opts.id === undefined || e.letter.id === opts.id);
  const reports: ReplayReport[] = [];
  for (const { dlqSeq, letter } of entries) {
    const report = (result: ReplayReport['result']): void => { reports.push({ id: letter.id, dlqSeq, result }); };
    let [doc] = await d.store.get([letter.id]);
    if (!doc) {
      report('missing');
      continue;
    }
    if (doc.round < letter.round || (doc.round === letter.round && doc.state !== 'dead')) {
      report('not-dead');
      continue;
    }
    if (doc.round === letter.round) {
      if (!(await d.store.claim(`${doc._id}#replay#${letter.round}`, d.owner, Number.MAX_SAFE_INTEGER))) {
        // Another replay owns this move; if it has made it, go on with the round it started.
        [doc] = await d.store.get([letter.id]);
        if (!doc || doc.round === letter.round) {
          report('claimed-elsewhere');
          continue;
        }
      } else {
        const next: Partial<NotificationDoc> = { round: letter.round + 1, state: 'pending', attempts: 0, done: [], lastError: '' };
        await d.store.update(doc._id, next);
        doc = { ...doc, ...next };
      }
    }
    let last = doc;
    let outcome = await d.delivery.deliver(last);
    while (!outcome.final && Date.now() < deadline) {
      await sleep(Math.max(10, Math.min(outcome.at, deadline) - Date.now()));
      const [again] = await d.store.get([letter.id]);
      if (!again) break;
      last = again;
      outcome = await d.delivery.deliver(last);
    }
    if (!outcome.final) {
      report('in-progress');
      continue;
    }
    // Sent, or dead in the new round (which published its own entry): this entry is done with.
    await d.dlq.remove(dlqSeq);
    // Found sent (by a concurrent replay, or before): not this run's delivery.
    report(outcome.state === 'sent' ? (last.state === 'sent' ? 'already-delivered' : 'delivered') : 'dead-again');
  }
  return reports;
}
