// Protocol v1 frames: one parse-and-validate step for everything a client sends, then plain typed objects.
import { ProtocolError } from './errors.js';

export type RoomId = string;

export const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Client message ids: UUIDs, ULIDs, nanoids. No `:` so `<userId>:<id>` splits unambiguously at the last colon. */
export const CLIENT_MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * User ids come from the JWT `sub`: 1 to 128 code points of well-formed Unicode without whitespace, control,
 * format or private-use characters. Lone surrogates would all become U+FFFD in NATS message ids, Redis keys and MongoDB ids (two
 * users colliding); format characters (bidi overrides, zero-width joiners and spaces, BOM) let one id look like
 * another. In `u` mode a lone surrogate is a code point of category Cs, so the class refuses it too.
 */
export const USER_ID = /^[^\s\p{Cc}\p{Cf}\p{Cs}\p{Co}]{1,128}$/u;

/** Whether `v` is an acceptable user id (see USER_ID). */
export function isUserId(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 256 && (v as unknown as { isWellFormed(): boolean }).isWellFormed() && USER_ID.test(v);
}

export interface JoinFrame { type: 'join'; room: RoomId; since?: number }
export interface LeaveFrame { type: 'leave'; room: RoomId }
export interface SendFrame { type: 'send'; room: RoomId; id: string; body: string; mentions?: string[] }
export interface TypingFrame { type: 'typing'; room: RoomId }
export interface HistoryFrame { type: 'history'; room: RoomId; before?: number; limit?: number }
export interface RefreshFrame { type: 'refresh'; token: string }
/** Stop notifications of a room for the user (every connection of theirs), until `until` (epoch ms) or unmute. */
export interface MuteFrame { type: 'mute'; room: RoomId; until?: number }
export interface UnmuteFrame { type: 'unmute'; room: RoomId }

export type ClientFrame = JoinFrame | LeaveFrame | SendFrame | TypingFrame | HistoryFrame | RefreshFrame | MuteFrame | UnmuteFrame;

export interface ParseLimits {
  maxBodyBytes: number;
  maxMentions: number;
}

type Obj = Record<string, unknown>;

/** Parses one text frame. Throws ProtocolError (BAD_FRAME, UNKNOWN_ROOM, TOO_LARGE) with `ref` set when known. */
export function parseClientFrame(text: string, limits: ParseLimits): ClientFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ProtocolError('BAD_FRAME', 'frame is not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProtocolError('BAD_FRAME', 'frame must be a JSON object');
  }
  const o = raw as Obj;
  switch (o.type) {
    case 'send': {
      const ref = typeof o.id === 'string' ? o.id : undefined;
      const room = roomOf(o, ref);
      if (typeof o.id !== 'string' || !CLIENT_MSG_ID.test(o.id)) {
        throw new ProtocolError('BAD_FRAME', 'send.id must match [A-Za-z0-9_-]{1,64}', ref);
      }
      if (typeof o.body !== 'string' || o.body.length === 0) {
        throw new ProtocolError('BAD_FRAME', 'send.body must be a non-empty string', ref);
      }
      // Cheap bound first: a UTF-16 length over the limit may still fit only if... it cannot (>= 1 byte/unit).
      if (o.body.length > limits.maxBodyBytes || Buffer.byteLength(o.body, 'utf8') > limits.maxBodyBytes) {
        throw new ProtocolError('TOO_LARGE', `send.body exceeds ${limits.maxBodyBytes} bytes`, ref);
      }
      const frame: SendFrame = { type: 'send', room, id: o.id, body: o.body };
      if (o.mentions !== undefined) frame.mentions = mentionsOf(o.mentions, limits.maxMentions, ref);
      return frame;
    }
    case 'join': {
      const room = roomOf(o, refOf(o.room));
      const frame: JoinFrame = { type: 'join', room };
      if (o.since !== undefined) frame.since = seqOf(o.since, 'join.since', room);
      return frame;
    }
    case 'leave':
      return { type: 'leave', room: roomOf(o, refOf(o.room)) };
    case 'typing':
      return { type: 'typing', room: roomOf(o, refOf(o.room)) };
    case 'history': {
      const room = roomOf(o, refOf(o.room));
      const frame: HistoryFrame = { type: 'history', room };
      if (o.before !== undefined) frame.before = seqOf(o.before, 'history.before', room);
      if (o.limit !== undefined) {
        if (!Number.isSafeInteger(o.limit) || (o.limit as number) < 1) {
          throw new ProtocolError('BAD_FRAME', 'history.limit must be a positive integer', room);
        }
        frame.limit = o.limit as number;
      }
      return frame;
    }
    case 'mute': {
      const room = roomOf(o, refOf(o.room));
      const frame: MuteFrame = { type: 'mute', room };
      if (o.until !== undefined) frame.until = untilOf(o.until, room);
      return frame;
    }
    case 'unmute':
      return { type: 'unmute', room: roomOf(o, refOf(o.room)) };
    case 'refresh':
      if (typeof o.token !== 'string' || o.token.length === 0 || o.token.length > 8192) {
        throw new ProtocolError('BAD_FRAME', 'refresh.token must be a non-empty string');
      }
      return { type: 'refresh', token: o.token };
    default:
      throw new ProtocolError(
        'BAD_FRAME',
        typeof o.type === 'string' ? `unknown frame type ${JSON.stringify(o.type.slice(0, 32))}` : 'frame.type is missing',
      );
  }
}

function roomOf(o: Obj, ref?: string): RoomId {
  if (typeof o.room !== 'string') throw new ProtocolError('BAD_FRAME', 'room must be a string', ref);
  if (!ROOM_ID.test(o.room)) throw new ProtocolError('UNKNOWN_ROOM', 'room id must match [A-Za-z0-9_-]{1,64}', ref);
  return o.room;
}

/** Room-scoped errors echo the room as `ref` (bounded) so a client can tell which request failed. */
function refOf(v: unknown): string | undefined {
  return typeof v === 'string' ? v.slice(0, 128) : undefined;
}

function seqOf(v: unknown, field: string, ref: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) {
    throw new ProtocolError('BAD_FRAME', `${field} must be a non-negative integer sequence`, ref);
  }
  return v as number;
}

/** A mute's end: epoch milliseconds (a positive safe integer). Shared by the frame and the HTTP endpoint. */
export function untilOf(v: unknown, ref?: string): number {
  if (!Number.isSafeInteger(v) || (v as number) <= 0) {
    throw new ProtocolError('BAD_FRAME', 'mute.until must be a positive integer (epoch milliseconds)', ref);
  }
  return v as number;
}

function mentionsOf(v: unknown, max: number, ref?: string): string[] {
  if (!Array.isArray(v) || v.length > max || !v.every(isUserId)) {
    throw new ProtocolError('BAD_FRAME', `send.mentions must be an array of at most ${max} user ids`, ref);
  }
  return v as string[];
}
