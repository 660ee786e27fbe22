// The bus codec: every event that travels on Redis Pub/Sub, encoded and decoded here and nowhere else (the Lua
// encoder of presence events, which Redis scripts publish themselves, lives here too). Every event carries the bus
// version `v` and its `kind`; a payload of another version or shape decodes to undefined and is dropped.
//   room.<room>   message   a stored message with its `prev` hint (chat -> gateways), optional `traceparent`
//   presence      presence  a user online/offline in a room, or globally (no room)   (presence scripts -> all)
//   typing        typing    a user typing in a room, with the gateway it came from    (gateway -> other gateways)
import type { Broadcast, RoomId } from '../protocol/index.js';

export const BUS_VERSION = 1;

/** A broadcast of a stored message. Flat on the wire (the message's fields beside `v` and `kind`). */
export interface BusMessage extends Broadcast {
  v: typeof BUS_VERSION;
  kind: 'message';
  /** W3C trace context of the send, when the path is traced. */
  traceparent?: string;
}

export interface BusPresence {
  v: typeof BUS_VERSION;
  kind: 'presence';
  /** Absent for global presence (a user's first session in, last one out), which is for services, not clients. */
  room?: RoomId;
  user: string;
  status: 'online' | 'offline';
}

export interface BusTyping {
  v: typeof BUS_VERSION;
  kind: 'typing';
  /** The gateway it came from, which delivered it to its own members already. */
  gateway: string;
  room: RoomId;
  user: string;
}

export type BusEvent = BusMessage | BusPresence | BusTyping;

export function encodeMessage(b: Broadcast, traceparent?: string): string {
  const e: BusMessage = { v: BUS_VERSION, kind: 'message', ...b };
  if (traceparent !== undefined) e.traceparent = traceparent;
  return JSON.stringify(e);
}

export function encodeTyping(gateway: string, room: RoomId, user: string): string {
  const e: BusTyping = { v: BUS_VERSION, kind: 'typing', gateway, room, user };
  return JSON.stringify(e);
}

/** The reference encoder of presence events; the scripts publish the same JSON through PRESENCE_EVENT_LUA. */
export function encodePresence(room: RoomId | undefined, user: string, status: 'online' | 'offline'): string {
  const e: BusPresence = room === undefined
    ? { v: BUS_VERSION, kind: 'presence', user, status }
    : { v: BUS_VERSION, kind: 'presence', room, user, status };
  return JSON.stringify(e);
}

/** `presence_event(room, user, status)` in Lua, for the presence scripts; room '' means global. */
export const PRESENCE_EVENT_LUA = `
local function presence_event(room, user, status)
  local r = ''
  if room ~= '' then r = ',"room":' .. cjson.encode(room) end
  return '{"v":${BUS_VERSION},"kind":"presence"' .. r .. ',"user":' .. cjson.encode(user) .. ',"status":"' .. status .. '"}'
end
`;

function parse(payload: string): Record<string, unknown> | undefined {
  try {
    const o: unknown = JSON.parse(payload);
    return typeof o === 'object' && o !== null && (o as { v?: unknown }).v === BUS_VERSION ? o as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Parsed once per gateway, not per recipient; the result is the message itself (no copy). */
export function decodeMessage(payload: string): BusMessage | undefined {
  const o = parse(payload);
  if (!o || o.kind !== 'message' || typeof o.seq !== 'number' || typeof o.room !== 'string' || typeof o.id !== 'string' ||
    typeof o.from !== 'string' || typeof o.body !== 'string' || typeof o.ts !== 'number') return undefined;
  return o as unknown as BusMessage;
}

export function decodePresence(payload: string): BusPresence | undefined {
  const o = parse(payload);
  if (!o || o.kind !== 'presence' || typeof o.user !== 'string' || (o.status !== 'online' && o.status !== 'offline') ||
    (o.room !== undefined && typeof o.room !== 'string')) return undefined;
  return o as unknown as BusPresence;
}

export function decodeTyping(payload: string): BusTyping | undefined {
  const o = parse(payload);
  if (!o || o.kind !== 'typing' || typeof o.gateway !== 'string' || typeof o.room !== 'string' || typeof o.user !== 'string') {
    return undefined;
  }
  return o as unknown as BusTyping;
}
