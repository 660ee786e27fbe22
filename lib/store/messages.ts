// MongoDB (or FerretDB) storage of chat messages. Writes are inserts keyed by the namespaced id, so a redelivered
// event can never create a second document; FerretDB v1 has no transactions, so nothing here relies on them.
import { MongoBulkWriteError, MongoClient } from 'mongodb';
import type { Collection, MongoClientOptions } from 'mongodb';
import { clientIdOf, namespacedId, storedAt } from '../protocol/index.js';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import type { Logger } from '../observability/logger.js';

/** A message document: the stored message under its namespaced id (`_id`) instead of the client's. */
export type MessageDoc = Omit<StoredMessage, 'id'> & { _id: string };

export interface InsertResult {
  /** Documents this call inserted. */
  inserted: MessageDoc[];
  /** Documents whose id was stored already (a redelivery, or a resend beyond JetStream's duplicate window). */
  existing: MessageDoc[];
}

export interface MessageStore {
  /**
   * Inserts every message not stored yet. Resolves only when every document is stored, by this call or before it
   * (duplicate key); anything else (a network error, a partial write, a write concern error) rejects, and the caller
   * must treat the whole batch as not stored.
   */
  insert(messages: MessageDoc[]): Promise<InsertResult>;
  /** A page of a room, newest first: seq < before (all when undefined), at most `limit`. Uses {room: 1, seq: -1}. */
  page(room: RoomId, before: number | undefined, limit: number): Promise<StoredMessage[]>;
  /**
   * Messages of a room with from <= seq <= to, oldest first, at most `limit` (recovery beyond the stream). Bounds
   * read as everywhere in Parley: `from`/`to` are inclusive (as RoomReader.range), `after`/`before` exclusive.
   */
  range(room: RoomId, from: number, to: number, limit: number): Promise<StoredMessage[]>;
  /** How many messages of a room have seq > after, counting no further than `cap`. */
  countAfter(room: RoomId, after: number, cap: number): Promise<number>;
  /** The seqs stored with from <= seq <= to (of one room, when given): what the reconciler compares with the stream. */
  seqsIn(from: number, to: number, room?: RoomId): Promise<Set<number>>;
  /** Round trip to the server, failing after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  /** Replaces the client with a new one (a client that keeps failing while the server is fine is recycled). */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

const DUPLICATE_KEY = 11000;

/** What a failed insertMany may say, as the driver's MongoBulkWriteError has it. */
export interface BulkFailure {
  insertedCount: number;
  writeErrors: { code?: number; index: number }[];
  hasWriteConcernError: boolean;
}

/**
 * The indexes of the documents that were already stored, when a failed unordered insertMany of `count` documents
 * proves that every other document was inserted; undefined when it does not (and the batch must count as failed).
 * The driver reports a connection closed mid-insert as a bulk error with NO write errors: that is a failure.
 */
export function duplicatesOnly(f: BulkFailure, count: number): number[] | undefined {
  if (f.hasWriteConcernError || f.writeErrors.length === 0) return undefined;
  if (f.writeErrors.some((e) => e.code !== DUPLICATE_KEY)) return undefined;
  if (f.insertedCount + f.writeErrors.length !== count) return undefined;
  return f.writeErrors.map((e) => e.index);
}

function bulkFailure(err: MongoBulkWriteError): BulkFailure {
  const raw = err.writeErrors as unknown;
  const list = (Array.isArray(raw) ? raw : raw ? [raw] : []) as { code?: number; index: number }[];
  return { insertedCount: err.insertedCount, writeErrors: list, hasWriteConcernError: Boolean(err.result?.getWriteConcernError()) };
}

/** The driver's socket timeout: an operation on a hung server fails instead of waiting forever. */
const SOCKET_TIMEOUT_MS = 30_000;

/** Options of a store's own client: a reading gateway bounds its pool and every query (lib/store/gate.ts). */
export interface StoreOptions {
  /** Pool bounds and timeouts of this store's MongoClient (one pool per store). */
  client?: Pick<MongoClientOptions, 'maxPoolSize' | 'minPoolSize' | 'maxConnecting' | 'waitQueueTimeoutMS' | 'connectTimeoutMS' | 'socketTimeoutMS'>;
  /** maxTimeMS of page, range and countAfter: the server abandons a read that runs longer. */
  readTimeoutMs?: number;
}

export async function openMessageStore(url: string, dbName: string, log: Logger, opts: StoreOptions = {}): Promise<MessageStore> {
  const connect = async (): Promise<MongoClient> => {
    const c = new MongoClient(url, {
      appName: 'parley',
      serverSelectionTimeoutMS: 5_000,
      socketTimeoutMS: SOCKET_TIMEOUT_MS,
      // A connection checkout never waits forever either (after a server restart the pool is cleared and refilled).
      waitQueueTimeoutMS: SOCKET_TIMEOUT_MS,
      // Retries are ours (the consumer retries a whole batch); keep the driver from retrying behind our back.
      retryWrites: false,
      ...opts.client,
    });
    watchPool(c, log);
    return c.connect();
  };
  const reads = opts.readTimeoutMs === undefined ? {} : { maxTimeMS: opts.readTimeoutMs };
  let client = await connect();
  let messages: Collection<MessageDoc> = client.db(dbName).collection<MessageDoc>('messages');
  await messages.createIndex({ room: 1, seq: -1 }, { name: 'room_seq' });
  // Seqs are unique across the stream: the reconciler compares MongoDB with the stream by seq range.
  await messages.createIndex({ seq: 1 }, { name: 'seq' });
  log.info({ db: dbName }, 'mongo connected');

  return {
    async insert(docs) {
      if (docs.length === 0) return { inserted: docs, existing: [] };
      try {
        await messages.insertMany(docs, { ordered: false });
        return { inserted: docs, existing: [] };
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError)) throw err;
        const dups = duplicatesOnly(bulkFailure(err), docs.length);
        if (!dups) throw err;
        const dup = new Set(dups);
        return { inserted: docs.filter((_, i) => !dup.has(i)), existing: docs.filter((_, i) => dup.has(i)) };
      }
    },
    async page(room, before, limit) {
      const filter = before === undefined ? { room } : { room, seq: { $lt: before } };
      const docs = await messages.find(filter, reads).sort({ seq: -1 }).limit(limit).toArray();
      return docs.map(toStored);
    },
    async range(room, from, to, limit) {
      const docs = await messages.find({ room, seq: { $gte: from, $lte: to } }, reads).sort({ seq: 1 }).limit(limit).toArray();
      return docs.map(toStored);
    },
    async countAfter(room, after, cap) {
      return messages.countDocuments({ room, seq: { $gt: after } }, { limit: cap, ...reads });
    },
    async seqsIn(from, to, room) {
      const filter = room === undefined ? { seq: { $gte: from, $lte: to } } : { room, seq: { $gte: from, $lte: to } };
      const docs = await messages.find(filter, { projection: { _id: 0, seq: 1 } }).toArray();
      return new Set(docs.map((d) => d.seq));
    },
    async ping(timeoutMs) {
      // A frozen server never answers: the deadline is ours, not the server's.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`mongo ping: no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([client.db(dbName).command({ ping: 1 }), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    async reconnect() {
      const fresh = await connect();
      const old = client;
      client = fresh;
      messages = fresh.db(dbName).collection<MessageDoc>('messages');
      log.warn('mongo client replaced');
      await old.close(true).catch((err: unknown) => log.debug({ err }, 'closing the old mongo client failed'));
    },
    async close() {
      await client.close();
    },
  };
}

