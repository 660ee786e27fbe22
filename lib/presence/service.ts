// The presence service: reaps gateways that stopped heartbeating (their users go offline everywhere) and announces
// offline once a departed user's grace period is over. Both steps are single Redis scripts, so any number of
// instances can run side by side: each change and its event happen once, in whichever instance got there first,
// and nothing is lost when an instance dies because all the state lives in Redis.
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { loadScripts } from '../redis/index.js';
import type { RedisConnection, RedisKeys } from '../redis/index.js';
import { PRESENCE_SCRIPTS } from './lua.js';

export interface PresenceService {
  /** Redis answers and the last tick did not fail. */
  ready(): boolean;
  /** Stops ticking; the Redis connection is the caller's to close. */
  close(): Promise<void>;
}

const SWEEP_BATCH = 500;

export async function startPresenceService(redis: RedisConnection, keys: RedisKeys, cfg: Config, log: Logger): Promise<PresenceService> {
  const scripts = loadScripts(redis.client, PRESENCE_SCRIPTS);
  await scripts.load();
  const { graceMs, tickMs } = cfg.presence;
  const names = keys.scriptNames;
  let closing = false;
  let timer: NodeJS.Timeout | undefined;
  let failing = false;

  const tick = async (): Promise<void> => {
    const dead = await scripts.run<string[]>('reap', [keys.presenceSlot], [...names, graceMs]);
    if (dead.length > 0) log.info({ gateways: dead }, 'reaped gateways that stopped heartbeating');
    let n: number;
    do {
      n = await scripts.run<number>('sweep', [keys.presenceSlot], [...names, SWEEP_BATCH]);
    } while (n === SWEEP_BATCH && !closing);
  };
  let running: Promise<void> = Promise.resolve();
  const loop = (): void => {
    running = tick().then(() => {
      if (failing) log.info('presence ticks succeed again');
      failing = false;
    }, (err: unknown) => {
      if (!failing) log.warn({ err }, 'presence tick failed; retrying every tick');
      failing = true;
    }).finally(() => {
      if (!closing) timer = setTimeout(loop, tickMs);
    });
  };
  loop();
  log.info({ gatewayTtlMs: cfg.presence.gatewayTtlMs, graceMs, tickMs }, 'presence running');
  return {
    ready: () => redis.ready() && !failing,
    async close() {
      closing = true;
      if (timer) clearTimeout(timer);
      await running;
      log.info('presence closed');
    },
  };
}
