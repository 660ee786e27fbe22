// A bulkhead for one process's storage reads: at most `maxInflight` run at once and at most `maxQueued` wait, each
// for at most `queueTimeoutMs`. Beyond that a read is refused at once (StorageBusyError) instead of piling up in the
// driver's unbounded wait queue, and a queued read whose client has gone is dropped before it runs.

export interface GateOptions {
  maxInflight: number;
  maxQueued: number;
  queueTimeoutMs: number;
}

/** How a read ended: ran (`ok`, `error`), or never ran (`rejected`: gate full, `expired`: waited too long, `skipped`: client gone). */
export type GateResult = 'ok' | 'error' | 'rejected' | 'expired' | 'skipped';

export interface GateObserver {
  /** Called after every change, with the counts now. */
  depth(inflight: number, queued: number): void;
  result(r: GateResult): void;
}

/** The gateway is at its bound of storage reads; `retryAfterMs` is a hint for the client. */
export class StorageBusyError extends Error {
  constructor(readonly retryAfterMs: number) {
    super('storage reads are at their bound; retry later');
    this.name = 'StorageBusyError';
  }
}

/** The read was not run because its client went away while it waited. Nobody is left to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('client gone');
    this.name = 'ClientGoneError';
  }
}

export interface ReadGate {
  /** Runs `task` when a slot is free; `alive` is asked right before it would start. */
  run<T>(task: () => Promise<T>, alive?: () => boolean): Promise<T>;
  inflight(): number;
  queued(): number;
}

interface Waiter {
  start(): void;
  alive: (() => boolean) | undefined;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export function createReadGate(opts: GateOptions, observe?: GateObserver): ReadGate {
  let inflight = 0;
  const queue: Waiter[] = [];
  const report = (): void => observe?.depth(inflight, queue.length);
  const busy = (): StorageBusyError => new StorageBusyError(Math.max(100, Math.min(opts.queueTimeoutMs, 5_000)));

  const next = (): void => {
    while (inflight < opts.maxInflight && queue.length > 0) {
      const w = queue.shift()!;
      clearTimeout(w.timer);
      if (w.alive && !w.alive()) {
        observe?.result('skipped');
        w.reject(new ClientGoneError());
        continue;
      }
      w.start();
    }
    report();
  };

  const execute = <T>(task: () => Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void): void => {
    inflight++;
    let p: Promise<T>;
    try {
      p = task();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (v) => { observe?.result('ok'); resolve(v); },
      (err: unknown) => { observe?.result('error'); reject(err); },
    ).finally(() => {
      inflight--;
      next();
    });
  };

  return {
    inflight: () => inflight,
    queued: () => queue.length,
    run<T>(task: () => Promise<T>, alive?: () => boolean): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        if (inflight < opts.maxInflight && queue.length === 0) {
          execute(task, resolve, reject);
          report();
          return;
        }
        if (queue.length >= opts.maxQueued) {
          observe?.result('rejected');
          reject(busy());
          return;
        }
        const w: Waiter = {
          alive,
          reject,
          start: () => execute(task, resolve, reject),
          timer: setTimeout(() => {
            const i = queue.indexOf(w);
            if (i < 0) return;
            queue.splice(i, 1);
            if (w.alive && !w.alive()) {
              observe?.result('skipped');
              reject(new ClientGoneError());
            } else {
              observe?.result('expired');
              reject(busy());
            }
            report();
          }, opts.queueTimeoutMs),
        };
        queue.push(w);
        report();
      });
    },
  };
}
