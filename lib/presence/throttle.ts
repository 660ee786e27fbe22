// A per-key "at most once per interval" gate kept in process memory: the cheap first filter for typing signals, so a
// client hammering `typing` costs no Redis round trip; Redis then enforces the same interval cluster-wide.

export class Throttle {
  private readonly last = new Map<string, number>();
  private lastPrune = 0;

  constructor(private readonly intervalMs: number, private readonly maxKeys = 100_000) {}

  /** True (and the key is stamped) when `key` has not passed within the interval before `now`. */
  allow(key: string, now: number): boolean {
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.intervalMs) return false;
    this.last.set(key, now);
    if (this.last.size > this.maxKeys && now - this.lastPrune >= this.intervalMs) this.prune(now);
    return true;
  }

  size(): number {
    return this.last.size;
  }

  private prune(now: number): void {
    this.lastPrune = now;
    for (const [k, t] of this.last) if (now - t >= this.intervalMs) this.last.delete(k);
  }
}
