// Connection admission, cluster-wide: how many connections a user and an address may hold at once, and how fast they
// may open new ones. The one owner of that decision: the check in Redis (ADMIT_CONNECTION_LUA, run by the presence
// script that registers the session, so that check and registration are one atomic step and two gateways cannot both
// admit the N+1th), its arguments, the reasons a refusal gives (the 4008 close text), and the per-gateway fallback
// while Redis does not answer.
import type { ScriptArg } from '../redis/index.js';
import type { RedisKeys } from '../redis/index.js';
import { LocalLimiter } from './gcra.js';
import type { Charge, Rate } from './gcra.js';
import { pushCharge } from './redis.js';

export interface AdmissionConfig {
  /** Concurrent connections, cluster-wide (0: unlimited). */
  maxPerUser: number;
  maxPerIp: number;
  /** Connection attempts (accepted upgrades). */
  connectPerUser: Rate;
  connectPerIp: Rate;
}

export interface ConnectionAdmission {
  /**
   * KEYS and ARGV of the Redis check for one connection, in the layout ADMIT_CONNECTION_LUA reads (`force` skips it:
   * re-registering connections already admitted).
   */
  scriptArgs(user: string, ip: string, force: boolean): { keys: string[]; args: ScriptArg[] };
  /** The refusal of the Redis check's reply (`{ status, waitMs }`), or undefined when it admitted the connection. */
  refusal(status: number, waitMs: number): string | undefined;
  /** The connection counts in the fallback: every connection of this gateway, admitted or not yet decided. */
  opened(user: string, ip: string): void;
  closed(user: string, ip: string): void;
  /** Fail open while Redis does not answer: this gateway's own connections and an in-process rate limiter. */
  admitLocally(user: string, ip: string): string | undefined;
}

export function createConnectionAdmission(keys: RedisKeys, cfg: AdmissionConfig): ConnectionAdmission {
  const perUser = new Map<string, number>();
  const perIp = new Map<string, number>();
  const limiter = new LocalLimiter();
  const tooManyForUser = `too many connections for this user (max ${cfg.maxPerUser})`;
  const tooManyFromIp = `too many connections from this address (max ${cfg.maxPerIp})`;
  const rate = (waitMs: number): string => `too many connection attempts; retry in ${waitMs} ms`;
  return {
    scriptArgs(user, ip, force) {
      const args: ScriptArg[] = [cfg.maxPerUser, cfg.maxPerIp, force ? '1' : '0'];
      pushCharge(args, 1, 'm', cfg.connectPerUser, 1);
      pushCharge(args, 2, 'm', cfg.connectPerIp, 1);
      return { keys: [keys.connectRate('user', user), keys.connectRate('ip', ip)], args };
    },
    refusal(status, waitMs) {
      if (status === 1) return undefined;
      if (status === 0) return tooManyForUser;
      if (status === -1) return tooManyFromIp;
      return rate(waitMs);
    },
    opened(user, ip) {
      bump(perUser, user, 1);
      bump(perIp, ip, 1);
    },
    closed(user, ip) {
      bump(perUser, user, -1);
      bump(perIp, ip, -1);
    },
    admitLocally(user, ip) {
      const charges: Charge[] = [];
      if (cfg.connectPerUser.perSec > 0) charges.push({ key: `u:${user}`, rate: cfg.connectPerUser, cost: 1 });
      if (cfg.connectPerIp.perSec > 0) charges.push({ key: `i:${ip}`, rate: cfg.connectPerIp, cost: 1 });
      const wait = limiter.charge(charges, Date.now());
      if (wait > 0) return rate(wait);
      if (cfg.maxPerUser > 0 && (perUser.get(user) ?? 0) > cfg.maxPerUser) return tooManyForUser;
      if (cfg.maxPerIp > 0 && (perIp.get(ip) ?? 0) > cfg.maxPerIp) return tooManyFromIp;
      return undefined;
    },
  };
}

function bump(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}
