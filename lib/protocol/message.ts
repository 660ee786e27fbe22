// The chat message, declared once. A `send` makes a ChatMessage (the gateway puts it in the stream); the stream's
// sequence makes it a StoredMessage, which is what MongoDB projects, the bus broadcasts and `message` frames carry.
import type { RoomId } from './frames.js';

export interface ChatMessage {
  room: RoomId;
  /** The client's id (not namespaced). */
  id: string;
  from: string;
  body: string;
  /** Milliseconds since the epoch when the gateway accepted the send. */
  ts: number;
  mentions?: string[];
}

export interface StoredMessage extends ChatMessage {
  /** The stream sequence: orders the room's messages and is the recovery cursor. */
  seq: number;
}

/** What the chat service broadcasts: the stored message and the seq it published before it in the room, if known. */
export interface Broadcast extends StoredMessage {
  prev?: number;
}

/** The id under which a message is deduplicated and stored: a user can never collide with another's ids. */
export function namespacedId(user: string, clientId: string): string {
  return `${user}:${clientId}`;
}

/** The client id of a namespaced id (user ids may contain ':'; client ids never do). */
export function clientIdOf(namespaced: string): string {
  return namespaced.slice(namespaced.lastIndexOf(':') + 1);
}

/** The stored form of a message at `seq`: the only place a StoredMessage is assembled from its parts. */
export function storedAt(m: ChatMessage, seq: number): StoredMessage {
  const s: StoredMessage = { room: m.room, id: m.id, seq, from: m.from, body: m.body, ts: m.ts };
  if (m.mentions) s.mentions = m.mentions;
  return s;
}
