// Removes single events from the stream: resends that JetStream no longer recognised as duplicates (lib/chat), so
// that no reader of the stream (gap repair, `since` replay, history, the reconciler) ever shows them.
import type { JetStreamManager } from '@nats-io/jetstream';
import { isSequenceGone } from './errors.js';

/** Deletes each seq (without erasing its bytes); a seq already gone counts as deleted. */
export async function deleteEvents(jsm: JetStreamManager, stream: string, seqs: readonly number[]): Promise<void> {
  await Promise.all(seqs.map(async (seq) => {
    try {
      await jsm.streams.deleteMessage(stream, seq, false);
    } catch (err) {
      if (!isSequenceGone(err)) throw new Error(`deleting seq ${seq} from the stream failed`, { cause: err });
    }
  }));
}
