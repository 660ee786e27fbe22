// MongoDB (or FerretDB v1) storage of notifications, their attempt claims, and room mutes. Nothing here depends on a
// transaction or on an update being atomic under concurrency (FerretDB v1 gives neither): every decision two
// instances could race on is an insert keyed by id (a notification per (message, recipient), a claim per attempt),
// and a notification document is updated only by the holder of its current claim (docs/decisions/0018).
import { createHash } from 'node:crypto';
import { MongoBulkWriteError, MongoClient, MongoServerError } from 'mongodb';
import type { Collection } from 'mongodb';
import type { Logger } from '../observability/logger.js';
import { duplicatesOnly } from './messages.js';

export type NotificationState = 'pending' | 'sent' | 'failed' | 'dead';
/** Why the recipient is told: mentioned in the message, or a member of the direct room who was offline. */
export type NotificationReason = 'mention' | 'direct';

export interface NotificationDoc {
  /** `n_` + a hash of (messageId, recipient): short enough for a command line (`parley dlq replay --id`). */
  _id: string;
  /** The message's namespaced id (`<user>:<clientId>`). */
  messageId: string;
  recipient: string;
  reason: NotificationReason;
  room: string;
  seq: number;
  from: string;
  body: string;
  ts: number;
  state: NotificationState;
  /** 0 from the consumer; a replay from the dead-letter stream starts the next round. */
  round: number;
  /** Attempts of this round claimed so far, as last recorded by a claim holder. */
  attempts: number;
  /** Sinks that delivered it (a retry goes only to the others). */
  done: string[];
  lastError?: string;
  createdAt: number;
  updatedAt: number;
}

/** The claim of one attempt (`<id>#<round>#<attempt>`), or of a replay (`<id>#replay#<round>`). */
export interface ClaimDoc {
  _id: string;
  owner: string;
  leaseUntil: number;
  at: number;
}

export interface MuteDoc {
  _id: string;
  user: string;
  room: string;
  /** Epoch ms; null: until unmuted. */
  until: number | null;
  at: number;
}

export interface MuteStore {
  mute(user: string, room: string, until: number | null): Promise<void>;
  /** True when there was a mute to remove. */
  unmute(user: string, room: string): Promise<boolean>;
}

export interface NotificationStore extends MuteStore {
  /** Inserts the notifications not recorded yet; returns the ids of those that were recorded before. */
  record(docs: NotificationDoc[]): Promise<{ existing: string[] }>;
  get(ids: string[]): Promise<NotificationDoc[]>;
  /** Inserts the claim; false when it exists (someone else made it). */
  claim(id: string, owner: string, leaseUntil: number): Promise<boolean>;
  claimOf(id: string): Promise<ClaimDoc | undefined>;
  /** Written only by the holder of the notification's current claim. */
  update(id: string, set: Partial<Omit<NotificationDoc, '_id'>>): Promise<void>;
  /** Of `users`, those who muted `room` (a mute whose `until` is past does not count). */
  mutedAmong(room: string, users: string[], now: number): Promise<Set<string>>;
  /** The `email` of the user's document in `users`, if any. */
  emailOf(user: string): Promise<string | undefined>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const DUPLICATE_KEY = 11000;

export function notificationId(messageId: string, recipient: string): string {
  return `n_${createHash('sha256').update(messageId).update('\n').update(recipient).digest('base64url').slice(0, 24)}`;
}

const muteId = (user: string, room: string): string => `${room} ${user}`;

export interface NotificationStoreOptions {
  maxPoolSize?: number;
  /** Create the indexes (the notification service does; a gateway, which only writes mutes, need not). */
  indexes?: boolean;
}

export async function openNotificationStore(url: string, dbName: string, log: Logger, opts: NotificationStoreOptions = {}): Promise<NotificationStore> {
  const client = await new MongoClient(url, {
    appName: 'parley-notify',
    serverSelectionTimeoutMS: 5_000,
    socketTimeoutMS: 30_000,
    waitQueueTimeoutMS: 30_000,
    retryWrites: false,
    ...(opts.maxPoolSize ? { maxPoolSize: opts.maxPoolSize } : {}),
  }).connect();
  const db = client.db(dbName);
  const notifications: Collection<NotificationDoc> = db.collection<NotificationDoc>('notifications');
  const claims: Collection<ClaimDoc> = db.collection<ClaimDoc>('notification_claims');
  const mutes: Collection<MuteDoc> = db.collection<MuteDoc>('mutes');
  const users: Collection<{ _id: string; email?: string }> = db.collection<{ _id: string; email?: string }>('users');
  // The contract (DESIGN.md): one notification per (message, recipient), whatever writes it. Mutes and claims are
  // read by _id only.
  if (opts.indexes !== false) await notifications.createIndex({ messageId: 1, recipient: 1 }, { name: 'message_recipient', unique: true });
  log.info({ db: dbName }, 'notification store connected');

  return {
    async record(docs) {
      if (docs.length === 0) return { existing: [] };
      try {
        await notifications.insertMany(docs, { ordered: false });
        return { existing: [] };
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError)) throw err;
        const raw = err.writeErrors as unknown;
        const list = (Array.isArray(raw) ? raw : raw ? [raw] : []) as { code?: number; index: number }[];
        const dups = duplicatesOnly({ insertedCount: err.insertedCount, writeErrors: list, hasWriteConcernError: Boolean(err.result?.getWriteConcernError()) }, docs.length);
        if (!dups) throw err;
        return { existing: dups.map((i) => docs[i]!._id) };
      }
    },
    async get(ids) {
      if (ids.length === 0) return [];
      return notifications.find({ _id: { $in: ids } }).toArray();
    },
    async claim(id, owner, leaseUntil) {
      try {
        await claims.insertOne({ _id: id, owner, leaseUntil, at: Date.now() });
        return true;
      } catch (err) {
        if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
        throw err;
      }
    },
    async claimOf(id) {
      return (await claims.findOne({ _id: id })) ?? undefined;
    },
    async update(id, set) {
      await notifications.updateOne({ _id: id }, { $set: { ...set, updatedAt: Date.now() } });
    },
    async mute(user, room, until) {
      // One user's own document: a race between two of their own mutes leaves one of the two values, either valid.
      await mutes.replaceOne({ _id: muteId(user, room) }, { user, room, until, at: Date.now() }, { upsert: true });
    },
    async unmute(user, room) {
      return (await mutes.deleteOne({ _id: muteId(user, room) })).deletedCount > 0;
    },
    async mutedAmong(room, list, now) {
      if (list.length === 0) return new Set();
      const found = await mutes.find({ _id: { $in: list.map((u) => muteId(u, room)) } }).toArray();
      return new Set(found.filter((m) => m.until === null || m.until > now).map((m) => m.user));
    },
    async emailOf(user) {
      const u = await users.findOne({ _id: user });
      return typeof u?.email === 'string' ? u.email : undefined;
    },
    async ping(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`mongo ping: no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([db.command({ ping: 1 }), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await client.close();
    },
  };
}
