// A durable pull consumer that hands messages to a batch handler. Three rules make a stall impossible by
// construction rather than by tuning:
// - it pulls only what it can hold: at most `maxBatch` messages are received and not yet through the ordered step,
//   and at most `maxUnordered` more wait for their unordered step (explicit fetches of the free room, never a
//   prefetch that keeps pulling while batches are slow);
// - what it holds stays its own: every held message's ack deadline is extended (`working()`) every ackWait/3, so a
//   slow batch never turns the messages queued behind it into redeliveries;
// - but only for a bounded time: a step that keeps failing, or whose attempt hangs, is retried with back-off for at
//   most `maxHoldMs`; then its batch is handed back (nak with a delay) for another instance to take, `onStuck` runs
//   (the caller recycles its clients) and `health()` reports the instance unhealthy until that step succeeds again.
//   An ordered step handed back takes the queue behind it along and this instance pulls nothing for twice ack_wait;
//   an unordered one goes back alone and the ordered steps of later batches go on (live delivery does not wait for
//   the store).
// A batch has up to two steps (docs/decisions/0014): `handle` plus the `ordered` step it returns run one batch at a
// time, so stream order is kept within one instance (the one exception is an attempt abandoned at its hold deadline,
// which may still finish later: its effects are idempotent, keyed inserts and seqs gateways dedupe); the `unordered`
// step starts as soon as `handle` returns, runs concurrently with later batches (at most `unorderedConcurrency` at
// once) and is retried on its own. The batch is acked once both succeeded.
import { jetstream } from '@nats-io/jetstream';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { backoff } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';
import type { NatsHandle } from './connection.js';

export interface ConsumerHealth {
  /** False while a step has been failing for `maxHoldMs` or longer. */
  healthy: boolean;
  /** Since when ordered steps have been failing (epoch ms), if they are. */
  failingSince: number | undefined;
  /** Since when unordered steps have been failing (epoch ms), if they are. */
  unorderedFailingSince: number | undefined;
  /** Messages handed back to the stream after failing for `maxHoldMs`, since start. */
  handedBack: number;
  /** Messages received and not yet through the ordered step. */
  held: number;
  /** Messages through the ordered step whose unordered step has not finished. */
  unordered: number;
}

/** What `handle` leaves to the consumer: two steps, then the acks. */
export interface BatchSteps {
  /** The messages to ack once both steps succeeded. */
  ack: JsMsg[];
  /** Runs in stream order: the next batch's `handle` starts only after it succeeded. Retried with `handle`. */
  ordered(): Promise<void>;
  /** Starts when `handle` returns, concurrently with later batches; retried on its own. Must be idempotent. */
  unordered(): Promise<void>;
}

/** Which step a hand-back was for. */
export type Step = 'ordered' | 'unordered';

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
  /** Most messages waiting for their unordered step; beyond it the consumer pulls nothing (default: 8 batches). */
  maxUnordered?: number;
  /** Most unordered steps running at once (default 4). */
  unorderedConcurrency?: number;
  log: Logger;
  /**
   * Runs one batch at a time, in stream order. Either finishes the batch itself (acks it) and returns nothing, or
   * returns the steps left; a throw retries it (and its ordered step) with back-off.
   */
  handle(batch: JsMsg[]): Promise<BatchSteps | void>;
  /** After a batch was handed back: recycle whatever keeps failing (for example a database client). */
  onStuck?(step: Step): Promise<void>;
}

const RETRY = backoff([50, 100, 250, 500, 1_000, 2_000, 5_000]);
/** A pull request's lifetime: an idle consumer re-issues one this often. */
const FETCH_EXPIRES_MS = 5_000;
/** How long close() waits for unordered steps in flight. */
const CLOSE_GRACE_MS = 5_000;

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

/** One batch past `handle`: its unordered step, and whether each step is done. */
interface Job {
  msgs: JsMsg[];
  steps: BatchSteps;
  ordered: boolean;
  unordered: boolean;
  /** Handed back or closed: its late outcome acks nothing. */
  dropped: boolean;
}