/** The document of a message; with `toStored` the only converters between the model and MongoDB. */
export function toDoc(m: StoredMessage): MessageDoc {
  const doc: MessageDoc = { _id: namespacedId(m.from, m.id), room: m.room, seq: m.seq, from: m.from, body: m.body, ts: m.ts };
  if (m.mentions) doc.mentions = m.mentions;
  return doc;
}

/**
 * Logs what the driver's pool and monitor go through (a pool cleared after a network error, a checkout that failed,
 * a heartbeat that failed, the server back), once per change of state: when one instance's client stops answering
 * while another's is fine (docs/decisions/0012), this is the trail that says where it hangs.
 */
function watchPool(c: MongoClient, log: Logger): void {
  let heartbeatFailing = false;
  c.on('connectionPoolCleared', (e) => log.warn({ address: e.address }, 'mongo pool cleared'));
  c.on('connectionCheckOutFailed', (e) => log.warn({ address: e.address, reason: e.reason }, 'mongo connection checkout failed'));
  c.on('serverHeartbeatFailed', (e) => {
    if (heartbeatFailing) return;
    heartbeatFailing = true;
    log.warn({ address: e.connectionId, err: e.failure }, 'mongo heartbeat failed');
  });
  c.on('serverHeartbeatSucceeded', () => {
    if (!heartbeatFailing) return;
    heartbeatFailing = false;
    log.info('mongo heartbeat succeeded again');
  });
}

export function toStored(d: MessageDoc): StoredMessage {
  return storedAt({ room: d.room, id: clientIdOf(d._id), from: d.from, body: d.body, ts: d.ts, mentions: d.mentions }, d.seq);
}
