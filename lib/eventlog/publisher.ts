// Publishes chat events to JetStream with the namespaced message id, so the stream itself deduplicates retries.
import { jetstream } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamPublishOptions, PubAck } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { StreamConfig } from '../config/index.js';
import { TRACING_OFF, endSpan, startPublish } from '../observability/tracing.js';
import type { Span, Tracing } from '../observability/tracing.js';
import { namespacedId } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
import type { NatsHandle } from './connection.js';
import { createdSubject, createdTemplate } from './subjects.js';

export class UnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UnavailableError';
  }
}

export interface EventPublisher {
  /**
   * Resolves only once JetStream has stored the event (or recognised it as a duplicate). With a `parent` span (tracing
   * on) the publish gets a PRODUCER span whose context travels in the message's `traceparent` header.
   */
  publish(ev: ChatMessage, parent?: Span): Promise<PubAck>;
}

export function createPublisher(nats: NatsHandle, cfg: StreamConfig, tracing: Tracing = TRACING_OFF): EventPublisher {
  const js: JetStreamClient = jetstream(nats.nc, { timeout: cfg.publishTimeoutMs });
  const template = createdTemplate(cfg.subjectRoot);
  return {
    async publish(ev, parent) {
      // While disconnected, a publish would sit in the client's reconnect buffer until it times out; fail at once
      // instead so the client can retry (the same id makes the retry safe).
      if (!nats.connected()) throw new UnavailableError('event log unavailable (disconnected)');
      const subject = createdSubject(cfg.subjectRoot, ev.room);
      const data = JSON.stringify(ev);
      const opts: Partial<JetStreamPublishOptions> = {
        msgID: namespacedId(ev.from, ev.id),
        timeout: cfg.publishTimeoutMs,
        expect: { streamName: cfg.name },
      };
      let span: Span | undefined;
      if (parent !== undefined) {
        opts.headers = headers();
        span = startPublish(tracing, parent, subject, template, opts.msgID!, data.length, opts.headers);
      }
      try {
        const pa = await js.publish(subject, data, opts);
        endSpan(span, undefined, { 'parley.seq': pa.seq, 'parley.duplicate': pa.duplicate });
        return pa;
      } catch (err) {
        endSpan(span, err);
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
