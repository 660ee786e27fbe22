// Cluster-wide send limits: one EVALSHA per `send` charges the user's and the IP's message and byte budgets at once.
// When Redis does not answer, the gateway fails open to the in-process LocalLimiter rather than refusing chat.
import type { Redis } from 'ioredis';
import type { RateLimitConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { LocalLimiter, emissionMs } from './gcra.js';
import type { Charge, Rate } from './gcra.js';
import { RATE_LIMIT_LUA } from './lua.js';

export interface SendLimiter {
  /** Resolves 0 when the send fits the budgets (which are then charged), else the ms until it would. Never rejects. */
  admitSend(user: string, ip: string, bytes: number): Promise<number>;
  /** True while decisions come from the local fallback instead of Redis. */
  degraded(): boolean;
}

interface RateLimitCommand {
  parleyRateLimit(numKeys: number, ...args: Array<string | number>): Promise<number>;
}

export function defineRateLimitCommand(redis: Redis): Redis & RateLimitCommand {
  if (!(redis as Partial<RateLimitCommand>).parleyRateLimit) redis.defineCommand('parleyRateLimit', { lua: RATE_LIMIT_LUA });
  return redis as Redis & RateLimitCommand;
}

/** Key of one rate-limit state: `rl:<scope>:<id>`. */
export function rateKey(prefix: string, scope: string, id: string): string {
  return `${prefix}rl:${scope}:${id}`;
}

/** Appends one (key index, field, emission, burst, cost) group when the limit is enabled. */
export function pushCharge(args: Array<string | number>, keyIndex: number, field: string, rate: Rate, cost: number): void {
  if (rate.perSec > 0) args.push(keyIndex, field, emissionMs(rate), rate.burst, cost);
}

export function createSendLimiter(redis: Redis, prefix: string, cfg: RateLimitConfig, log: Logger): SendLimiter {
  const r = defineRateLimitCommand(redis);
  const local = new LocalLimiter();
  const enabled = [cfg.sendPerUser, cfg.sendBytesPerUser, cfg.sendPerIp, cfg.sendBytesPerIp].some((x) => x.perSec > 0);
  let degraded = false;

  const fallback = (user: string, ip: string, bytes: number): number => {
    const charges: Charge[] = [];
    if (cfg.sendPerUser.perSec > 0) charges.push({ key: `u:${user}`, rate: cfg.sendPerUser, cost: 1 });
    if (cfg.sendBytesPerUser.perSec > 0) charges.push({ key: `ub:${user}`, rate: cfg.sendBytesPerUser, cost: bytes });
    if (cfg.sendPerIp.perSec > 0) charges.push({ key: `i:${ip}`, rate: cfg.sendPerIp, cost: 1 });
    if (cfg.sendBytesPerIp.perSec > 0) charges.push({ key: `ib:${ip}`, rate: cfg.sendBytesPerIp, cost: bytes });
    return local.charge(charges, Date.now());
  };
  const setDegraded = (on: boolean, err?: unknown): void => {
    if (on === degraded) return;
    degraded = on;
    if (on) log.warn({ err }, 'rate limits: Redis unreachable, failing open to per-gateway limits');
    else log.info('rate limits: Redis is back, cluster-wide limits again');
  };

  return {
    degraded: () => degraded,
    async admitSend(user, ip, bytes) {
      if (!enabled) return 0;
      // Not connected: decide at once locally instead of waiting for a reconnect on the hot path.
      if (redis.status !== 'ready') {
        setDegraded(true);
        return fallback(user, ip, bytes);
      }
      const args: Array<string | number> = [rateKey(prefix, 'send-user', user), rateKey(prefix, 'send-ip', ip)];
      pushCharge(args, 1, 'm', cfg.sendPerUser, 1);
      pushCharge(args, 1, 'b', cfg.sendBytesPerUser, bytes);
      pushCharge(args, 2, 'm', cfg.sendPerIp, 1);
      pushCharge(args, 2, 'b', cfg.sendBytesPerIp, bytes);
      try {
        const wait = await r.parleyRateLimit(2, ...args);
        setDegraded(false);
        return wait;
      } catch (err) {
        setDegraded(true, err);
        return fallback(user, ip, bytes);
      }
    },
  };
}
