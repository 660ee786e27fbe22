// Server → client frames, serialised in one place so every path produces the same bytes.
import type { ErrorCode } from './codes.js';
import type { RoomId, StoredMessage } from './frames.js';

export function welcomeFrame(user: string, session: string, protocol: number): string {
  return JSON.stringify({ type: 'welcome', user, session, protocol });
}

export function joinedFrame(room: RoomId, seq: number): string {
  return JSON.stringify({ type: 'joined', room, seq });
}

export function leftFrame(room: RoomId): string {
  return JSON.stringify({ type: 'left', room });
}

export function ackFrame(id: string, seq: number, duplicate: boolean): string {
  return `{"type":"ack","id":${JSON.stringify(id)},"seq":${seq},"duplicate":${duplicate}}`;
}

export function errorFrame(code: ErrorCode, message: string, ref?: string): string {
  return JSON.stringify(ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref });
}

/** The broadcast frame: serialised once by the chat service, forwarded byte for byte by every gateway. */
export function messageFrame(m: StoredMessage): string {
  return JSON.stringify({ type: 'message', room: m.room, id: m.id, seq: m.seq, from: m.from, body: m.body, ts: m.ts });
}
