// Server → client frames, serialised in one place so every path produces the same bytes.
import type { ErrorCode } from './codes.js';
import type { RoomId } from './frames.js';
import type { StoredMessage } from './message.js';

export function welcomeFrame(user: string, session: string, protocol: number): string {
  return JSON.stringify({ type: 'welcome', user, session, protocol });
}

/** `left {room, reason?}`: the answer to `leave`, or (with a reason, e.g. `forbidden` after a refresh) a leave the server made. */
export function leftFrame(room: RoomId, reason?: string): string {
  return JSON.stringify(reason === undefined ? { type: 'left', room } : { type: 'left', room, reason });
}

export function ackFrame(id: string, seq: number, duplicate: boolean): string {
  return `{"type":"ack","id":${JSON.stringify(id)},"seq":${seq},"duplicate":${duplicate}}`;
}

/** `retryAfterMs` goes with RATE_LIMITED: how long until the same request would be within the budget. */
export function errorFrame(code: ErrorCode, message: string, ref?: string, retryAfterMs?: number): string {
  const f: { type: 'error'; code: ErrorCode; message: string; ref?: string; retryAfterMs?: number } = { type: 'error', code, message };
  if (ref !== undefined) f.ref = ref;
  if (retryAfterMs !== undefined) f.retryAfterMs = retryAfterMs;
  return JSON.stringify(f);
}

/** `presence {room?, user, status}`: gateways build it from the bus's presence events (lib/fanout/codec.ts). */
export function presenceFrame(room: RoomId | undefined, user: string, status: 'online' | 'offline'): string {
  return room === undefined
    ? `{"type":"presence","user":${JSON.stringify(user)},"status":"${status}"}`
    : `{"type":"presence","room":"${room}","user":${JSON.stringify(user)},"status":"${status}"}`;
}

export function typingFrame(room: RoomId, user: string): string {
  return `{"type":"typing","room":"${room}","user":${JSON.stringify(user)}}`;
}

/**
 * A `message` frame. `prev` is the seq of the message before it in the same room, as this client sees the room, so
 * a client can check that nothing is missing. Serialised once per gateway, not per recipient.
 */
export function messageFrame(m: StoredMessage, prev: number): string {
  const mentions = m.mentions ? `,"mentions":${JSON.stringify(m.mentions)}` : '';
  return `{"type":"message","room":"${m.room}","id":"${m.id}","seq":${m.seq},"prev":${prev},"from":${JSON.stringify(m.from)},` +
    `"body":${JSON.stringify(m.body)},"ts":${m.ts}${mentions}}`;
}

/** `presence`: who is online in the room now (lib/presence `onlineInRoom`); omitted when not given. */
export function joinedFrame(room: RoomId, seq: number, recovered: boolean, replayed: number, presence?: string[]): string {
  return JSON.stringify(presence === undefined
    ? { type: 'joined', room, seq, recovered, replayed }
    : { type: 'joined', room, seq, recovered, replayed, presence });
}

export function historyFrame(room: RoomId, messages: StoredMessage[], more: boolean): string {
  const next = more && messages.length > 0 ? messages[messages.length - 1]!.seq : null;
  return JSON.stringify({ type: 'history', room, messages, more, next });
}

export function mutedFrame(room: RoomId, until: number | null): string {
  return JSON.stringify({ type: 'muted', room, until });
}

export function unmutedFrame(room: RoomId, was: boolean): string {
  return JSON.stringify({ type: 'unmuted', room, was });
}
