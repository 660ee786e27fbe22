// MongoDB (or FerretDB) storage of chat messages. Writes are inserts keyed by the namespaced id, so a redelivered
// event can never create a second document; FerretDB v1 has no transactions, so nothing here relies on them.
import { MongoBulkWriteError, MongoClient } from 'mongodb';
import type { Collection, Db, MongoClientOptions } from 'mongodb';
import type { RoomId, StoredMessage } from '../protocol/index.js';
import type { Logger } from '../observability/logger.js';

export interface MessageDoc {
  _id: string;
  room: RoomId;
  seq: number;
  from: string;
  body: string;
  ts: number;
  mentions?: string[];
}

export interface MessageStore {
  /**
   * Stores every message not stored yet and returns the ones that should be broadcast: new documents and
   * redeliveries of an event already stored with the same seq (the broadcast may not have happened before a crash).
   * A message whose id is already stored under another seq is a duplicate beyond JetStream's window and is dropped.
   */
  insert(messages: MessageDoc[]): Promise<MessageDoc[]>;
  /** A page of a room, newest first: seq < before (all when undefined), at most `limit`. Uses {room: 1, seq: -1}. */
  page(room: RoomId, before: number | undefined, limit: number): Promise<StoredMessage[]>;
  /** Messages of a room with after < seq < before, oldest first, at most `limit` (recovery beyond the stream). */
  range(room: RoomId, after: number, before: number, limit: number): Promise<StoredMessage[]>;
  /** How many messages of a room have seq > after, counting no further than `cap`. */
  countAfter(room: RoomId, after: number, cap: number): Promise<number>;
  close(): Promise<void>;
}

const DUPLICATE_KEY = 11000;

/** Options of a store's own client: a reading gateway bounds its pool and every query (lib/store/gate.ts). */
export interface StoreOptions {
  /** Pool bounds and timeouts of this store's MongoClient (one pool per store). */
  client?: Pick<MongoClientOptions, 'maxPoolSize' | 'minPoolSize' | 'maxConnecting' | 'waitQueueTimeoutMS' | 'connectTimeoutMS' | 'socketTimeoutMS'>;
  /** maxTimeMS of page, range and countAfter: the server abandons a read that runs longer. */
  readTimeoutMs?: number;
}

export async function openMessageStore(url: string, dbName: string, log: Logger, opts: StoreOptions = {}): Promise<MessageStore> {
  const client = new MongoClient(url, {
    appName: 'parley',
    serverSelectionTimeoutMS: 5_000,
    // Retries are ours (the consumer retries a whole batch); keep the driver from retrying behind our back.
    retryWrites: false,
    ...opts.client,
  });
  const reads = opts.readTimeoutMs === undefined ? {} : { maxTimeMS: opts.readTimeoutMs };
  await client.connect();
  const db: Db = client.db(dbName);
  const messages: Collection<MessageDoc> = db.collection<MessageDoc>('messages');
  await messages.createIndex({ room: 1, seq: -1 }, { name: 'room_seq' });
  log.info({ db: dbName }, 'mongo connected');

  return {
    async insert(docs) {
      if (docs.length === 0) return docs;
      let duplicates: number[] = [];
      try {
        await messages.insertMany(docs, { ordered: false });
        return docs;
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError)) throw err;
        const writeErrors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
        if (writeErrors.some((e) => e.code !== DUPLICATE_KEY)) throw err;
        duplicates = writeErrors.map((e) => e.index);
      }
      const dupIds = duplicates.map((i) => docs[i]!._id);
      const existing = await messages.find({ _id: { $in: dupIds } }, { projection: { seq: 1 } }).toArray();
      const seqOf = new Map(existing.map((d) => [d._id, d.seq]));
      const dup = new Set(duplicates);
      return docs.filter((d, i) => !dup.has(i) || seqOf.get(d._id) === d.seq);
    },
    async page(room, before, limit) {
      const filter = before === undefined ? { room } : { room, seq: { $lt: before } };
      const docs = await messages.find(filter, reads).sort({ seq: -1 }).limit(limit).toArray();
      return docs.map(toStored);
    },
    async range(room, after, before, limit) {
      const docs = await messages.find({ room, seq: { $gt: after, $lt: before } }, reads).sort({ seq: 1 }).limit(limit).toArray();
      return docs.map(toStored);
    },
    async countAfter(room, after, cap) {
      return messages.countDocuments({ room, seq: { $gt: after } }, { limit: cap, ...reads });
    },
    async close() {
      await client.close();
    },
  };
}

export function toStored(d: MessageDoc): StoredMessage {
  const id = d._id.slice(d._id.lastIndexOf(':') + 1);
  const m: StoredMessage = { room: d.room, id, seq: d.seq, from: d.from, body: d.body, ts: d.ts };
  if (d.mentions) m.mentions = d.mentions;
  return m;
}
