// JetStream API errors recognised by their codes (nats-server's JSApiError codes, the ones nats.js exports as
// JetStreamApiCodes and the few it does not), never by their message text.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/** nats-server JSStreamNameExistErr: "stream name already in use with a different configuration". */
export const STREAM_NAME_IN_USE = 10058;

function hasCode(err: unknown, ...codes: number[]): boolean {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}

/** The stream or the consumer asked for does not exist. */
export function isNotFound(err: unknown): boolean {
  return hasCode(err, JetStreamApiCodes.StreamNotFound, JetStreamApiCodes.ConsumerNotFound);
}

/** The stream exists already (another instance created it between our info and add). */
export function isStreamNameInUse(err: unknown): boolean {
  return hasCode(err, STREAM_NAME_IN_USE);
}

/** No message matched a get (direct gets answer that with null; the message API with this error). */
export function isNoMessage(err: unknown): boolean {
  return hasCode(err, JetStreamApiCodes.NoMessageFound);
}

/** A message delete found nothing at that seq (deleted already, or aged out): nats-server JSSequenceNotFoundErrF. */
export const SEQUENCE_NOT_FOUND = 10057;

export function isSequenceGone(err: unknown): boolean {
  return hasCode(err, SEQUENCE_NOT_FOUND, JetStreamApiCodes.NoMessageFound);
}
