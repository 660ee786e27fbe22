// The server -> client frames as types: what server-frames.ts serialises and what every client in this repository
// (tests/harness/client.ts, bench/generator/driver.ts, cmd/client.ts) reads. Declared here once.
import type { ErrorCode } from './codes.js';
import type { RoomId } from './frames.js';
import type { StoredMessage } from './message.js';

export interface WelcomeFrame { type: 'welcome'; user: string; session: string; protocol: number }
export interface JoinedFrame { type: 'joined'; room: RoomId; seq: number; recovered: boolean; replayed: number; presence?: string[] }
export interface LeftFrame { type: 'left'; room: RoomId; reason?: string }
/** `prev`: the seq of the message before it in the room, as this client sees the room. */
export interface MessageFrame extends StoredMessage { type: 'message'; prev: number }
export interface AckFrame { type: 'ack'; id: string; seq: number; duplicate: boolean }
export interface PresenceFrame { type: 'presence'; room?: RoomId; user: string; status: 'online' | 'offline' }
export interface TypingEventFrame { type: 'typing'; room: RoomId; user: string }
/** `next`: the `before` of the following page, null when there is none. */
export interface HistoryPageFrame { type: 'history'; room: RoomId; messages: StoredMessage[]; more: boolean; next: number | null }
export interface RefreshedFrame { type: 'refreshed'; expiresAt: number | null }
/** The answer to `mute`: `until` null means until unmuted. */
export interface MutedFrame { type: 'muted'; room: RoomId; until: number | null }
/** The answer to `unmute`: `was` says whether the room was muted. */
export interface UnmutedFrame { type: 'unmuted'; room: RoomId; was: boolean }
export interface ErrorFrame { type: 'error'; code: ErrorCode; message: string; ref?: string; retryAfterMs?: number }

export type ServerFrame =
  | WelcomeFrame | JoinedFrame | LeftFrame | MessageFrame | AckFrame | PresenceFrame | TypingEventFrame | HistoryPageFrame
  | RefreshedFrame | ErrorFrame | MutedFrame | UnmutedFrame;
