// `parley dlq list | replay [--id <notification>] [--timeout-ms N]`: the notifications' dead-letter stream.
// Prints JSON (one array); replay runs the new round's attempts in this process with the configured sinks.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../lib/config/index.js';
import type { Config } from '../lib/config/index.js';
import { createDelivery, createNotifyMetrics, createSinks, ensureDeadLetters, replayDeadLetters } from '../lib/notify/index.js';
import { createLogger, createMetrics } from '../lib/observability/index.js';
import { openNotificationStore } from '../lib/store/index.js';
import { connectShared } from './services.js';
import type { Opened } from './services.js';

const USAGE = 'usage: parley dlq list | replay [--id <notification id>] [--timeout-ms 60000]';

export async function dlqCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let cfg: Config;
  let sub: string;
  let id: string | undefined;
  let timeoutMs: number;
  try {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { id: { type: 'string' }, 'timeout-ms': { type: 'string' } } });
    sub = positionals[0] ?? '';
    if (sub !== 'list' && sub !== 'replay') throw new Error(`unknown dlq command ${JSON.stringify(sub)}`);
    id = values.id;
    if (id !== undefined && !/^n_[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error('--id takes a notification id (n_...)');
    timeoutMs = values['timeout-ms'] === undefined ? 60_000 : Number(values['timeout-ms']);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) throw new Error('--timeout-ms takes a whole number of milliseconds');
    cfg = loadConfig(env);
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return err instanceof ConfigError ? 78 : 2;
  }
  const log = createLogger({ name: 'parley-dlq', level: cfg.logLevel, stderr: true });
  const closers: Opened = [];
  try {
    const shared = await connectShared(cfg, log, 'parley-dlq', closers);
    const dlq = await ensureDeadLetters(shared.nats.nc, shared.jsm, cfg.notify, cfg.stream.replicas);
    if (sub === 'list') {
      const entries = await dlq.list();
      console.log(JSON.stringify(entries.filter((e) => id === undefined || e.letter.id === id)));
      return 0;
    }
    const store = await openNotificationStore(cfg.mongoUrl, cfg.mongoDb, log.child({ component: 'notify-store' }));
    closers.push({ name: 'store', close: () => store.close() });
    const sinks = createSinks(cfg.notify, store, log);
    closers.push({ name: 'sinks', close: async () => { for (const s of sinks) await s.close(); } });
    const owner = `dlq-${randomUUID().slice(0, 8)}`;
    const n = cfg.notify;
    const delivery = createDelivery({
      store, sinks, dlq, metrics: createNotifyMetrics(createMetrics('dlq').registry), log, owner,
      maxAttempts: n.maxAttempts, leaseMs: n.leaseMs, retryMs: n.retryMs, retryMaxMs: n.retryMaxMs,
    });
    const reports = await replayDeadLetters({ store, dlq, delivery, owner }, { id, timeoutMs });
    console.log(JSON.stringify(reports));
    return reports.some((r) => r.result === 'in-progress') ? 75 : 0; // EX_TEMPFAIL: run it again
  } finally {
    for (const c of closers.reverse()) await c.close();
  }
}