export async function startBatchConsumer(nats: NatsHandle, o: BatchConsumerOptions): Promise<BatchConsumer> {
  const js = jetstream(nats.nc);
  const consumer = await js.consumers.get(o.stream, o.durable);
  const maxUnordered = o.maxUnordered ?? o.maxBatch * 8;
  const concurrency = o.unorderedConcurrency ?? 4;
  /** Received, waiting for a batch. */
  let queued: JsMsg[] = [];
  /** The batch being handled. */
  let current: JsMsg[] = [];
  /** Batches whose unordered step is not finished (or not acked yet). */
  const jobs = new Set<Job>();
  /** Jobs waiting for one of the `concurrency` slots. */
  const waiting: Job[] = [];
  /** Unordered steps running now (at most `concurrency`). */
  const runningUnordered = new Set<Promise<void>>();
  /** Messages of jobs past their ordered step: what the `maxUnordered` bound counts. */
  let unorderedHeld = 0;
  let running: Promise<void> | undefined;
  let fetching: ConsumerMessages | undefined;
  let closing = false;
  let failingSince: number | undefined;
  let unorderedFailingSince: number | undefined;
  let handedBack = 0;
  /** After an ordered hand-back this instance pulls nothing until then, so that a healthy instance gets the batch. */
  let pauseUntil = 0;
  let spaceFreed: (() => void) | undefined;
  let wake: (() => void) | undefined;
  /** The recovery after an unordered hand-back, shared by the steps that give up together. */
  let recovering: Promise<void> | undefined;
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
    for (const j of jobs) if (j.ordered && !j.dropped) for (const m of j.msgs) m.working();
  }, Math.max(100, Math.floor(o.ackWaitMs / 3)));
  keepAlive.unref();

  const stuck = (step: Step): Promise<void> => {
    if (!o.onStuck) return Promise.resolve();
    if (step === 'unordered' && recovering) return recovering;
    const p = o.onStuck(step).catch((err: unknown) => o.log.error({ err, step }, 'recovery after a stuck batch failed'));
    if (step === 'unordered') recovering = p.finally(() => { recovering = undefined; });
    return p;
  };

  const finishJob = (j: Job): void => {
    if (!jobs.delete(j)) return;
    if (j.ordered) unorderedHeld -= j.msgs.length;
    spaceFreed?.();
  };
  /** Acks a job once both its steps succeeded. */
  const settle = (j: Job): void => {
    if (j.dropped || !j.ordered || !j.unordered) return;
    for (const m of j.steps.ack) m.ack();
    finishJob(j);
  };
  const dropJob = (j: Job): void => {
    j.dropped = true;
    finishJob(j);
  };

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
    await stuck('ordered');
  };

  /** The unordered step of one job, retried on its own for at most `maxHoldMs`, then handed back alone. */
  const runUnordered = async (j: Job): Promise<void> => {
    const started = Date.now();
    for (let attempt = 0; !j.dropped; attempt++) {
      let timedOut = false;
      let failed = false;
      let failure: unknown;
      try {
        timedOut = await withDeadline(j.steps.unordered(), started + o.maxHoldMs - Date.now()) === TIMED_OUT;
      } catch (err) {
        failed = true;
        failure = err;
      }
      if (j.dropped) return;
      if (!failed && !timedOut) {
        unorderedFailingSince = undefined;
        j.unordered = true;
        settle(j);
        return;
      }
      unorderedFailingSince ??= started;
      if (timedOut || Date.now() - started >= o.maxHoldMs) {
        // Back to the stream alone: its redelivery runs both steps again (the ordered one is idempotent: gateways
        // drop a seq they delivered), and later batches are not held up meanwhile.
        for (const m of j.msgs) m.nak(o.ackWaitMs);
        handedBack += j.msgs.length;
        dropJob(j);
        o.log.error({ err: failure, messages: j.msgs.length, maxHoldMs: o.maxHoldMs }, 'unordered step kept failing; batch handed back to the stream');
        await stuck('unordered');
        return;
      }
      const wait = RETRY.backoff(attempt);
      o.log.warn({ err: failure, attempt, size: j.msgs.length, waitMs: wait }, 'unordered step failed; retrying');
      await sleep(wait);
      if (closing) return;
    }
  };
  const pump = (): void => {
    while (runningUnordered.size < concurrency && waiting.length > 0) {
      const j = waiting.shift()!;
      if (j.dropped) continue;
      const p: Promise<void> = runUnordered(j)
        .catch((err: unknown) => o.log.error({ err }, 'unordered step loop failed'))
        .finally(() => {
          runningUnordered.delete(p);
          pump();
        });
      runningUnordered.add(p);
    }
  };

  /** One attempt of a batch: `handle`, then (the first time) its unordered step is started, then its ordered one. */
  const attempt = async (batch: JsMsg[], job: { current: Job | undefined }): Promise<void> => {
    const steps = await o.handle(batch);
    if (!steps) return;
    if (!job.current) {
      job.current = { msgs: batch, steps, ordered: false, unordered: false, dropped: false };
      jobs.add(job.current);
      waiting.push(job.current);
      pump();
    } else {
      job.current.steps = steps;
    }
    await steps.ordered();
  };

  const run = async (): Promise<void> => {
    while (queued.length > 0 && !closing) {
      current = queued.length <= o.maxBatch ? queued : queued.slice(0, o.maxBatch);
      queued = queued.length <= o.maxBatch ? [] : queued.slice(o.maxBatch);
      const started = Date.now();
      const job: { current: Job | undefined } = { current: undefined };
      let done = false;
      for (let n = 0; ; n++) {
        try {
          // An attempt that hangs (a client waiting forever on a broken connection) counts against the hold time
          // too: at the deadline the batch is handed back whether or not the attempt ever returns.
          if (await withDeadline(attempt(current, job), started + o.maxHoldMs - Date.now()) === TIMED_OUT) {
            failingSince ??= started;
            o.log.warn({ size: current.length, maxHoldMs: o.maxHoldMs }, 'batch still running at its hold deadline');
            await handBack();
            break;
          }
          failingSince = undefined;
          done = true;
          break;
        } catch (err) {
          if (closing) {
            if (job.current) dropJob(job.current);
            return; // unacked: redelivered after ack_wait (close() hands the queue back at once)
          }
          failingSince ??= started;
          if (Date.now() - started >= o.maxHoldMs) {
            o.log.warn({ err }, 'batch failed');
            await handBack();
            break;
          }
          const wait = RETRY.backoff(n);
          o.log.warn({ err, attempt: n, size: current.length, waitMs: wait }, 'batch failed; retrying');
          await sleep(wait);
          if (closing) {
            if (job.current) dropJob(job.current);
            return;
          }
        }
      }
      const j = job.current;
      if (j) {
        if (done && !j.dropped) {
          j.ordered = true;
          unorderedHeld += j.msgs.length;
          settle(j);
        } else {
          dropJob(j);
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
      // Wait for half a batch of room: pulling one message at a time would cost a round trip per message. And
      // pull nothing while too many messages wait for their unordered step (a store that is down or slow).
      if (room < Math.ceil(o.maxBatch / 2) || unorderedHeld >= maxUnordered) {
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
      const now = Date.now();
      const ok = (since: number | undefined): boolean => since === undefined || now - since < o.maxHoldMs;
      return {
        healthy: ok(failingSince) && ok(unorderedFailingSince),
        failingSince,
        unorderedFailingSince,
        handedBack,
        held: held(),
        unordered: unorderedHeld,
      };
    },
    async close() {
      closing = true;
      fetching?.stop();
      spaceFreed?.();
      wake?.();
      await running;
      await pulling;
      // Unordered steps in flight get a short while to finish (and be acked); whatever is left is not acked and
      // comes back after ack_wait, to this or another instance.
      if (runningUnordered.size > 0) {
        await withDeadline(Promise.all(runningUnordered).then(() => undefined), Math.min(o.maxHoldMs, CLOSE_GRACE_MS));
      }
      clearInterval(keepAlive);
      // Broadcast but not stored (or not started): another instance may take them now instead of after ack_wait.
      for (const j of [...jobs]) {
        for (const m of j.msgs) m.nak();
        dropJob(j);
      }
      waiting.length = 0;
      // Not started: another instance may take them now instead of after ack_wait.
      for (const m of queued) m.nak();
      queued = [];
    },
  };
}
