// A durable pull consumer that hands messages to a batch handler. Three rules make a stall impossible by
// construction rather than by tuning:
// - it pulls only what it can hold: at most `maxBatch` messages are received and unfinished at any time (an explicit
//   fetch of the free room, never a prefetch that keeps pulling while batches are slow);
// - what it holds stays its own: every held message's ack deadline is extended (`working()`) every ackWait/3, so a
//   slow batch never turns the messages queued behind it into redeliveries;
// - but only for a bounded time: a batch that keeps failing, or whose attempt hangs, is retried with back-off for at
//   most `maxHoldMs`; then it and everything queued behind it are handed back (nak with a delay) for another
//   instance to take, this instance pulls nothing for twice ack_wait, `onStuck` runs (the caller recycles its
//   clients) and `health()` reports the instance unhealthy until a batch succeeds again.
// Batches run one at a time, so stream order is kept within one instance; the one exception is an attempt abandoned
// at its hold deadline, which may still finish later (its effects are idempotent: keyed inserts, seqs gateways dedupe).
import { jetstream } from '@nats-io/jetstream';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { backoff } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';
import type { NatsHandle } from './connection.js';

export interface ConsumerHealth {
  /** False while batches have been failing for `maxHoldMs` or longer. */
  healthy: boolean;
  /** Since when batches have been failing (epoch ms), if they are. */
  failingSince: number | undefined;
  /** Messages handed back to the stream after failing for `maxHoldMs`, since start. */
  handedBack: number;
  /** Messages received and not yet finished. */
  held: number;
}

export interface BatchConsumer {
  health(): ConsumerHealth;
  /** Stops pulling, finishes the batch in hand, hands back the rest, and returns. */
  close(): Promise<void>;
}

export interface BatchConsumerOptions {
  stream: string;
  durable: string;
  maxBatch: number;
  /** The consumer's ack_wait: held messages are extended every third of it. */
  ackWaitMs: number;
  /** Longest time one batch is retried before it is handed back. */
  maxHoldMs: number;
  log: Logger;
  handle(batch: JsMsg[]): Promise<void>;
  /** After a batch was handed back: recycle whatever keeps failing (for example a database client). */
  onStuck?(): Promise<void>;
}

const RETRY = backoff([50, 100, 250, 500, 1_000, 2_000, 5_000]);
/** A pull request's lifetime: an idle consumer re-issues one this often. */
const FETCH_EXPIRES_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const TIMED_OUT = Symbol('timed out');
/** The work's outcome, or TIMED_OUT after `ms` (the work goes on; its late outcome is ignored). */
async function withDeadline(work: Promise<void>, ms: number): Promise<void | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms));
  });
  work.catch(() => undefined); // a late failure of abandoned work is not an unhandled rejection
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startBatchConsumer(nats: NatsHandle, o: BatchConsumerOptions): Promise<BatchConsumer> {
  const js = jetstream(nats.nc);
  const consumer = await js.consumers.get(o.stream, o.durable);
  /** Received, waiting for a batch. */
  let queued: JsMsg[] = [];
  /** The batch being handled. */
  let current: JsMsg[] = [];
  let running: Promise<void> | undefined;
  let fetching: ConsumerMessages | undefined;
  let closing = false;
  let failingSince: number | undefined;
  let handedBack = 0;
  /** After a hand-back this instance pulls nothing until then, so that a healthy instance gets the batch. */
  let pauseUntil = 0;
  let spaceFreed: (() => void) | undefined;
  let wake: (() => void) | undefined;
  /** A pause of the pull loop that close() cuts short. */
  const pauseFor = (ms: number): Promise<void> => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });

  const held = (): number => queued.length + current.length;

  const keepAlive = setInterval(() => {
    for (const m of current) m.working();
    for (const m of queued) m.working();
  }, Math.max(100, Math.floor(o.ackWaitMs / 3)));
  keepAlive.unref();

  const handBack = async (): Promise<void> => {
    const back = current.concat(queued);
    current = [];
    queued = [];
    // The delay keeps a broken instance from taking the same messages straight back; a healthy one gets them then.
    for (const m of back) m.nak(o.ackWaitMs);
    handedBack += back.length;
    pauseUntil = Date.now() + 2 * o.ackWaitMs;
    fetching?.stop();
    o.log.error({ messages: back.length, maxHoldMs: o.maxHoldMs }, 'batch kept failing; handed back to the stream');
    if (o.onStuck) await o.onStuck().catch((err: unknown) => o.log.error({ err }, 'recovery after a stuck batch failed'));
  };

  const run = async (): Promise<void> => {
    while (queued.length > 0 && !closing) {
      current = queued.length <= o.maxBatch ? queued : queued.slice(0, o.maxBatch);
      queued = queued.length <= o.maxBatch ? [] : queued.slice(o.maxBatch);
      const started = Date.now();
      for (let attempt = 0; ; attempt++) {
        try {
          // An attempt that hangs (a driver waiting forever on a broken connection) counts against the hold time
          // too: at the deadline the batch is handed back whether or not the attempt ever returns.
          if (await withDeadline(o.handle(current), started + o.maxHoldMs - Date.now()) === TIMED_OUT) {
            failingSince ??= started;
            o.log.warn({ size: current.length, maxHoldMs: o.maxHoldMs }, 'batch still running at its hold deadline');
            await handBack();
            break;
          }
          failingSince = undefined;
          break;
        } catch (err) {
          if (closing) return; // unacked: redelivered after ack_wait (close() hands the queue back at once)
          failingSince ??= started;
          if (Date.now() - started >= o.maxHoldMs) {
            o.log.warn({ err }, 'batch failed');
            await handBack();
            break;
          }
          const wait = RETRY.backoff(attempt);
          o.log.warn({ err, attempt, size: current.length, waitMs: wait }, 'batch failed; retrying');
          await sleep(wait);
          if (closing) return;
        }
      }
      current = [];
      spaceFreed?.();
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
        if (queued.length > 0 && !closing) schedule();
      });
  };

  const pullLoop = async (): Promise<void> => {
    let failures = 0;
    while (!closing) {
      const room = o.maxBatch - held();
      // Wait for half a batch of room: pulling one message at a time would cost a round trip per message.
      if (room < Math.ceil(o.maxBatch / 2)) {
        await new Promise<void>((resolve) => {
          spaceFreed = resolve;
        });
        spaceFreed = undefined;
        continue;
      }
      const pause = pauseUntil - Date.now();
      if (pause > 0) {
        await pauseFor(pause);
        continue;
      }
      try {
        const iter = await consumer.fetch({ max_messages: room, expires: FETCH_EXPIRES_MS });
        fetching = iter;
        for await (const m of iter) {
          queued.push(m);
          schedule();
        }
        failures = 0;
      } catch (err) {
        if (closing) break;
        const wait = RETRY.backoff(failures++);
        o.log.warn({ err, waitMs: wait }, 'pull failed; retrying');
        await pauseFor(wait);
      } finally {
        fetching = undefined;
      }
    }
  };
  const pulling = pullLoop().catch((err: unknown) => o.log.error({ err }, 'pull loop failed'));

  return {
    health() {
      return {
        healthy: failingSince === undefined || Date.now() - failingSince < o.maxHoldMs,
        failingSince,
        handedBack,
        held: held(),
      };
    },
    async close() {
      closing = true;
      fetching?.stop();
      spaceFreed?.();
      wake?.();
      await running;
      await pulling;
      clearInterval(keepAlive);
      // Not started: another instance may take them now instead of after ack_wait.
      for (const m of queued) m.nak();
      queued = [];
    },
  };
}
