// GCRA (generic cell rate algorithm): one number of state per limit, the theoretical arrival time (TAT). The same
// arithmetic runs in Redis (lua.ts) for the cluster-wide budget and here for the in-process fallback.

/** A sustained rate with a burst. `perSec` 0 disables the limit. */
export interface Rate {
  perSec: number;
  burst: number;
}

/** One limit to charge: `key` names its state, `cost` is 1 for a message or the byte count for a byte budget. */
export interface Charge {
  key: string;
  rate: Rate;
  cost: number;
}

/** Milliseconds per unit of cost. */
export function emissionMs(rate: Rate): number {
  return 1000 / rate.perSec;
}

/**
 * One GCRA step: given the stored TAT (undefined when none), returns how long the request must wait (0: allowed)
 * and the TAT to store if it is allowed. With empty state exactly `burst` units pass at once, then `perSec` per second.
 */
export function gcraStep(tat: number | undefined, now: number, rate: Rate, cost: number): { waitMs: number; tat: number } {
  const t = emissionMs(rate);
  const base = tat === undefined || tat < now ? now : tat;
  const next = base + t * cost;
  const waitMs = next - t * rate.burst - now;
  return { waitMs: waitMs > 0 ? waitMs : 0, tat: next };
}

/**
 * The in-process limiter used when Redis is unreachable. All charges of one call pass or none is taken (a refused
 * send costs no budget), as in the Redis script. Its budget is per gateway, not per cluster: with N gateways a user
 * may get up to N times the configured rate while Redis is down. That is the price of failing open.
 */
export class LocalLimiter {
  private readonly tats = new Map<string, number>();
  private lastPrune = 0;

  constructor(private readonly maxKeys = 100_000) {}

  /** 0 when every charge fits (and all are taken), else the milliseconds until the request would fit. */
  charge(charges: readonly Charge[], now: number): number {
    let wait = 0;
    const next: number[] = [];
    for (const c of charges) {
      const step = gcraStep(this.tats.get(c.key), now, c.rate, c.cost);
      if (step.waitMs > wait) wait = step.waitMs;
      next.push(step.tat);
    }
    if (wait > 0) return Math.ceil(wait);
    for (let i = 0; i < charges.length; i++) this.tats.set(charges[i]!.key, next[i]!);
    if (this.tats.size > this.maxKeys && now - this.lastPrune > 1000) this.prune(now);
    return 0;
  }

  size(): number {
    return this.tats.size;
  }

  /** A TAT in the past is the same as no state at all: forget it. */
  private prune(now: number): void {
    this.lastPrune = now;
    for (const [k, tat] of this.tats) if (tat <= now) this.tats.delete(k);
  }
}
