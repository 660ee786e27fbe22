// Cluster-wide request limits: one EVALSHA per `send` charges the user's and the IP's message and byte budgets at once,
// one per history page the user's and the IP's history budgets.
// When Redis does not answer, the gateway fails open to the in-process LocalLimiter rather than refusing chat.
import type { RateLimitConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { loadScripts } from '../redis/index.js';
import type { RedisConnection, RedisKeys, ScriptArg } from '../redis/index.js';
import { LocalLimiter, emissionMs } from './gcra.js';
import type { Charge, Rate } from './gcra.js';
import { LIMIT_SCRIPTS } from './lua.js';

export interface SendLimiter {
  /** Resolves 0 when the send fits the budgets (which are then charged), else the ms until it would. Never rejects. */
  admitSend(user: string, ip: string, bytes: number): Promise<number>;
  /** The same for one history page (WebSocket or HTTP), against the user's and the address's history budgets. */
  admitHistory(user: string, ip: string): Promise<number>;
  /** True while decisions come from the local fallback instead of Redis. */
  degraded(): boolean;
}

/** Appends one (key index, field, emission, burst, cost) group when the limit is enabled. */
export function pushCharge(args: ScriptArg[], keyIndex: number, field: string, rate: Rate, cost: number): void {
  if (rate.perSec > 0) args.push(keyIndex, field, emissionMs(rate), rate.burst, cost);
}

/** Shares the gateway's commands connection (fail fast, no offline queue): a disconnected Redis is known at once. */
export async function createSendLimiter(redis: RedisConnection, keys: RedisKeys, cfg: RateLimitConfig, log: Logger): Promise<SendLimiter> {
  const scripts = loadScripts(redis.client, LIMIT_SCRIPTS);
  await scripts.load();
  const local = new LocalLimiter();
  let degraded = false;

  const setDegraded = (on: boolean, err?: unknown): void => {
    if (on === degraded) return;
    degraded = on;
    if (on) log.warn({ err }, 'rate limits: Redis unreachable, failing open to per-gateway limits');
    else log.info('rate limits: Redis is back, cluster-wide limits again');
  };

  /** One request against a user's and an address's budgets: a count limit each, and a byte limit each when given. */
  interface Budget { scope: string; user: Rate; ip: Rate; userBytes?: Rate; ipBytes?: Rate }
  const budget = (b: Budget) => {
    const enabled = [b.user, b.ip, b.userBytes, b.ipBytes].some((x) => x !== undefined && x.perSec > 0);
    const fallback = (user: string, ip: string, bytes: number): number => {
      const charges: Charge[] = [];
      if (b.user.perSec > 0) charges.push({ key: `${b.scope}:u:${user}`, rate: b.user, cost: 1 });
      if (b.userBytes && b.userBytes.perSec > 0) charges.push({ key: `${b.scope}:ub:${user}`, rate: b.userBytes, cost: bytes });
      if (b.ip.perSec > 0) charges.push({ key: `${b.scope}:i:${ip}`, rate: b.ip, cost: 1 });
      if (b.ipBytes && b.ipBytes.perSec > 0) charges.push({ key: `${b.scope}:ib:${ip}`, rate: b.ipBytes, cost: bytes });
      return local.charge(charges, Date.now());
    };
    return async (user: string, ip: string, bytes: number): Promise<number> => {
      if (!enabled) return 0;
      // Not connected: decide at once locally instead of waiting for a reconnect on the hot path.
      if (!redis.ready()) {
        setDegraded(true);
        return fallback(user, ip, bytes);
      }
      const limitKeys = [keys.rate(`${b.scope}-user`, user), keys.rate(`${b.scope}-ip`, ip)];
      const args: ScriptArg[] = [];
      pushCharge(args, 1, 'm', b.user, 1);
      if (b.userBytes) pushCharge(args, 1, 'b', b.userBytes, bytes);
      pushCharge(args, 2, 'm', b.ip, 1);
      if (b.ipBytes) pushCharge(args, 2, 'b', b.ipBytes, bytes);
      try {
        const wait = await scripts.run<number>('rateLimit', limitKeys, args);
        setDegraded(false);
        return wait;
      } catch (err) {
        setDegraded(true, err);
        return fallback(user, ip, bytes);
      }
    };
  };
  const send = budget({ scope: 'send', user: cfg.sendPerUser, ip: cfg.sendPerIp, userBytes: cfg.sendBytesPerUser, ipBytes: cfg.sendBytesPerIp });
  const history = budget({ scope: 'history', user: cfg.historyPerUser, ip: cfg.historyPerIp });

  return {
    degraded: () => degraded,
    admitSend: send,
    admitHistory: (user, ip) => history(user, ip, 0),
  };
}
