export { connectNats } from './connection.js';
export { ensureStream, ensureDurable, lastSeqOn } from './setup.js';
export { createPublisher, decodeEvent, namespacedId, UnavailableError } from './publisher.js';
export { startBatchConsumer } from './consumer.js';
export { createdSubject, createdWildcard, roomOfSubject, streamSubjects } from './subjects.js';
export type { NatsHandle } from './connection.js';
export type { DurableOptions } from './setup.js';
export type { EventPublisher, MessageEvent } from './publisher.js';
export type { BatchConsumer, BatchConsumerOptions } from './consumer.js';
