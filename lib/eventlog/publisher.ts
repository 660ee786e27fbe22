// Publishes chat events to JetStream with the namespaced message id, so the stream itself deduplicates retries.
import { jetstream } from '@nats-io/jetstream';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import type { StreamConfig } from '../config/index.js';
import { namespacedId } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
import type { NatsHandle } from './connection.js';
import { createdSubject } from './subjects.js';

export class UnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UnavailableError';
  }
}

export interface EventPublisher {
  /** Resolves only once JetStream has stored the event (or recognised it as a duplicate). */
  publish(ev: ChatMessage): Promise<PubAck>;
}

export function createPublisher(nats: NatsHandle, cfg: StreamConfig): EventPublisher {
  const js: JetStreamClient = jetstream(nats.nc, { timeout: cfg.publishTimeoutMs });
  return {
    async publish(ev) {
      // While disconnected, a publish would sit in the client's reconnect buffer until it times out; fail at once
      // instead so the client can retry (the same id makes the retry safe).
      if (!nats.connected()) throw new UnavailableError('event log unavailable (disconnected)');
      try {
        return await js.publish(createdSubject(cfg.subjectRoot, ev.room), JSON.stringify(ev), {
          msgID: namespacedId(ev.from, ev.id),
          timeout: cfg.publishTimeoutMs,
          expect: { streamName: cfg.name },
        });
      } catch (err) {
        throw new UnavailableError('event log did not confirm the publish', { cause: err });
      }
    },
  };
}

/** Decodes an event from the stream; undefined when it is not a well-formed ChatMessage. */
export function decodeEvent(data: Uint8Array): ChatMessage | undefined {
  try {
    const o = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as ChatMessage;
    if (typeof o.room !== 'string' || typeof o.id !== 'string' || typeof o.from !== 'string' ||
      typeof o.body !== 'string' || typeof o.ts !== 'number') return undefined;
    return o;
  } catch {
    return undefined;
  }
}
