// When and how soon to reconnect, from the close code (the README's close-code table, lib/protocol/codes.ts) and the
// number of failed attempts: exponential back-off with jitter, computed by `retry` (node-retry).
import retry from 'retry';
import { CLOSE_CODES } from '../protocol/codes.js';

/**
 * `stop`: never reconnect (1000, 1007, 1009, 4003: reconnecting cannot help). `token`: reconnect with a fresh token
 * (4001). `later`: reconnect, but only after a back-off of `policyDelayMs` or more (4008, 1013: the server asked
 * for it). `now`: reconnect with the normal back-off (everything else: 1001, 1006, 1011, 1012, 4009, 4010, ...).
 */
export type ClosePolicy = 'stop' | 'token' | 'later' | 'now';

const STOP = new Set<number>([1007, ...Object.values(CLOSE_CODES).filter((c) => !c.reconnect).map((c) => c.code)]);

export function closePolicy(code: number): ClosePolicy {
  if (STOP.has(code)) return 'stop';
  if (code === CLOSE_CODES.TOKEN_EXPIRED.code) return 'token';
  if (code === CLOSE_CODES.POLICY.code || code === CLOSE_CODES.TRY_AGAIN_LATER.code) return 'later';
  return 'now';
}

export interface BackoffOptions {
  /** First delay before a reconnect (ms); doubled per failed attempt, up to maxDelayMs. Default 250. */
  minDelayMs?: number;
  /** Longest delay between attempts (ms). Default 10,000. */
  maxDelayMs?: number;
  /** The smallest delay after a 4008 or 1013 (ms). Default 2,000. */
  policyDelayMs?: number;
}

/** Delay before reconnect attempt `attempt` (0 for the first after a loss), randomised in [1, 2) times the base. */
export function reconnectDelay(attempt: number, policy: ClosePolicy, o: BackoffOptions = {}): number {
  const min = o.minDelayMs ?? 250;
  const max = o.maxDelayMs ?? 10_000;
  const floor = policy === 'later' ? Math.max(min, o.policyDelayMs ?? 2_000) : min;
  return retry.createTimeout(attempt, { minTimeout: floor, maxTimeout: Math.max(floor, max), factor: 2, randomize: true });
}
