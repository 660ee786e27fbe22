// Idempotency for hours (docs/decisions/0015): which seq a namespaced message id was first stored with, remembered in
// Redis for a window far longer than JetStream's duplicate window. The gateway asks before it publishes (a resend is
// acked with the original seq and never reaches the stream) and records the seq after the PubAck; chat claims every
// event it consumes before broadcasting it, so whatever resend did reach the stream is dropped there.
import type { RedisConnection, RedisKeys } from '../redis/index.js';

/** One event as chat claims it. */
export interface Claim {
  /** `<user>:<id>` */
  nsid: string;
  seq: number;
}

export interface MessageIds {
  /** The seq the id was stored with, undefined when unknown; rejects when Redis does not answer. */
  lookup(nsid: string): Promise<number | undefined>;
  /**
   * Records the id's seq unless one is recorded already (SET NX): resolves to the recorded seq, which is `seq` or
   * the original one. Rejects when Redis does not answer.
   */
  record(nsid: string, seq: number): Promise<number>;
  /** `record` for many ids in one round trip: each id's recorded seq, in order. */
  claim(items: readonly Claim[]): Promise<number[]>;
}

/** `windowMs` 0: nothing is remembered (JetStream's duplicate window alone deduplicates). */
export function createMessageIds(redis: RedisConnection, keys: RedisKeys, windowMs: number): MessageIds {
  const off = windowMs <= 0;
  const setOptions = { condition: 'NX', GET: true, expiration: { type: 'PX', value: windowMs } } as const;
  const parse = (v: unknown, seq: number): number => {
    if (v === null || v === undefined) return seq;
    const n = Number(v);
    return Number.isSafeInteger(n) && n > 0 ? n : seq;
  };
  return {
    async lookup(nsid) {
      if (off) return undefined;
      const v = await redis.client.get(keys.messageId(nsid));
      return v === null ? undefined : parse(v, 0) || undefined;
    },
    async record(nsid, seq) {
      if (off) return seq;
      return parse(await redis.client.set(keys.messageId(nsid), String(seq), setOptions), seq);
    },
    async claim(items) {
      if (off || items.length === 0) return items.map((it) => it.seq);
      // Plain commands issued in one tick (node-redis writes them to the socket together, a pipeline in effect; no
      // MULTI, no script): each key lives in its own slot on a Redis Cluster, where the cluster client routes each.
      const replies = await Promise.all(items.map((it) => redis.client.set(keys.messageId(it.nsid), String(it.seq), setOptions)));
      return items.map((it, i) => parse(replies[i], it.seq));
    },
  };
}
