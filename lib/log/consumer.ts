// A durable pull consumer that hands messages to a batch handler: messages that arrive together are processed
// together, batches run one at a time (so stream order is kept within one instance), and a failing batch is retried
// in place with back-off while its ack deadline is extended, instead of being nak'ed into a redelivery storm.
import { jetstream } from '@nats-io/jetstream';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { backoff } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';
import type { NatsHandle } from './connection.js';

export interface BatchConsumer {
  /** Stops pulling, finishes the batch in hand, and returns; unacked messages are redelivered elsewhere. */
  close(): Promise<void>;
}

export interface BatchConsumerOptions {
  stream: string;
  durable: string;
  maxBatch: number;
  log: Logger;
  handle(batch: JsMsg[]): Promise<void>;
}

const RETRY = backoff([50, 100, 250, 500, 1_000, 2_000, 5_000]);

export async function startBatchConsumer(nats: NatsHandle, o: BatchConsumerOptions): Promise<BatchConsumer> {
  const js = jetstream(nats.nc);
  const consumer = await js.consumers.get(o.stream, o.durable);
  let pending: JsMsg[] = [];
  let running: Promise<void> | undefined;
  let closing = false;

  const run = async (): Promise<void> => {
    while (pending.length > 0 && !closing) {
      const batch = pending.length <= o.maxBatch ? pending : pending.slice(0, o.maxBatch);
      pending = pending.length <= o.maxBatch ? [] : pending.slice(o.maxBatch);
      for (let attempt = 0; ; attempt++) {
        try {
          await o.handle(batch);
          break;
        } catch (err) {
          if (closing) return; // unacked: JetStream redelivers after ack_wait
          const wait = RETRY.backoff(attempt);
          o.log.warn({ err, attempt, size: batch.length, waitMs: wait }, 'batch failed; retrying');
          for (const m of batch) m.working();
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    }
  };
  const schedule = (): void => {
    if (running) return;
    // setImmediate lets every message of the current socket read join the batch before it runs.
    running = new Promise<void>((resolve) => setImmediate(resolve))
      .then(run)
      .catch((err: unknown) => o.log.error({ err }, 'consumer loop failed'))
      .finally(() => {
        running = undefined;
        if (pending.length > 0 && !closing) schedule();
      });
  };

  const messages: ConsumerMessages = await consumer.consume({
    max_messages: Math.max(o.maxBatch * 2, 64),
    callback: (m) => {
      pending.push(m);
      schedule();
    },
  });
  void (async () => {
    for await (const s of messages.status()) {
      if (s.type === 'heartbeats_missed' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
        o.log.warn({ status: s.type }, 'consumer status');
      }
    }
  })();

  return {
    async close() {
      messages.stop();
      await messages.closed().catch(() => undefined);
      closing = true;
      await running;
      pending = [];
    },
  };
}
