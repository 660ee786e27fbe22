// One NATS connection per process, reconnecting forever; readiness is tracked from its status stream.
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';

export interface NatsHandle {
  nc: NatsConnection;
  /** True while connected (false between a disconnect and the next reconnect). */
  connected(): boolean;
  close(): Promise<void>;
}

export async function connectNats(url: string, name: string, log: Logger): Promise<NatsHandle> {
  const nc = await connect({
    servers: url.split(',').map((s) => s.trim()),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    waitOnFirstConnect: true,
    pingInterval: 10_000,
    // Without this every request (each js.publish) builds an Error with a stack trace up front, in case it fails:
    // ~15% of the gateway's busy time in bench profiles.
    noAsyncTraces: true,
  });
  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        up = false;
        log.warn({ server: s.server }, 'nats disconnected');
      } else if (s.type === 'reconnect') {
        up = true;
        log.info({ server: s.server }, 'nats reconnected');
      } else if (s.type === 'error') {
        log.error({ err: s.error }, 'nats error');
      }
    }
  })();
  log.info({ server: nc.getServer() }, 'nats connected');
  return {
    nc,
    connected: () => up && !nc.isClosed(),
    async close() {
      if (nc.isClosed()) return;
      // drain flushes pending publishes and acks before closing
      await nc.drain().catch((err: unknown) => log.warn({ err }, 'nats drain failed'));
    },
  };
}
